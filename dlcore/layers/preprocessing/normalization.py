"""Normalization: feature-wise standardization with statistics from ``adapt`` or given.

``y = (x - mean) / max(sqrt(variance), epsilon)``; ``invert=True`` computes ``mean + x * max(sqrt(variance),
epsilon)``. ``axis`` names the kept axes (one mean and variance per position along them).
"""
import numpy as np

from ... import config as dl_config
from ... import ops
from ...registry import register
from ..layer import Layer
from ._common import adapt_batches


@register("layer")
class Normalization(Layer):
    """Input shape: any; output shape: the input's. Weights (when ``mean`` is not given): mean and
    variance of the kept axes' shape, and count () int32, all non-trainable, as Keras."""

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        elif isinstance(axis, (int, np.integer)):
            axis = (int(axis),)
        elif isinstance(axis, (list, tuple)) and all(isinstance(a, (int, np.integer)) for a in axis):
            axis = tuple(int(a) for a in axis)
        else:
            raise TypeError(f"Normalization: `axis` must be an int, a tuple of ints or None, received axis={axis!r}")
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: when setting values directly, both `mean` and `variance` must be "
                             f"set. Received: mean={mean!r} and variance={variance!r}")
        self.axis = axis
        self.input_mean = mean
        self.input_variance = variance
        self.invert = bool(invert)
        self.supports_masking = True
        self._mean = self._variance = None

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"Normalization: all `axis` values must be in the range [-ndim, ndim). Received "
                             f"inputs with ndim={ndim}, while axis={self.axis}")
        self._keep_axis = tuple(sorted(a % ndim for a in self.axis))
        for d in self._keep_axis:
            if input_shape[d] is None:
                raise ValueError(f"Normalization: all `axis` values to be kept must have a known shape. Received "
                                 f"axis={self.axis}, inputs.shape={tuple(input_shape)}")
        self._reduce_axis = tuple(d for d in range(ndim) if d not in self._keep_axis)
        self._broadcast_shape = tuple(input_shape[d] if d in self._keep_axis else 1 for d in range(ndim))
        self._stats_shape = tuple(input_shape[d] for d in self._keep_axis)
        self._build_input_shape = tuple(input_shape)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(name="mean", shape=self._stats_shape, initializer="zeros",
                                              trainable=False)
            self.adapt_variance = self.add_weight(name="variance", shape=self._stats_shape, initializer="ones",
                                                  trainable=False)
            self.count = self.add_weight(name="count", shape=(), dtype="int32", initializer="zeros",
                                         trainable=False)
        else:
            self._mean = self._given(self.input_mean, "mean", ndim)
            self._variance = self._given(self.input_variance, "variance", ndim)
        self.built = True

    def _given(self, value, name, ndim):
        """A given statistic broadcast to the kept axes (aligned right to left, as Keras)."""
        value = np.asarray(value, dtype=self.dtype)
        if value.ndim:
            expanded = [1] * ndim
            for i in range(1, value.ndim + 1):
                expanded[self._keep_axis[-i]] = value.shape[-i]
            value = value.reshape(expanded)
        try:
            return np.broadcast_to(value, self._broadcast_shape).copy()
        except ValueError:
            raise ValueError(f"Normalization: `{name}` of shape {value.shape} does not broadcast to the kept axes' "
                             f"shape {self._broadcast_shape}") from None

    def adapt(self, data, batch_size=None, steps=None):
        """Set mean and variance from ``data`` (an array or an iterable of batches), combining batches
        with the lack-of-fit sum of squares as Keras does."""
        batches = [np.asarray(b, dtype=np.float64) for b in adapt_batches("Normalization", data, batch_size, steps)]
        if not self.built:
            self.build((None,) + batches[0].shape[1:])
        if self.input_mean is not None:
            raise ValueError("Normalization: adapt() cannot be used when `mean` and `variance` were given")
        total_mean = np.zeros(self._stats_shape)
        total_var = np.zeros(self._stats_shape)
        total_count = 0
        for batch in batches:
            if batch.ndim != len(self._build_input_shape) or any(
                    batch.shape[d] != self._build_input_shape[d] for d in self._keep_axis):
                raise ValueError(f"Normalization: the layer was built with input_shape={self._build_input_shape}, "
                                 f"but adapt() received data of incompatible shape {batch.shape}")
            count = int(np.prod([batch.shape[d] for d in self._reduce_axis])) if self._reduce_axis else 1
            if count == 0:
                continue
            batch_mean = batch.mean(axis=self._reduce_axis).reshape(self._stats_shape)
            batch_var = batch.var(axis=self._reduce_axis).reshape(self._stats_shape)
            total_count += count
            w = count / total_count
            new_mean = total_mean * (1 - w) + batch_mean * w
            total_var = (total_var + (total_mean - new_mean) ** 2) * (1 - w) + (batch_var + (batch_mean - new_mean) ** 2) * w
            total_mean = new_mean
        if total_count == 0:
            raise ValueError("Normalization: adapt() received empty data")
        self.adapt_mean.assign(total_mean.astype(self.adapt_mean.dtype))
        self.adapt_variance.assign(total_var.astype(self.adapt_variance.dtype))
        self.count.assign(np.asarray(min(total_count, 2**31 - 1), dtype=np.int32))

    @property
    def mean(self):
        """The mean in the broadcast shape (a constant, or the adapted weight reshaped)."""
        if self._mean is not None:
            return self._mean
        return None if not self.built else ops.reshape(self.adapt_mean, self._broadcast_shape)

    @property
    def variance(self):
        if self._variance is not None:
            return self._variance
        return None if not self.built else ops.reshape(self.adapt_variance, self._broadcast_shape)

    def call(self, inputs):
        mean, variance = self.mean, self.variance
        if inputs.dtype != np.dtype(self.dtype):
            inputs = ops.cast(inputs, self.dtype)
        scale = ops.maximum(ops.sqrt(variance), dl_config.epsilon())
        if self.invert:
            return ops.add(mean, ops.multiply(inputs, scale))
        return ops.divide(ops.subtract(inputs, mean), scale)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(), "variance": np.array(self.input_variance).tolist()}
