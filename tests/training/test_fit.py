"""fit's options (Keras semantics): validation_split, shuffle, sample_weight, class_weight, batch
sizes, callbacks and their hook order, stop_training, verbose output, evaluate(return_dict),
the *_on_batch methods, and the input types fit accepts."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _classification(n=40, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def _model(lr=0.1, dropout=0.0, metrics=("accuracy",), optimizer=None):
    stack = [dl.Input(shape=(4,)), layers.Dense(6, activation="tanh")]
    if dropout:
        stack.append(layers.Dropout(dropout))
    stack.append(layers.Dense(3, activation="softmax"))
    model = dl.Sequential(stack)
    model.compile(optimizer=optimizer or dl.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                  metrics=list(metrics))
    return model


def _twin(model, **kwargs):
    """A second model with the same initial weights."""
    other = _model(**kwargs)
    other.set_weights(model.get_weights())
    return other


def _assert_same_weights(a, b, exact=True):
    for i, (wa, wb) in enumerate(zip(a.get_weights(), b.get_weights())):
        if exact:
            np.testing.assert_array_equal(wa, wb, err_msg=f"weight {i}")
        else:
            np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7, err_msg=f"weight {i}")


def _assert_moved(model, before):
    assert any(not np.array_equal(w, w0) for w, w0 in zip(model.get_weights(), before))


# ---- data splitting and ordering --------------------------------------------------------------
def test_validation_split_takes_the_last_fraction():
    x, y = _classification()
    a = _model()
    b = _twin(a)
    ha = a.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, shuffle=False, verbose=0)
    hb = b.fit(x[:30], y[:30], batch_size=8, epochs=2, validation_data=(x[30:], y[30:]), shuffle=False,
               verbose=0)
    assert ha.history == hb.history
    _assert_same_weights(a, b)
    loss, acc = a.evaluate(x[30:], y[30:], verbose=0)
    assert ha.history["val_loss"][-1] == pytest.approx(loss, rel=1e-6)
    assert ha.history["val_accuracy"][-1] == pytest.approx(acc, abs=1e-7)


def test_validation_data_with_sample_weights():
    x, y = _classification()
    model = _model()
    weights = np.r_[np.ones(20), np.zeros(20)].astype("float32")
    history = model.fit(x, y, epochs=1, validation_data=(x, y, weights), verbose=0)
    logs = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert history.history["val_loss"][0] == pytest.approx(logs["loss"], rel=1e-6)


def test_shuffle_false_is_deterministic_and_shuffle_true_reorders():
    x, y = _classification()
    a = _model()
    b, c = _twin(a), _twin(a)
    a.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    _assert_same_weights(a, b)
    c.fit(x, y, batch_size=8, epochs=2, shuffle=True, verbose=0)
    assert not np.array_equal(c.get_weights()[0], a.get_weights()[0])  # another batch order


# ---- weighting --------------------------------------------------------------------------------
def test_zero_sample_weight_equals_training_on_the_rest():
    """Keras's losses divide the weighted sum by the batch size (sum_over_batch_size), so with one
    full batch, weights 2 on the first half and 0 on the second half give the loss (and gradient)
    of the first half alone; weights 1/0 give half of it (the same step at twice the rate)."""
    x, y = _classification()
    half = np.r_[np.ones(20), np.zeros(20)].astype("float32")

    weighted = _model(lr=0.1)
    alone = _twin(weighted, lr=0.1)
    weighted.fit(x, y, batch_size=40, epochs=1, sample_weight=2 * half, shuffle=False, verbose=0)
    alone.fit(x[:20], y[:20], batch_size=40, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(weighted, alone, exact=False)

    weighted = _model(lr=0.2)
    alone = _twin(weighted, lr=0.1)
    weighted.fit(x, y, batch_size=40, epochs=1, sample_weight=half, shuffle=False, verbose=0)
    alone.fit(x[:20], y[:20], batch_size=40, epochs=1, shuffle=False, verbose=0)
    _assert_same_weights(weighted, alone, exact=False)


def test_sample_weight_changes_the_step():
    x, y = _classification()
    a = _model()
    b = _twin(a)
    a.fit(x, y, batch_size=40, epochs=1, verbose=0)
    b.fit(x, y, batch_size=40, epochs=1, sample_weight=np.linspace(0, 2, 40), verbose=0)
    assert not np.allclose(a.get_weights()[0], b.get_weights()[0])


def test_class_weight_equals_per_sample_weights():
    x, y = _classification()
    class_weight = {0: 2.0, 1: 0.5, 2: 1.0}
    a = _model()
    b = _twin(a)
    a.fit(x, y, batch_size=16, epochs=2, class_weight=class_weight, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=16, epochs=2, sample_weight=np.array([class_weight[c] for c in y]), shuffle=False,
          verbose=0)
    _assert_same_weights(a, b)
    # with one-hot targets, the class is the argmax
    c = _model()
    c.compile(optimizer=dl.optimizers.SGD(0.1), loss="categorical_crossentropy")
    d = _twin(c)
    d.compile(optimizer=dl.optimizers.SGD(0.1), loss="categorical_crossentropy")
    one_hot = dl.utils.to_categorical(y, 3)
    c.fit(x, one_hot, batch_size=16, class_weight=class_weight, shuffle=False, verbose=0)
    d.fit(x, one_hot, batch_size=16, sample_weight=np.array([class_weight[k] for k in y]), shuffle=False,
          verbose=0)
    _assert_same_weights(c, d)


# ---- batch sizes and epochs ---------------------------------------------------------------------
def test_batch_size_larger_than_the_data():
    x, y = _classification()
    a = _model()
    b = _twin(a)
    steps = []

    class CountSteps(dl.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    history = a.fit(x, y, batch_size=1000, epochs=2, shuffle=False, callbacks=[CountSteps()], verbose=0)
    b.fit(x, y, batch_size=40, epochs=2, shuffle=False, verbose=0)
    assert steps == [0, 0] and len(history.history["loss"]) == 2
    _assert_same_weights(a, b)


def test_ragged_last_batch_and_epoch_mean():
    """The epoch's loss is the sample-weighted mean over its batches (sizes 16, 16, 8)."""
    x, y = _classification()
    model = _model(lr=0.0)  # the weights stay put, so every batch sees the same model
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0)[0], rel=1e-5)


def test_epochs_zero_and_initial_epoch():
    x, y = _classification()
    model = _model()
    before = model.get_weights()
    history = model.fit(x, y, epochs=0, verbose=0)
    assert history.history == {} and history.epoch == []
    _assert_same_weights(model, _twin(model))
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2]


# ---- callbacks ------------------------------------------------------------------------------------
class Recorder(dl.callbacks.Callback):
    """Records each hook as (name, epoch or batch index), and the logs it received."""

    def __init__(self):
        super().__init__()
        self.events = []
        self.logs = []

    def _log(self, name, index=None, logs=None):
        self.events.append((name, index))
        self.logs.append(None if logs is None else dict(logs))

    def on_train_begin(self, logs=None):
        self._log("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self._log("epoch_begin", epoch)

    def on_train_batch_begin(self, batch, logs=None):
        self._log("batch_begin", batch)

    def on_train_batch_end(self, batch, logs=None):
        self._log("batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._log("test_begin")

    def on_test_batch_begin(self, batch, logs=None):
        self._log("test_batch_begin", batch)

    def on_test_batch_end(self, batch, logs=None):
        self._log("test_batch_end", batch, logs)

    def on_test_end(self, logs=None):
        self._log("test_end", None, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._log("epoch_end", epoch, logs)

    def on_train_end(self, logs=None):
        self._log("train_end", None, logs)

    def logs_of(self, name):
        return [logs for (event, _), logs in zip(self.events, self.logs) if event == name]


def test_callback_hook_order_and_logs():
    x, y = _classification()
    model = _model()
    recorder = Recorder()
    history = model.fit(x, y, batch_size=16, epochs=2, validation_data=(x[:10], y[:10]), callbacks=[recorder],
                        verbose=0)
    assert recorder.model is model
    assert recorder.params["epochs"] == 2 and recorder.params["steps"] == 3

    expected = [("train_begin", None)]
    for epoch in range(2):
        expected.append(("epoch_begin", epoch))
        for batch in range(3):
            expected += [("batch_begin", batch), ("batch_end", batch)]
        # the validation run inside fit calls the test hooks (Keras), before on_epoch_end
        expected += [("test_begin", None), ("test_batch_begin", 0), ("test_batch_end", 0), ("test_end", None),
                     ("epoch_end", epoch)]
    expected.append(("train_end", None))
    assert recorder.events == expected

    assert all(set(logs) == {"loss", "accuracy"} for logs in recorder.logs_of("batch_end"))
    assert all(set(logs) == {"loss", "accuracy"} for logs in recorder.logs_of("test_end"))
    epoch_logs = recorder.logs_of("epoch_end")
    assert all(set(logs) == {"loss", "accuracy", "val_loss", "val_accuracy"} for logs in epoch_logs)
    assert [logs["val_loss"] for logs in epoch_logs] == history.history["val_loss"]
    assert [logs["loss"] for logs in epoch_logs] == history.history["loss"]
    assert recorder.logs_of("train_end") == [epoch_logs[-1]]  # on_train_end gets the last epoch's logs
    # the last batch's running logs are the epoch's training logs
    assert recorder.logs_of("batch_end")[-1]["loss"] == epoch_logs[-1]["loss"]


def test_stop_training_from_a_callback():
    x, y = _classification()

    class StopAfterEpoch(dl.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    class StopAfterBatch(dl.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.batches = 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
            if batch == 1:
                self.model.stop_training = True

    model = _model()
    history = model.fit(x, y, batch_size=8, epochs=10, callbacks=[StopAfterEpoch()], verbose=0)
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2

    stopper = StopAfterBatch()
    history = _model().fit(x, y, batch_size=8, epochs=10, callbacks=[stopper], verbose=0)
    assert stopper.batches == 2 and history.epoch == [0]


def test_callbacks_must_be_callback_instances():
    x, y = _classification()
    model = _model()
    with pytest.raises(TypeError, match="Callback"):
        model.fit(x, y, callbacks=[lambda: None], verbose=0)


# ---- verbose output -------------------------------------------------------------------------------
def test_verbose_output(capsys):
    x, y = _classification()
    model = _model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""

    model.fit(x, y, batch_size=16, epochs=2, validation_split=0.25, verbose=2)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("Epoch")] == ["Epoch 1/2", "Epoch 2/2"]
    per_epoch = [line for line in lines if "loss:" in line]
    assert len(per_epoch) == 2
    assert all(line.startswith("2/2 - ") and "val_loss:" in line and "accuracy:" in line for line in per_epoch)
    assert "━" not in out and "\r" not in out

    model.fit(x, y, batch_size=16, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "━" in out and "3/3" in out and "loss:" in out

    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=1)
    assert "━" in capsys.readouterr().out


# ---- evaluate / *_on_batch ----------------------------------------------------------------------------
def test_evaluate_return_dict_and_list_agree():
    x, y = _classification()
    model = _model(metrics=("accuracy", "sparse_categorical_crossentropy"))
    model.fit(x, y, epochs=1, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    # Keras 3: the dict is sorted by name, the list follows model.metrics (the loss first)
    assert list(logs) == ["accuracy", "loss", "sparse_categorical_crossentropy"]
    in_order = [logs["loss"], logs["accuracy"], logs["sparse_categorical_crossentropy"]]
    assert model.evaluate(x, y, verbose=0) == in_order
    assert model.evaluate(x, y, batch_size=7, verbose=0) == pytest.approx(in_order, rel=1e-5)
    assert logs["sparse_categorical_crossentropy"] == pytest.approx(logs["loss"], rel=1e-6)  # no regularizer
    probs = model.predict(x, verbose=0)
    assert logs["accuracy"] == pytest.approx(np.mean(np.argmax(probs, 1) == y), abs=1e-7)


def test_metric_names_follow_keras():
    """A metric given by a string is logged under that string; an object under its own name."""
    x, y = _classification()
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse",
                  metrics=["mae", "MeanSquaredError", dl.metrics.MeanAbsoluteError()])
    history = model.fit(x, y.astype("float32"), epochs=1, verbose=0)
    assert list(history.history) == sorted(["loss", "mae", "MeanSquaredError", "mean_absolute_error"])  # Keras 3 sorts
    logs = model.evaluate(x, y.astype("float32"), verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)[:, 0]
    assert logs["mae"] == pytest.approx(float(np.mean(np.abs(pred - y))), rel=1e-5)
    assert logs["MeanSquaredError"] == pytest.approx(logs["loss"], rel=1e-6)
    assert logs["mean_absolute_error"] == pytest.approx(logs["mae"], rel=1e-6)


def test_train_test_predict_on_batch():
    x, y = _classification()
    model = _model()
    before = model.get_weights()
    result = model.train_on_batch(x[:8], y[:8])
    assert isinstance(result, list) and len(result) == 2
    _assert_moved(model, before)
    after = model.get_weights()

    tested = model.test_on_batch(x[:8], y[:8])
    assert tested == pytest.approx(model.evaluate(x[:8], y[:8], verbose=0), rel=1e-6)
    assert model.test_on_batch(x[:8], y[:8], return_dict=True).keys() == {"loss", "accuracy"}
    for w, w0 in zip(model.get_weights(), after):
        np.testing.assert_array_equal(w, w0)
    np.testing.assert_allclose(model.predict_on_batch(x[:8]), model.predict(x[:8], verbose=0), rtol=1e-6)

    plain = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(1)])
    plain.compile(optimizer="sgd", loss="mse")
    loss = plain.train_on_batch(x, y.astype("float32"))
    assert isinstance(loss, float)  # Keras returns the bare loss when there are no metrics
    assert isinstance(plain.test_on_batch(x, y.astype("float32")), float)


def test_train_on_batch_uses_class_weight():
    x, y = _classification()
    a = _model()
    b = _twin(a)
    class_weight = {0: 3.0, 1: 1.0, 2: 0.0}
    a.train_on_batch(x, y, class_weight=class_weight)
    b.train_on_batch(x, y, sample_weight=np.array([class_weight[c] for c in y]))
    _assert_same_weights(a, b)


# ---- input types --------------------------------------------------------------------------------------
def test_dtypes_and_layouts_are_accepted_and_equivalent():
    x, y = _classification()
    reference = _model()
    initial = reference.get_weights()
    reference.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)

    variants = {
        "float64 x": (x.astype(np.float64), y),
        "Fortran-order x": (np.asfortranarray(x), y),
        "strided view of x": (np.repeat(x, 2, axis=1)[:, ::2], y),
        "int32 labels": (x, y.astype(np.int32)),
        "uint8 labels": (x, y.astype(np.uint8)),
        "float labels": (x, y.astype(np.float32)),
        "(N, 1) labels": (x, y.reshape(-1, 1)),
    }
    for name, (xv, yv) in variants.items():
        model = _model()
        model.set_weights(initial)
        model.fit(xv, yv, batch_size=16, epochs=1, shuffle=False, verbose=0)
        for w, w_ref in zip(model.get_weights(), reference.get_weights()):
            np.testing.assert_array_equal(w, w_ref, err_msg=name)
    assert model.predict(np.repeat(x, 2, axis=1)[:, ::2], verbose=0).dtype == np.float32


def test_integer_features_are_cast_to_float():
    rng = np.random.default_rng(2)
    x_int = rng.integers(0, 5, size=(40, 4))
    _, y = _classification()
    a = _model()
    b = _twin(a)
    a.fit(x_int, y, batch_size=16, shuffle=False, verbose=0)
    b.fit(x_int.astype(np.float32), y, batch_size=16, shuffle=False, verbose=0)
    _assert_same_weights(a, b)
    np.testing.assert_array_equal(a.predict(x_int, verbose=0), a.predict(x_int.astype(np.float32), verbose=0))


def test_pandas_inputs():
    pd = pytest.importorskip("pandas")
    x, y = _classification()
    frame = pd.DataFrame(x, columns=list("abcd"))
    a = _model()
    b = _twin(a)
    a.fit(frame, pd.Series(y), batch_size=16, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    _assert_same_weights(a, b)
    np.testing.assert_array_equal(a.predict(frame, verbose=0), a.predict(x, verbose=0))
    assert a.evaluate(frame, pd.Series(y), verbose=0) == a.evaluate(x, y, verbose=0)
