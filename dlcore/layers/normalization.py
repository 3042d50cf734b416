"""Normalization layers: BatchNormalization (Keras 3 semantics).

Training (``training=True`` and the layer trainable) normalizes with the batch's mean and biased
variance over every axis but ``axis`` and updates the moving statistics:
``moving = moving * momentum + batch * (1 - momentum)``. Inference, and a frozen layer
(``trainable=False``, also through a frozen model) even when ``training=True``, normalizes with
the moving statistics in one fused kernel, y = x * scale + shift, and updates nothing.
"""
import numbers

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..registry import register
from .layer import InputSpec, Layer, defer_state_update


@register("layer")
class BatchNormalization(Layer):
    """Normalizes ``axis`` (the channels, -1 for channels_last) to zero mean and unit variance,
    then scales by ``gamma`` and shifts by ``beta``.

    Input shape: any rank >= 2. Output shape: the input's.
    Weights: gamma (C,) and beta (C,) (trainable, when ``scale``/``center``), moving_mean and
    moving_variance (C,) (non-trainable), in that order, as Keras.
    Call arguments: ``training``; ``mask`` (a (batch, ...) boolean mask one rank below the inputs):
    masked positions are left out of the batch statistics.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"BatchNormalization: `axis` must be an integer, received axis={axis!r}")
        for arg, val in (("momentum", momentum), ("epsilon", epsilon)):
            if not isinstance(val, numbers.Real) or isinstance(val, bool):
                raise ValueError(f"BatchNormalization: `{arg}` must be a float, received {arg}={val!r}")
        if epsilon <= 0:
            raise ValueError(f"BatchNormalization: `epsilon` must be positive, received epsilon={epsilon!r}")
        if renorm:
            raise ValueError("BatchNormalization: renorm=True (batch renormalization) is not "
                             "supported by dlcore; use renorm=False. Received renorm=True")
        if synchronized:
            raise ValueError("BatchNormalization: synchronized=True needs a distributed TensorFlow strategy; "
                             "dlcore runs on one device. Received synchronized=True")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.synchronized = False
        self.supports_masking = True
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Layer '{self.name}' (BatchNormalization): axis {self.axis} is out of bounds for "
                             f"input shape {tuple(input_shape)}. Received: axis={self.axis}")
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(f"Layer '{self.name}' (BatchNormalization): the normalized axis {self.axis} must have "
                             f"a known size, received input shape {tuple(input_shape)}")
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.moving_mean = self.add_weight(shape=shape, name="moving_mean", initializer=self.moving_mean_initializer,
                                           trainable=False)
        self.moving_variance = self.add_weight(shape=shape, name="moving_variance",
                                               initializer=self.moving_variance_initializer, trainable=False)
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: channels})
        self.built = True

    def call(self, inputs, training=None, mask=None):
        if mask is not None and np.ndim(getattr(mask, "value", mask)) != inputs.ndim - 1:
            raise ValueError(f"Layer '{self.name}' (BatchNormalization): the mask must have one dimension less "
                             f"than the inputs. Received: mask.shape={np.shape(getattr(mask, 'value', mask))}, "
                             f"inputs.shape={tuple(inputs.shape)}")
        if training and self.trainable:
            if mask is None:
                y, mean, variance = ops.batch_normalization_training(inputs, self.gamma, self.beta, axis=self.axis,
                                                                     epsilon=self.epsilon)
            else:
                mean, variance = self._masked_moments(inputs, mask)
                y = ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=self.beta,
                                            scale=self.gamma, epsilon=self.epsilon)
            m = self.momentum
            new_mean = self.moving_mean.value * m + mean.value * (1.0 - m)
            new_variance = self.moving_variance.value * m + variance.value * (1.0 - m)
            defer_state_update(lambda: (self.moving_mean.assign(new_mean), self.moving_variance.assign(new_variance)))
            return y
        return ops.batch_normalization(inputs, self.moving_mean, self.moving_variance, axis=self.axis,
                                       offset=self.beta, scale=self.gamma, epsilon=self.epsilon)

    def _masked_moments(self, inputs, mask):
        """Keras's masked moments: mean and variance of the unmasked positions (composed ops)."""
        from ..config import epsilon as fuzz

        axis = self.axis % inputs.ndim
        axes = tuple(i for i in range(inputs.ndim) if i != axis)
        weights = np.broadcast_to(np.expand_dims(np.asarray(getattr(mask, "value", mask)), -1),
                                  inputs.shape).astype(inputs.dtype)
        count = weights.sum(axis=axes, keepdims=True) + fuzz()
        mean = ops.divide(ops.sum(ops.multiply(inputs, weights), axis=axes, keepdims=True), count)
        centered = ops.multiply(ops.subtract(inputs, mean), weights)
        variance = ops.divide(ops.sum(ops.square(centered), axis=axes, keepdims=True), count)
        return ops.reshape(mean, (-1,)), ops.reshape(variance, (-1,))

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Layer '{self.name}' (BatchNormalization): axis {self.axis} is out of bounds for "
                             f"input shape {tuple(input_shape)}. Received: axis={self.axis}")
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
            "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "synchronized": self.synchronized,
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
        }
