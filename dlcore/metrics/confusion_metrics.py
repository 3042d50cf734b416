"""Confusion-matrix metrics: TruePositives, ..., Precision, Recall, AUC.

They reproduce Keras's ``update_confusion_matrix_variables``: a prediction is positive when
strictly greater than the threshold; evenly spaced thresholds (AUC's default) use Keras's
bucketing in float32, so the counts, and AUC's interpolated areas, are Keras's.
"""
import numpy as np

from .. import config
from ..ops.losses import squeeze_or_expand_to_same_rank
from ..registry import register
from .base import _KIND, Metric, _np

NEG_INF = -1e10


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
        self.accumulator = self._add_accumulator((len(self.thresholds),), name="accumulator")

    def update_state(self, y_true, y_pred, sample_weight=None):
        counts = confusion_counts(y_true, y_pred, self.thresholds, evenly=self._evenly,
                                  sample_weight=sample_weight, name=self.name)
        self.accumulator.assign_add(counts[self._index])

    def result(self):
        acc = self.accumulator.value
        return self._out(acc[0] if len(self.thresholds) == 1 else acc)

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
        self.true_positives = self._add_accumulator((n,), name="true_positives")
        self._other = self._add_accumulator((n,), name=self._other_name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        tp, fp, _, fn = confusion_counts(y_true, y_pred, self.thresholds, evenly=self._evenly,
                                         top_k=self.top_k, class_id=self.class_id,
                                         sample_weight=sample_weight, name=self.name)
        self.true_positives.assign_add(tp)
        self._other.assign_add(fp if self._other_name == "false_positives" else fn)

    def result(self):
        tp = self.true_positives.value
        value = _divide_no_nan(tp, tp + self._other.value)
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
        self.true_positives = self._add_accumulator(shape, name="true_positives")
        self.false_positives = self._add_accumulator(shape, name="false_positives")
        self.true_negatives = self._add_accumulator(shape, name="true_negatives")
        self.false_negatives = self._add_accumulator(shape, name="false_negatives")
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
        self.true_positives.assign_add(tp)
        self.false_positives.assign_add(fp)
        self.true_negatives.assign_add(tn)
        self.false_negatives.assign_add(fn)

    def _average_labels(self, by_label):
        if not self.multi_label:
            return by_label
        if self.label_weights is None:
            return np.mean(by_label)
        return _divide_no_nan(np.sum(by_label * self.label_weights), np.sum(self.label_weights))

    def interpolate_pr_auc(self):
        n = self.num_thresholds
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
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
        tp, fp, tn, fn = (v.value for v in (self.true_positives, self.false_positives, self.true_negatives,
                                            self.false_negatives))
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
