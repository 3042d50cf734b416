"""Callbacks (Keras 3 semantics): EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
LearningRateScheduler, CSVLogger, TerminateOnNaN, LambdaCallback, BackupAndRestore; in fit, and
driven directly with chosen logs (side by side with Keras's own callbacks when Keras is
installed)."""
import csv
import os
import sys
import types

import numpy as np
import pytest

import dlcore as dl
from dlcore import callbacks as C
from dlcore import layers, registry

pytestmark = pytest.mark.usefixtures("fresh_session")


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = np.argmax(x[:, :3] + 0.5 * rng.normal(size=(n, 3)), axis=1)
    return x, y


def _model(seed=3, lr=0.05, optimizer="adam"):
    dl.utils.clear_session()
    dl.utils.set_random_seed(seed)
    model = dl.Sequential([dl.Input(shape=(5,)), layers.Dense(8, activation="relu"), layers.Dropout(0.2),
                           layers.Dense(3, activation="softmax")])
    opt = dl.optimizers.Adam(learning_rate=lr) if optimizer == "adam" else dl.optimizers.SGD(learning_rate=lr)
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class _Dummy:
    """A stand-in model for driving callbacks by hand: its one "weight" is the epoch counter."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.counter = -1
        self.restored = None
        self.optimizer = types.SimpleNamespace(learning_rate=lr)

    def get_weights(self):
        return [np.array(self.counter)]

    def set_weights(self, weights):
        self.restored = int(weights[0])


def _drive(cb, values, monitor="val_loss", model=None):
    """on_epoch_end with ``{monitor: v}`` per epoch until stop_training; (epochs run, model)."""
    model = model or _Dummy()
    cb.set_model(model)
    cb.on_train_begin({})
    run = 0
    for epoch, value in enumerate(values):
        model.counter = epoch
        cb.on_epoch_end(epoch, {monitor: value})
        run += 1
        if model.stop_training:
            break
    cb.on_train_end({})
    return run, model


def test_callbacks_are_registered():
    for name in ("EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger",
                 "TerminateOnNaN", "BackupAndRestore", "LambdaCallback", "History", "ProgbarLogger"):
        assert registry.lookup("callback", name) is getattr(C, name)


# ---- EarlyStopping --------------------------------------------------------------------------------
def test_early_stopping_patience():
    run, _ = _drive(C.EarlyStopping(patience=2), [1.0, 0.9, 0.95, 0.96, 0.5])
    assert run == 4  # two epochs without improvement after the best (epoch 1)
    run, _ = _drive(C.EarlyStopping(patience=0), [1.0, 0.9, 0.95, 0.5])
    assert run == 3


def test_early_stopping_min_delta_and_mode():
    run, _ = _drive(C.EarlyStopping(min_delta=0.1, patience=1), [1.0, 0.95, 0.92, 0.91])
    assert run == 2  # 0.95 is not an improvement of more than 0.1
    run, _ = _drive(C.EarlyStopping(monitor="val_accuracy", patience=1), [0.5, 0.6, 0.55, 0.7],
                    monitor="val_accuracy")
    assert run == 3  # "auto" maximizes an accuracy
    run, _ = _drive(C.EarlyStopping(monitor="score", mode="max", patience=1), [1, 2, 3, 2, 5], monitor="score")
    assert run == 4


def test_early_stopping_baseline():
    run, _ = _drive(C.EarlyStopping(baseline=0.5, patience=2), [1.0, 1.1, 1.2, 1.3])
    assert run == 2  # never better than the baseline: stops after `patience` epochs
    run, _ = _drive(C.EarlyStopping(baseline=0.5, patience=2), [1.0, 0.4, 0.45, 0.46, 0.47])
    assert run == 4


def test_early_stopping_restore_best_weights_and_start_from_epoch():
    run, model = _drive(C.EarlyStopping(patience=2, restore_best_weights=True), [1.0, 0.7, 0.8, 0.9, 0.1])
    assert run == 4 and model.restored == 1
    run, model = _drive(C.EarlyStopping(patience=1, restore_best_weights=True, start_from_epoch=2),
                        [0.1, 0.2, 0.9, 0.95, 0.97])
    assert run == 4 and model.restored == 2  # epochs 0 and 1 are not monitored


def test_early_stopping_in_fit_restores_the_best_weights():
    x, y = _data()
    model = _model(lr=0.05)
    seen = []
    record = C.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append((logs["val_loss"], model.get_weights())))
    stop = C.EarlyStopping(monitor="val_loss", patience=1, min_delta=10.0, restore_best_weights=True)
    history = model.fit(x, y, validation_split=0.25, epochs=10, batch_size=10, verbose=0, callbacks=[record, stop])
    assert len(history.history["loss"]) == 2  # nothing improves by 10: stop after one more epoch
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), seen[0][1]))
    with pytest.warns(UserWarning, match="not available"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.EarlyStopping(monitor="val_loss")])


def test_early_stopping_unknown_direction():
    with pytest.raises(ValueError, match="mode='max'"):
        _drive(C.EarlyStopping(monitor="zorglub"), [1.0, 2.0], monitor="zorglub")


# ---- ModelCheckpoint ---------------------------------------------------------------------------------
def test_model_checkpoint_best_only_with_templates(tmp_path):
    x, y = _data()
    model = _model(lr=0.05)
    snapshots = {}
    template = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.2f}.dlc")
    checkpoint = C.ModelCheckpoint(template, monitor="val_loss", save_best_only=True)
    record = C.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.update({epoch: model.get_weights()}))
    history = model.fit(x, y, validation_split=0.25, epochs=6, batch_size=10, verbose=0,
                        callbacks=[checkpoint, record])
    losses = history.history["val_loss"]
    best, expected = None, {}
    for epoch, value in enumerate(losses):
        if best is None or value < best:
            best = value
            expected[f"ckpt-{epoch + 1:02d}-{value:.2f}.dlc"] = epoch
    assert sorted(os.listdir(tmp_path)) == sorted(expected)
    for name, epoch in expected.items():
        loaded = dl.models.load_model(tmp_path / name)
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), snapshots[epoch]))
    assert checkpoint.best == min(losses)


def test_model_checkpoint_every_epoch_weights_only_and_threshold(tmp_path):
    model = _model()
    cb = C.ModelCheckpoint(str(tmp_path / "w-{epoch}.weights.dlc"), save_weights_only=True)
    _drive(cb, [3.0, 2.0, 4.0], model=model)
    assert sorted(os.listdir(tmp_path)) == ["w-1.weights.dlc", "w-2.weights.dlc", "w-3.weights.dlc"]
    other = _model(seed=9)
    other.load_weights(tmp_path / "w-3.weights.dlc")
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))
    sub = tmp_path / "sub"
    cb = C.ModelCheckpoint(str(sub / "best.dlc"), monitor="val_acc", save_best_only=True,
                           initial_value_threshold=0.8)
    _drive(cb, [0.5, 0.7], monitor="val_acc", model=model)
    assert not sub.exists()  # never better than the threshold (and "acc" is maximized)
    _drive(cb, [0.5, 0.9], monitor="val_acc", model=model)
    assert os.listdir(sub) == ["best.dlc"] and cb.best == 0.9


def test_model_checkpoint_batch_frequency(tmp_path):
    x, y = _data()
    model = _model()
    cb = C.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.dlc"), save_freq=3)
    model.fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[cb])  # 4 batches per epoch
    assert sorted(os.listdir(tmp_path)) == ["e1-b3.dlc", "e2-b2.dlc"]


def test_model_checkpoint_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"\.dlc"):
        C.ModelCheckpoint(str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match=r"\.weights\.dlc"):
        C.ModelCheckpoint(str(tmp_path / "m.dlc"), save_weights_only=True)
    with pytest.raises(ValueError, match="save_freq"):
        C.ModelCheckpoint(str(tmp_path / "m.dlc"), save_freq="batch")
    cb = C.ModelCheckpoint(str(tmp_path / "m-{nope}.dlc"))
    with pytest.raises(KeyError, match="nope"):
        _drive(cb, [1.0], model=_model())


# ---- ReduceLROnPlateau ---------------------------------------------------------------------------------
def test_reduce_lr_on_plateau_changes_the_optimizer_learning_rate():
    model = _model(lr=0.1, optimizer="sgd")
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02)
    logs_seen = []
    cb.set_model(model)
    cb.on_train_begin({})
    for epoch, value in enumerate([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]):
        logs = {"val_loss": value}
        cb.on_epoch_end(epoch, logs)
        logs_seen.append(logs["learning_rate"])
    assert model.optimizer.learning_rate == 0.02
    # reduced at epochs 2, 4, 6 (patience 2, then one epoch of cooldown that resets the wait), logged
    # before the reduction, as Keras does
    assert logs_seen == [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02]


def test_reduce_lr_on_plateau_in_fit():
    x, y = _data()
    model = _model(lr=0.01, optimizer="sgd")
    cb = C.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=1, min_delta=100.0)
    history = model.fit(x, y, epochs=3, batch_size=20, verbose=0, callbacks=[cb])
    np.testing.assert_allclose(history.history["learning_rate"], [0.01, 0.01, 0.001])
    np.testing.assert_allclose(model.optimizer.learning_rate, 0.0001)
    with pytest.raises(ValueError, match="factor"):
        C.ReduceLROnPlateau(factor=1.0)


# ---- LearningRateScheduler ----------------------------------------------------------------------------------
def test_learning_rate_scheduler():
    x, y = _data()
    model = _model(lr=0.1, optimizer="sgd")
    seen = []
    cbs = [C.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr),
           C.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(model.optimizer.learning_rate))]
    history = model.fit(x, y, epochs=3, batch_size=20, verbose=0, callbacks=cbs)
    assert seen == [0.1, 0.05, 0.025]
    assert history.history["learning_rate"] == [0.1, 0.05, 0.025]
    model.fit(x, y, epochs=2, batch_size=20, verbose=0, callbacks=[C.LearningRateScheduler(lambda e: 0.3 / (e + 1))])
    assert model.optimizer.learning_rate == 0.15
    with pytest.raises(ValueError, match="should be a float"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[C.LearningRateScheduler(lambda e, lr: "fast")])


# ---- CSVLogger ------------------------------------------------------------------------------------------
def test_csv_logger(tmp_path):
    x, y = _data()
    model = _model()
    path = tmp_path / "log.csv"
    history = model.fit(x, y, validation_split=0.25, epochs=3, batch_size=10, verbose=0,
                        callbacks=[C.CSVLogger(str(path))])
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "epoch,accuracy,loss,val_accuracy,val_loss"
    rows = list(csv.DictReader(lines))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert [float(r[key]) for r in rows] == history.history[key]
    model.fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[C.CSVLogger(str(path), append=True)])
    lines = path.read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("epoch") and not lines[4].startswith("epoch")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[C.CSVLogger(str(path), separator=";")])
    lines = path.read_text().splitlines()
    assert lines[0] == "epoch;accuracy;loss;val_accuracy;val_loss" and lines[1].endswith(";NA;NA")


# ---- TerminateOnNaN -----------------------------------------------------------------------------------------
def _nan_loss(y_true, y_pred):
    return dl.ops.multiply(dl.ops.mean(dl.ops.square(dl.ops.subtract(y_pred, y_true))), float("nan"))


def test_terminate_on_nan(capsys):
    x, _ = _data()
    model = dl.Sequential([dl.Input(shape=(5,)), layers.Dense(2)])
    model.compile("sgd", _nan_loss)
    batches = []
    counter = C.LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(batch))
    history = model.fit(x, np.zeros((40, 2), "float32"), epochs=3, batch_size=10, verbose=0,
                        callbacks=[C.TerminateOnNaN(), counter])
    assert batches == [0] and len(history.history["loss"]) == 1
    assert "Invalid loss, terminating training" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss"):
        model.fit(x, np.zeros((40, 2), "float32"), epochs=1, verbose=0, callbacks=[C.TerminateOnNaN(raise_error=True)])


# ---- LambdaCallback ------------------------------------------------------------------------------------------
def test_lambda_callback_calls():
    x, y = _data(n=20)
    model = _model()
    calls = []
    cb = C.LambdaCallback(
        on_train_begin=lambda logs: calls.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: calls.append(f"epoch_begin {epoch}"),
        on_train_batch_begin=lambda batch, logs: calls.append(f"batch_begin {batch}"),
        on_train_batch_end=lambda batch, logs: calls.append(f"batch_end {batch} {sorted(logs)}"),
        on_epoch_end=lambda epoch, logs: calls.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: calls.append("train_end"))
    model.fit(x, y, epochs=2, batch_size=10, verbose=0, callbacks=[cb])
    batch = ["batch_begin 0", "batch_end 0 ['accuracy', 'loss']", "batch_begin 1", "batch_end 1 ['accuracy', 'loss']"]
    assert calls == (["train_begin", "epoch_begin 0"] + batch + ["epoch_end 0 ['accuracy', 'loss']", "epoch_begin 1"]
                     + batch + ["epoch_end 1 ['accuracy', 'loss']", "train_end"])
    extra = C.LambdaCallback(on_test_end=lambda logs: calls.append("test_end"))
    model.evaluate(x, y, verbose=0, callbacks=[extra])
    assert calls[-1] == "test_end"


def test_legacy_batch_hooks_are_called():
    x, y = _data(n=20)
    seen = []

    class Legacy(C.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(batch)

    _model().fit(x, y, epochs=1, batch_size=10, verbose=0, callbacks=[Legacy()])
    assert seen == [0, 1]


# ---- BackupAndRestore -----------------------------------------------------------------------------------------
class _Crash(C.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            raise RuntimeError("interrupted (simulated)")


def _fit(model, callbacks, epochs=5):
    x, y = _data()
    return model.fit(x, y, epochs=epochs, batch_size=10, verbose=0, callbacks=callbacks)


def test_backup_and_restore_resumes_bit_identically(tmp_path):
    backup = str(tmp_path / "backup")
    straight = _model()
    h_straight = _fit(straight, [])

    model = _model()
    with pytest.raises(RuntimeError, match="interrupted"):
        _fit(model, [C.BackupAndRestore(backup), _Crash(epoch=3, batch=1)])
    assert os.listdir(backup) == ["latest.dlc"]
    # the process may have moved on: other random draws, other weights
    dl.utils.set_random_seed(999)
    model.set_weights([w * 0 for w in model.get_weights()])
    epochs = []
    resumed = _fit(model, [C.BackupAndRestore(backup),
                           C.LambdaCallback(on_epoch_begin=lambda epoch, logs: epochs.append(epoch))])
    assert epochs == [3, 4] and resumed.epoch == [3, 4]
    assert resumed.history["loss"] == h_straight.history["loss"][3:]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), straight.get_weights()))
    assert model.optimizer.iterations == straight.optimizer.iterations == 20
    assert not os.path.exists(backup)  # delete_checkpoint: removed when training ends


def test_backup_and_restore_in_a_new_model_object(tmp_path):
    """As after a crashed process: a rebuilt model (other layer names) resumes from the backup."""
    backup = str(tmp_path / "backup")
    straight = _model()
    _fit(straight, [])
    with pytest.raises(RuntimeError):
        _fit(_model(), [C.BackupAndRestore(backup, delete_checkpoint=False), _Crash(epoch=2, batch=0)])
    rebuilt = _model(seed=42)
    history = _fit(rebuilt, [C.BackupAndRestore(backup, delete_checkpoint=False)])
    assert history.epoch == [2, 3, 4]
    assert all(np.array_equal(a, b) for a, b in zip(rebuilt.get_weights(), straight.get_weights()))
    assert os.listdir(backup) == ["latest.dlc"]  # kept: delete_checkpoint=False


def test_backup_and_restore_double_checkpoint_falls_back(tmp_path):
    backup = tmp_path / "backup"
    straight = _model()
    _fit(straight, [])
    with pytest.raises(RuntimeError):
        _fit(_model(), [C.BackupAndRestore(str(backup), double_checkpoint=True), _Crash(epoch=3, batch=0)])
    assert sorted(os.listdir(backup)) == ["latest.dlc", "latest.dlc.bkp"]
    latest = backup / "latest.dlc"
    latest.write_bytes(latest.read_bytes()[:100])  # damaged
    model = _model()
    with pytest.warns(UserWarning, match="previous checkpoint"):
        history = _fit(model, [C.BackupAndRestore(str(backup), double_checkpoint=True)])
    assert history.epoch == [2, 3, 4]  # from the previous checkpoint (end of epoch 1)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), straight.get_weights()))
    with pytest.raises(RuntimeError):
        _fit(_model(), [C.BackupAndRestore(str(backup)), _Crash(epoch=1, batch=0)])
    (backup / "latest.dlc").write_bytes(b"garbage")
    with pytest.raises(ValueError):
        _fit(_model(), [C.BackupAndRestore(str(backup))])


def test_backup_and_restore_arguments(tmp_path):
    with pytest.raises(ValueError, match="backup_dir"):
        C.BackupAndRestore("")
    with pytest.raises(ValueError, match="save_freq"):
        C.BackupAndRestore(str(tmp_path), save_freq="often")
    x, y = _data()
    model = _model()
    cb = C.BackupAndRestore(str(tmp_path / "b"), save_freq=3, delete_checkpoint=False)
    model.fit(x, y, epochs=1, batch_size=10, verbose=0, callbacks=[cb])
    assert os.listdir(tmp_path / "b") == ["latest.dlc"]


# ---- Keras side by side (skipped without keras) ---------------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


SEQUENCES = [[1.0, 0.9, 0.95, 0.96, 0.5, 0.6, 0.7], [1.0, 1.1, 1.2, 1.3, 1.4], [1.0, 0.4, 0.45, 0.46, 0.47, 0.3],
             [0.5, 0.5, 0.5, 0.5], [3.0, 2.0, 1.0, 0.99, 0.98, 0.97, 0.5]]
EARLY = [dict(patience=2), dict(patience=0), dict(min_delta=0.1, patience=1), dict(baseline=0.5, patience=2),
         dict(patience=2, restore_best_weights=True), dict(patience=1, start_from_epoch=2, restore_best_weights=True),
         dict(mode="max", patience=1)]


def test_early_stopping_matches_keras():
    keras = _keras()
    for kwargs in EARLY:
        for values in SEQUENCES:
            ours = _drive(C.EarlyStopping(**kwargs), values)
            theirs = _drive(keras.callbacks.EarlyStopping(**kwargs), values)
            assert (ours[0], ours[1].restored) == (theirs[0], theirs[1].restored), (kwargs, values)


def test_reduce_lr_on_plateau_matches_keras():
    keras = _keras()
    for kwargs in [dict(factor=0.5, patience=1), dict(factor=0.2, patience=2, cooldown=2, min_lr=0.001),
                   dict(factor=0.5, patience=0, min_delta=0.2), dict(mode="max", factor=0.5, patience=1)]:
        for values in SEQUENCES:
            runs = []
            for cls in (C.ReduceLROnPlateau, keras.callbacks.ReduceLROnPlateau):
                cb, model = cls(**kwargs), _Dummy(lr=0.1)
                cb.set_model(model)
                cb.on_train_begin({})
                trace = []
                for epoch, value in enumerate(values):
                    logs = {"val_loss": value}
                    cb.on_epoch_end(epoch, logs)
                    trace.append((logs["learning_rate"], float(model.optimizer.learning_rate)))
                runs.append(trace)
            np.testing.assert_allclose(runs[0], runs[1], rtol=1e-7, err_msg=str((kwargs, values)))


def test_csv_logger_matches_keras(tmp_path):
    keras = _keras()
    epochs = [{"loss": 0.5, "accuracy": 0.25}, {"loss": 0.25, "accuracy": np.float32(0.5)},
              {"loss": 0.125, "accuracy": 0.75, "val_loss": 0.3}]
    texts = []
    for i, cls in enumerate((C.CSVLogger, keras.callbacks.CSVLogger)):
        path = tmp_path / f"{i}.csv"
        for append in (False, True):
            cb = cls(str(path), separator=";", append=append)
            cb.set_model(_Dummy())
            cb.on_train_begin({})
            for epoch, logs in enumerate(epochs):
                cb.on_epoch_end(epoch, dict(logs))
            cb.on_train_end({})
        texts.append(path.read_bytes())
    assert texts[0] == texts[1]


# ---- array monitors (F1Score(average=None)): Keras 3 compares with ops.less/ops.greater, so the
# first comparison of an array fails with a ValueError; dlcore raises there too, naming the callback
def _f1_fit(callback, average=None, epochs=3, num_classes=3):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 4)).astype("float32")
    y = np.eye(num_classes)[rng.integers(0, num_classes, 32)].astype("float32")
    model = dl.Sequential([dl.Input((4,)), layers.Dense(num_classes, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy", metrics=[dl.metrics.F1Score(average=average)])
    return model, model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])


@pytest.mark.parametrize("make", [lambda: C.EarlyStopping(monitor="f1_score", mode="max", patience=1),
                                  lambda: C.ReduceLROnPlateau(monitor="f1_score", mode="max", patience=1),
                                  lambda: C.EarlyStopping(monitor="f1_score", patience=1)])
def test_array_monitor_raises_at_the_first_comparison_as_keras(make):
    callback = make()
    with pytest.raises(ValueError, match=rf"{type(callback).__name__}: the monitored quantity `f1_score` is an "
                                         r"array of shape \(3,\)"):
        _f1_fit(callback)
    assert callback.model.optimizer.iterations == 2  # the first epoch set best, the second compared
    assert callback.best.shape == (3,) and callback.wait in (0, 1)


def test_array_monitor_with_a_baseline_raises_at_the_first_epoch():
    callback = C.EarlyStopping(monitor="f1_score", mode="max", baseline=0.5)
    with pytest.raises(ValueError, match="EarlyStopping: the monitored quantity"):
        _f1_fit(callback)
    assert callback.model.optimizer.iterations == 1


def test_scalar_and_one_element_monitors_work():
    _, history = _f1_fit(C.EarlyStopping(monitor="f1_score", mode="max", patience=0), average="macro")
    assert 1 <= len(history.history["loss"]) <= 3
    callback = C.ReduceLROnPlateau(monitor="f1_score", mode="max", patience=1)
    _, history = _f1_fit(callback, num_classes=1)  # a one-element array compares as a scalar (Keras too)
    assert history.history["f1_score"][0].shape == (1,)


def test_array_monitor_matches_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 4)).astype("float32")
    y = np.eye(3)[rng.integers(0, 3, 32)].astype("float32")
    for cls in ("EarlyStopping", "ReduceLROnPlateau"):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
        model.compile("sgd", "categorical_crossentropy", metrics=[keras.metrics.F1Score()])
        with pytest.raises(ValueError):
            model.fit(x, y, epochs=3, batch_size=32, verbose=0,
                      callbacks=[getattr(keras.callbacks, cls)(monitor="f1_score", mode="max", patience=1)])
        assert int(model.optimizer.iterations) == 2
