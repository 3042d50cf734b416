"""Metrics, as ``keras.metrics`` (Keras 3 names, arguments, defaults and formulas).

A :class:`Metric` is stateful: ``update_state(y_true, y_pred, sample_weight=None)`` accumulates,
``result()`` returns the value (a NumPy float32 scalar, or an array for several thresholds),
``reset_state()`` starts over. Metrics are not differentiated: states are NumPy float64
accumulators, updated with vectorized NumPy (and, for the loss-based metrics, the Cython loss
kernels), so they are cheap to run on every batch. Sample weights follow Keras: a weighted mean
for the mean metrics, weighted counts for the confusion-matrix metrics.

The confusion-matrix metrics (Precision, Recall, AUC, TruePositives, ...) reproduce Keras's
``update_confusion_matrix_variables``: a prediction is positive when strictly greater than the
threshold; evenly spaced thresholds (AUC's default) use Keras's bucketing in float32, so the
counts, and AUC's interpolated areas, are Keras's.
"""
import re

import numpy as np

from . import config
from .autograd import no_grad
from .ops import losses as _losses
from .ops.losses import squeeze_or_expand_to_same_rank
from . import registry
from .registry import lookup, register
from .tensor import Tensor

_KIND = "metric"
NEG_INF = -1e10


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _np(x, dtype=None):
    x = x.value if isinstance(x, Tensor) else x
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def _float(x):
    a = _np(x)
    return a if a.dtype.kind == "f" else a.astype(config.floatx())


# ---- base classes ----------------------------------------------------------------------------
@register(_KIND)
class Metric:
    """Base class: subclasses implement ``update_state`` and ``result`` and create their states
    with ``add_variable`` (zeroed again by ``reset_state``)."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self._dtype = np.dtype(dtype or config.floatx()).name
        self._states = {}

    @property
    def dtype(self):
        return self._dtype

    def add_variable(self, shape, initializer="zeros", dtype=None, name=None):
        """A float64 (or ``dtype``) state array, registered for reset_state."""
        if initializer not in ("zeros", None):
            raise ValueError(f"{self.name}: metric states start at zero; received initializer={initializer!r}")
        state = np.zeros(shape, dtype=dtype or np.float64)
        self._states[name or f"state_{len(self._states)}"] = state
        return state

    @property
    def variables(self):
        return list(self._states.values())

    def reset_state(self):
        for state in self._states.values():
            state[...] = 0

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def _out(self, x):
        """A result in the metric's dtype: a NumPy scalar, or an array."""
        x = np.asarray(x, dtype=self._dtype)
        return x[()] if x.ndim == 0 else x

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _samplewise(values, sample_weight, reduce_fn, name):
    """Keras's ``reduce_to_samplewise_values``: per-sample values (and weights) for Mean/Sum."""
    values = _np(values, np.float64)
    if sample_weight is not None:
        sw = _np(sample_weight, np.float64)
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        w_ndim, v_ndim = sw.ndim, values.ndim
        if v_ndim > w_ndim:
            values = reduce_fn(values, axis=tuple(range(w_ndim, v_ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"{name}: sample_weight of shape {np.shape(_np(sample_weight))} does not "
                             f"match the values of shape {np.shape(_np(values))}: expected the batch "
                             f"shape or a shape broadcastable to it") from None
        values = values * sw
        if w_ndim > 1:
            sw = reduce_fn(sw, axis=tuple(range(1, w_ndim)))
    else:
        sw = None
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sw


@register(_KIND)
class Sum(Metric):
    """The (weighted) sum of the values seen."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(values, sample_weight, np.sum, self.name)
        self.total += values.sum()

    def result(self):
        return self._out(self.total)


@register(_KIND)
class Mean(Metric):
    """The (weighted) mean of the values seen: sum(w * v) / sum(w) over samples."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), name="total")
        self.count = self.add_variable((), name="count")

    def update_state(self, values, sample_weight=None):
        values, sw = _samplewise(values, sample_weight, np.mean, self.name)
        self.total += values.sum()
        if sw is not None:
            self.count += sw.sum()
        else:
            self.count += values.shape[0] if values.ndim >= 1 else 1

    def result(self):
        count = float(self.count)
        return self._out(float(self.total) / count if count else 0.0)


@register(_KIND)
class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over every sample seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if isinstance(fn, str):
            fn = lookup(_KIND, fn)
        super().__init__(name=name or getattr(fn, "__name__", None) or "mean_metric_wrapper",
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        with no_grad():
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        return super().update_state(_np(values), sample_weight=sample_weight)

    def get_config(self):
        config_ = {"name": self.name, "dtype": self.dtype, "fn": serialize(self._fn)}
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if "fn" in config_:
            config_["fn"] = deserialize(config_["fn"])
        return cls(**config_)


class _Wrapper(MeanMetricWrapper):
    """A built-in MeanMetricWrapper: its config holds its own arguments, not ``fn``."""

    _function = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self)._function, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        config_ = {"name": self.name, "dtype": self.dtype}
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)


# ---- accuracy functions (NumPy) -------------------------------------------------------------
def _same_shape(name, t, p):
    t, p = squeeze_or_expand_to_same_rank(t, p)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape; received "
                         f"y_true.shape={t.shape}, y_pred.shape={p.shape}")
    return t, p


def accuracy(y_true, y_pred):
    """mean(y_true == y_pred, axis=-1)."""
    p = _np(y_pred)
    t = _np(y_true).astype(p.dtype, copy=False)
    t, p = _same_shape("accuracy", t, p)
    return np.mean(np.equal(t, p), axis=-1, dtype=config.floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """mean(y_true == (y_pred > threshold), axis=-1)."""
    t, p = _same_shape("binary_accuracy", _np(y_true), _np(y_pred))
    threshold = np.asarray(threshold, dtype=p.dtype) if p.dtype.kind == "f" else threshold
    predicted = (p > threshold).astype(t.dtype)
    return np.mean(np.equal(t, predicted), axis=-1, dtype=config.floatx())


def categorical_accuracy(y_true, y_pred):
    """argmax(y_true, -1) == argmax(y_pred, -1), per sample."""
    t, p = _np(y_true), _np(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"categorical_accuracy: y_true (one-hot) and y_pred must have the same "
                         f"shape; received y_true.shape={t.shape}, y_pred.shape={p.shape}")
    return np.equal(np.argmax(t, axis=-1), np.argmax(p, axis=-1)).astype(config.floatx())


def _sparse_targets(name, t, p):
    received = t.shape
    if t.ndim == p.ndim and t.shape[-1:] == (1,):
        t = t.reshape(t.shape[:-1])
    if t.shape != p.shape[:-1]:
        raise ValueError(f"{name}: y_true must hold one integer label per sample, of shape "
                         f"{p.shape[:-1]} for y_pred of shape {p.shape}; received "
                         f"y_true.shape={received}")
    return t


def sparse_categorical_accuracy(y_true, y_pred):
    """y_true == argmax(y_pred, -1), per sample (y_true: integer labels, (N,) or (N, 1))."""
    t, p = _np(y_true), _np(y_pred)
    t = _sparse_targets("sparse_categorical_accuracy", t, p)
    return np.equal(t, np.argmax(p, axis=-1).astype(t.dtype)).astype(config.floatx())


def _in_top_k(targets, predictions, k):
    """tf.math.in_top_k: fewer than k classes score strictly higher than the target (ties count
    in); False for out-of-range targets or rows with non-finite scores."""
    c = predictions.shape[-1]
    targets = np.asarray(targets)
    in_range = (targets >= 0) & (targets < c) & (targets == np.round(targets))
    safe = np.where(in_range, targets, 0).astype(np.int64)
    target_scores = np.take_along_axis(predictions, safe[:, None], axis=-1)
    higher = np.sum(predictions > target_scores, axis=-1)
    finite = np.all(np.isfinite(predictions), axis=-1)
    return in_range & finite & (higher < k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether argmax(y_true) is among the k highest scores of y_pred, per sample."""
    t, p = _np(y_true), _np(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"top_k_categorical_accuracy: y_true (one-hot) and y_pred must have the "
                         f"same shape; received y_true.shape={t.shape}, y_pred.shape={p.shape}")
    labels = np.argmax(t, axis=-1)
    matches = _in_top_k(labels.reshape(-1), p.reshape(-1, p.shape[-1]), k)
    return matches.reshape(labels.shape).astype(config.floatx())


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether the integer label is among the k highest scores of y_pred, per sample."""
    t, p = _np(y_true), _np(y_pred)
    t = _sparse_targets("sparse_top_k_categorical_accuracy", t, p)
    matches = _in_top_k(t.reshape(-1), p.reshape(-1, p.shape[-1]), k)
    return matches.reshape(t.shape).astype(config.floatx())


def cosine_similarity(y_true, y_pred, axis=-1):
    """sum(l2_normalize(y_true) * l2_normalize(y_pred), axis) (the metric's sign: 1 = aligned)."""
    with no_grad():
        return -_np(_losses.cosine_similarity(y_true, y_pred, axis=axis))


# ---- accuracy metrics ------------------------------------------------------------------------
@register(_KIND)
class Accuracy(_Wrapper):
    """How often y_pred equals y_true."""

    _function = staticmethod(accuracy)

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class BinaryAccuracy(_Wrapper):
    """How often (y_pred > threshold) equals the binary y_true."""

    _function = staticmethod(binary_accuracy)

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if threshold is not None and (threshold <= 0 or threshold >= 1):
            raise ValueError("Invalid value for argument `threshold`. Expected a value in interval "
                             f"(0, 1). Received: threshold={threshold}")
        super().__init__(name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold


@register(_KIND)
class CategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals argmax(one-hot y_true)."""

    _function = staticmethod(categorical_accuracy)

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class SparseCategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals the integer label."""

    _function = staticmethod(sparse_categorical_accuracy)

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class TopKCategoricalAccuracy(_Wrapper):
    """How often the one-hot target is among the top ``k`` predictions."""

    _function = staticmethod(top_k_categorical_accuracy)

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=k)
        self.k = k


@register(_KIND)
class SparseTopKCategoricalAccuracy(_Wrapper):
    """How often the integer target is among the top ``k`` predictions."""

    _function = staticmethod(sparse_top_k_categorical_accuracy)

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=k)
        self.k = k


# ---- regression and probabilistic metrics (the loss functions, averaged) --------------------
def _loss_metric(class_name, function, default_name, doc, extra=()):
    """A _Wrapper subclass around a per-sample loss function; ``extra``: (arg, default) pairs."""

    def __init__(self, name=default_name, dtype=None, **kwargs):
        unknown = set(kwargs) - {k for k, _ in extra}
        if unknown:
            raise TypeError(f"{class_name}() got unexpected arguments {sorted(unknown)}")
        args = {k: kwargs.get(k, default) for k, default in extra}
        _Wrapper.__init__(self, name=name, dtype=dtype, **args)

    cls = type(class_name, (_Wrapper,), {"_function": staticmethod(function), "__init__": __init__,
                                         "__doc__": doc, "__module__": __name__})
    return register(_KIND)(cls)


MeanSquaredError = _loss_metric("MeanSquaredError", _losses.mean_squared_error,
                                "mean_squared_error", "The mean of (y_true - y_pred)**2.")
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", _losses.mean_absolute_error,
                                 "mean_absolute_error", "The mean of |y_true - y_pred|.")
MeanAbsolutePercentageError = _loss_metric(
    "MeanAbsolutePercentageError", _losses.mean_absolute_percentage_error,
    "mean_absolute_percentage_error", "100 * mean(|(y_true - y_pred) / y_true|).")
MeanSquaredLogarithmicError = _loss_metric(
    "MeanSquaredLogarithmicError", _losses.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error", "mean((log(y_true + 1) - log(y_pred + 1))**2).")
LogCoshError = _loss_metric("LogCoshError", _losses.log_cosh, "logcosh",
                            "mean(log(cosh(y_pred - y_true))).")
Hinge = _loss_metric("Hinge", _losses.hinge, "hinge", "mean(max(1 - y_true * y_pred, 0)).")
SquaredHinge = _loss_metric("SquaredHinge", _losses.squared_hinge, "squared_hinge",
                            "mean(max(1 - y_true * y_pred, 0)**2).")
CategoricalHinge = _loss_metric("CategoricalHinge", _losses.categorical_hinge, "categorical_hinge",
                                "max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0).")
KLDivergence = _loss_metric("KLDivergence", _losses.kl_divergence, "kl_divergence",
                            "sum(y_true * log(y_true / y_pred)).")
Poisson = _loss_metric("Poisson", _losses.poisson, "poisson",
                       "mean(y_pred - y_true * log(y_pred + eps)).")
CosineSimilarity = _loss_metric("CosineSimilarity", cosine_similarity, "cosine_similarity",
                                "The mean cosine similarity of y_true and y_pred along ``axis``.",
                                extra=(("axis", -1),))
BinaryCrossentropy = _loss_metric(
    "BinaryCrossentropy", _losses.binary_crossentropy, "binary_crossentropy",
    "The mean binary cross-entropy.", extra=(("from_logits", False), ("label_smoothing", 0)))
CategoricalCrossentropy = _loss_metric(
    "CategoricalCrossentropy", _losses.categorical_crossentropy, "categorical_crossentropy",
    "The mean categorical cross-entropy.",
    extra=(("from_logits", False), ("label_smoothing", 0), ("axis", -1)))
SparseCategoricalCrossentropy = _loss_metric(
    "SparseCategoricalCrossentropy", _losses.sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy", "The mean sparse categorical cross-entropy.",
    extra=(("from_logits", False), ("axis", -1)))


@register(_KIND)
class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean of (y_pred - y_true)**2."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _float(y_pred)
        t = _np(y_true).astype(p.dtype, copy=False)
        t, p = _same_shape(self.name, t, p)
        return super().update_state(np.square(p - t), sample_weight=sample_weight)

    def result(self):
        return self._out(np.sqrt(float(super().result())))


# ---- confusion-matrix metrics ----------------------------------------------------------------
def _thresholds_list(thresholds, default):
    if thresholds is None:
        return [default]
    values = list(np.ravel(thresholds)) if np.ndim(thresholds) else [thresholds]
    bad = [t for t in values if t is None or not 0 <= t <= 1]
    if bad:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad}")
    return [float(t) for t in values]


def is_evenly_distributed_thresholds(thresholds):
    """Keras's test: at least 3 thresholds equal (to 1e-7) to linspace(0, 1)."""
    n = len(thresholds)
    if n < 3:
        return False
    even = np.arange(n, dtype=np.float32) / (n - 1)
    return bool(np.allclose(thresholds, even, atol=config.epsilon()))


def _filter_top_k(x, k):
    """Keep the k largest values of each row (first index wins ties); the rest become NEG_INF."""
    idx = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(x.shape, dtype=bool)
    np.put_along_axis(keep, idx, True, axis=-1)
    return np.where(keep, x, np.asarray(NEG_INF, dtype=x.dtype))


def confusion_counts(y_true, y_pred, thresholds, evenly=False, top_k=None, class_id=None,
                     sample_weight=None, multi_label=False, label_weights=None, name="metric"):
    """Weighted (tp, fp, tn, fn) per threshold: float64 arrays (T,), or (T, L) if multi_label.

    A prediction counts as positive when strictly greater than the threshold; y_true is cast to
    bool. ``evenly``: thresholds are evenly spaced (Keras's bucketed path, in float32)."""
    p = _np(y_pred, np.float32)
    t = _np(y_true, np.float32)
    received = (t.shape, p.shape)
    p, t = squeeze_or_expand_to_same_rank(p, t)
    if p.shape != t.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape; received "
                         f"y_true.shape={received[0]}, y_pred.shape={received[1]}")
    sw = None
    if sample_weight is not None:
        sw = _np(sample_weight, np.float32)[..., None]
        _, sw = squeeze_or_expand_to_same_rank(t, sw, expand_rank_1=False)
    if top_k is not None:
        p = _filter_top_k(p, top_k)
    if class_id is not None:
        if p.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes), found shape: {p.shape}")
        t, p = t[..., class_id, None], p[..., class_id, None]
    weights = np.ones(p.shape, dtype=np.float64)
    if sw is not None:
        try:
            weights = weights * np.broadcast_to(sw, p.shape)
        except ValueError:
            raise ValueError(f"{name}: sample_weight of shape {np.shape(_np(sample_weight))} cannot "
                             f"be broadcast to y_pred of shape {received[1]}") from None
    if label_weights is not None and not multi_label:
        weights = weights * np.broadcast_to(np.asarray(label_weights, np.float64)[None], p.shape)

    if multi_label:
        if p.ndim != 2:
            raise ValueError(f"{name}: y_pred must have rank 2 when multi_label=True; received "
                             f"shape {p.shape}")
        p2, w2 = p, weights
        pos = t.astype(bool)
    else:
        p2, w2 = p.reshape(-1, 1), weights.reshape(-1, 1)
        pos = t.astype(bool).reshape(-1, 1)
    n_labels = p2.shape[1]
    true_w = np.where(pos, w2, 0.0)
    false_w = np.where(pos, 0.0, w2)
    thr = np.asarray(thresholds, dtype=np.float32)
    n_thr = thr.shape[0]
    offsets = np.arange(n_labels)[None, :]

    if evenly:
        with_epsilon = thresholds[0] < 0.0 or thresholds[-1] > 1.0
        pc = np.clip(np.nan_to_num(p2, nan=0.0), np.float32(0), np.float32(1))
        bucket = np.ceil(pc * np.float32(n_thr - 1)) - np.float32(1)
        if with_epsilon:
            bucket = np.maximum(bucket, np.float32(0))
        bucket = bucket.astype(np.int64)
        keep = bucket >= 0
        index = (bucket + n_thr * offsets)[keep]
        size = n_thr * n_labels

        def cumulative(w):
            b = np.bincount(index, weights=w[keep], minlength=size).reshape(n_labels, n_thr)
            return b[:, ::-1].cumsum(axis=1)[:, ::-1].T  # (T, L): sum over buckets >= i
    else:
        order = np.argsort(thr, kind="stable")
        # how many thresholds lie strictly below each prediction (NaN: none)
        below = np.searchsorted(thr[order], p2, side="left")
        below[np.isnan(p2)] = 0
        index = (below + (n_thr + 1) * offsets).ravel()
        size = (n_thr + 1) * n_labels

        def cumulative(w):
            b = np.bincount(index, weights=w.ravel(), minlength=size).reshape(n_labels, n_thr + 1)
            above = b[:, ::-1].cumsum(axis=1)[:, ::-1][:, 1:]  # sorted threshold j: below > j
            out = np.empty_like(above)
            out[:, order] = above
            return out.T

    tp, fp = cumulative(true_w), cumulative(false_w)
    fn = true_w.sum(axis=0)[None, :] - tp
    tn = false_w.sum(axis=0)[None, :] - fp
    if not multi_label:
        tp, fp, tn, fn = tp[:, 0], fp[:, 0], tn[:, 0], fn[:, 0]
    return tp, fp, tn, fn


def _divide_no_nan(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b == 0, 0.0, a / np.where(b == 0, 1.0, b))


class _ConfusionMatrixConditionCount(Metric):
    """The weighted count of one confusion-matrix condition, per threshold."""

    _index = 0  # position in (tp, fp, tn, fn)

    def __init__(self, thresholds=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.thresholds = _thresholds_list(thresholds, 0.5)
        self._evenly = is_evenly_distributed_thresholds(self.thresholds)
        self.accumulator = self.add_variable((len(self.thresholds),), name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = confusion_counts(y_true, y_pred, self.thresholds, evenly=self._evenly,
                                  sample_weight=sample_weight, name=self.name)
        self.accumulator += counts[self._index]

    def result(self):
        return self._out(self.accumulator[0] if len(self.thresholds) == 1 else self.accumulator)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


@register(_KIND)
class TruePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true positives: y_true and y_pred > threshold."""

    _index = 0


@register(_KIND)
class FalsePositives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false positives: not y_true and y_pred > threshold."""

    _index = 1


@register(_KIND)
class TrueNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of true negatives: not y_true and y_pred <= threshold."""

    _index = 2


@register(_KIND)
class FalseNegatives(_ConfusionMatrixConditionCount):
    """The (weighted) number of false negatives: y_true and y_pred <= threshold."""

    _index = 3


class _PrecisionRecall(Metric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.init_thresholds = thresholds
        self.top_k = top_k
        self.class_id = class_id
        default = 0.5 if top_k is None else NEG_INF
        self.thresholds = _thresholds_list(thresholds, default) if thresholds is not None else [default]
        self._evenly = is_evenly_distributed_thresholds(self.thresholds)
        n = len(self.thresholds)
        self.true_positives = self.add_variable((n,), name="true_positives")
        self._other = self.add_variable((n,), name=self._other_name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, _, fn = confusion_counts(y_true, y_pred, self.thresholds, evenly=self._evenly,
                                         top_k=self.top_k, class_id=self.class_id,
                                         sample_weight=sample_weight, name=self.name)
        self.true_positives += tp
        self._other += fp if self._other_name == "false_positives" else fn

    def result(self):
        value = _divide_no_nan(self.true_positives, self.true_positives + self._other)
        return self._out(value[0] if len(self.thresholds) == 1 else value)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


@register(_KIND)
class Precision(_PrecisionRecall):
    """tp / (tp + fp): of the predicted positives (y_pred > threshold, or the top_k), how many
    are positive."""

    _other_name = "false_positives"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="precision", dtype=None):
        super().__init__(thresholds=thresholds, top_k=top_k, class_id=class_id, name=name, dtype=dtype)

    @property
    def false_positives(self):
        return self._other


@register(_KIND)
class Recall(_PrecisionRecall):
    """tp / (tp + fn): of the positives, how many are predicted positive."""

    _other_name = "false_negatives"

    def __init__(self, thresholds=None, top_k=None, class_id=None, name="recall", dtype=None):
        super().__init__(thresholds=thresholds, top_k=top_k, class_id=class_id, name=name, dtype=dtype)

    @property
    def false_negatives(self):
        return self._other


_CURVES = {"roc": "ROC", "pr": "PR"}
_SUMMATIONS = ("interpolation", "majoring", "minoring")


@register(_KIND)
class AUC(Metric):
    """Area under the ROC or PR curve, from confusion matrices at ``num_thresholds`` thresholds
    (Keras's Riemann sums; "interpolation" on PR uses Davis & Goadrich's interpolation)."""

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name="auc",
                 dtype=None, thresholds=None, multi_label=False, num_labels=None, label_weights=None,
                 from_logits=False):
        curve_key = str(getattr(curve, "value", curve))
        if curve_key.lower() not in _CURVES or curve_key not in (curve_key.lower(), curve_key.upper()):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC"]')
        method = str(getattr(summation_method, "value", summation_method))
        if method.lower() not in _SUMMATIONS or method not in (method.lower(), method.capitalize()):
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". Expected '
                             'values are ["interpolation", "majoring", "minoring"]')
        super().__init__(name=name, dtype=dtype)
        self.curve = _CURVES[curve_key.lower()]
        self.summation_method = method.lower()
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(float(t) for t in np.ravel(thresholds))
            self.num_thresholds = len(inner) + 2
            self._evenly = is_evenly_distributed_thresholds(np.array([0.0] + inner + [1.0]))
        else:
            if not isinstance(num_thresholds, (int, np.integer)) or num_thresholds <= 1:
                raise ValueError("Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            self._evenly = True
        eps = config.epsilon()
        self._thresholds = np.array([0.0 - eps] + inner + [1.0 + eps])
        self.multi_label = bool(multi_label)
        self.num_labels = num_labels
        self.label_weights = None if label_weights is None else np.asarray(label_weights, np.float64)
        self._from_logits = bool(from_logits)
        self._built = False
        if self.multi_label:
            if num_labels:
                self._build(int(num_labels))
        else:
            if num_labels:
                raise ValueError("`num_labels` is needed only when `multi_label` is True.")
            self._build(None)

    @property
    def thresholds(self):
        return list(self._thresholds)

    def _build(self, num_labels):
        shape = (self.num_thresholds,) if num_labels is None else (self.num_thresholds, num_labels)
        self._num_labels = num_labels
        self.true_positives = self.add_variable(shape, name="true_positives")
        self.false_positives = self.add_variable(shape, name="false_positives")
        self.true_negatives = self.add_variable(shape, name="true_negatives")
        self.false_negatives = self.add_variable(shape, name="false_negatives")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _np(y_pred, np.float32)
        if not self._built:
            if p.ndim != 2:
                raise ValueError("`y_pred` must have rank 2 when `multi_label=True`. Found rank "
                                 f"{p.ndim}. Full shape received for `y_pred`: {p.shape}")
            self._build(p.shape[1])
        if self._from_logits:
            p = (0.5 * (1.0 + np.tanh(0.5 * p))).astype(np.float32)
        tp, fp, tn, fn = confusion_counts(
            y_true, p, self._thresholds, evenly=self._evenly, sample_weight=sample_weight,
            multi_label=self.multi_label,
            label_weights=None if self.multi_label else self.label_weights, name=self.name)
        self.true_positives += tp
        self.false_positives += fp
        self.true_negatives += tn
        self.false_negatives += fn

    def _average_labels(self, by_label):
        if not self.multi_label:
            return by_label
        if self.label_weights is None:
            return np.mean(by_label)
        return _divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights))

    def interpolate_pr_auc(self):
        n = self.num_thresholds
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        dtp = tp[:n - 1] - tp[1:]
        p = tp + fp
        dp = p[:n - 1] - p[1:]
        prec_slope = _divide_no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - prec_slope * p[1:]
        safe_p_ratio = np.where((p[:n - 1] > 0) & (p[1:] > 0),
                                _divide_no_nan(p[:n - 1], np.maximum(p[1:], 0)), 1.0)
        increment = _divide_no_nan(prec_slope * (dtp + intercept * np.log(safe_p_ratio)),
                                   np.maximum(tp[1:] + fn[1:], 0))
        return self._out(self._average_labels(np.sum(increment, axis=0)))

    def result(self):
        if not self._built:
            return self._out(0.0)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self.interpolate_pr_auc()
        n = self.num_thresholds
        tp, fp, tn, fn = self.true_positives, self.false_positives, self.true_negatives, self.false_negatives
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:n - 1] + y[1:]) / 2.0
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:n - 1], y[1:])
        else:
            heights = np.maximum(y[:n - 1], y[1:])
        riemann = (x[:n - 1] - x[1:]) * heights
        return self._out(self._average_labels(np.sum(riemann, axis=0)))

    def reset_state(self):
        super().reset_state()

    def get_config(self):
        label_weights = self.label_weights
        config_ = {
            "num_thresholds": self.num_thresholds,
            "curve": self.curve,
            "summation_method": self.summation_method,
            "multi_label": self.multi_label,
            "num_labels": self.num_labels,
            "label_weights": None if label_weights is None else label_weights.tolist(),
            "from_logits": self._from_logits,
        }
        if self._init_from_thresholds:
            config_["thresholds"] = [float(t) for t in self.thresholds[1:-1]]
        return {**super().get_config(), **config_}


@register(_KIND)
class FBetaScore(Metric):
    """F-beta score per class (or averaged: "micro", "macro", "weighted"), as Keras: y_pred is
    binarized by ``threshold`` (None: the row maximum)."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', "
                             f"'macro', 'weighted'}}. Received: average={average}")
        if not isinstance(beta, (int, float, np.floating)) or isinstance(beta, bool) or beta <= 0.0:
            raise ValueError("Invalid `beta` argument value. It should be a Python float > 0. "
                             f"Received: beta={beta}")
        if threshold is not None and (not isinstance(threshold, (float, np.floating))
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float in "
                             f"the range ]0, 1]. Received: threshold={threshold}")
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, t_shape, p_shape):
        if len(p_shape) != 2 or len(t_shape) != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received input shapes: y_pred.shape={p_shape} and y_true.shape={t_shape}.")
        shape = () if self.average == "micro" else (p_shape[-1],)
        self.true_positives = self.add_variable(shape, name="true_positives")
        self.false_positives = self.add_variable(shape, name="false_positives")
        self.false_negatives = self.add_variable(shape, name="false_negatives")
        self.intermediate_weights = self.add_variable(shape, name="intermediate_weights")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = _np(y_true, np.float64)
        p = _np(y_pred, np.float64)
        if not self._built:
            self._build(t.shape, p.shape)
        if self.threshold is None:
            p = (p >= p.max(axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            p = p > self.threshold
        p = p.astype(np.float64)
        sw = None if sample_weight is None else _np(sample_weight, np.float64).reshape(-1, 1)

        def weighted_sum(v):
            if sw is not None:
                v = v * sw
            return np.sum(v, axis=self.axis)

        self.true_positives += weighted_sum(p * t)
        self.false_positives += weighted_sum(p * (1 - t))
        self.false_negatives += weighted_sum((1 - p) * t)
        self.intermediate_weights += weighted_sum(t)

    def result(self):
        if not self._built:
            return self._out(0.0)
        eps = config.epsilon()
        tp, fp, fn = self.true_positives, self.false_positives, self.false_negatives
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights / (np.sum(self.intermediate_weights) + eps)
            f = np.sum(f * weights)
        elif self.average is not None:
            f = np.mean(f)
        return self._out(f)

    def reset_state(self):
        super().reset_state()

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


@register(_KIND)
class F1Score(FBetaScore):
    """F1 score (FBetaScore with beta = 1)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config_ = super().get_config()
        del config_["beta"]
        return config_


# ---- functions, under their Keras names (get() wraps them in MeanMetricWrapper) -------------
mean_squared_error = _losses.mean_squared_error
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
categorical_hinge = _losses.categorical_hinge
kl_divergence = _losses.kl_divergence
poisson = _losses.poisson
log_cosh = _losses.log_cosh
huber = _losses.huber

for _function in (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                  top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, cosine_similarity,
                  mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
                  mean_squared_logarithmic_error, binary_crossentropy, categorical_crossentropy,
                  sparse_categorical_crossentropy, hinge, squared_hinge, categorical_hinge,
                  kl_divergence, poisson, log_cosh, huber):
    register(_KIND)(_function)

# Keras's string aliases resolve to the classes
for _cls, _aliases in ((MeanSquaredError, ("mse", "MSE")), (MeanAbsoluteError, ("mae", "MAE")),
                       (MeanAbsolutePercentageError, ("mape", "MAPE")),
                       (MeanSquaredLogarithmicError, ("msle", "MSLE")),
                       (BinaryCrossentropy, ("bce", "BCE")), (KLDivergence, ("kld", "KLD")),
                       (AUC, ("auc",)), (Precision, ("precision",)), (Recall, ("recall",)),
                       (LogCoshError, ("logcosh",)), (RootMeanSquaredError, ("rmse",))):
    register(_KIND, *_aliases)(_cls)


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(metric):
    """``{"class_name": ..., "config": ...}`` of a Metric, or a function's registered name."""
    return registry.serialize(_KIND, metric)


def deserialize(config_, custom_objects=None):
    """The metric (a Metric instance, or a function) described by ``config_``."""
    return registry.deserialize(_KIND, config_, custom_objects)


def get(identifier, custom_objects=None):
    """A Metric from a name, a config dict, a class, an instance (returned as is) or a function
    (wrapped in a MeanMetricWrapper named after it). Names give a fresh instance each call."""
    return registry.get(_KIND, identifier, custom_objects, accept=lambda obj: isinstance(obj, Metric),
                        wrap=lambda fn: MeanMetricWrapper(fn, name=getattr(fn, "__name__", None)))


__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "RootMeanSquaredError",
           "LogCoshError", "CosineSimilarity", "Hinge", "SquaredHinge", "CategoricalHinge",
           "KLDivergence", "Poisson", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "TruePositives", "FalsePositives", "TrueNegatives",
           "FalseNegatives", "Precision", "Recall", "AUC", "FBetaScore", "F1Score", "accuracy",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "cosine_similarity",
           "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "hinge", "squared_hinge", "categorical_hinge",
           "kl_divergence", "poisson", "log_cosh", "huber", "confusion_counts", "get",
           "serialize", "deserialize"]
