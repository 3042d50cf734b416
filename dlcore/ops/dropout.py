"""Dropout: the key of a counter-based draw (Philox4x32-10, kernels.dropout.philox_uniform) comes
from dlcore's seeded generator; the kernels draw and apply it, on the CPU or on the GPU (the same
draw on both: u[i] depends on the key and i only)."""
import numpy as np

from .. import devices, kernels
from ..autograd import Function
from ..utils.random import generator
from .core import contiguous, device_of, empty_on, float_array


class KeyDraw:
    """``draw()``: the two Philox keys of one dropout call, from ``generator(seed)`` at the call.
    Two draws of the same seed compare equal, so the kernel calls of two training steps match
    (models/train_replay.py) while each call still draws its own keys."""

    __slots__ = ("seed",)

    def __init__(self, seed):
        self.seed = seed

    def __call__(self):
        return tuple(int(k) for k in generator(self.seed).integers(0, 2 ** 32, size=2, dtype=np.uint64))

    def __eq__(self, other):
        return type(other) is KeyDraw and (other.seed is self.seed or (
            type(self.seed) is int and type(other.seed) is int and other.seed == self.seed))

    def __hash__(self):
        return hash(self.seed) if type(self.seed) is int else id(self.seed)


class Dropout(Function):
    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, rate, noise_shape, seed):
        device = "cpu" if type(x) is np.ndarray else device_of(x)
        if device == "cpu":
            x = contiguous(float_array(x))
        draw_shape = x.shape if noise_shape is None else noise_shape
        if device != "cpu" and tuple(draw_shape) != tuple(x.shape):
            raise ValueError(f"dropout on the GPU: noise_shape {tuple(noise_shape)} must equal the input's "
                             f"shape {tuple(x.shape)} (a broadcast mask runs on the CPU only)")
        u = empty_on(device, draw_shape, x.dtype)
        if device == "cpu":  # the key drawn inside the kernel call: a captured step draws anew
            kernels.get("philox_uniform_drawn")(KeyDraw(seed), u.reshape(-1))
        else:
            kernels.get("philox_uniform", device)(*KeyDraw(seed)(), u.reshape(-1))
        if noise_shape is not None and tuple(noise_shape) != x.shape:
            u = np.ascontiguousarray(np.broadcast_to(u, x.shape))
        y = empty_on(device, x.shape, x.dtype)
        mask = empty_on(device, x.shape, np.uint8)
        kernels.get("dropout_forward", device)(x.reshape(-1), u.reshape(-1), rate, y.reshape(-1), mask.reshape(-1))
        ctx.save(mask)
        ctx.rate, ctx.device = rate, device
        return y

    @staticmethod
    def backward(ctx, dy, needs):
        (mask,) = ctx.saved
        dy = contiguous(dy) if ctx.device == "cpu" else devices.to_device(dy)
        dx = empty_on(ctx.device, dy.shape, dy.dtype)
        kernels.get("dropout_backward", ctx.device)(dy.reshape(-1), mask.reshape(-1), ctx.rate, dx.reshape(-1))
        return (dx,)


def dropout(x, rate, noise_shape=None, seed=None):
    """Zero each element with probability ``rate`` and scale the rest by 1/(1-rate) (training)."""
    if not 0 <= rate < 1:
        raise ValueError(f"dropout: rate must be in [0, 1), received {rate!r}")
    noise_shape = None if noise_shape is None else tuple(int(n) for n in noise_shape)
    return Dropout.apply(x, rate=float(rate), noise_shape=noise_shape, seed=seed)


__all__ = ["dropout"]
