"""Conversion and the helpers every op family shares."""
import numpy as np

from .. import config, devices
from ..autograd import Function, is_recording
from ..tensor import Tensor, Variable


def value(x):
    """The ndarray (or Python scalar) behind ``x``."""
    return x.value if isinstance(x, Tensor) else x


def float_array(x, dtype=None):
    """``x`` as a float ndarray: Tensors unwrap, ints/bools/lists become floatx."""
    v = value(x)
    if isinstance(v, devices.ARRAY_TYPES):
        raise TypeError("a GPU array reached an op that runs on the CPU only (README, GPU, lists the layers "
                        "and ops that run there)")
    a = np.asarray(v) if dtype is None else np.asarray(v, dtype=dtype)
    if a.dtype.kind != "f":
        a = a.astype(config.floatx())
    return a


def result_dtype(*arrays):
    """The float dtype of an op over ``arrays``: float64 only if an array operand is float64."""
    kinds = [a.dtype for a in arrays if isinstance(a, np.ndarray) and a.ndim > 0 or isinstance(a, np.ndarray)]
    floats = [d for d in kinds if d.kind == "f"]
    if not floats:
        return np.dtype(config.floatx())
    return np.result_type(*floats)


def contiguous(a):
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def device_of(a):
    """The kernel device an array lives on: "cpu" (NumPy) or "cuda" (a numba device array)."""
    return "cuda" if type(a) is not np.ndarray and isinstance(a, devices.ARRAY_TYPES) else "cpu"


def empty_on(device, shape, dtype):
    """An uninitialized array of ``shape`` on kernel device ``device`` ("cpu" or "cuda")."""
    if device == "cpu":
        return np.empty(shape, dtype=dtype)
    from numba import cuda

    return cuda.device_array(shape, dtype=dtype)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


def convert_to_tensor(x, dtype=None):
    """A Tensor holding ``x`` (returned as is when it already is one of ``dtype``)."""
    if isinstance(x, Tensor):
        if dtype is None or np.dtype(dtype) == x.dtype:
            return x
        return cast(x, dtype)
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):  # pandas
        x = x.to_numpy()
    a = np.asarray(x, dtype=dtype)
    if dtype is None and a.dtype == np.float64 and not isinstance(x, np.ndarray):
        a = a.astype(config.floatx())  # Python floats and lists follow floatx, as in Keras
    return Tensor(a)


def convert_to_numpy(x):
    return np.asarray(value(x))


def is_tensor(x):
    return isinstance(x, Tensor)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        if ctx is not None:
            ctx.src = x.dtype
        return x.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx, dy, needs):
        return (dy.astype(ctx.src) if ctx.src.kind == "f" else None,)


def cast(x, dtype):
    xv = x.value if type(x) is Tensor else x
    if type(xv) is np.ndarray and not is_recording():
        return Tensor(Cast.forward(None, xv, np.dtype(dtype)))  # nothing records: no graph node
    return Cast.apply(x, dtype=np.dtype(dtype))


def stop_gradient(x):
    """``x`` cut from the graph: no gradient flows through it."""
    return Tensor(value(x))


__all__ = ["convert_to_tensor", "convert_to_numpy", "is_tensor", "cast", "stop_gradient", "Tensor", "Variable"]
