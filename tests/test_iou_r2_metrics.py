"""IoU, MeanIoU, OneHotIoU, OneHotMeanIoU, BinaryIoU and R2Score against Keras 3: the values
below were computed by keras 3.15 on these inputs (fed in two batches) and are recomputed live
when keras is installed; configs, compile(metrics=...), reset and bad input."""
import warnings

import numpy as np
import pytest

import dlcore as dl
from dlcore import metrics

YT = np.array([0, 1, 2, 2, 1, 0, 3, 2])
YP = np.array([0, 2, 2, 1, 1, 0, 3, 3])
W = np.array([1, 2, 1, 3, 1, 0, 2, 1])
OT = np.eye(4)[YT]
SC = np.array([[.7, .1, .1, .1], [.1, .2, .6, .1], [.1, .1, .7, .1], [.1, .5, .3, .1],
               [.2, .6, .1, .1], [.9, 0, 0, .1], [0, .1, .2, .7], [.1, .1, .3, .5]])
BT = np.array([0, 1, 0, 1, 1, 0])
BP = np.array([0.1, 0.2, 0.4, 0.7, 0.5, 0.55])
BW = np.array([0.2, 0.3, 0.4, 0.1, 0.5, 0.25])
RT = np.array([[1., 2.], [2., 1.], [3., 5.], [4., 3.], [5., 4.]])
RP = np.array([[1.2, 1.8], [2.5, 0.7], [2.9, 4.1], [3.5, 3.3], [5.4, 4.2]])
RW = np.array([1., 2., 0.5, 1., 3.])
ARRAYS = dict(YT=YT, YP=YP, W=W, OT=OT, SC=SC, BT=BT, BP=BP, BW=BW, RT=RT, RP=RP, RW=RW)

# (class, kwargs, y_true, y_pred, sample_weight, Keras result)
CASES = [
    ("IoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "YT", "YP", None, 0.625),
    ("IoU", {"num_classes": 4, "target_class_ids": [1, 3], "ignore_class": 2}, "YT", "YP", "W", 0.6666667),
    ("MeanIoU", {"num_classes": 4}, "YT", "YP", None, 0.5208334),
    ("MeanIoU", {"num_classes": 4, "dtype": "float32"}, "YT", "YP", "W", 0.4940476),
    ("MeanIoU", {"num_classes": 4, "sparse_y_pred": False}, "YT", "SC", None, 0.5208334),
    ("OneHotIoU", {"num_classes": 4, "target_class_ids": [0, 2]}, "OT", "SC", "W", 0.5714286),
    ("OneHotMeanIoU", {"num_classes": 4}, "OT", "SC", None, 0.5208334),
    ("OneHotMeanIoU", {"num_classes": 4, "ignore_class": 0}, "OT", "SC", None, 0.3611111),
    ("BinaryIoU", {}, "BT", "BP", None, 0.5),
    ("BinaryIoU", {"target_class_ids": [1], "threshold": 0.3, "dtype": "float32"}, "BT", "BP", "BW",
     0.3870967),
    ("R2Score", {}, "RT", "RP", None, 0.911),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "RT", "RP", "RW", 0.9333684),
    ("R2Score", {"class_aggregation": None}, "RT", "RP", "RW", [0.9283708, 0.9397837]),
    ("R2Score", {"num_regressors": 2}, "RT", "RP", None, 0.8855714),
]


def _feed(metric, t, p, w):
    """Two update_state batches, as the fixtures were computed."""
    t, p = ARRAYS[t], ARRAYS[p]
    w = None if w is None else ARRAYS[w]
    n = len(t) // 2
    for part in (slice(0, n), slice(n, None)):
        metric.update_state(t[part], p[part], None if w is None else w[part])
    return np.asarray(metric.result())


@pytest.mark.parametrize("cls,kwargs,t,p,w,expected", CASES)
def test_matches_stored_keras_values(cls, kwargs, t, p, w, expected):
    metric = getattr(metrics, cls)(**kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(_feed(metric, t, p, w), expected, rtol=1e-5, atol=1e-6)
        metric.reset_state()
        assert all(not np.any(v.value) for v in metric.variables)
    again = getattr(metrics, cls).from_config(metric.get_config())
    assert again.get_config() == metric.get_config()
    if cls in ("BinaryIoU", "R2Score"):  # the others need num_classes
        assert isinstance(metrics.get(cls), getattr(metrics, cls))


@pytest.mark.parametrize("cls,kwargs,t,p,w,expected", CASES)
def test_matches_live_keras(cls, kwargs, t, p, w, expected):
    keras = pytest.importorskip("keras")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k_metric = getattr(keras.metrics, cls)(**kwargs)
        ours = getattr(metrics, cls)(**kwargs)
        np.testing.assert_allclose(_feed(ours, t, p, w), np.asarray(_feed(k_metric, t, p, w)),
                                   rtol=1e-5, atol=1e-6)
    k_config = {k: v for k, v in k_metric.get_config().items() if k != "name"}
    assert {k: v for k, v in ours.get_config().items() if k != "name"} == k_config


def test_default_names_and_int_dtype_truncates_float_weights():
    assert metrics.MeanIoU(2).name == "mean_io_u" and metrics.BinaryIoU().name == "binary_io_u"
    assert metrics.R2Score().name == "r2_score"
    m = metrics.MeanIoU(num_classes=2)
    with pytest.warns(UserWarning, match="weight as `float`"):
        m.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
    assert float(m.result()) == 0.0  # Keras 3: int64 weights, all truncated to 0
    m = metrics.MeanIoU(num_classes=2, dtype="float32")
    m.update_state([0, 0, 1, 1], [0, 1, 0, 1], sample_weight=[0.3, 0.3, 0.3, 0.1])
    np.testing.assert_allclose(m.result(), 0.23809525, rtol=1e-6)  # Keras's documented value


def test_out_of_range_labels_are_left_out():
    m = metrics.MeanIoU(num_classes=2)
    m.update_state([0, 1, 5, -1], [0, 1, 1, 0])
    assert float(m.result()) == pytest.approx(1.0, abs=1e-6)


def test_usable_in_compile():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 3)).astype("float32")
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1).astype("float32")
    model = dl.Sequential([dl.layers.Input((3,)), dl.layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_crossentropy",
                  metrics=[metrics.BinaryIoU(target_class_ids=[1]), "R2Score"])
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert set(logs) >= {"loss", "binary_io_u", "R2Score"}  # Keras names a metric given by string so
    ref = metrics.BinaryIoU(target_class_ids=[1])
    ref.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs["binary_io_u"], ref.result(), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r"Target class id 4 is out of range, which is \[0, 4\)"):
        metrics.IoU(num_classes=4, target_class_ids=[0, 4])
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        metrics.MeanIoU(num_classes=0)
    with pytest.raises(ValueError, match="threshold"):
        metrics.BinaryIoU(threshold="half")
    with pytest.raises(ValueError, match="as many labels"):
        metrics.MeanIoU(3).update_state([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="class_aggregation"):
        metrics.R2Score(class_aggregation="median")
    with pytest.raises(ValueError, match="num_regressors"):
        metrics.R2Score(num_regressors=-1)
    with pytest.raises(ValueError, match="R2Score expects 2D inputs"):
        metrics.R2Score().update_state(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))
    r2 = metrics.R2Score()
    r2.update_state(RT, RP)
    with pytest.raises(ValueError, match="expected 2 output columns"):
        r2.update_state(np.zeros((2, 3)), np.zeros((2, 3)))
