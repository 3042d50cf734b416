"""Normalization layers (Keras 3 semantics): BatchNormalization, LayerNormalization,
RMSNormalization, GroupNormalization, UnitNormalization.

Training (``training=True`` and the layer trainable) normalizes with the batch's mean and biased
variance over every axis but ``axis`` and updates the moving statistics:
``moving = moving * momentum + batch * (1 - momentum)``. Inference, and a frozen layer
(``trainable=False``, also through a frozen model) even when ``training=True``, normalizes with
the moving statistics in one fused kernel, y = x * scale + shift, and updates nothing.

LayerNormalization and RMSNormalization normalize each example over ``axis`` (an int or a list)
with one fused kernel per direction (``ops.layer_normalization`` / ``ops.rms_normalization``);
GroupNormalization and UnitNormalization compose ops.
"""
import numbers

import numpy as np

from .. import constraints, initializers, ops, regularizers
from ..ops.normalization import update_moving_statistic
from ..registry import register
from .layer import InputSpec, Layer, defer_state_update


def _replicas():
    """The cross-replica arguments of a synchronized BatchNormalization's op: the strategy of the
    open ``scope()`` (fit opens the model's), else the process's MPIStrategy (a custom loop);
    nothing with one replica, where the layer is the unsynchronized one."""
    from ..distribute.strategy import _world, get_strategy, has_strategy

    strategy = get_strategy() if has_strategy() else _world[0]
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return {}
    weight = strategy._step_weight
    return {"all_sum": strategy._sum, "replica_weight": 1.0 / strategy.num_replicas_in_sync if weight is None
            else weight}


@register("layer")
class BatchNormalization(Layer):
    """Normalizes ``axis`` (the channels, -1 for channels_last) to zero mean and unit variance,
    then scales by ``gamma`` and shifts by ``beta``.

    Input shape: any rank >= 2. Output shape: the input's.
    Weights: gamma (C,) and beta (C,) (trainable, when ``scale``/``center``), moving_mean and
    moving_variance (C,) (non-trainable), in that order, as Keras.
    Call arguments: ``training``; ``mask`` (a (batch, ...) boolean mask one rank below the inputs):
    masked positions are left out of the batch statistics.
    ``synchronized=True`` (Keras 3): under a ``dl.distribute`` strategy of several replicas the
    training statistics are those of the global batch (one float64 all-reduce forward, one
    backward), so N ranks train as one process on the global batch; with one replica it is the
    unsynchronized layer. With a mask the masked statistics are synchronized too (Keras 3 leaves
    them per replica). Every rank must call it in training alike.
    """

    _runs_on_gpu = True  # channels-last (axis=-1) batch normalization dispatches on where its arrays live

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
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = bool(center)
        self.scale = bool(scale)
        _set_affine_args(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.synchronized = bool(synchronized)
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
                sync = _replicas() if self.synchronized else {}
                y, mean, variance = ops.batch_normalization_training(inputs, self.gamma, self.beta, axis=self.axis,
                                                                     epsilon=self.epsilon, **sync)
            else:
                mean, variance = self._masked_moments(inputs, mask, _replicas() if self.synchronized else {})
                y = ops.batch_normalization(inputs, mean, variance, axis=self.axis, offset=self.beta,
                                            scale=self.gamma, epsilon=self.epsilon)
            new_mean = update_moving_statistic(self.moving_mean, mean, self.momentum)
            new_variance = update_moving_statistic(self.moving_variance, variance, self.momentum)
            defer_state_update(lambda: (self.moving_mean.assign(new_mean), self.moving_variance.assign(new_variance)))
            return y
        return ops.batch_normalization(inputs, self.moving_mean, self.moving_variance, axis=self.axis,
                                       offset=self.beta, scale=self.gamma, epsilon=self.epsilon)

    def _masked_moments(self, inputs, mask, sync):
        """Keras's masked moments: mean and variance of the unmasked positions (composed ops).
        Synchronized (``sync``: the op's cross-replica arguments), the counts and both sums are
        summed over replicas (Keras 3 leaves masked statistics per replica)."""
        from ..config import epsilon as fuzz
        from ..ops.normalization import cross_replica_sum

        axis = self.axis % inputs.ndim
        axes = tuple(i for i in range(inputs.ndim) if i != axis)
        weights = np.broadcast_to(np.expand_dims(np.asarray(getattr(mask, "value", mask)), -1),
                                  inputs.shape).astype(inputs.dtype)
        total = (lambda t: cross_replica_sum(t, **sync)) if sync else (lambda t: t)
        count = weights.sum(axis=axes, keepdims=True)
        if sync:
            count = np.asarray(sync["all_sum"](count.astype(np.float64).reshape(-1))).reshape(count.shape)
        count = count.astype(inputs.dtype) + fuzz()
        mean = ops.divide(total(ops.sum(ops.multiply(inputs, weights), axis=axes, keepdims=True)), count)
        centered = ops.multiply(ops.subtract(inputs, mean), weights)
        variance = ops.divide(total(ops.sum(ops.square(centered), axis=axes, keepdims=True)), count)
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


def _axis_arg(axis, layer_name):
    """An int stays an int, a list/tuple becomes a list (as Keras stores them)."""
    if isinstance(axis, (list, tuple)) and axis and all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axis):
        return [int(a) for a in axis]
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool):
        return int(axis)
    raise TypeError(f"{layer_name}: expected an int or a list/tuple of ints for the argument 'axis', "
                    f"received axis={axis!r}")


def _set_affine_args(layer, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                     beta_constraint, gamma_constraint):
    """The beta/gamma initializers, regularizers and constraints every normalization layer takes."""
    layer.beta_initializer = initializers.get(beta_initializer)
    layer.gamma_initializer = initializers.get(gamma_initializer)
    layer.beta_regularizer = regularizers.get(beta_regularizer)
    layer.gamma_regularizer = regularizers.get(gamma_regularizer)
    layer.beta_constraint = constraints.get(beta_constraint)
    layer.gamma_constraint = constraints.get(gamma_constraint)


def _epsilon_arg(epsilon, layer_name):
    if not isinstance(epsilon, numbers.Real) or isinstance(epsilon, bool) or not epsilon > 0:
        raise ValueError(f"{layer_name}: `epsilon` must be a positive float, received epsilon={epsilon!r}")
    return float(epsilon)


def _axes_in(layer, axis, input_shape):
    """Sorted non-negative axes of ``axis`` in ``input_shape``; errors name the layer."""
    rank = len(input_shape)
    axes = axis if isinstance(axis, list) else [axis]
    for a in axes:
        if not -rank <= a < rank:
            raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): axis {a} is out of bounds for "
                             f"input shape {tuple(input_shape)}. Received: axis={axis}")
    if len({a % rank for a in axes}) != len(axes):
        raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): repeated axes in axis={axis}")
    for a in axes:
        if input_shape[a] is None:
            raise ValueError(f"Layer '{layer.name}' ({type(layer).__name__}): the normalized axis {a} must have a "
                             f"known size, received input shape {tuple(input_shape)}")
    return sorted(a % rank for a in axes)


class _FeatureNormalization(Layer):
    """Shared by the layers that normalize each example over ``axis``: config and shape checks."""

    def compute_output_shape(self, input_shape):
        _axes_in(self, self.axis, input_shape)
        return tuple(input_shape)


@register("layer")
class LayerNormalization(_FeatureNormalization):
    """Normalizes each example over ``axis`` (an int or a list of ints) to zero mean and unit
    variance, then scales by ``gamma`` and shifts by ``beta`` (each of the normalized axes' shape).

    Input shape: any. Output shape: the input's. Weights: gamma, beta (when ``scale``/``center``),
    in that order, as Keras. ``rms_scaling=True`` is Keras's deprecated variant
    ``x / sqrt(var + epsilon) * gamma`` (no beta); RMSNormalization is the RMS norm proper.
    """

    _runs_on_gpu = True  # over the last axis (ops.layer_normalization dispatches on where its arrays live)

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, rms_scaling=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_arg(axis, "LayerNormalization")
        self.epsilon = _epsilon_arg(epsilon, "LayerNormalization")
        self.center = bool(center)
        self.scale = bool(scale)
        self.rms_scaling = bool(rms_scaling)
        _set_affine_args(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint)
        self.supports_masking = True
        self.gamma = self.beta = None

    def build(self, input_shape):
        axes = _axes_in(self, self.axis, input_shape)
        shape = tuple(input_shape[a] for a in axes)
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape=shape, name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape=shape, name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.built = True

    def call(self, inputs):
        return ops.layer_normalization(inputs, self.gamma, self.beta, axis=self.axis, epsilon=self.epsilon,
                                       rms_scaling=self.rms_scaling)

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "rms_scaling": self.rms_scaling,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


@register("layer")
class RMSNormalization(_FeatureNormalization):
    """``x / sqrt(mean(x**2) + epsilon) * scale`` over ``axis`` of each example (Keras 3).

    Input shape: any. Output shape: the input's. Weights: scale (the normalized axes' shape).
    """

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_arg(axis, "RMSNormalization")
        self.epsilon = _epsilon_arg(epsilon, "RMSNormalization")
        self.supports_masking = True
        self.scale = None

    def build(self, input_shape):
        axes = _axes_in(self, self.axis, input_shape)
        self.scale = self.add_weight(shape=tuple(input_shape[a] for a in axes), name="scale", initializer="ones")
        self.built = True

    def call(self, inputs):
        return ops.rms_normalization(inputs, self.scale, axis=self.axis, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


@register("layer")
class GroupNormalization(Layer):
    """Splits the channels (``axis``) into ``groups`` and normalizes each example's group over
    the group's channels and every other non-batch axis; gamma/beta per channel (Keras 3).
    ``groups=-1`` is instance normalization (one group per channel).

    Input shape: rank >= 2, batch first. Output shape: the input's. Weights: gamma, beta (C,).
    """

    def __init__(self, groups=32, axis=-1, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        if not isinstance(groups, int) or isinstance(groups, bool) or (groups <= 0 and groups != -1):
            raise ValueError("GroupNormalization: expected a positive integer `groups` (or -1 for instance "
                             f"normalization), received groups={groups!r}")
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise TypeError(f"GroupNormalization: `axis` must be an integer, received axis={axis!r}")
        super().__init__(**kwargs)
        self.groups = groups
        self.axis = int(axis)
        self.epsilon = _epsilon_arg(epsilon, "GroupNormalization")
        self.center = bool(center)
        self.scale = bool(scale)
        _set_affine_args(self, beta_initializer, gamma_initializer, beta_regularizer, gamma_regularizer,
                         beta_constraint, gamma_constraint)
        self.supports_masking = True
        self.gamma = self.beta = None

    def build(self, input_shape):
        rank = len(input_shape)
        if rank < 2 or not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): axis {self.axis} must name a non-batch "
                             f"axis of the input, received input shape {tuple(input_shape)}")
        dim = input_shape[self.axis]
        if dim is None:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): axis {self.axis} of the input must have "
                             f"a known size, received input shape {tuple(input_shape)}")
        if self.groups == -1:
            self.groups = dim
        if dim < self.groups or dim % self.groups:
            raise ValueError(f"Layer '{self.name}' (GroupNormalization): the number of channels ({dim}) must be a "
                             f"multiple of groups ({self.groups}) and at least groups")
        self.input_spec = InputSpec(ndim=rank, axes={self.axis: dim})
        if self.scale:
            self.gamma = self.add_weight(shape=(dim,), name="gamma", initializer=self.gamma_initializer,
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(shape=(dim,), name="beta", initializer=self.beta_initializer,
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.built = True

    def call(self, inputs):
        rank = inputs.ndim
        axis = self.axis % rank
        dim = inputs.shape[axis]
        # (batch, ..., groups, dim // groups, ...): normalize over all but batch and the group axis
        grouped_shape = (-1,) + tuple(inputs.shape[1:axis]) + (self.groups, dim // self.groups) + \
            tuple(inputs.shape[axis + 1:])
        grouped = ops.reshape(inputs, grouped_shape)
        reduce_axes = tuple(i for i in range(1, rank + 1) if i != axis)
        mean, variance = ops.moments(grouped, axes=reduce_axes, keepdims=True)
        inv = ops.reciprocal(ops.sqrt(variance + self.epsilon))
        param_shape = [1] * (rank + 1)
        param_shape[axis], param_shape[axis + 1] = self.groups, dim // self.groups
        if self.gamma is not None:
            inv = ops.multiply(inv, ops.reshape(self.gamma, param_shape))
        shift = ops.negative(ops.multiply(mean, inv))
        if self.beta is not None:
            shift = ops.add(shift, ops.reshape(self.beta, param_shape))
        y = ops.add(ops.multiply(grouped, inv), shift)
        return ops.reshape(y, tuple(inputs.shape))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "groups": self.groups,
            "axis": self.axis,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
        }


@register("layer")
class UnitNormalization(_FeatureNormalization):
    """Scales each example to unit L2 norm over ``axis`` (an int or a list): x / max(||x||, 1e-12),
    as Keras 3. Input shape: any. Output shape: the input's. No weights."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _axis_arg(axis, "UnitNormalization")
        self.supports_masking = True

    def build(self, input_shape):
        _axes_in(self, self.axis, input_shape)
        self.built = True

    def call(self, inputs):
        return ops.normalize(inputs, axis=self.axis, order=2, epsilon=1e-12)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
