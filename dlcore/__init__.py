"""dlcore: a fast deep-learning training and inference engine for CPUs, with the Keras API.

    import dlcore as dl
    model = dl.Sequential([dl.Input(shape=(64,)), dl.layers.Dense(10, activation="softmax")])
"""
from . import _runtime

_runtime.set_thread_waiting_defaults()  # before OpenMP and OpenBLAS load
_runtime.retain_freed_memory()

from . import kernels  # noqa: E402,F401  (fails early, with advice, if the Cython kernels were not built)
from . import (activations, callbacks, config, constraints, distribute, initializers, layers, losses, metrics,
               models, ops, optimizers, random, regularizers, saving, utils)
from . import datasets  # noqa: F401,E402  (scikit-learn is imported by load_data, not here)
from . import wrappers  # noqa: F401  (scikit-learn is imported on first use of a wrapper)
from .autograd import GradientTape, no_grad
from .devices import device
from .layers import Input, InputLayer, Layer
from .models import Model, Sequential
from .symbolic import KerasTensor
from .tensor import Tensor, Variable

__version__ = "0.1.0"

__all__ = ["Sequential", "Model", "Input", "InputLayer", "Layer", "GradientTape", "no_grad", "Tensor",
           "Variable", "KerasTensor", "layers", "ops", "losses", "optimizers", "metrics", "callbacks",
           "regularizers", "initializers", "constraints", "activations", "utils", "config", "models",
           "saving", "random", "distribute", "device"]
