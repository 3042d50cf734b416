"""Weight regularizers, as ``keras.regularizers`` (Keras 3 names, arguments, defaults, formulas).

``reg(x)`` returns a scalar Tensor built from dlcore.ops, so it is differentiable under a
GradientTape: L1 = l1 * sum(|x|), L2 = l2 * sum(x**2) (no 1/2, as Keras).
"""
import math

import numpy as np

from . import config, ops
from . import registry
from .registry import register
from .tensor import Tensor

_KIND = "regularizer"


def validate_float_arg(value, name):
    """``value`` as a float, or a ValueError unless it is a finite non-negative number."""
    if (not isinstance(value, (float, int, np.floating, np.integer)) or isinstance(value, bool)
            or math.isinf(value) or math.isnan(value) or value < 0):
        raise ValueError(f"Invalid value for argument {name}: expected a non-negative float. "
                         f"Received: {name}={value!r}")
    return float(value)


def _dtype_of(x):
    dtype = getattr(x, "dtype", None)
    if dtype is None or np.dtype(dtype).kind != "f":
        return np.dtype(config.floatx())
    return np.dtype(dtype)


@register(_KIND)
class Regularizer:
    """Base class: ``__call__(x)`` returns the scalar penalty of weight ``x``."""

    def __call__(self, x):
        return 0.0

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} does not implement get_config()")

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


@register(_KIND, "l1_l2")
class L1L2(Regularizer):
    """l1 * sum(|x|) + l2 * sum(x**2). (The "l1_l2" string gives L1L2(), whose factors are 0.)"""

    def __init__(self, l1=0.0, l2=0.0):
        l1 = 0.0 if l1 is None else l1
        l2 = 0.0 if l2 is None else l2
        self.l1 = validate_float_arg(l1, name="l1")
        self.l2 = validate_float_arg(l2, name="l2")

    def __call__(self, x):
        regularization = None
        if self.l1:
            regularization = ops.multiply(self.l1, ops.sum(ops.abs(x)))
        if self.l2:
            term = ops.multiply(self.l2, ops.sum(ops.square(x)))
            regularization = term if regularization is None else ops.add(regularization, term)
        if regularization is None:
            return Tensor(np.zeros((), dtype=_dtype_of(x)))
        return regularization

    def get_config(self):
        return {"l1": float(self.l1), "l2": float(self.l2)}


@register(_KIND)
class L1(Regularizer):
    """l1 * sum(|x|)."""

    def __init__(self, l1=0.01):
        l1 = 0.01 if l1 is None else l1
        self.l1 = validate_float_arg(l1, name="l1")

    def __call__(self, x):
        return ops.multiply(self.l1, ops.sum(ops.abs(x)))

    def get_config(self):
        return {"l1": float(self.l1)}


@register(_KIND)
class L2(Regularizer):
    """l2 * sum(x**2)."""

    def __init__(self, l2=0.01):
        l2 = 0.01 if l2 is None else l2
        self.l2 = validate_float_arg(l2, name="l2")

    def __call__(self, x):
        return ops.multiply(self.l2, ops.sum(ops.square(x)))

    def get_config(self):
        return {"l2": float(self.l2)}


def _normalize(x, axis):
    """x / max(||x||_2, epsilon) along ``axis`` (keras.ops.normalize), with a finite gradient at 0."""
    eps = config.epsilon()
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return ops.divide(x, ops.sqrt(ops.maximum(square_sum, eps * eps)))


@register(_KIND)
class OrthogonalRegularizer(Regularizer):
    """factor * 0.5 * sum(|off-diagonal of N N^T|) / (size (size - 1) / 2), N the L2-normalized
    rows (mode="rows") or columns (mode="columns") of a rank-2 weight."""

    def __init__(self, factor=0.01, mode="rows"):
        self.factor = validate_float_arg(factor, name="factor")
        if mode not in {"rows", "columns"}:
            raise ValueError("Invalid value for argument `mode`. Expected one of "
                             f'{{"rows", "columns"}}. Received: mode={mode}')
        self.mode = mode

    def __call__(self, inputs):
        if len(inputs.shape) != 2:
            raise ValueError(f"Inputs to OrthogonalRegularizer must have rank 2. Received: "
                             f"inputs.shape={tuple(inputs.shape)}")
        dtype = _dtype_of(inputs)
        if self.mode == "rows":
            n = _normalize(inputs, axis=1)
            product = ops.matmul(n, ops.transpose(n))
            size = inputs.shape[0]
        else:
            n = _normalize(inputs, axis=0)
            product = ops.matmul(ops.transpose(n), n)
            size = inputs.shape[1]
        off_diagonal = ops.multiply(product, (1.0 - np.eye(size, dtype=dtype)))
        num_pairs = size * (size - 1.0) / 2.0
        return ops.divide(ops.multiply(self.factor * 0.5, ops.sum(ops.abs(off_diagonal))), num_pairs)

    def get_config(self):
        return {"factor": float(self.factor), "mode": self.mode}


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(regularizer):
    """Keras 3's serialized form of a regularizer: ``{"class_name": ..., "config": ...}``, or a
    function's name."""
    return registry.serialize(_KIND, regularizer)


def deserialize(config, custom_objects=None):
    """The regularizer described by ``config`` (a ``serialize`` dict or a registered name)."""
    return registry.deserialize(_KIND, config, custom_objects)


def get(identifier, custom_objects=None):
    """A regularizer from None (None), a name, a config dict, a class, an instance or a callable."""
    return registry.get(_KIND, identifier, custom_objects)


# keras.regularizers.l1 / l2 / l1_l2 / orthogonal_regularizer are the classes themselves.
l1, l2, l1_l2, orthogonal_regularizer = L1, L2, L1L2, OrthogonalRegularizer

__all__ = ["Regularizer", "L1", "L2", "L1L2", "OrthogonalRegularizer", "l1", "l2", "l1_l2",
           "orthogonal_regularizer", "get", "serialize", "deserialize"]
