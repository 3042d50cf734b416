"""Conversion and the helpers every op family shares."""
import contextvars
import threading

import numpy as np

from .. import config, devices, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor, Variable


def value(x):
    """The ndarray (or Python scalar) behind ``x``."""
    return x.value if isinstance(x, Tensor) else x


def float_array(x, dtype=None):
    """``x`` as a float ndarray: Tensors unwrap, ints/bools/lists become floatx."""
    v = value(x)
    if isinstance(v, devices.ARRAY_TYPES):
        raise TypeError("a GPU array reached an op that runs on the CPU only (README, GPU, lists the layers, "
                        "ops, losses and optimizers that run on the GPU)")
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


def device_sum(arrays, out=None):
    """The elementwise sum of equal-shape GPU ``arrays`` (into ``out`` or a new array), through the
    ``sum_axis0`` kernel over the stacked arrays: rows added in order, so deterministic."""
    first = arrays[0]
    size = first.size
    out = empty_on("cuda", tuple(first.shape), first.dtype) if out is None else out
    stacked = empty_on("cuda", (len(arrays), size), first.dtype)
    for i, a in enumerate(arrays):
        stacked[i].copy_to_device(a.reshape(size))
    kernels.get("sum_axis0", "cuda")(stacked, out.reshape(size))
    return out


class _Allocator(threading.local):
    arena = None  # the memory plan of the inference plan running on this thread, if any


allocator = _Allocator()  # models/inference.py sets ``allocator.arena`` around a planned call


def out_buffer(shape, dtype):
    """An uninitialized CPU array for an op's output: from the memory plan that the running
    inference plan installed on this thread (``allocator.arena``, an object with ``take(shape,
    dtype)``: see ``models/inference.py``), else ``np.empty``. Ops call it only for outputs that no
    layer keeps past the call."""
    arena = allocator.arena
    if arena is None:
        return np.empty(shape, dtype=dtype)
    return arena.take(shape, dtype)


def zeros_state(shape, dtype):
    """A float32/64 CPU array of zeros that a kernel then updates in place (a recurrent state):
    zeroed by the ``fill`` kernel, so that a captured inference call (models/replay.py) zeroes it
    again on each replay."""
    a = np.empty(shape, dtype)
    kernels.get("fill")(a.reshape(-1), 0.0)
    return a


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if (extra > 0 and type(grad) is np.ndarray and grad.shape[extra:] == tuple(shape) and grad.size
            and grad.dtype in (np.float32, np.float64) and grad.flags.c_contiguous):
        # the leading axes only (a position embedding's gradient): rows added in order by a
        # kernel, the same additions as NumPy's, and part of a captured training step
        out = np.empty(shape, grad.dtype)
        kernels.get("sum_axis0")(grad.reshape(-1, out.size), out.reshape(-1), kernels.threads_for(grad.size))
        return out
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


_F16, _F32 = np.dtype(np.float16), np.dtype(np.float32)


def astype(a, dtype):
    """``a.astype(dtype, copy=False)``, with float32 <-> float16 through the vectorized kernels
    (NumPy's float16 casts are scalar loops: about 7x slower)."""
    if a.dtype == dtype or type(a) is not np.ndarray or a.size < 256:
        return a.astype(dtype, copy=False)
    src = a.dtype
    if src == _F32 and dtype == _F16:
        out = np.empty(a.shape, dtype=_F16)
        kernels.get("cast_float16")(np.ascontiguousarray(a).reshape(-1), out.reshape(-1).view(np.uint16))
        return out
    if src == _F16 and dtype == _F32:
        out = np.empty(a.shape, dtype=_F32)
        kernels.get("widen_float16")(np.ascontiguousarray(a).reshape(-1).view(np.uint16), out.reshape(-1))
        return out
    return a.astype(dtype, copy=False)


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        if ctx is not None:
            ctx.src = x.dtype
        return astype(x, dtype)

    @staticmethod
    def backward(ctx, dy, needs):
        return (astype(dy, ctx.src) if ctx.src.kind == "f" else None,)


def cast(x, dtype):
    xv = x.value if type(x) is Tensor else x
    if type(xv) is np.ndarray and not is_recording():
        return Tensor(Cast.forward(None, xv, np.dtype(dtype)))  # nothing records: no graph node
    return Cast.apply(x, dtype=np.dtype(dtype))


# The low precision ("float16" / "bfloat16") of the layer whose call is running, set by
# Layer.__call__ from the layer's dtype policy; the GEMM and conv ops read it at forward time.
_PRECISION = contextvars.ContextVar("dlcore_compute_precision", default=None)


def compute_precision():
    """"float16" or "bfloat16" inside the call of a layer computing in it, else None."""
    return _PRECISION.get()


class precision_scope:
    """Context in which the GEMM and conv ops compute in ``precision`` (None: the arrays' dtype)."""

    __slots__ = ("precision", "token")

    def __init__(self, precision):
        self.precision = precision

    def __enter__(self):
        self.token = _PRECISION.set(self.precision)
        return self

    def __exit__(self, *exc):
        _PRECISION.reset(self.token)
        return False


def round_array(a, precision):
    """float32 ``a`` rounded to the nearest ``precision`` value ("float16" or "bfloat16", ties to
    even), still float32; other dtypes and precisions are returned as they are."""
    if a.dtype != np.float32 or precision is None:
        return a
    if precision == "float16":
        return astype(astype(a, _F16), _F32)
    out = np.empty(a.shape, dtype=np.float32)
    kernels.get("round_bfloat16")(np.ascontiguousarray(a).reshape(-1), out.reshape(-1))
    return out


class RoundTo(Function):
    """x rounded to a lower precision, kept in x's float32 array; the gradient passes unchanged
    (the derivative of a cast)."""

    @staticmethod
    def forward(ctx, x, precision):
        return round_array(x, precision)

    @staticmethod
    def backward(ctx, dy, needs):
        return (dy,)


def round_to(x, precision):
    """``x`` with its float32 values rounded to ``precision`` ("float16" or "bfloat16")."""
    return RoundTo.apply(x, precision=precision)


def stop_gradient(x):
    """``x`` cut from the graph: no gradient flows through it."""
    return Tensor(value(x))


__all__ = ["convert_to_tensor", "convert_to_numpy", "is_tensor", "cast", "stop_gradient", "Tensor", "Variable"]
