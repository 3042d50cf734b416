"""Reductions over axes, and their gradients."""
import numpy as np

from .. import kernels
from ..autograd import Function
from ..tensor import Tensor
from .core import value


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(a % ndim for a in axes) if ndim else ()


def _expand(g, shape, axes, keepdims):
    """Reshape a reduced gradient so it broadcasts against the input ``shape``."""
    if keepdims:
        return g
    kept = [1 if i in axes else n for i, n in enumerate(shape)]
    return np.reshape(g, kept)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return np.sum(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dy, needs):
        g = _expand(dy, ctx.shape, ctx.axes, ctx.keepdims)
        return (np.broadcast_to(g, ctx.shape).copy(),)


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axis, keepdims):
        ctx.shape, ctx.axes, ctx.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        return np.mean(x, axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx, dy, needs):
        count = 1
        for a in ctx.axes:
            count *= ctx.shape[a]
        g = _expand(dy, ctx.shape, ctx.axes, ctx.keepdims) / (count or 1)
        return (np.broadcast_to(g, ctx.shape).astype(dy.dtype),)


class Extremum(Function):
    """max or min; the gradient goes to the first extremal element along the reduced axes."""

    @staticmethod
    def forward(ctx, x, axis, keepdims, op):
        axes = _axes(axis, x.ndim)
        y = op(x, axis=axes, keepdims=True)
        ctx.save(x, y)
        ctx.axes, ctx.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    @staticmethod
    def backward(ctx, dy, needs):
        x, y = ctx.saved
        hit = (x == y)
        # split ties evenly, as TensorFlow does
        share = hit / np.sum(hit, axis=ctx.axes, keepdims=True)
        g = _expand(dy, x.shape, ctx.axes, ctx.keepdims)
        return ((share * g).astype(dy.dtype),)


class SumDivided(Function):
    """sum(x) / divisor over every element of a float32/64 CPU array: a reduced loss, by the
    ``sum_all`` kernel (double-precision sum), so that a captured training step computes it."""

    @staticmethod
    def forward(ctx, x, divisor):
        ctx.shape, ctx.divisor = x.shape, divisor
        out = np.empty(1, x.dtype)
        kernels.get("sum_all")(np.ascontiguousarray(x).reshape(-1), out, divisor)
        return out.reshape(())

    @staticmethod
    def backward(ctx, dy, needs):
        return (np.broadcast_to(np.asarray(dy) / ctx.divisor, ctx.shape).astype(dy.dtype),)


def sum_divided(x, divisor):
    """sum(x) / divisor (a nonzero divisor; x a float32/64 CPU tensor or array)."""
    return SumDivided.apply(x, divisor=float(divisor))


def sum(x, axis=None, keepdims=False):  # noqa: A001 - keras.ops name
    return Sum.apply(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    return Mean.apply(x, axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001
    return Extremum.apply(x, axis=axis, keepdims=keepdims, op=np.max)


def min(x, axis=None, keepdims=False):  # noqa: A001
    return Extremum.apply(x, axis=axis, keepdims=keepdims, op=np.min)


amax, amin = max, min


def var(x, axis=None, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    from .math import square, subtract

    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    from .math import sqrt

    return sqrt(var(x, axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    from .math import add, exp, log, subtract

    m = Tensor(np.max(value(x), axis=axis, keepdims=True))
    out = add(log(sum(exp(subtract(x, m)), axis=axis, keepdims=True)), m)
    if not keepdims:
        from .shape import squeeze

        out = squeeze(out, axis=_axes(axis, np.ndim(value(x))))
    return out


def norm(x, ord=None, axis=None, keepdims=False):  # noqa: A002
    """The 2-norm (default), 1-norm or inf-norm of ``x`` over ``axis`` (all axes by default)."""
    from .math import abs as abs_, sqrt, square

    if ord in (None, 2, "fro", "euclidean"):
        return sqrt(sum(square(x), axis=axis, keepdims=keepdims))
    if ord == 1:
        return sum(abs_(x), axis=axis, keepdims=keepdims)
    if ord in (np.inf, "inf"):
        return max(abs_(x), axis=axis, keepdims=keepdims)
    raise ValueError(f"norm: ord must be None, 1, 2 or inf, received {ord!r}")


def argmax(x, axis=-1, keepdims=False):
    return Tensor(np.argmax(value(x), axis=axis, keepdims=keepdims))


def argmin(x, axis=-1, keepdims=False):
    return Tensor(np.argmin(value(x), axis=axis, keepdims=keepdims))


def all(x, axis=None, keepdims=False):  # noqa: A001
    return Tensor(np.all(value(x), axis=axis, keepdims=keepdims))


def any(x, axis=None, keepdims=False):  # noqa: A001
    return Tensor(np.any(value(x), axis=axis, keepdims=keepdims))


__all__ = ["sum", "mean", "max", "min", "amax", "amin", "var", "std", "logsumexp", "norm",
           "argmax", "argmin", "all", "any"]
