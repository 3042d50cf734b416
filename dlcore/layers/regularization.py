"""Regularization layers: Dropout, GaussianNoise, GaussianDropout, ActivityRegularization.

The noise layers act only in training (``training=True``, as ``fit`` passes) and are the
identity at inference. Their random draws come from ``dlcore.utils.random.generator``: the
global generator (reseeded by ``dl.utils.set_random_seed``) when ``seed`` is None, else the
layer's own ``np.random.Generator`` created from ``seed`` once, so successive calls draw
different noise while a rerun (or a ``from_config`` copy) repeats the same sequence.
"""
import math
import numbers

import numpy as np

from .. import ops, regularizers
from ..registry import register
from ..utils.random import generator
from .layer import InputSpec, Layer
from .reshaping import standardize_data_format


def _check_rate(layer, name, value, upper_open=True):
    """``value`` as a float in [0, 1) (or [0, inf) when ``upper_open`` is None)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value >= 0
    if upper_open is not None:
        ok = ok and value < 1
    if not ok:
        expected = "a float value in [0, 1)" if upper_open is not None else "a non-negative float value"
        raise ValueError(f"{layer}: invalid value received for argument `{name}`. Expected {expected}. "
                         f"Received: {name}={value!r}")
    return float(value)


class _Noise(Layer):
    """Shared by the random layers: the seed, the generator, the identity output shape."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and not isinstance(seed, np.random.Generator) and (
                not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"{type(self).__name__}: `seed` must be None, a non-negative integer or a "
                             f"np.random.Generator. Received: seed={seed!r}")
        self.seed = int(seed) if isinstance(seed, (int, np.integer)) else seed
        self._rng = None if seed is None else generator(seed)
        self.supports_masking = True

    def _generator(self):
        return self._rng if self._rng is not None else generator()

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@register("layer")
class Dropout(_Noise):
    """In training, zeroes each input element with probability ``rate`` and scales the others by
    ``1 / (1 - rate)``; ``noise_shape`` (None entries take the input's size) shares one draw
    along the axes where it is 1."""

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate("Dropout", "rate", rate)
        if noise_shape is not None:
            if not isinstance(noise_shape, (list, tuple)) or not all(
                    d is None or (isinstance(d, (int, np.integer)) and d > 0) for d in noise_shape):
                raise ValueError(f"Dropout: `noise_shape` must be a tuple of positive integers or None entries. "
                                 f"Received: noise_shape={noise_shape!r}")
            noise_shape = tuple(None if d is None else int(d) for d in noise_shape)
        self.noise_shape = noise_shape

    def _concrete_noise_shape(self, shape):
        if self.noise_shape is None:
            return None
        resolved = tuple(s if d is None else d for d, s in zip(self.noise_shape, shape))
        if len(self.noise_shape) != len(shape) or any(d not in (1, s) for d, s in zip(resolved, shape)):
            raise ValueError(f"Layer '{self.name}': noise_shape {self.noise_shape} does not broadcast to the input "
                             f"shape {tuple(shape)}: each entry must be None, 1 or the input's size.")
        return resolved

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            # the layer's own generator, or None: the session generator at the draw (a captured
            # training step draws from the one set_random_seed made last, as this call does)
            return ops.dropout(inputs, self.rate, noise_shape=self._concrete_noise_shape(inputs.shape),
                               seed=self._rng)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


@register("layer")
class GaussianNoise(_Noise):
    """In training, adds zero-mean Gaussian noise of standard deviation ``stddev``."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.stddev = _check_rate("GaussianNoise", "stddev", stddev, upper_open=None)

    def call(self, inputs, training=None):
        if training and self.stddev > 0:
            noise = self._generator().normal(0.0, self.stddev, size=inputs.shape).astype(inputs.dtype)
            return ops.add(inputs, noise)
        return inputs

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@register("layer")
class GaussianDropout(_Noise):
    """In training, multiplies by Gaussian noise of mean 1 and standard deviation
    ``sqrt(rate / (1 - rate))``."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate("GaussianDropout", "rate", rate)

    def call(self, inputs, training=None):
        if training and self.rate > 0:
            stddev = math.sqrt(self.rate / (1.0 - self.rate))
            noise = self._generator().normal(1.0, stddev, size=inputs.shape).astype(inputs.dtype)
            return ops.multiply(inputs, noise)
        return inputs

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@register("layer")
class ActivityRegularization(Layer):
    """Returns its input unchanged and adds ``l1 * sum(|x|) + l2 * sum(x**2)`` to ``losses``."""

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.activity_regularizer = regularizers.L1L2(l1=l1, l2=l2)
        self.l1 = self.activity_regularizer.l1
        self.l2 = self.activity_regularizer.l2
        self.supports_masking = True

    def call(self, inputs):
        self._activity_losses.append(self.activity_regularizer(inputs))
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "l1": self.l1, "l2": self.l2}


class _SpatialDropout(Dropout):
    """Dropout of whole feature maps: one draw per (sample, channel), shared over the spatial axes."""

    _rank = None

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self._rank)

    def _concrete_noise_shape(self, shape):
        if self.data_format == "channels_last":
            return (shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)
        return (shape[0], shape[1]) + (1,) * (len(shape) - 2)

    def get_config(self):
        config = {**super().get_config(), "data_format": self.data_format}
        config.pop("noise_shape", None)
        return config


@register("layer")
class SpatialDropout1D(_SpatialDropout):
    """In training, zeroes whole channels of a (batch, steps, channels) input with probability
    ``rate`` (one draw per sample and channel) and scales the rest by ``1 / (1 - rate)``."""

    _rank = 3

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, data_format="channels_last", seed=seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("data_format")
        return config


@register("layer")
class SpatialDropout2D(_SpatialDropout):
    """In training, zeroes whole feature maps of a (batch, height, width, channels) input with
    probability ``rate`` (one draw per sample and channel, shared over height and width) and
    scales the rest by ``1 / (1 - rate)``; the identity at inference."""

    _rank = 4
