"""dlcore: a fast deep-learning training and inference engine for CPUs, with the Keras API.

    import dlcore as dl
    model = dl.Sequential([dl.Input(shape=(64,)), dl.layers.Dense(10, activation="softmax")])
"""
import os as _os

# Idle OpenMP threads (Cython kernels, Numba's omp layer) spin after each parallel region and
# steal the cores from the next kernel and from BLAS: measured on a busy 2-core machine, an MLP
# training step took 27 ms with the default policy and 1.4 ms with passive waiting. These must be
# set before the libraries load; a value the user set wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import kernels  # noqa: E402,F401  (fails early, with advice, if the Cython kernels were not built)
from . import (activations, callbacks, config, constraints, initializers, layers, losses, metrics,
               models, ops, optimizers, regularizers, saving, utils)
from . import wrappers  # noqa: F401  (scikit-learn is imported on first use of a wrapper)
from .autograd import GradientTape, no_grad
from .layers import Input, InputLayer, Layer
from .models import Model, Sequential
from .symbolic import KerasTensor
from .tensor import Tensor, Variable

__version__ = "0.1.0"

__all__ = ["Sequential", "Model", "Input", "InputLayer", "Layer", "GradientTape", "no_grad", "Tensor",
           "Variable", "KerasTensor", "layers", "ops", "losses", "optimizers", "metrics", "callbacks",
           "regularizers", "initializers", "constraints", "activations", "utils", "config", "models",
           "saving"]
