"""dl.random: Keras 3's keras.random (normal, uniform, truncated_normal, randint, categorical,
shuffle, dropout, gamma, beta, binomial, SeedGenerator), drawn from NumPy generators.

``seed`` is, as in Keras: None (dlcore's session generator, reseeded by
``dl.utils.set_random_seed``, so every call differs and a seeded run repeats), an int (the same
values on every call), or a ``SeedGenerator`` (a new draw each call, reproducible from its seed).
Results are Tensors in ``dtype`` (floatx by default; "int32" for randint and categorical).
"""
import numpy as np

from . import config
from .initializers import _normal, _truncated_normal, _uniform
from .tensor import Tensor
from .utils.random import generator


class SeedGenerator:
    """A seed that advances on each draw: ``dl.random.normal(shape, seed=self.seed_generator)``
    gives new values each call and the same sequence for the same ``seed``. ``seed`` None draws
    one from the session generator (so ``set_random_seed`` makes it reproducible)."""

    def __init__(self, seed=None, name=None, **kwargs):
        if seed is None:
            seed = int(generator().integers(0, 2**31 - 1))
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"SeedGenerator: `seed` must be None or a non-negative integer, received {seed!r}")
        self.seed = int(seed)
        self.name = name or "seed_generator"
        self.state = np.array([self.seed, 0], dtype=np.int64)  # (seed, draws so far), as Keras's state

    def next(self, ordered=True):
        """A fresh NumPy generator for the next draw."""
        rng = np.random.default_rng([int(self.state[0]), int(self.state[1])])
        self.state[1] += 1
        return rng

    def get_config(self):
        return {"seed": self.seed}


def _rng(seed, who):
    if seed is None:
        return generator()
    if isinstance(seed, SeedGenerator):
        return seed.next()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise ValueError(f"dl.random.{who}: `seed` must be None, a non-negative int or a SeedGenerator, "
                     f"received {seed!r}")


def _shape(shape, who):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"dl.random.{who}: `shape` must be a tuple of non-negative ints, received {shape!r}") \
            from None
    if any(d < 0 for d in shape):
        raise ValueError(f"dl.random.{who}: `shape` must be a tuple of non-negative ints, received {shape}")
    return shape


def _float_dtype(dtype, who):
    dtype = np.dtype(dtype or config.floatx())
    if dtype.kind != "f":
        raise ValueError(f"dl.random.{who}: `dtype` must be a float dtype, received {dtype}")
    return dtype


def _value(x):
    return x.value if isinstance(x, Tensor) else np.asarray(x)


def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Samples from N(mean, stddev**2)."""
    return Tensor(_normal(_rng(seed, "normal"), _shape(shape, "normal"), mean, stddev,
                          _float_dtype(dtype, "normal")))


def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
    """Samples from U[minval, maxval)."""
    dtype = np.dtype(dtype or config.floatx())
    if dtype.kind in "iu":
        return randint(shape, minval, maxval, dtype=dtype, seed=seed)
    if not minval < maxval:
        raise ValueError(f"dl.random.uniform: expected minval < maxval, received minval={minval}, maxval={maxval}")
    return Tensor(_uniform(_rng(seed, "uniform"), _shape(shape, "uniform"), minval, maxval,
                           _float_dtype(dtype, "uniform")))


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
    """Normal samples, those beyond two standard deviations re-drawn."""
    return Tensor(_truncated_normal(_rng(seed, "truncated_normal"), _shape(shape, "truncated_normal"), mean,
                                    stddev, _float_dtype(dtype, "truncated_normal")))


def randint(shape, minval, maxval, dtype="int32", seed=None):
    """Integers uniform in [minval, maxval)."""
    if not minval < maxval:
        raise ValueError(f"dl.random.randint: expected minval < maxval, received minval={minval}, maxval={maxval}")
    values = _rng(seed, "randint").integers(minval, maxval, size=_shape(shape, "randint"))
    return Tensor(values.astype(dtype))


def categorical(logits, num_samples, dtype="int32", seed=None):
    """``num_samples`` class ids per row of ``logits`` (batch, classes): (batch, num_samples)."""
    logits = np.asarray(_value(logits), dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f"dl.random.categorical: `logits` must be 2-D (batch, classes), received shape "
                         f"{logits.shape}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
        raise ValueError(f"dl.random.categorical: `num_samples` must be a non-negative int, received {num_samples!r}")
    gumbel = -np.log(-np.log(_rng(seed, "categorical").random((logits.shape[0], int(num_samples),
                                                                 logits.shape[1])) + 1e-300))
    return Tensor(np.argmax(logits[:, None, :] + gumbel, axis=-1).astype(dtype))


def shuffle(x, axis=0, seed=None):
    """``x`` with its entries permuted along ``axis``."""
    x = _value(x)
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"dl.random.shuffle: axis {axis} is out of range for an input of rank {x.ndim}")
    return Tensor(_rng(seed, "shuffle").permuted(x, axis=axis))


def dropout(inputs, rate, noise_shape=None, seed=None):
    """``inputs`` with each entry zeroed with probability ``rate``, the rest scaled by 1/(1-rate)
    (differentiable, as ``dl.ops.dropout``)."""
    from .ops.dropout import dropout as dropout_op

    return dropout_op(inputs, rate, noise_shape=noise_shape, seed=_rng(seed, "dropout"))


def gamma(shape, alpha, dtype=None, seed=None):
    """Samples from Gamma(alpha, 1)."""
    if np.any(np.asarray(alpha) <= 0):
        raise ValueError(f"dl.random.gamma: `alpha` must be positive, received {alpha!r}")
    return Tensor(_rng(seed, "gamma").gamma(alpha, size=_shape(shape, "gamma")).astype(_float_dtype(dtype, "gamma")))


def beta(shape, alpha, beta, dtype=None, seed=None):
    """Samples from Beta(alpha, beta)."""
    if np.any(np.asarray(alpha) <= 0) or np.any(np.asarray(beta) <= 0):
        raise ValueError(f"dl.random.beta: `alpha` and `beta` must be positive, received {alpha!r}, {beta!r}")
    values = _rng(seed, "beta").beta(alpha, beta, size=_shape(shape, "beta"))
    return Tensor(values.astype(_float_dtype(dtype, "beta")))


def binomial(shape, counts, probabilities, dtype=None, seed=None):
    """Samples from Binomial(counts, probabilities), in a float dtype as Keras returns them."""
    p = np.asarray(probabilities)
    if np.any(p < 0) or np.any(p > 1) or np.any(np.asarray(counts) < 0):
        raise ValueError("dl.random.binomial: expected counts >= 0 and probabilities in [0, 1], received "
                         f"counts={counts!r}, probabilities={probabilities!r}")
    values = _rng(seed, "binomial").binomial(counts, p, size=_shape(shape, "binomial"))
    return Tensor(values.astype(_float_dtype(dtype, "binomial")))


__all__ = ["SeedGenerator", "normal", "uniform", "truncated_normal", "randint", "categorical", "shuffle",
           "dropout", "gamma", "beta", "binomial"]
