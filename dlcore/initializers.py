"""Weight initializers, as ``keras.initializers`` (Keras 3 names, arguments, defaults, formulas).

An initializer is called as ``init(shape, dtype=None)`` and returns a NumPy array (``dtype``
defaults to ``dlcore.config.floatx()``).

Random draws: an initializer built with ``seed=None`` draws from dlcore's global generator
(``dlcore.utils.random.generator()``), so ``dlcore.utils.random.set_random_seed(s)`` makes model
initialization reproducible while successive weights still differ. An initializer built with an
integer seed returns the same values on every call, as a seeded Keras 3 initializer does.
Samples are drawn in float64 and cast, so one seed gives the same weights (up to rounding) in
float32 and float64 models.
"""
import math

import numpy as np

from . import config
from . import registry
from .registry import register
from .utils import random as _random

_KIND = "initializer"


def _dtype(dtype):
    return np.dtype(config.floatx() if dtype is None else dtype)


def _float_dtype(dtype, who):
    dtype = _dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"{who} draws random floats; expected a float dtype, received {dtype}")
    return dtype


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"expected a shape (a tuple of non-negative integers), received {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"expected a shape of non-negative integers, received {shape}")
    return shape


def compute_fans(shape, input_axes=None, output_axes=None):
    """(fan_in, fan_out) of a weight shape, as Keras: rank 1 -> (n, n); rank 2 -> (in, out);
    rank >= 3 (convolution kernels (..., in, out)) -> in and out times the receptive field.
    With both ``input_axes`` and ``output_axes`` given: the products of those dimensions."""
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        fan_in = fan_out = 1
        for axis in input_axes:
            fan_in *= shape[axis]
        for axis in output_axes:
            fan_out *= shape[axis]
        return int(fan_in), int(fan_out)
    if len(shape) < 1:
        fan_in = fan_out = 1
    elif len(shape) == 1:
        fan_in = fan_out = shape[0]
    elif len(shape) == 2:
        fan_in, fan_out = shape
    else:
        receptive_field_size = 1
        for dim in shape[:-2]:
            receptive_field_size *= dim
        fan_in = shape[-2] * receptive_field_size
        fan_out = shape[-1] * receptive_field_size
    return int(fan_in), int(fan_out)


@register(_KIND)
class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype=None)``."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(shape, dtype=None)")

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def clone(self):
        return self.__class__.from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# ---- constant initializers ---------------------------------------------------------------------
@register(_KIND, "zeros", "zero")
class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(_shape(shape), dtype=_dtype(dtype))


@register(_KIND, "ones", "one")
class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(_shape(shape), dtype=_dtype(dtype))


@register(_KIND, "constant")
class Constant(Initializer):
    """Every element ``value`` (a scalar, or an array that broadcasts to the shape)."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        value = np.asarray(self.value, dtype=_dtype(dtype))
        try:
            return np.array(np.broadcast_to(value, shape), order="C")
        except ValueError:
            raise ValueError(f"Constant: value of shape {value.shape} does not broadcast to the "
                             f"requested shape {shape}") from None

    def get_config(self):
        value = self.value
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        return {"value": value}


@register(_KIND, "identity", "IdentityInitializer")
class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only; non-square gives ``np.eye(n, m)``)."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) != 2:
            raise ValueError("Identity matrix initializer can only be used for 2D matrices. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        dtype = _dtype(dtype)
        return (self.gain * np.eye(*shape, dtype=dtype)).astype(dtype, copy=False)

    def get_config(self):
        return {"gain": self.gain}


# ---- random initializers -----------------------------------------------------------------------
class RandomInitializer(Initializer):
    """Base of the random initializers: holds ``seed`` (None, an int, or a numpy Generator)."""

    def __init__(self, seed=None):
        if seed is not None and not isinstance(seed, np.random.Generator) and (
                not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError("`seed` argument should be None, an integer or a numpy.random.Generator. "
                             f"Received: seed={seed!r}")
        self.seed = int(seed) if isinstance(seed, np.integer) else seed

    def _generator(self):
        # None: the global generator (advances, so successive weights differ, reproducible under
        # set_random_seed). int: a fresh generator per call, so every call returns the same values.
        return _random.generator(self.seed)

    def get_config(self):
        return {"seed": self.seed if isinstance(self.seed, int) else None}


def _normal(gen, shape, mean, stddev, dtype):
    out = gen.standard_normal(shape)
    out *= stddev
    out += mean
    return out.astype(dtype, copy=False)


def _truncated_normal(gen, shape, mean, stddev, dtype):
    """Normal samples; any beyond two standard deviations from the mean are re-drawn."""
    z = gen.standard_normal(shape)
    flat = z.reshape(-1)
    bad = np.flatnonzero(np.abs(flat) > 2.0)
    while bad.size:
        flat[bad] = gen.standard_normal(bad.size)
        bad = bad[np.abs(flat[bad]) > 2.0]
    z *= stddev
    z += mean
    return z.astype(dtype, copy=False)


def _uniform(gen, shape, minval, maxval, dtype):
    out = gen.random(shape)
    out *= maxval - minval
    out += minval
    out = out.astype(dtype, copy=False)
    # rounding to float32 may land exactly on maxval; keep the Keras half-open interval [min, max)
    if out.dtype != np.float64 and out.size:
        np.minimum(out, np.nextafter(dtype.type(maxval), dtype.type(minval)), out=out)
    return out


@register(_KIND, "random_normal", "normal")
class RandomNormal(RandomInitializer):
    """Samples of N(mean, stddev**2)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _normal(self._generator(), _shape(shape), self.mean, self.stddev,
                       _float_dtype(dtype, "RandomNormal"))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@register(_KIND, "truncated_normal")
class TruncatedNormal(RandomInitializer):
    """Samples of N(mean, stddev**2), values more than two stddev from the mean re-drawn."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _truncated_normal(self._generator(), _shape(shape), self.mean, self.stddev,
                                 _float_dtype(dtype, "TruncatedNormal"))

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


@register(_KIND, "random_uniform", "uniform")
class RandomUniform(RandomInitializer):
    """Samples of U[minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        return _uniform(self._generator(), _shape(shape), self.minval, self.maxval,
                        _float_dtype(dtype, "RandomUniform"))

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


@register(_KIND, "variance_scaling")
class VarianceScaling(RandomInitializer):
    """Samples scaled to the weight's fans: n = fan_in, fan_out or their mean (``mode``);
    "truncated_normal": stddev sqrt(scale/n)/0.87962566103423978 truncated at 2 stddev;
    "untruncated_normal": stddev sqrt(scale/n); "uniform": U[-sqrt(3 scale/n), sqrt(3 scale/n)).
    ``input_axes``/``output_axes`` (both or neither): the weight axes whose sizes multiply to the
    fans, for weights whose layout the default rule does not fit (e.g. EinsumDense)."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        allowed_modes = {"fan_in", "fan_out", "fan_avg"}
        if mode not in allowed_modes:
            raise ValueError(f"Invalid `mode` argument: {mode}. Please use one of {sorted(allowed_modes)}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        allowed = {"uniform", "truncated_normal", "untruncated_normal"}
        if distribution not in allowed:
            raise ValueError(f"Invalid `distribution` argument: {distribution}. Please use one of {sorted(allowed)}")
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = None if input_axes is None else [int(a) for a in input_axes]
        self.output_axes = None if output_axes is None else [int(a) for a in output_axes]
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        dtype = _float_dtype(dtype, type(self).__name__)
        scale = self.scale
        fan_in, fan_out = compute_fans(shape, self.input_axes, self.output_axes)
        if self.mode == "fan_in":
            scale /= max(1.0, fan_in)
        elif self.mode == "fan_out":
            scale /= max(1.0, fan_out)
        else:
            scale /= max(1.0, (fan_in + fan_out) / 2.0)
        gen = self._generator()
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / 0.87962566103423978
            return _truncated_normal(gen, shape, 0.0, stddev, dtype)
        if self.distribution == "untruncated_normal":
            return _normal(gen, shape, 0.0, math.sqrt(scale), dtype)
        limit = math.sqrt(3.0 * scale)
        return _uniform(gen, shape, -limit, limit, dtype)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class _FixedVarianceScaling(VarianceScaling):
    """A VarianceScaling with fixed parameters; its config is the seed and the fan axes."""

    _params = None  # (scale, mode, distribution)

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        scale, mode, distribution = self._params
        super().__init__(scale=scale, mode=mode, distribution=distribution, seed=seed,
                         input_axes=input_axes, output_axes=output_axes)

    def get_config(self):
        return {"seed": self.seed if isinstance(self.seed, int) else None,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


@register(_KIND, "glorot_uniform")
class GlorotUniform(_FixedVarianceScaling):
    """U[-limit, limit), limit = sqrt(6 / (fan_in + fan_out))."""

    _params = (1.0, "fan_avg", "uniform")


@register(_KIND, "glorot_normal")
class GlorotNormal(_FixedVarianceScaling):
    """Truncated normal, stddev sqrt(2 / (fan_in + fan_out))."""

    _params = (1.0, "fan_avg", "truncated_normal")


@register(_KIND, "lecun_normal")
class LecunNormal(_FixedVarianceScaling):
    """Truncated normal, stddev sqrt(1 / fan_in)."""

    _params = (1.0, "fan_in", "truncated_normal")


@register(_KIND, "lecun_uniform")
class LecunUniform(_FixedVarianceScaling):
    """U[-limit, limit), limit = sqrt(3 / fan_in)."""

    _params = (1.0, "fan_in", "uniform")


@register(_KIND, "he_normal")
class HeNormal(_FixedVarianceScaling):
    """Truncated normal, stddev sqrt(2 / fan_in)."""

    _params = (2.0, "fan_in", "truncated_normal")


@register(_KIND, "he_uniform")
class HeUniform(_FixedVarianceScaling):
    """U[-limit, limit), limit = sqrt(6 / fan_in)."""

    _params = (2.0, "fan_in", "uniform")


@register(_KIND, "orthogonal", "OrthogonalInitializer")
class Orthogonal(RandomInitializer):
    """``gain`` times an orthogonal matrix: the Q of a QR decomposition of a normal matrix of
    shape (max(rows, cols), min(rows, cols)), columns sign-corrected by diag(R), transposed when
    rows < cols; rows = prod(shape[:-1]), cols = shape[-1], reshaped back to ``shape``."""

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None):
        shape = _shape(shape)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        dtype = _float_dtype(dtype, "Orthogonal")
        num_rows = 1
        for dim in shape[:-1]:
            num_rows *= dim
        num_cols = shape[-1]
        flat_shape = (max(num_cols, num_rows), min(num_cols, num_rows))
        a = self._generator().standard_normal(flat_shape)
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if num_rows < num_cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(dtype)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


OrthogonalInitializer = Orthogonal


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(initializer):
    """Keras 3's serialized form of a initializer: ``{"class_name": ..., "config": ...}``, or a
    function's name."""
    return registry.serialize(_KIND, initializer)


def deserialize(config, custom_objects=None):
    """The initializer described by ``config`` (a ``serialize`` dict or a registered name)."""
    return registry.deserialize(_KIND, config, custom_objects)


def get(identifier, custom_objects=None):
    """A initializer from None (None), a name, a config dict, a class, an instance or a callable."""
    return registry.get(_KIND, identifier, custom_objects)


# Keras 3's snake_case function-style names (keras.initializers.glorot_uniform, ...) are classes.
zeros, ones, constant, identity = Zeros, Ones, Constant, Identity
random_normal, random_uniform, truncated_normal = RandomNormal, RandomUniform, TruncatedNormal
variance_scaling, orthogonal = VarianceScaling, Orthogonal
glorot_uniform, glorot_normal, he_uniform, he_normal = GlorotUniform, GlorotNormal, HeUniform, HeNormal
lecun_normal, lecun_uniform = LecunNormal, LecunUniform

__all__ = ["Initializer", "Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform",
           "TruncatedNormal", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "LecunNormal", "LecunUniform", "Orthogonal", "OrthogonalInitializer",
           "compute_fans", "get", "serialize", "deserialize"]
