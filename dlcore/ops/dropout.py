"""Dropout: the random draw comes from dlcore's seeded generator; the kernels apply it."""
import numpy as np

from .. import kernels
from ..autograd import Function
from ..utils.random import generator
from .core import contiguous, float_array


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, rate, noise_shape, seed):
        x = contiguous(float_array(x))
        rng = generator(seed)
        draw_shape = x.shape if noise_shape is None else noise_shape
        u = rng.random(draw_shape, dtype=x.dtype)
        if noise_shape is not None and tuple(noise_shape) != x.shape:
            u = np.ascontiguousarray(np.broadcast_to(u, x.shape))
        y = np.empty_like(x)
        mask = np.empty(x.shape, dtype=np.uint8)
        kernels.get("dropout_forward")(x.reshape(-1), u.reshape(-1), rate, y.reshape(-1), mask.reshape(-1))
        ctx.save(mask)
        ctx.rate = rate
        return y

    @staticmethod
    def backward(ctx, dy, needs):
        (mask,) = ctx.saved
        dy = contiguous(dy)
        dx = np.empty_like(dy)
        kernels.get("dropout_backward")(dy.reshape(-1), mask.reshape(-1), ctx.rate, dx.reshape(-1))
        return (dx,)


def dropout(x, rate, noise_shape=None, seed=None):
    """Zero each element with probability ``rate`` and scale the rest by 1/(1-rate) (training)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), received {rate!r}")
    noise_shape = None if noise_shape is None else tuple(int(n) for n in noise_shape)
    return Dropout.apply(x, rate=float(rate), noise_shape=noise_shape, seed=seed)


__all__ = ["dropout"]
