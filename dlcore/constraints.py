"""Weight constraints, as ``keras.constraints`` (Keras 3 names, arguments, defaults, formulas).

A constraint maps a weight array to its projected value, ``c(w: ndarray) -> ndarray`` of the same
shape and dtype. Optimizers apply it after each update, outside the tape, so it works on plain
NumPy arrays (a Tensor or Variable is unwrapped).
"""
import numpy as np

from . import config
from . import registry
from .registry import register
from .tensor import Tensor

_KIND = "constraint"


def _array(w):
    w = w.value if isinstance(w, Tensor) else np.asarray(w)
    if w.dtype.kind != "f":
        w = w.astype(config.floatx())
    return w


def _norms(w, axis):
    if isinstance(axis, list):
        axis = tuple(axis)
    return np.sqrt(np.sum(np.square(w), axis=axis, keepdims=True))


@register(_KIND)
class Constraint:
    """Base class: ``__call__(w)`` returns the constrained weight (the identity here)."""

    def __call__(self, w):
        return w

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register(_KIND, "max_norm")
class MaxNorm(Constraint):
    """Rescales each slice along ``axis`` whose L2 norm exceeds ``max_value``:
    w * clip(norm, 0, max_value) / (epsilon + norm)."""

    def __init__(self, max_value=2, axis=0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = np.clip(norms, 0, self.max_value)
        return (w * (desired / (config.epsilon() + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"max_value": self.max_value, "axis": self.axis}


@register(_KIND, "min_max_norm")
class MinMaxNorm(Constraint):
    """Moves each slice's L2 norm along ``axis`` toward [min_value, max_value] at ``rate``:
    desired = rate * clip(norm, min, max) + (1 - rate) * norm; w * desired / (epsilon + norm)."""

    def __init__(self, min_value=0.0, max_value=1.0, rate=1.0, axis=0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        norms = _norms(w, self.axis)
        desired = self.rate * np.clip(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return (w * (desired / (config.epsilon() + norms))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate,
                "axis": self.axis}


@register(_KIND, "non_neg")
class NonNeg(Constraint):
    """Zeroes the negative weights: w * (w >= 0)."""

    def __call__(self, w):
        w = _array(w)
        return w * (w >= 0).astype(w.dtype)


@register(_KIND, "unit_norm")
class UnitNorm(Constraint):
    """Each slice along ``axis`` scaled to unit L2 norm: w / (epsilon + norm)."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        w = _array(w)
        return (w / (config.epsilon() + _norms(w, self.axis))).astype(w.dtype, copy=False)

    def get_config(self):
        return {"axis": self.axis}


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(constraint):
    """Keras 3's serialized form of a constraint: ``{"class_name": ..., "config": ...}``, or a
    function's name."""
    return registry.serialize(_KIND, constraint)


def deserialize(config, custom_objects=None):
    """The constraint described by ``config`` (a ``serialize`` dict or a registered name)."""
    return registry.deserialize(_KIND, config, custom_objects)


def get(identifier, custom_objects=None):
    """A constraint from None (None), a name, a config dict, a class, an instance or a callable."""
    return registry.get(_KIND, identifier, custom_objects)


# keras.constraints.max_norm, ... are the classes themselves.
max_norm, min_max_norm, non_neg, unit_norm = MaxNorm, MinMaxNorm, NonNeg, UnitNorm

__all__ = ["Constraint", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm", "min_max_norm",
           "non_neg", "unit_norm", "get", "serialize", "deserialize"]
