"""Activation ops: Cython forward kernels, Numba backward kernels."""
import numpy as np

from .. import devices, kernels
from ..autograd import Function
from .core import contiguous, device_of, empty_on, float_array, out_buffer

from ..kernels.elementwise import ACTIVATIONS


def activation_code(name):
    """The kernel code of activation ``name`` ("relu", ...), or None if it has no kernel."""
    return ACTIVATIONS.get(name)


class Activation(Function):
    """y = act(x) elementwise; ``code`` from kernels.elementwise.ACTIVATIONS."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, code, alpha):
        device = "cpu" if type(x) is np.ndarray else device_of(x)
        if device == "cpu":
            x = contiguous(float_array(x))
            y = out_buffer(x.shape, x.dtype)
        else:
            y = empty_on(device, x.shape, x.dtype)
        kernels.get("activation_forward", device)(code, x.reshape(-1), alpha, y.reshape(-1),
                                                  kernels.threads_for(x.size))
        ctx.save(x, y)
        ctx.code, ctx.alpha = code, alpha
        return y

    @staticmethod
    def backward(ctx, dy, needs):
        x, y = ctx.saved
        device = "cpu" if type(x) is np.ndarray else "cuda"
        dy = contiguous(dy.astype(x.dtype, copy=False)) if device == "cpu" else devices.to_device(dy)
        dx = empty_on(device, x.shape, x.dtype)
        kernels.get("activation_backward", device)(ctx.code, x.reshape(-1), y.reshape(-1), dy.reshape(-1),
                                                   ctx.alpha, dx.reshape(-1))
        return (dx,)


class Softmax(Function):
    """Softmax (or log-softmax) over ``axis``."""

    @staticmethod
    def forward(ctx, x, axis, log):
        x = float_array(x)
        moved = axis not in (-1, x.ndim - 1)
        if moved:
            x = np.moveaxis(x, axis, -1)
        x2 = contiguous(x).reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
        y2 = out_buffer(x2.shape, x2.dtype)
        name = "log_softmax_forward" if log else "softmax_forward"
        kernels.get(name)(x2, y2, kernels.threads_for(x2.size))
        ctx.save(y2)
        ctx.shape, ctx.axis, ctx.moved, ctx.log = x.shape, axis, moved, log
        y = y2.reshape(x.shape)
        return np.moveaxis(y, -1, axis) if moved else y

    @staticmethod
    def backward(ctx, dy, needs):
        (y2,) = ctx.saved
        if ctx.moved:
            dy = np.moveaxis(dy, ctx.axis, -1)
        dy2 = contiguous(dy.astype(y2.dtype, copy=False)).reshape(y2.shape)
        dx2 = np.empty_like(y2)
        kernels.get("log_softmax_backward" if ctx.log else "softmax_backward")(y2, dy2, dx2)
        dx = dx2.reshape(ctx.shape)
        return (np.moveaxis(dx, -1, ctx.axis) if ctx.moved else dx,)


def _activation(name, x, alpha=0.0):
    return Activation.apply(x, code=activation_code(name), alpha=float(alpha))


def relu(x):
    return _activation("relu", x)


def relu6(x):
    return _activation("relu6", x)


def sigmoid(x):
    return _activation("sigmoid", x)


def tanh(x):
    return _activation("tanh", x)


def leaky_relu(x, negative_slope=0.2):
    return _activation("leaky_relu", x, negative_slope)


def elu(x, alpha=1.0):
    return _activation("elu", x, alpha)


def selu(x):
    return _activation("selu", x)


def gelu(x, approximate=True):
    return _activation("gelu_tanh" if approximate else "gelu", x)


def silu(x):
    return _activation("silu", x)


swish = silu


def softplus(x):
    return _activation("softplus", x)


def softsign(x):
    return _activation("softsign", x)


def hard_sigmoid(x):
    return _activation("hard_sigmoid", x)


def exponential(x):
    return _activation("exponential", x)


def softmax(x, axis=-1):
    return Softmax.apply(x, axis=axis, log=False)


def log_softmax(x, axis=-1):
    return Softmax.apply(x, axis=axis, log=True)


__all__ = ["relu", "relu6", "sigmoid", "tanh", "leaky_relu", "elu", "selu", "gelu", "silu", "swish",
           "softplus", "softsign", "hard_sigmoid", "exponential", "softmax", "log_softmax"]
