"""Per-class metric results in fit logs, and Keras-style custom metrics (add_variable /
add_weight returning Variables). Fixtures were computed with keras 3 (TensorFlow backend)."""
import contextlib
import io

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers, ops

Y_TRUE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], "float32")
Y_PRED = np.array([[0.7, 0.2, 0.1], [0.3, 0.4, 0.3], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6],
                   [0.1, 0.1, 0.8]], "float32")
SW = np.array([1, 2, 1, 0.5, 1, 3], "float32")
KERAS_F1 = {None: [0.666666567325592, 0.3999999463558197, 0.4999999403953552], "macro": 0.522222101688385,
            "weighted": 0.5222221612930298, "micro": 0.4999999403953552}
KERAS_FBETA2_T035_SW = [0.714285671710968, 0.6451613306999207, 0.75]


@pytest.mark.parametrize("average", [None, "macro", "weighted", "micro"])
def test_f1_matches_keras(average):
    m = dl.metrics.F1Score(average=average)
    m.update_state(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(m.result(), KERAS_F1[average], rtol=1e-5)


def test_fbeta_with_threshold_and_weights_matches_keras():
    m = dl.metrics.FBetaScore(beta=2.0, threshold=0.35)
    m.update_state(Y_TRUE, Y_PRED, sample_weight=SW)
    np.testing.assert_allclose(m.result(), KERAS_FBETA2_T035_SW, rtol=1e-5)


def _f1_model(metric):
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=[metric])
    x = np.random.default_rng(0).random((12, 4)).astype("float32")
    y = dl.utils.to_categorical(np.arange(12) % 3, 3)
    return model, x, y


@pytest.mark.parametrize("metric", ["f1_score", "F1Score", dl.metrics.F1Score, dl.metrics.FBetaScore])
def test_per_class_metric_in_fit_logs_arrays_as_keras(metric):
    metric = metric() if isinstance(metric, type) else metric
    model, x, y = _f1_model(metric)
    name = metric if isinstance(metric, str) else metric.name
    seen = []
    cb = dl.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs[name]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        history = model.fit(x, y, epochs=2, batch_size=4, verbose=2, callbacks=[cb], validation_data=(x, y))
    # Keras 3: History holds one array of shape (classes,) per epoch (keras: [(3,), (3,)])
    values = history.history[name]
    assert len(values) == 2 and all(isinstance(v, np.ndarray) and v.shape == (3,) for v in values)
    assert history.history[f"val_{name}"][0].shape == (3,)
    assert sorted(history.history) == sorted(["loss", name, "val_loss", f"val_{name}"])
    assert len(seen) == 6 and seen[0].shape == (3,)
    # the progress bar prints the mean of the per-class values, as Keras's does
    assert f"{name}: {np.mean(values[-1]):.4f}" in out.getvalue()
    # evaluate: the dict holds the array; the list puts the loss first (Keras)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    listed = model.evaluate(x, y, verbose=0)
    assert isinstance(logs[name], np.ndarray) and logs[name].shape == (3,)
    assert listed[0] == logs["loss"]
    np.testing.assert_array_equal(listed[1], logs[name])
    # the logged values are the metric on the model's own predictions
    ref = dl.metrics.FBetaScore() if name == "fbeta_score" else dl.metrics.F1Score()
    ref.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs[name], ref.result(), rtol=1e-6)


def test_csv_logger_writes_per_class_values(tmp_path):
    model, x, y = _f1_model("f1_score")
    path = tmp_path / "log.csv"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[dl.callbacks.CSVLogger(str(path))])
    header, row = path.read_text().strip().splitlines()
    assert header.split(",")[:2] == ["epoch", "f1_score"] and row.count("[") == 1


class BinaryTruePositives(dl.metrics.Metric):
    """keras.io's custom metric example (logical_and/equal written with NumPy: dl.ops lacks them)."""

    def __init__(self, name="binary_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), initializer="zeros", name="true_positives")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = np.logical_and(np.asarray(y_true, bool), np.asarray(y_pred, bool))
        values = ops.cast(values, self.dtype)
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            values = ops.multiply(values, sample_weight)
        self.true_positives.assign(self.true_positives + ops.sum(values))

    def result(self):
        return self.true_positives


def test_keras_custom_metric_example_runs():
    m = BinaryTruePositives()
    # (arrays: dl.ops.cast does not take a Python list yet, keras.ops.cast does)
    m.update_state(np.array([0, 1, 1, 1]), np.array([0, 1, 0, 1]), sample_weight=np.array([1, 2, 3, 4]))
    assert float(m.result()) == 6.0  # keras 3: 6.0, a float32 variable
    assert m.true_positives.value.dtype == np.float32 and not m.true_positives.trainable
    m.reset_state()
    assert float(m.result()) == 0.0
    assert m.variables == [m.true_positives]


def test_custom_metric_in_fit_is_logged_as_a_float():
    model = dl.Sequential([dl.Input((2,)), layers.Dense(1, activation="sigmoid")])
    model.compile(dl.optimizers.SGD(0.0), "binary_crossentropy", metrics=[BinaryTruePositives()])
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], "float32")
    y = np.array([[1], [1], [0], [0]], "float32")
    history = model.fit(x, y, epochs=2, verbose=0)
    # a sigmoid output is never exactly 0, so every prediction casts to True: TP = sum(y) = 2
    assert history.history["binary_true_positives"] == [2.0, 2.0]


def test_add_variable_and_add_weight_give_assignable_variables():
    m = dl.metrics.Metric(name="custom")
    v = m.add_variable((2,), initializer="ones", name="v")
    w = m.add_weight(shape=(), name="w")
    c = m.add_variable((), initializer=3.0, dtype="float64", name="c")
    assert isinstance(v, dl.Variable) and v.value.dtype == np.float32 and float(w.value) == 0.0
    v.assign_add([1.0, 2.0])
    v.assign_sub(np.array([0.5, 0.5]))
    np.testing.assert_array_equal(v.numpy(), [1.5, 2.5])
    assert float(c) == 3.0 and c.value.dtype == np.float64
    assert v.path == "custom/v"
    m.reset_state()  # Keras zeroes every state on reset
    np.testing.assert_array_equal(v.value, [0, 0])
    assert float(c.value) == 0.0


def test_add_variable_bad_input():
    m = dl.metrics.Metric(name="custom")
    with pytest.raises(TypeError, match="custom: add_variable expects a shape"):
        m.add_variable("big")
    with pytest.raises(ValueError, match="aggregation in"):
        m.add_variable((), aggregation="max")
    with pytest.raises(ValueError):
        m.add_variable((), initializer="no_such_initializer")
