"""dlcore.optimizers: optimizers, as ``keras.optimizers`` (Keras 3 names, arguments, defaults and
update formulas). The base class and its design notes are in ``optimizer.py``, one module per
optimizer beside it; this module re-exports them and binds the identifier protocol."""
from .. import registry
from . import schedules
from .adadelta import Adadelta
from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .ftrl import Ftrl
from .lamb import Lamb
from .lion import Lion
from .loss_scale_optimizer import LossScaleOptimizer
from .nadam import Nadam
from .optimizer import _KIND, Optimizer, clip_by_global_norm
from .rmsprop import RMSprop
from .schedules import LearningRateSchedule
from .sgd import SGD


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` of an optimizer."""
    return None if optimizer is None else registry.serialize(_KIND, optimizer, base=Optimizer)


def deserialize(config, custom_objects=None):
    """The optimizer described by ``config`` (a ``serialize`` dict, Keras's form included, or a
    name)."""
    return registry.deserialize(_KIND, config, custom_objects)


def get(identifier, custom_objects=None):
    """An optimizer from a name ("adam", "Adam", "rmsprop"), a config dict, or an instance."""
    return registry.get(_KIND, identifier, custom_objects, accept=lambda obj: isinstance(obj, Optimizer),
                        instantiate_classes=False)


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adamax", "Nadam",
           "Adadelta", "Adafactor", "Ftrl", "Lamb", "Lion", "LossScaleOptimizer",
           "schedules", "LearningRateSchedule", "clip_by_global_norm", "get", "serialize",
           "deserialize"]
