"""Losses, as ``keras.losses`` (Keras 3 names, arguments, defaults, reductions).

A loss function (``mean_squared_error``, ...) returns per-sample losses (reduced over the last
axis); a :class:`Loss` object also applies sample weights and a reduction and returns a scalar
Tensor, differentiable with respect to ``y_pred`` under a GradientTape.

Reductions (Keras 3 ``reduce_weighted_values``): "sum_over_batch_size" and "mean" divide the
weighted sum by the number of loss elements (not by the weight sum), "sum" sums,
"mean_with_sample_weight" divides by the sum of the weights, None/"none" returns the weighted
per-sample losses. With ``SparseCategoricalCrossentropy(ignore_class=...)``, ignored entries are
masked out and "sum_over_batch_size"/"mean" average over the remaining ones.

dtype: ``Loss(dtype=None)`` computes in y_pred's float dtype (float64 stays float64, integers
become floatx); an explicit ``dtype`` casts y_pred to it, as Keras's loss dtype policy does.
"""
import re

import numpy as np

from . import config, devices, ops, registry
from .ops.losses import (binary_crossentropy, binary_focal_crossentropy, categorical_crossentropy,
                         categorical_focal_crossentropy, categorical_hinge, cosine_similarity, device_loss_sum, dice,
                         huber, hinge, kl_divergence, log_cosh,
                         mean_absolute_error, mean_absolute_percentage_error, mean_squared_error,
                         mean_squared_logarithmic_error, poisson, sparse_categorical_crossentropy,
                         sparse_valid_mask, squared_hinge, squeeze_or_expand_to_same_rank, tversky)
from .ops.reduce import sum_divided
from .registry import lookup, register
from .tensor import Tensor

_KIND = "loss"

REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def standardize_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {set(REDUCTIONS)}. "
                         f"Received: reduction={reduction!r}")
    return reduction


def _weights_for(name, values_shape, sample_weight, dtype):
    """``sample_weight`` as an array that broadcasts to ``values_shape`` without changing it.

    Accepts a scalar, shape (N,) (aligned with the leading axis: trailing axes are added, so
    (N,) weights apply to (N, T) losses), a trailing axis of size 1 ((N, 1) for (N,) losses), or
    any shape NumPy broadcasts to the loss shape."""
    sw = np.asarray(sample_weight.value if isinstance(sample_weight, Tensor) else sample_weight)
    if sw.dtype.kind not in "biuf":
        raise ValueError(f"{name}: sample_weight must be numeric; received dtype {sw.dtype}")
    sw = sw.astype(dtype, copy=False)
    received = sw.shape
    # Keras's squeeze rule, applied to the weights only (the loss keeps its shape)
    if sw.ndim == len(values_shape) + 1 and sw.shape[-1:] == (1,):
        sw = sw.reshape(sw.shape[:-1])
    if 0 < sw.ndim < len(values_shape) and sw.shape == tuple(values_shape[:sw.ndim]):
        sw = sw.reshape(sw.shape + (1,) * (len(values_shape) - sw.ndim))
    try:
        ok = np.broadcast_shapes(sw.shape, tuple(values_shape)) == tuple(values_shape)
    except ValueError:
        ok = False
    if not ok:
        n = values_shape[0] if len(values_shape) else None
        raise ValueError(f"{name}: sample_weight must have shape ({n},) or be broadcastable to the "
                         f"per-sample loss shape {tuple(values_shape)}; received "
                         f"sample_weight.shape={received}")
    return sw


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Reduce (already weighted) per-sample losses, as Keras's ``reduce_values``."""
    if reduction is None or reduction == "none" or values.ndim == 0:
        return values
    divisor = 1.0
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        if reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = float(np.sum(np.broadcast_to(sample_weight, values.shape), dtype=np.float64))
        else:
            divisor = float(values.size)
    raw = values.value if isinstance(values, Tensor) else values
    if divisor != 0 and type(raw) is np.ndarray and raw.dtype in (np.float32, np.float64):
        return sum_divided(values, divisor)
    loss = ops.sum(values)
    # divide_no_nan: a zero divisor gives 0 (still connected to the graph)
    return ops.multiply(loss, 0.0) if divisor == 0 else loss if divisor == 1.0 else ops.divide(loss, divisor)


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size",
                           name="loss"):
    """Apply ``mask`` and ``sample_weight`` to per-sample losses and reduce them (Keras 3)."""
    reduction = standardize_reduction(reduction)
    if not isinstance(values, Tensor):
        values = ops.convert_to_tensor(values)
    dtype = values.dtype
    if sample_weight is not None:
        sample_weight = _weights_for(name, values.shape, sample_weight, dtype)
    if mask is not None:
        mask = np.asarray(mask).astype(dtype)
        if reduction in ("mean", "sum_over_batch_size"):
            valid = float(mask.sum())
            mask = mask * (mask.size / valid if valid else 0.0)
        sample_weight = mask if sample_weight is None else sample_weight * mask
    if devices.is_device_array(values.value) and reduction not in (None, "none") and values.ndim:
        return _reduce_on_device(values, sample_weight, reduction)
    if sample_weight is not None:
        values = ops.multiply(values, sample_weight)
    return reduce_values(values, sample_weight, reduction)


def _reduce_on_device(values, sample_weight, reduction):
    """reduce_values for per-sample losses on the GPU: reduced there, the scalar comes back."""
    weights = None if sample_weight is None else np.broadcast_to(sample_weight, values.shape)
    scale = 1.0
    if reduction != "sum":
        divisor = float(values.size)
        if reduction == "mean_with_sample_weight" and weights is not None:
            divisor = float(np.sum(weights, dtype=np.float64))
        scale = 0.0 if divisor == 0 else 1.0 / divisor
    return device_loss_sum(values, weights, scale)


# ---- Loss base -------------------------------------------------------------------------------
@register(_KIND)
class Loss:
    """Base class: subclasses implement ``call(y_true, y_pred)`` -> per-sample losses."""

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _snake(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self._dtype = None if dtype is None else np.dtype(dtype).name

    @property
    def dtype(self):
        """The computation dtype: the one given, else floatx (y_pred's float dtype is kept)."""
        return self._dtype or config.floatx()

    def __call__(self, y_true, y_pred, sample_weight=None):
        # Keras: the output mask of a masking layer (Embedding(mask_zero), Masking) drops the
        # masked time steps from the loss, which is then averaged over the valid ones.
        output_mask = getattr(y_pred, "mask", None)
        if self._dtype is not None:
            y_pred = ops.convert_to_tensor(y_pred)
            if y_pred.dtype != np.dtype(self._dtype):
                y_pred = ops.cast(y_pred, self._dtype)
        elif getattr(y_pred, "dtype", None) == np.float16:
            y_pred = ops.cast(y_pred, config.floatx())  # Keras computes losses in float32 (mixed_float16)
        if getattr(y_true, "dtype", None) == np.float16:
            y_true = ops.cast(y_true, config.floatx())
        losses = self.call(y_true, y_pred)
        if not isinstance(losses, Tensor):
            losses = ops.convert_to_tensor(losses)
        mask = self._loss_mask(y_true, y_pred)
        if output_mask is not None and np.shape(output_mask) == tuple(losses.shape):
            output_mask = np.asarray(output_mask, dtype=bool)
            mask = output_mask if mask is None else np.logical_and(np.asarray(mask, dtype=bool), output_mask)
        return reduce_weighted_values(losses, sample_weight=sample_weight, mask=mask,
                                      reduction=self.reduction, name=self.name)

    def call(self, y_true, y_pred):
        raise NotImplementedError(f"{type(self).__name__} must implement call(y_true, y_pred)")

    def _loss_mask(self, y_true, y_pred):
        """A boolean mask over the per-sample losses (Keras's output mask), or None."""
        return None

    def get_config(self):
        config_ = {"name": self.name, "reduction": self.reduction}
        if self._dtype is not None:
            config_["dtype"] = self._dtype
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} reduction={self.reduction!r}>"


@register(_KIND)
class LossFunctionWrapper(Loss):
    """A Loss from a per-sample function ``fn(y_true, y_pred, **kwargs)``."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if isinstance(fn, str):
            fn = lookup(_KIND, fn)
        super().__init__(name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self):
        config_ = super().get_config()
        config_["fn"] = serialize(self.fn)
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if "fn" in config_:
            config_["fn"] = deserialize(config_["fn"])
        return cls(**config_)

    def __repr__(self):
        return f"<LossFunctionWrapper({getattr(self.fn, '__name__', self.fn)}, kwargs={self._fn_kwargs})>"


class _BuiltinLoss(LossFunctionWrapper):
    """A built-in wrapper: its config holds its own arguments instead of ``fn``."""

    _fn = None

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(type(self)._fn, reduction=reduction, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        config_ = Loss.get_config(self)
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    __repr__ = Loss.__repr__


def _fn(function):
    return staticmethod(function)


@register(_KIND)
class MeanSquaredError(_BuiltinLoss):
    """mean((y_true - y_pred)**2) per sample."""

    _fn = _fn(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class MeanAbsoluteError(_BuiltinLoss):
    """mean(|y_true - y_pred|) per sample."""

    _fn = _fn(mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class MeanAbsolutePercentageError(_BuiltinLoss):
    """100 * mean(|(y_true - y_pred) / y_true|) per sample."""

    _fn = _fn(mean_absolute_percentage_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error",
                 dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class MeanSquaredLogarithmicError(_BuiltinLoss):
    """mean((log(y_true + 1) - log(y_pred + 1))**2) per sample."""

    _fn = _fn(mean_squared_logarithmic_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error",
                 dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class CosineSimilarity(_BuiltinLoss):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred), axis)."""

    _fn = _fn(cosine_similarity)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, axis=axis)


@register(_KIND)
class Huber(_BuiltinLoss):
    """Quadratic for |error| <= delta, linear beyond."""

    _fn = _fn(huber)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, delta=delta)


@register(_KIND)
class LogCosh(_BuiltinLoss):
    """mean(log(cosh(y_pred - y_true))) per sample."""

    _fn = _fn(log_cosh)

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class Hinge(_BuiltinLoss):
    """mean(max(1 - y_true * y_pred, 0)); {0, 1} labels are mapped to {-1, 1}."""

    _fn = _fn(hinge)

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class SquaredHinge(_BuiltinLoss):
    """mean(max(1 - y_true * y_pred, 0)**2); {0, 1} labels are mapped to {-1, 1}."""

    _fn = _fn(squared_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class CategoricalHinge(_BuiltinLoss):
    """max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)."""

    _fn = _fn(categorical_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class KLDivergence(_BuiltinLoss):
    """sum(y_true * log(y_true / y_pred)) per sample, both clipped to [eps, 1]."""

    _fn = _fn(kl_divergence)

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class Poisson(_BuiltinLoss):
    """mean(y_pred - y_true * log(y_pred + eps)) per sample."""

    _fn = _fn(poisson)

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype)


@register(_KIND)
class BinaryCrossentropy(_BuiltinLoss):
    """Binary cross-entropy, averaged over ``axis`` (the last by default)."""

    _fn = _fn(binary_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="binary_crossentropy", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


@register(_KIND)
class CategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy of one-hot (or soft) targets against class probabilities or logits."""

    _fn = _fn(categorical_crossentropy)

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_crossentropy", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis


@register(_KIND)
class SparseCategoricalCrossentropy(_BuiltinLoss):
    """Cross-entropy of integer labels against class probabilities or logits; entries labelled
    ``ignore_class`` are masked out of the loss and of the average."""

    _fn = _fn(sparse_categorical_crossentropy)

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size",
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, from_logits=from_logits,
                         ignore_class=ignore_class)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def _loss_mask(self, y_true, y_pred):
        if self.ignore_class is None:
            return None
        return sparse_valid_mask(y_true, y_pred, self.ignore_class)


@register(_KIND)
class BinaryFocalCrossentropy(_BuiltinLoss):
    """Binary cross-entropy scaled by the focal factor (1 - p_t)**gamma (and, with
    ``apply_class_balancing``, by alpha / 1 - alpha), averaged over ``axis``."""

    _fn = _fn(binary_focal_crossentropy)

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_focal_crossentropy", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.apply_class_balancing = apply_class_balancing
        self.alpha, self.gamma = alpha, gamma
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


@register(_KIND)
class CategoricalFocalCrossentropy(_BuiltinLoss):
    """Categorical cross-entropy scaled by alpha (1 - q)**gamma, summed over ``axis``."""

    _fn = _fn(categorical_focal_crossentropy)

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.alpha, self.gamma = alpha, gamma
        self.from_logits, self.label_smoothing, self.axis = from_logits, label_smoothing, axis


@register(_KIND)
class Dice(_BuiltinLoss):
    """1 - 2 sum(t p) / (sum(t) + sum(p)) over ``axis`` (None: the whole batch, one value)."""

    _fn = _fn(dice)

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, axis=axis)
        self.axis = axis


@register(_KIND)
class Tversky(_BuiltinLoss):
    """1 - TP / (TP + alpha FP + beta FN) over ``axis``; alpha = beta = 0.5 is Dice."""

    _fn = _fn(tversky)

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky",
                 axis=None, dtype=None):
        super().__init__(reduction=reduction, name=name, dtype=dtype, alpha=alpha, beta=beta,
                         axis=axis)
        self.alpha, self.beta, self.axis = alpha, beta, axis


# ---- the functions, under their Keras names and aliases -------------------------------------
for _function, _aliases in (
        (mean_squared_error, ("mse", "MSE")),
        (mean_absolute_error, ("mae", "MAE")),
        (mean_absolute_percentage_error, ("mape", "MAPE")),
        (mean_squared_logarithmic_error, ("msle", "MSLE")),
        (huber, ()),
        (log_cosh, ("logcosh",)),
        (binary_crossentropy, ("bce", "BCE")),
        (categorical_crossentropy, ()),
        (sparse_categorical_crossentropy, ()),
        (hinge, ()),
        (squared_hinge, ()),
        (categorical_hinge, ()),
        (kl_divergence, ("kld", "KLD", "kullback_leibler_divergence")),
        (poisson, ()),
        (cosine_similarity, ()),
        (binary_focal_crossentropy, ()),
        (categorical_focal_crossentropy, ()),
        (dice, ()),
        (tversky, ()),
):
    register(_KIND, *_aliases)(_function)

mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(loss):
    """Keras 3's serialized form of a loss: ``{"class_name": ..., "config": ...}``, or a
    function's name."""
    return registry.serialize(_KIND, loss)


def deserialize(config, custom_objects=None):
    """The loss described by ``config`` (a ``serialize`` dict or a registered name)."""
    return registry.deserialize(_KIND, config, custom_objects)


def get(identifier, custom_objects=None):
    """A loss from None (None), a name, a config dict, a class, an instance or a callable."""
    return registry.get(_KIND, identifier, custom_objects)


__all__ = ["Loss", "LossFunctionWrapper", "MeanSquaredError", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity", "Huber",
           "LogCosh", "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
           "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy", "Dice", "Tversky",
           "binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky",
           "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "huber", "log_cosh", "binary_crossentropy",
           "categorical_crossentropy", "sparse_categorical_crossentropy", "hinge", "squared_hinge",
           "categorical_hinge", "kl_divergence", "poisson", "cosine_similarity", "mse", "mae",
           "mape", "msle", "MSE", "MAE", "MAPE", "MSLE", "kld", "KLD", "logcosh",
           "kullback_leibler_divergence", "reduce_weighted_values", "squeeze_or_expand_to_same_rank",
           "get", "serialize",
           "deserialize"]
