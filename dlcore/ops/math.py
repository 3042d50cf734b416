"""Elementwise arithmetic with NumPy broadcasting, and its gradients."""
import numpy as np

from .. import config, kernels
from ..autograd import Function, is_recording
from ..tensor import Tensor
from .core import out_buffer, unbroadcast, value


def _arr(x):
    """Arrays stay arrays; Python scalars stay weakly typed so float32 arrays remain float32."""
    if isinstance(x, (np.ndarray, int, float, bool)):
        return x
    return np.asarray(x)


def _binary(a, b):
    return _arr(a), _arr(b)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        if ctx is not None:
            ctx.shapes = (np.shape(a), np.shape(b))
        if (type(a) is np.ndarray and type(b) is np.ndarray and a.dtype == b.dtype and a.dtype.kind == "f"
                and a.dtype.itemsize >= 4 and a.flags.c_contiguous and b.flags.c_contiguous):
            if a.ndim < b.ndim or (a.ndim == b.ndim and a.size < b.size):
                a, b = b, a
            if a.shape[a.ndim - b.ndim:] == b.shape and b.size:  # one shape, or b repeated over a's leading axes
                out = out_buffer(a.shape, a.dtype)  # a merge of activations, a position embedding: planned
                kernels.get("add_forward")(a.reshape(-1), b.reshape(-1), out.reshape(-1),
                                           kernels.threads_for(a.size))
                return out
        return a + b

    @staticmethod
    def backward(ctx, dy, needs):
        sa, sb = ctx.shapes
        return (unbroadcast(dy, sa) if needs[0] else None, unbroadcast(dy, sb) if needs[1] else None)


class Subtract(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        ctx.shapes = (np.shape(a), np.shape(b))
        return a - b

    @staticmethod
    def backward(ctx, dy, needs):
        sa, sb = ctx.shapes
        return (unbroadcast(dy, sa) if needs[0] else None, unbroadcast(-dy, sb) if needs[1] else None)


class Multiply(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        ctx.save(a, b)
        return a * b

    @staticmethod
    def backward(ctx, dy, needs):
        a, b = ctx.saved
        return (unbroadcast(dy * b, np.shape(a)) if needs[0] else None,
                unbroadcast(dy * a, np.shape(b)) if needs[1] else None)


class Divide(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        ctx.save(a, b)
        return a / b

    @staticmethod
    def backward(ctx, dy, needs):
        a, b = ctx.saved
        return (unbroadcast(dy / b, np.shape(a)) if needs[0] else None,
                unbroadcast(-dy * a / (b * b), np.shape(b)) if needs[1] else None)


class Power(Function):
    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        y = np.power(a, b)
        ctx.save(a, b, y)
        return y

    @staticmethod
    def backward(ctx, dy, needs):
        a, b, y = ctx.saved
        da = db = None
        if needs[0]:
            da = unbroadcast(dy * b * np.power(a, b - 1), np.shape(a))
        if needs[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                db = unbroadcast(dy * y * np.where(a > 0, np.log(np.where(a > 0, a, 1)), 0), np.shape(b))
        return da, db


class Maximum(Function):
    """Elementwise max; ties send the gradient to ``a`` (as TensorFlow)."""

    pick = staticmethod(np.maximum)
    a_wins = staticmethod(np.greater_equal)

    @classmethod
    def forward(cls, ctx, a, b):
        a, b = _binary(a, b)
        ctx.save(a, b)
        return cls.pick(a, b)

    @classmethod
    def backward(cls, ctx, dy, needs):
        a, b = ctx.saved
        take_a = cls.a_wins(a, b)
        return (unbroadcast(dy * take_a, np.shape(a)) if needs[0] else None,
                unbroadcast(dy * ~take_a, np.shape(b)) if needs[1] else None)


class Minimum(Maximum):
    """Elementwise min; ties send the gradient to ``a``."""

    pick = staticmethod(np.minimum)
    a_wins = staticmethod(np.less_equal)


class Mod(Function):
    """a mod b with the sign of b (floor modulo, as NumPy and TF's floormod)."""

    @staticmethod
    def forward(ctx, a, b):
        a, b = _binary(a, b)
        ctx.save(a, b)
        return np.mod(a, b)

    @staticmethod
    def backward(ctx, dy, needs):
        a, b = ctx.saved
        return (unbroadcast(dy, np.shape(a)) if needs[0] else None,
                unbroadcast(-dy * np.floor_divide(a, b), np.shape(b)) if needs[1] else None)


class _Unary(Function):
    """y = f(x) with dy/dx from (x, y)."""

    @classmethod
    def forward(cls, ctx, x):
        x = _arr(x)
        if x.dtype.kind != "f":
            x = x.astype(np.float32)
        y = cls.f(x)
        ctx.save(x, y)
        return y

    @classmethod
    def backward(cls, ctx, dy, needs):
        x, y = ctx.saved
        return (dy * cls.df(x, y),)


class Negative(_Unary):
    f = staticmethod(np.negative)
    df = staticmethod(lambda x, y: -1)


class Exp(_Unary):
    f = staticmethod(np.exp)
    df = staticmethod(lambda x, y: y)


class Log(_Unary):
    f = staticmethod(np.log)
    df = staticmethod(lambda x, y: 1 / x)


class Log1p(_Unary):
    f = staticmethod(np.log1p)
    df = staticmethod(lambda x, y: 1 / (1 + x))


class Sqrt(_Unary):
    f = staticmethod(np.sqrt)
    df = staticmethod(lambda x, y: 0.5 / y)


class Square(_Unary):
    f = staticmethod(np.square)
    df = staticmethod(lambda x, y: 2 * x)


class Abs(_Unary):
    f = staticmethod(np.abs)
    df = staticmethod(lambda x, y: np.sign(x))


class Sin(_Unary):
    f = staticmethod(np.sin)
    df = staticmethod(lambda x, y: np.cos(x))


class Cos(_Unary):
    f = staticmethod(np.cos)
    df = staticmethod(lambda x, y: -np.sin(x))


class Reciprocal(_Unary):
    f = staticmethod(np.reciprocal)
    df = staticmethod(lambda x, y: -y * y)


class Clip(Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save(x)
        ctx.bounds = (lo, hi)
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, dy, needs):
        (x,) = ctx.saved
        lo, hi = ctx.bounds
        return (dy * ((x >= lo) & (x <= hi)), None, None)


class Where(Function):
    @staticmethod
    def forward(ctx, condition, a, b):
        condition = np.asarray(condition, dtype=bool)
        a, b = _arr(a), _arr(b)
        ctx.save(condition)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx, dy, needs):
        (condition,) = ctx.saved
        sa, sb = ctx.shapes
        return (None,
                unbroadcast(np.where(condition, dy, 0).astype(dy.dtype), sa) if needs[1] else None,
                unbroadcast(np.where(condition, 0, dy).astype(dy.dtype), sb) if needs[2] else None)


def add(x1, x2):
    a = x1.value if type(x1) is Tensor else x1
    b = x2.value if type(x2) is Tensor else x2
    if type(a) is np.ndarray and type(b) is np.ndarray and not is_recording():
        return Tensor(Add.forward(None, a, b))  # nothing records: no graph node
    return Add.apply(x1, x2)


def subtract(x1, x2):
    return Subtract.apply(x1, x2)


def multiply(x1, x2):
    return Multiply.apply(x1, x2)


def divide(x1, x2):
    return Divide.apply(x1, x2)


true_divide = divide


def power(x1, x2):
    return Power.apply(x1, x2)


def maximum(x1, x2):
    return Maximum.apply(x1, x2)


def minimum(x1, x2):
    return Minimum.apply(x1, x2)


def mod(x1, x2):
    """Floor modulo (the result has the sign of ``x2``), differentiable as TF's floormod."""
    return Mod.apply(x1, x2)


def floor_divide(x1, x2):
    """``floor(x1 / x2)`` elementwise; integer inputs give integers. Not differentiable."""
    return Tensor(np.floor_divide(*_binary(value(x1), value(x2))))


def negative(x):
    return Negative.apply(x)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def log1p(x):
    return Log1p.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def square(x):
    return Square.apply(x)


def abs(x):  # noqa: A001 - keras.ops name
    return Abs.apply(x)


absolute = abs


def sin(x):
    return Sin.apply(x)


def cos(x):
    return Cos.apply(x)


def reciprocal(x):
    return Reciprocal.apply(x)


def clip(x, x_min, x_max):
    return Clip.apply(x, lo=x_min, hi=x_max)


def where(condition, x1=None, x2=None):
    """Elements of ``x1`` where ``condition`` holds, else of ``x2`` (differentiable in x1, x2);
    with ``condition`` alone, the indices where it holds: a tuple of int64 Tensors, one per axis
    (keras.ops.where)."""
    cond = np.asarray(value(condition))
    if x1 is None and x2 is None:
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(cond.astype(bool)))
    if x1 is None or x2 is None:
        raise ValueError("where: `x1` and `x2` must both be None or both be given, received "
                         f"x1={'None' if x1 is None else 'a value'}, x2={'None' if x2 is None else 'a value'}")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (x1, x2)):
        dtype = config.floatx() if isinstance(x1, float) or isinstance(x2, float) else "int32"
        x1, x2 = np.asarray(x1, dtype), np.asarray(x2, dtype)  # Python numbers follow floatx, as in Keras
    return Where.apply(cond, x1, x2)


def sign(x):
    return Tensor(np.sign(value(x)))


def _predicate(np_fn, name):
    """A comparison or logical op: boolean Tensor out, no gradient (as in Keras)."""

    def op(x1, x2):
        return Tensor(np.asarray(np_fn(*_binary(value(x1), value(x2)))))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{np_fn.__name__}(x1, x2)`` elementwise with broadcasting: a boolean Tensor (keras.ops.{name})."
    return op


def _integer(np_fn, name):
    """A bitwise op on integer (or boolean) Tensors; no gradient."""

    def op(x1, x2):
        a, b = _binary(value(x1), value(x2))
        for arg, v in (("x1", a), ("x2", b)):
            if np.asarray(v).dtype.kind not in "iub":
                raise TypeError(f"{name}: `{arg}` must be an integer or boolean tensor, received dtype "
                                f"{np.asarray(v).dtype}")
        return Tensor(np.asarray(np_fn(a, b)))

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"``{np_fn.__name__}(x1, x2)`` on integer tensors (keras.ops.{name})."
    return op


equal = _predicate(np.equal, "equal")
not_equal = _predicate(np.not_equal, "not_equal")
less = _predicate(np.less, "less")
less_equal = _predicate(np.less_equal, "less_equal")
greater = _predicate(np.greater, "greater")
greater_equal = _predicate(np.greater_equal, "greater_equal")
logical_and = _predicate(np.logical_and, "logical_and")
logical_or = _predicate(np.logical_or, "logical_or")
logical_xor = _predicate(np.logical_xor, "logical_xor")
bitwise_and = _integer(np.bitwise_and, "bitwise_and")
bitwise_or = _integer(np.bitwise_or, "bitwise_or")
bitwise_xor = _integer(np.bitwise_xor, "bitwise_xor")


def logical_not(x):
    """Elementwise NOT of ``x`` taken as booleans: a boolean Tensor (keras.ops.logical_not)."""
    return Tensor(np.logical_not(value(x)))


def bitwise_invert(x):
    """Bitwise NOT of an integer (or boolean) tensor (keras.ops.bitwise_invert)."""
    a = np.asarray(value(x))
    if a.dtype.kind not in "iub":
        raise TypeError(f"bitwise_invert: `x` must be an integer or boolean tensor, received dtype {a.dtype}")
    return Tensor(np.invert(a))


bitwise_not = bitwise_invert

__all__ = ["add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
           "negative", "exp", "log", "log1p", "sqrt", "square", "abs", "absolute", "sin", "cos",
           "reciprocal", "clip", "where", "sign", "mod", "floor_divide", "equal", "not_equal", "less",
           "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_xor", "logical_not",
           "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_invert", "bitwise_not"]
