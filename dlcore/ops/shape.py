"""Reshaping, joining, slicing: data movement and its gradients."""
import math

import numpy as np

from .. import devices
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import value


def _resolved(shape, size):
    """``shape`` with its -1 entry (if any) resolved for ``size`` elements (NumPy's rule and error)."""
    known = math.prod(d for d in shape if d != -1)
    if list(shape).count(-1) > 1 or (-1 in shape and (known == 0 or size % known)) or (
            -1 not in shape and known != size):
        raise ValueError(f"cannot reshape array of size {size} into shape {tuple(shape)}")
    return tuple(size // known if d == -1 else d for d in shape)


class Reshape(Function):
    runs_on_gpu = True  # a GPU array (C-contiguous) is reshaped in place, as a view

    @staticmethod
    def forward(ctx, x, shape):
        if ctx is not None:
            ctx.shape = x.shape
        if type(x) is np.ndarray or not devices.is_device_array(x):
            return np.reshape(x, shape)
        return x.reshape(_resolved(shape, x.size))

    @staticmethod
    def backward(ctx, dy, needs):
        if type(dy) is np.ndarray or not devices.is_device_array(dy):
            return (np.reshape(dy, ctx.shape),)
        return (dy.reshape(ctx.shape),)


class Transpose(Function):
    @staticmethod
    def forward(ctx, x, axes):
        axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(a % x.ndim for a in axes)
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, dy, needs):
        return (np.transpose(dy, np.argsort(ctx.axes)),)


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        xs = [np.asarray(x) for x in xs]
        ctx.axis = axis % xs[0].ndim
        ctx.sizes = [x.shape[ctx.axis] for x in xs]
        return np.concatenate(xs, axis=ctx.axis)

    @staticmethod
    def backward(ctx, dy, needs):
        bounds = np.cumsum(ctx.sizes)[:-1]
        return tuple(np.split(dy, bounds, axis=ctx.axis))


class Stack(Function):
    @staticmethod
    def forward(ctx, *xs, axis):
        ctx.axis = axis
        return np.stack(xs, axis=axis)

    @staticmethod
    def backward(ctx, dy, needs):
        return tuple(np.moveaxis(dy, ctx.axis, 0))


class GetItem(Function):
    @staticmethod
    def forward(ctx, x, key):
        ctx.shape, ctx.dtype, ctx.key = x.shape, x.dtype, key
        return x[key]

    @staticmethod
    def backward(ctx, dy, needs):
        dx = np.zeros(ctx.shape, dtype=dy.dtype)
        np.add.at(dx, ctx.key, dy)
        return (dx,)


class Pad(Function):
    @staticmethod
    def forward(ctx, x, pad_width, mode, constant_values):
        ctx.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad_width, x.shape))
        if mode == "constant":
            return np.pad(x, pad_width, mode=mode, constant_values=constant_values)
        if mode != "reflect" and mode != "symmetric":
            raise ValueError(f"pad: mode must be 'constant', 'reflect' or 'symmetric', received {mode!r}")
        ctx.mode, ctx.pad_width, ctx.shape = mode, pad_width, x.shape
        return np.pad(x, pad_width, mode=mode)

    @staticmethod
    def backward(ctx, dy, needs):
        if not hasattr(ctx, "mode"):
            return (dy[ctx.slices].copy(),)
        # reflected padding: scatter each padded position back to its source index
        dx = dy
        for axis, (lo, hi) in enumerate(ctx.pad_width):
            n = ctx.shape[axis]
            index = np.pad(np.arange(n), (lo, hi), mode=ctx.mode)
            moved = np.moveaxis(dx, axis, 0)
            out = np.zeros((n,) + moved.shape[1:], dtype=dy.dtype)
            np.add.at(out, index, moved)
            dx = np.moveaxis(out, 0, axis)
        return (np.ascontiguousarray(dx),)


def reshape(x, newshape):
    shape = tuple(newshape) if not isinstance(newshape, int) else (newshape,)
    if type(x) is Tensor and type(x.value) is np.ndarray and not is_recording():
        return Tensor(Reshape.forward(None, x.value, shape))  # nothing to record: no graph node
    return Reshape.apply(x, shape=shape)


def transpose(x, axes=None):
    return Transpose.apply(x, axes=axes)


def expand_dims(x, axis):
    shape = np.expand_dims(np.empty(np.shape(value(x)), dtype=np.int8), axis).shape
    return reshape(x, shape)


def squeeze(x, axis=None):
    shape = np.squeeze(np.empty(np.shape(value(x)), dtype=np.int8), axis=axis).shape
    return reshape(x, shape)


def flatten(x):
    return reshape(x, (-1,))


def concatenate(xs, axis=0):
    return Concatenate.apply(*xs, axis=axis)


def stack(xs, axis=0):
    return Stack.apply(*xs, axis=axis)


def split(x, indices_or_sections, axis=0):
    n = np.shape(value(x))[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(f"split: axis {axis} of size {n} does not divide into {indices_or_sections} parts")
        step = n // indices_or_sections
        bounds = list(range(step, n, step))
    else:
        bounds = list(indices_or_sections)
    edges = [0] + bounds + [n]
    index = [slice(None)] * np.ndim(value(x))
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        index[axis % len(index)] = slice(lo, hi)
        parts.append(getitem(x, tuple(index)))
    return parts


def getitem(x, key):
    if isinstance(key, Tensor):
        key = key.value
    elif isinstance(key, tuple):
        key = tuple(k.value if isinstance(k, Tensor) else k for k in key)
    return GetItem.apply(x, key=key)


def take(x, indices, axis=None):
    indices = np.asarray(value(indices))
    if axis is None:
        return getitem(reshape(x, (-1,)), indices)
    key = [slice(None)] * np.ndim(value(x))
    key[axis] = indices
    return getitem(x, tuple(key))


def pad(x, pad_width, mode="constant", constant_values=0):
    pad_width = tuple(tuple(int(v) for v in p) for p in pad_width)
    return Pad.apply(x, pad_width=pad_width, mode=mode, constant_values=constant_values)


def zeros(shape, dtype="float32"):
    return Tensor(np.zeros(shape, dtype=dtype))


def ones(shape, dtype="float32"):
    return Tensor(np.ones(shape, dtype=dtype))


def zeros_like(x, dtype=None):
    return Tensor(np.zeros_like(value(x), dtype=dtype))


def ones_like(x, dtype=None):
    return Tensor(np.ones_like(value(x), dtype=dtype))


def full(shape, fill_value, dtype="float32"):
    return Tensor(np.full(shape, fill_value, dtype=dtype))


def arange(start, stop=None, step=1, dtype=None):
    return Tensor(np.arange(start, stop, step, dtype=dtype))


def eye(n, m=None, dtype="float32"):
    return Tensor(np.eye(n, m, dtype=dtype))


def shape(x):
    return tuple(np.shape(value(x)))


def one_hot(x, num_classes, dtype="float32"):
    labels = np.asarray(value(x)).astype(np.int64)
    out = np.zeros(labels.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, labels[..., None], 1, axis=-1)
    return Tensor(out)


__all__ = ["reshape", "transpose", "expand_dims", "squeeze", "flatten", "concatenate", "stack",
           "split", "getitem", "take", "pad", "zeros", "ones", "zeros_like", "ones_like", "full",
           "arange", "eye", "shape", "one_hot"]
