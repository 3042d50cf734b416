"""Gathers along an axis: take_along_axis (differentiable: its backward scatters) and top_k."""
import numpy as np

from ..autograd import Function
from ..tensor import Tensor
from .core import unbroadcast, value
from .shape import reshape


class TakeAlongAxis(Function):
    @staticmethod
    def forward(ctx, x, indices, axis):
        ctx.save(indices)
        ctx.shapes = (x.shape, axis)
        return np.take_along_axis(x, indices, axis=axis)

    @staticmethod
    def backward(ctx, dy, needs):
        (indices,) = ctx.saved
        x_shape, axis = ctx.shapes
        full = list(np.broadcast_shapes(x_shape[:axis] + (1,) + x_shape[axis + 1:], indices.shape))
        full[axis] = x_shape[axis]
        dx = np.zeros(full, dtype=dy.dtype)
        grid = list(np.indices(indices.shape, sparse=True))
        grid[axis] = indices
        np.add.at(dx, tuple(grid), dy)
        return unbroadcast(dx, x_shape), None


def take_along_axis(x, indices, axis=None):
    """``x``'s values at ``indices`` along ``axis`` (keras.ops.take_along_axis); ``axis=None``
    works on the flattened ``x``. Other axes broadcast; negative indices count from the end."""
    xv, iv = np.asarray(value(x)), np.asarray(value(indices))
    if iv.dtype.kind not in "iu":
        raise TypeError(f"take_along_axis: `indices` must be integers, received dtype {iv.dtype}")
    if axis is None:
        x, xv, axis = reshape(x, (-1,)), xv.reshape(-1), 0
        if iv.ndim != 1:
            iv = iv.reshape(-1)
    if xv.ndim != iv.ndim:
        raise ValueError(f"take_along_axis: `x` and `indices` must have the same rank, received shapes "
                         f"{xv.shape} and {iv.shape}")
    if not -xv.ndim <= axis < xv.ndim:
        raise ValueError(f"take_along_axis: axis {axis} is out of bounds for an input of shape {xv.shape}")
    axis %= xv.ndim
    n = xv.shape[axis]
    if iv.size and (iv.min() < -n or iv.max() >= n):
        raise ValueError(f"take_along_axis: indices must lie in [-{n}, {n}) along axis {axis}, received "
                         f"values in [{iv.min()}, {iv.max()}]")
    try:
        shape = np.broadcast_shapes(xv.shape[:axis] + (1,) + xv.shape[axis + 1:], iv.shape[:axis] + (1,) +
                                    iv.shape[axis + 1:])
    except ValueError:
        raise ValueError(f"take_along_axis: shapes {xv.shape} and {iv.shape} do not broadcast outside "
                         f"axis {axis}") from None
    iv = np.broadcast_to(np.where(iv < 0, iv + n, iv), shape[:axis] + (iv.shape[axis],) + shape[axis + 1:])
    return TakeAlongAxis.apply(x, iv, axis=axis)


def top_k(x, k, sorted=True):
    """The ``k`` largest values along the last axis and their int32 indices (keras.ops.top_k);
    ties go to the lower index. Values are differentiable (through take_along_axis). With
    ``sorted=False`` the order is unspecified in Keras; here it is always descending."""
    xv = np.asarray(value(x))
    if xv.ndim < 1:
        raise ValueError(f"top_k: expected an input of rank >= 1, received shape {xv.shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= xv.shape[-1]:
        raise ValueError(f"top_k: `k` must be an integer in [0, {xv.shape[-1]}] (the last axis), received k={k!r}")
    n = xv.shape[-1]  # a stable descending sort: reverse, sort ascending stably, reverse back
    order = n - 1 - np.argsort(xv[..., ::-1], axis=-1, kind="stable")[..., ::-1]
    indices = order[..., :k].astype(np.int32)
    return take_along_axis(x, indices, axis=-1), Tensor(indices)


__all__ = ["take_along_axis", "top_k"]
