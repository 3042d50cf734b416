"""dlcore: a fast deep-learning training and inference engine for CPUs, with the Keras API.

    import dlcore as dl
    model = dl.Sequential([dl.Input(shape=(64,)), dl.layers.Dense(10, activation="softmax")])

Submodules that predicting a saved model does not need (callbacks, optimizers, datasets, ...) are
imported on first use (``dl.optimizers.Adam``), which keeps the cold start of a deployment short.
"""
from . import _runtime

_runtime.set_thread_waiting_defaults()  # before OpenMP and OpenBLAS load
_runtime.retain_freed_memory()

from . import kernels  # noqa: E402,F401  (fails early, with advice, if the Cython kernels were not built)
from . import config, layers, models, ops, registry  # noqa: E402
from ._lazy import lazy_members  # noqa: E402
from .autograd import GradientTape, no_grad  # noqa: E402
from .devices import device  # noqa: E402
from .layers import Input, InputLayer, Layer  # noqa: E402
from .models import Model, Sequential  # noqa: E402
from .symbolic import KerasTensor  # noqa: E402
from .tensor import Tensor, Variable  # noqa: E402

# name -> submodule, imported on first access; the registry loads the families a name refers to
_LAZY = {name: name for name in ("activations", "callbacks", "constraints", "datasets", "distribute",
                                 "dtype_policies", "initializers", "losses", "metrics", "mixed_precision",
                                 "optimizers", "random", "regularizers", "saving", "utils", "wrappers")}
lazy_members(__name__, globals(), _LAZY)
# the names the optimizers package registers, so that resolving an initializer's name while loading
# a model does not import the optimizers (tests/test_lazy_imports.py checks this list is complete)
_LAZY_REGISTERED = {
    "optimizer": ("Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion",
                  "LossScaleOptimizer", "Nadam", "RMSprop", "SGD"),
    "schedule": ("CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay",
                 "PiecewiseConstantDecay", "PolynomialDecay"),
}
for _kind, _module in (("optimizer", "optimizers"), ("schedule", "optimizers"), ("loss", "losses"),
                       ("metric", "metrics"), ("callback", "callbacks"), ("activation", "activations"),
                       ("initializer", "initializers"), ("regularizer", "regularizers"),
                       ("constraint", "constraints")):
    registry.add_loader(_kind, lambda name, _module=_module: __getattr__(_module), _LAZY_REGISTERED.get(_kind))
del _kind, _module

__version__ = "0.1.0"

__all__ = ["Sequential", "Model", "Input", "InputLayer", "Layer", "GradientTape", "no_grad", "Tensor",
           "Variable", "KerasTensor", "layers", "ops", "losses", "optimizers", "metrics", "callbacks",
           "regularizers", "initializers", "constraints", "activations", "utils", "config", "models",
           "saving", "random", "distribute", "device", "mixed_precision", "dtype_policies"]
