"""dlcore.metrics: Keras 3 stateful metrics against NumPy / closed forms / scikit-learn and
Keras's documented values; accumulation across batches, reset_state, sample weights, names."""
import json

import numpy as np
import pytest

import dlcore as dl
from dlcore import metrics

sklearn_metrics = pytest.importorskip("sklearn.metrics")

EPS = 1e-7


def _batches(n, size):
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _accumulate(metric, t, p, w=None, size=7):
    metric.reset_state()
    for s in _batches(len(p), size):
        metric.update_state(t[s], p[s], sample_weight=None if w is None else w[s])
    return metric.result()


@pytest.fixture
def binary():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, size=200).astype(np.float32)
    p = np.clip(0.35 * t + rng.uniform(0, 0.65, size=200), 0, 1).astype(np.float32)
    w = rng.uniform(0, 2, size=200).astype(np.float32)
    return t, p, w


@pytest.fixture
def classes():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=60)
    logits = rng.normal(size=(60, 5)) + 1.5 * np.eye(5)[labels]
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    w = rng.uniform(0, 2, size=60)
    return labels, p.astype(np.float32), w


# ---- Mean, Sum ------------------------------------------------------------------------------------
def test_mean_and_sum_accumulate_and_reset():
    m, s = metrics.Mean(), metrics.Sum()
    for metric in (m, s):
        metric.update_state([1.0, 2.0, 3.0])
        metric.update_state([4.0], sample_weight=[0.5])
    np.testing.assert_allclose(m.result(), (1 + 2 + 3 + 0.5 * 4) / 3.5, rtol=1e-6)
    np.testing.assert_allclose(s.result(), 1 + 2 + 3 + 2, rtol=1e-6)
    assert isinstance(m.result(), np.float32) and m.name == "mean" and s.name == "sum"
    m.reset_state()
    s.reset_state()
    assert m.result() == 0 and s.result() == 0
    m.update_state(np.array([[1.0, 3.0], [5.0, 7.0]]), sample_weight=[1.0, 3.0])  # rows averaged
    np.testing.assert_allclose(m.result(), (2 * 1 + 6 * 3) / 4)
    assert m(5.0) == pytest.approx((2 + 18 + 5) / 5)  # __call__ updates and returns the result


def test_mean_rejects_mismatched_weights():
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.Mean().update_state(np.ones(4), sample_weight=np.ones(3))


# ---- accuracy ---------------------------------------------------------------------------------------
def test_known_keras_accuracy_values():
    m = metrics.Accuracy()
    m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]], sample_weight=[1, 1, 0, 0])
    assert m.result() == pytest.approx(0.5)
    m = metrics.BinaryAccuracy()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([[1], [1], [0], [0]], [[0.98], [1], [0], [0.6]], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(0.5)
    m = metrics.CategoricalAccuracy()
    m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)
    m = metrics.SparseCategoricalAccuracy()
    m.update_state([[2], [1]], [[0.1, 0.6, 0.3], [0.05, 0.95, 0]])
    assert m.result() == pytest.approx(0.5)
    m = metrics.TopKCategoricalAccuracy(k=1)
    m.update_state([[0, 0, 1], [0, 1, 0]], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], sample_weight=[0.7, 0.3])
    assert m.result() == pytest.approx(0.3)
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([2, 1], [[0.1, 0.9, 0.8], [0.05, 0.95, 0]])
    assert m.result() == pytest.approx(0.5)


def test_accuracies_vs_numpy_across_batches(classes, binary):
    labels, p, w = classes
    onehot = np.eye(5)[labels]
    hit = (p.argmax(-1) == labels).astype(float)
    for metric, t in ((metrics.SparseCategoricalAccuracy(), labels), (metrics.CategoricalAccuracy(), onehot)):
        np.testing.assert_allclose(_accumulate(metric, t, p), hit.mean(), rtol=1e-6)
        np.testing.assert_allclose(_accumulate(metric, t, p, w), (hit * w).sum() / w.sum(), rtol=1e-6)
    rank = (p > np.take_along_axis(p, labels[:, None], -1)).sum(-1)  # classes scoring strictly higher
    for k in (1, 2, 3):
        top = (rank < k).astype(float)
        np.testing.assert_allclose(_accumulate(metrics.SparseTopKCategoricalAccuracy(k=k), labels, p, w),
                                   (top * w).sum() / w.sum(), rtol=1e-6)
        np.testing.assert_allclose(_accumulate(metrics.TopKCategoricalAccuracy(k=k), onehot, p),
                                   top.mean(), rtol=1e-6)
    t, pb, wb = binary
    for threshold in (0.3, 0.5, 0.7):
        hit = (t == (pb > threshold)).astype(float)
        np.testing.assert_allclose(_accumulate(metrics.BinaryAccuracy(threshold=threshold), t[:, None],
                                               pb[:, None], wb), (hit * wb).sum() / wb.sum(), rtol=1e-6)


def test_top_k_counts_ties_in_like_tensorflow():
    m = metrics.SparseTopKCategoricalAccuracy(k=1)
    m.update_state([0, 1], [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    assert m.result() == 1.0


def test_accuracy_shape_errors():
    with pytest.raises(ValueError, match="sparse_categorical_accuracy"):
        metrics.SparseCategoricalAccuracy().update_state([0, 1, 2], np.ones((2, 3)))
    with pytest.raises(ValueError, match="categorical_accuracy"):
        metrics.CategoricalAccuracy().update_state([0, 1], np.ones((2, 3)))
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryAccuracy(threshold=1.5)


# ---- regression and probabilistic metrics --------------------------------------------------------
def test_regression_metrics_vs_numpy():
    rng = np.random.default_rng(2)
    t = rng.uniform(0.5, 2.0, size=(30, 4))
    p = t + rng.normal(scale=0.3, size=(30, 4)).clip(-0.4, 0.4)
    w = rng.uniform(0, 2, size=30)
    cases = {
        metrics.MeanSquaredError(): np.mean((t - p) ** 2, -1),
        metrics.MeanAbsoluteError(): np.mean(np.abs(t - p), -1),
        metrics.MeanAbsolutePercentageError(): 100 * np.mean(np.abs((t - p) / t), -1),
        metrics.MeanSquaredLogarithmicError(): np.mean((np.log1p(p) - np.log1p(t)) ** 2, -1),
        metrics.LogCoshError(): np.mean(np.log(np.cosh(p - t)), -1),
        metrics.Poisson(): np.mean(p - t * np.log(p + EPS), -1),
        metrics.CosineSimilarity(): np.sum(t * p, -1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(p, axis=-1),
    }
    for metric, per in cases.items():
        np.testing.assert_allclose(_accumulate(metric, t, p), per.mean(), rtol=1e-5, err_msg=metric.name)
        np.testing.assert_allclose(_accumulate(metric, t, p, w), (per * w).sum() / w.sum(), rtol=1e-5,
                                   err_msg=metric.name)
    rmse = metrics.RootMeanSquaredError()
    sq = np.mean((t - p) ** 2, -1)
    np.testing.assert_allclose(_accumulate(rmse, t, p, w), np.sqrt((sq * w).sum() / w.sum()), rtol=1e-5)
    assert rmse.name == "root_mean_squared_error"


def test_crossentropy_metrics_vs_numpy(classes):
    labels, p, w = classes
    onehot = np.eye(5)[labels]
    p64 = p.astype(np.float64)
    cce = -np.log(np.clip(p64 / p64.sum(-1, keepdims=True), EPS, 1 - EPS))[np.arange(60), labels]
    np.testing.assert_allclose(_accumulate(metrics.CategoricalCrossentropy(), onehot, p, w),
                               (cce * w).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(_accumulate(metrics.SparseCategoricalCrossentropy(), labels, p, w),
                               (cce * w).sum() / w.sum(), rtol=1e-5)
    logits = np.log(p64)
    from_logits = metrics.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(_accumulate(from_logits, labels, logits),
                               cce.mean(), rtol=1e-5)
    t = (onehot > 0).astype(np.float64)
    c = np.clip(p64, EPS, 1 - EPS)
    bce = np.mean(-(t * np.log(c) + (1 - t) * np.log(1 - c)), -1)
    np.testing.assert_allclose(_accumulate(metrics.BinaryCrossentropy(), t, p), bce.mean(), rtol=1e-5)
    ts = t * 0.8 + 0.1
    bce_s = np.mean(-(ts * np.log(c) + (1 - ts) * np.log(1 - c)), -1)
    np.testing.assert_allclose(_accumulate(metrics.BinaryCrossentropy(label_smoothing=0.2), t, p), bce_s.mean(),
                               rtol=1e-5)


# ---- confusion-matrix metrics ------------------------------------------------------------------
def test_precision_recall_counts_vs_sklearn(binary):
    t, p, w = binary
    pred = (p > 0.5).astype(int)
    for weights in (None, w):
        kw = {} if weights is None else {"sample_weight": weights}
        np.testing.assert_allclose(_accumulate(metrics.Precision(), t, p, weights),
                                   sklearn_metrics.precision_score(t, pred, **kw), rtol=1e-6)
        np.testing.assert_allclose(_accumulate(metrics.Recall(), t, p, weights),
                                   sklearn_metrics.recall_score(t, pred, **kw), rtol=1e-6)
        tn, fp, fn, tp = sklearn_metrics.confusion_matrix(t, pred, **kw).ravel()
        for cls, expected in ((metrics.TruePositives, tp), (metrics.FalsePositives, fp),
                              (metrics.TrueNegatives, tn), (metrics.FalseNegatives, fn)):
            np.testing.assert_allclose(_accumulate(cls(), t, p, weights), expected, rtol=1e-5)


def test_several_thresholds(binary):
    t, p, _ = binary
    thresholds = [0.7, 0.2, 0.5]  # unordered on purpose
    prec = _accumulate(metrics.Precision(thresholds=thresholds), t, p)
    rec = _accumulate(metrics.Recall(thresholds=thresholds), t, p)
    tp = _accumulate(metrics.TruePositives(thresholds=thresholds), t, p)
    assert prec.shape == rec.shape == tp.shape == (3,)
    for i, th in enumerate(thresholds):
        pred = p > np.float32(th)
        np.testing.assert_allclose(prec[i], (pred & (t == 1)).sum() / pred.sum(), rtol=1e-6)
        np.testing.assert_allclose(rec[i], (pred & (t == 1)).sum() / (t == 1).sum(), rtol=1e-6)
        assert tp[i] == (pred & (t == 1)).sum()
    # evenly spaced thresholds take Keras's bucketed path; same counts away from the boundaries
    even = [0.0, 0.25, 0.5, 0.75, 1.0]
    got = _accumulate(metrics.FalsePositives(thresholds=even), t, p)
    np.testing.assert_allclose(got, [((p > th) & (t == 0)).sum() for th in even])


def test_known_keras_precision_recall_values():
    m = metrics.Precision()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert m.result() == pytest.approx(2 / 3)
    m.reset_state()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert m.result() == 1.0
    m = metrics.Precision(top_k=2)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.0
    m = metrics.Precision(top_k=4)
    m.update_state([0, 0, 1, 1], [1, 1, 1, 1])
    assert m.result() == 0.5
    m = metrics.Recall(class_id=2)
    m.update_state([[0, 0, 1], [0, 0, 1], [1, 0, 0]], [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    assert m.result() == 0.5
    m = metrics.Recall()
    m.update_state([0, 1, 1, 1], [1, 0, 1, 1])
    assert m.result() == pytest.approx(2 / 3)
    m = metrics.FalsePositives()
    m.update_state([0, 1, 0, 0], [0, 0, 1, 1], sample_weight=[0, 0, 1, 0])
    assert m.result() == 1.0


def test_auc_known_keras_values():
    m = metrics.AUC(num_thresholds=3)
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])
    assert m.result() == pytest.approx(0.75)
    m.reset_state()
    m.update_state([0, 0, 1, 1], [0, 0.5, 0.3, 0.9], sample_weight=[1, 0, 0, 1])
    assert m.result() == pytest.approx(1.0)


def _keras_auc_reference(t, p, w, num_thresholds, curve):
    """Keras's AUC written out from its definition: thresholds [-eps, i/(n-1)..., 1+eps],
    positive when p > threshold, mid-point (ROC) or Davis-Goadrich (PR) interpolation."""
    thr = np.array([-EPS] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1 + EPS])
    pos = p[None, :] > thr[:, None].astype(np.float32)
    tp = (pos * (t == 1) * w).sum(1)
    fp = (pos * (t == 0) * w).sum(1)
    fn = ((~pos) * (t == 1) * w).sum(1)
    tn = ((~pos) * (t == 0) * w).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if curve == "ROC":
            x = np.nan_to_num(fp / (fp + tn))
            y = np.nan_to_num(tp / (tp + fn))
            return np.sum((x[:-1] - x[1:]) * (y[:-1] + y[1:]) / 2)
        dtp = tp[:-1] - tp[1:]
        ps = tp + fp
        dp = ps[:-1] - ps[1:]
        slope = np.nan_to_num(dtp / np.maximum(dp, 0))
        intercept = tp[1:] - slope * ps[1:]
        ratio = np.where((ps[:-1] > 0) & (ps[1:] > 0), np.nan_to_num(ps[:-1] / np.maximum(ps[1:], 0)), 1.0)
        return np.sum(np.nan_to_num(slope * (dtp + intercept * np.log(ratio)) / np.maximum(tp[1:] + fn[1:], 0)))


@pytest.mark.parametrize("curve", ["ROC", "PR"])
@pytest.mark.parametrize("num_thresholds", [7, 200])
def test_auc_equals_keras_definition(binary, curve, num_thresholds):
    t, p, w = binary
    m = metrics.AUC(num_thresholds=num_thresholds, curve=curve)
    for weights in (np.ones_like(w), w):
        got = _accumulate(m, t, p, weights)
        assert isinstance(got, np.float32)
        np.testing.assert_allclose(got, _keras_auc_reference(t, p, weights, num_thresholds, curve), rtol=1e-5)


def test_auc_vs_sklearn_and_options(binary):
    t, p, w = binary
    m = metrics.AUC(num_thresholds=2000)
    np.testing.assert_allclose(_accumulate(m, t, p), sklearn_metrics.roc_auc_score(t, p), atol=2e-3)
    np.testing.assert_allclose(_accumulate(m, t, p, w), sklearn_metrics.roc_auc_score(t, p, sample_weight=w),
                               atol=2e-3)
    logits = np.log(p / (1 - p + 1e-6) + 1e-6)
    np.testing.assert_allclose(_accumulate(metrics.AUC(num_thresholds=2000, from_logits=True), t, logits),
                               sklearn_metrics.roc_auc_score(t, p), atol=2e-3)
    pr = _accumulate(metrics.AUC(num_thresholds=2000, curve="PR"), t, p)
    np.testing.assert_allclose(pr, sklearn_metrics.average_precision_score(t, p), atol=2e-2)
    # explicit thresholds: the comparison path, same curve
    explicit = metrics.AUC(thresholds=list(np.linspace(0.001, 0.999, 300)))
    np.testing.assert_allclose(_accumulate(explicit, t, p), sklearn_metrics.roc_auc_score(t, p), atol=5e-3)
    for method in ("minoring", "majoring"):
        bound = _accumulate(metrics.AUC(summation_method=method), t, p)
        assert abs(bound - sklearn_metrics.roc_auc_score(t, p)) < 0.05


def test_auc_multi_label(classes):
    labels, p, _ = classes
    onehot = np.eye(5)[labels]
    m = metrics.AUC(num_thresholds=2000, multi_label=True)
    per_label = [sklearn_metrics.roc_auc_score(onehot[:, j], p[:, j]) for j in range(5)]
    np.testing.assert_allclose(_accumulate(m, onehot, p), np.mean(per_label), atol=3e-3)
    weights = np.array([1.0, 0.0, 2.0, 0.0, 1.0])
    m = metrics.AUC(num_thresholds=2000, multi_label=True, label_weights=weights)
    np.testing.assert_allclose(_accumulate(m, onehot, p), np.dot(per_label, weights) / weights.sum(), atol=3e-3)
    flat = metrics.AUC(num_thresholds=2000)  # not multi-label: every entry is one prediction
    np.testing.assert_allclose(_accumulate(flat, onehot, p),
                               sklearn_metrics.roc_auc_score(onehot.ravel(), p.ravel()),
                               atol=3e-3)


def test_f1_score_vs_sklearn(classes):
    labels, p, _ = classes
    onehot = np.eye(5)[labels]
    pred = (p > 0.3).astype(int)
    for average in (None, "macro", "micro", "weighted"):
        m = metrics.F1Score(average=average, threshold=0.3)
        np.testing.assert_allclose(_accumulate(m, onehot, p), sklearn_metrics.f1_score(
            onehot, pred, average=average, zero_division=0), atol=1e-5)


def test_update_is_cheap_on_a_large_batch():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 2, size=200_000).astype(np.float32)
    p = rng.uniform(size=200_000).astype(np.float32)
    m = metrics.AUC()
    m.update_state(t, p)  # bucketed: O(N + T), not O(N T)
    assert 0.45 < m.result() < 0.55


# ---- names, get, configs ---------------------------------------------------------------------------
@pytest.mark.parametrize("identifier,cls,name", [
    ("binary_accuracy", metrics.MeanMetricWrapper, "binary_accuracy"),
    ("categorical_accuracy", metrics.MeanMetricWrapper, "categorical_accuracy"),
    ("sparse_categorical_accuracy", metrics.MeanMetricWrapper, "sparse_categorical_accuracy"),
    ("top_k_categorical_accuracy", metrics.MeanMetricWrapper, "top_k_categorical_accuracy"),
    ("mse", metrics.MeanSquaredError, "mean_squared_error"),
    ("mae", metrics.MeanAbsoluteError, "mean_absolute_error"),
    ("auc", metrics.AUC, "auc"), ("AUC", metrics.AUC, "auc"),
    ("precision", metrics.Precision, "precision"), ("recall", metrics.Recall, "recall"),
    ("BinaryAccuracy", metrics.BinaryAccuracy, "binary_accuracy"),
    ("RootMeanSquaredError", metrics.RootMeanSquaredError, "root_mean_squared_error"),
])
def test_get_returns_fresh_instances(identifier, cls, name):
    a, b = metrics.get(identifier), metrics.get(identifier)
    assert isinstance(a, cls) and a is not b and a.name == name


def test_get_wraps_functions_and_keeps_instances():
    def my_metric(y_true, y_pred):
        return np.abs(np.asarray(y_true) - np.asarray(y_pred))

    wrapped = metrics.get(my_metric)
    assert isinstance(wrapped, metrics.MeanMetricWrapper) and wrapped.name == "my_metric"
    wrapped.update_state([1.0, 2.0], [0.0, 0.0])
    assert wrapped.result() == pytest.approx(1.5)  # rank-1 values: mean of the batch's values
    instance = metrics.Precision()
    assert metrics.get(instance) is instance
    with pytest.raises(ValueError, match="Unknown metric identifier"):
        metrics.get("no_such_metric")


@pytest.mark.parametrize("metric", [
    metrics.BinaryAccuracy(threshold=0.3), metrics.TopKCategoricalAccuracy(k=3),
    metrics.Precision(thresholds=[0.2, 0.6], class_id=1), metrics.Recall(top_k=2),
    metrics.AUC(num_thresholds=50, curve="PR", from_logits=True), metrics.AUC(thresholds=[0.1, 0.5]),
    metrics.F1Score(average="macro", threshold=0.5), metrics.BinaryCrossentropy(label_smoothing=0.1),
    metrics.SparseCategoricalCrossentropy(from_logits=True), metrics.CosineSimilarity(axis=1),
    metrics.MeanSquaredError(name="m"), metrics.TruePositives(thresholds=0.4),
    metrics.MeanMetricWrapper(metrics.binary_accuracy, threshold=0.2),
], ids=lambda m: type(m).__name__)
def test_config_round_trip(metric):
    again = metrics.deserialize(json.loads(json.dumps(metrics.serialize(metric))))
    assert type(again) is type(metric) and again.get_config() == metric.get_config()


def test_results_are_numpy_not_tensors(binary):
    t, p, _ = binary
    for m in (metrics.BinaryAccuracy(), metrics.Precision(), metrics.AUC(), metrics.MeanSquaredError()):
        m.update_state(dl.Tensor(t), dl.Tensor(p))
        r = m.result()
        assert isinstance(r, np.float32), type(m).__name__


def test_mean_of_python_numbers_takes_the_general_paths_bits():
    """Mean.update_state(float, sample_weight=int): the training loop's loss tracker, on its short
    path, accumulates exactly what the array path does."""
    from dlcore.metrics.base import _samplewise

    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        fast, general = dl.metrics.Mean(dtype=dtype), dl.metrics.Mean(dtype=dtype)
        for i in range(100):
            value = float(rng.standard_normal() * 10.0 ** rng.integers(-3, 4))
            weight = int(rng.integers(1, 300)) if i % 3 else (None if i % 2 else float(rng.random()))
            fast.update_state(value, sample_weight=weight)
            values, sw = _samplewise(np.asarray(value), weight, np.mean, "m")
            general.total.value[...] += values.sum()
            general.count.value[...] += sw.sum() if sw is not None else 1
        assert fast.total.value == general.total.value and fast.count.value == general.count.value
        assert fast.result() == general.result()
