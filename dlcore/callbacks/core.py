"""Callbacks: hooks into fit / evaluate / predict (Keras 3 names, arguments, defaults, semantics).

fit calls, in order: ``on_train_begin``; per epoch ``on_epoch_begin``, per batch
``on_train_batch_begin`` / ``on_train_batch_end`` (which call the legacy ``on_batch_begin`` /
``on_batch_end``), the validation run's ``on_test_*`` hooks, ``on_epoch_end(epoch, logs)``;
then ``on_train_end``. ``logs`` is one dict per hook call shared by the callbacks in order, so a
callback that adds an entry (ReduceLROnPlateau's ``learning_rate``) is seen by the later ones
and by History. Setting ``model.stop_training = True`` ends fit after the current batch/epoch.
"""
import collections
import csv
import os
import shutil
import warnings

import numpy as np

from ..distribute.strategy import is_chief
from ..registry import register
from ..utils.progbar import Progbar


@register("callback")
class Callback:
    """Base class: override any ``on_*`` hook. ``self.model`` and ``self.params`` are set by fit."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass  # legacy alias of on_train_batch_begin
    def on_batch_end(self, batch, logs=None): pass  # legacy alias of on_train_batch_end

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass


@register("callback")
class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is a list, one value per epoch."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


@register("callback")
class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and a progress bar (verbose 1) or one line per epoch (verbose 2)."""

    def __init__(self, mode="train"):
        super().__init__()
        self.mode = mode
        self.bar = None

    def _new_bar(self):
        self.bar = Progbar(self.params.get("steps"), verbose=self.params.get("verbose", 1))  # None: unknown

    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("verbose", 1) == 1 or self.params.get("verbose") == 2:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}")
        self._new_bar()

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(batch + 1, sorted((logs or {}).items()))

    def on_epoch_end(self, epoch, logs=None):
        self.bar.finish(sorted((logs or {}).items()))

    def on_test_begin(self, logs=None):
        if self.mode == "test":
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if self.mode == "test":
            self.bar.update(batch + 1, sorted((logs or {}).items()))

    def on_test_end(self, logs=None):
        if self.mode == "test":
            self.bar.finish(sorted((logs or {}).items()))


class CallbackList:
    """Calls each callback's hook in order; fit adds History (and a ProgbarLogger when verbose)."""

    def __init__(self, callbacks=None, model=None, add_history=None, add_progbar=None, params=None):
        self.callbacks = list(callbacks or [])
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks must be Callback instances, received {type(cb).__name__}")
        if add_progbar is not None:
            self.callbacks.insert(0, add_progbar)
        if add_history is not None:
            self.callbacks.append(add_history)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params or {})

    def __getattr__(self, hook):
        if not hook.startswith("on_"):
            raise AttributeError(hook)
        indexed = hook.startswith(("on_epoch_", "on_batch_")) or "_batch_" in hook

        def call(*args):
            if len(args) == (1 if indexed else 0):
                args = args + ({},)  # Keras always passes a logs dict, so `lambda epoch, logs: ...` works
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return call



# ---- monitoring a quantity ----------------------------------------------------------------------
_UP = ("acc", "auc", "precision", "recall", "f1", "fbeta", "true_positives", "true_negatives", "iou",
       "cosine_similarity", "r2")
_DOWN = ("loss", "error", "crossentropy", "hinge", "divergence", "poisson", "mse", "mae", "mape", "msle",
         "rmse", "logcosh", "log_cosh", "false_positives", "false_negatives", "kld", "huber")


def _snake(name):
    import re

    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class MonitorCallback(Callback):
    """Base of the callbacks that watch a logged quantity (Keras 3's MonitorCallback):
    ``mode`` "min", "max" or "auto" (the direction inferred from the metric: losses and errors
    decrease, accuracies, AUC, precision, recall... increase); an improvement is a change larger
    than ``min_delta`` in that direction."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.", stacklevel=2)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None

    def _direction(self):
        if self.mode != "auto":
            return self.mode
        name = self.monitor[4:] if self.monitor.startswith("val_") else self.monitor
        if name == "loss" or name.endswith("_loss"):
            return "min"
        candidates = [name.lower()]
        for m in getattr(self.model, "metrics", None) or []:
            if getattr(m, "name", None) == name:
                direction = getattr(m, "_direction", None)
                if direction in ("up", "down"):
                    return "max" if direction == "up" else "min"
                candidates.insert(0, _snake(type(m).__name__))
        for text in candidates:
            if any(word in text for word in _UP):
                return "max"
            if any(word in text for word in _DOWN):
                return "min"
        raise ValueError(f"{type(self).__name__} callback received monitor={self.monitor}, but dlcore isn't able "
                         "to automatically determine whether that metric should be maximized or minimized. "
                         "Pass `mode='max'` in order to monitor based on the highest metric value, or pass "
                         "`mode='min'` in order to use the lowest value.")

    def _set_monitor_op(self):
        self.monitor_op = np.less if self._direction() == "min" else np.greater
        if self.monitor_op is np.less:
            self.min_delta *= -1

    def _is_improvement(self, monitor_value, reference_value):
        if reference_value is None:
            return True
        if self.monitor_op is None:
            self._set_monitor_op()
        better = self.monitor_op(np.asarray(monitor_value) - self.min_delta, reference_value)
        if np.size(better) != 1:
            # Keras 3 compares with ops.less/ops.greater and fails here too (the truth value of an
            # array): the first comparison of an array monitor (the second monitored epoch, or the
            # first with a baseline) raises, and nothing of the callback's state changes.
            raise ValueError(f"{type(self).__name__}: the monitored quantity `{self.monitor}` is an array of shape "
                             f"{np.shape(monitor_value)} (a per-class metric such as F1Score(average=None)), so "
                             "whether it improved is ambiguous. Monitor a scalar: a metric with an averaged "
                             "result (average='macro', 'micro' or 'weighted') or the loss.")
        return bool(better)


def _save_due(cb, batch):
    """Keras's integer save_freq: count the batches seen since the last save (the batch index
    restarts each epoch) and report when save_freq of them have passed."""
    if cb.save_freq == "epoch":
        return False
    last = cb._last_batch_seen
    cb._batches_seen_since_last_saving += batch + 1 if last is None or batch <= last else batch - last
    cb._last_batch_seen = batch
    if cb._batches_seen_since_last_saving >= cb.save_freq:
        cb._batches_seen_since_last_saving = 0
        return True
    return False


@register("callback")
class EarlyStopping(MonitorCallback):
    """Stop training when ``monitor`` has not improved (by more than ``min_delta``) for
    ``patience`` epochs. ``baseline``: training stops unless the quantity improves on it within
    ``patience`` epochs. ``restore_best_weights``: at the end, set the weights of the best epoch
    (from ``start_from_epoch`` on). ``start_from_epoch``: epochs of warm-up not monitored."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto", baseline=None,
                 restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.start_from_epoch = start_from_epoch
        self.best_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()  # the first monitored epoch's, until bettered
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(list(logs.keys()))}", stacklevel=2)
        return value


@register("callback")
class ModelCheckpoint(MonitorCallback):
    """Save the model (``.dlc``) or its weights (``save_weights_only``, ``.weights.dlc``) every
    epoch (or every ``save_freq`` batches). ``filepath`` may hold format fields filled from the
    epoch (1-based) and the logs: ``"ckpt-{epoch:02d}-{val_loss:.2f}.dlc"``. With
    ``save_best_only`` a file is written only when ``monitor`` improves (on
    ``initial_value_threshold`` at first, when given)."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, save_weights_only=False,
                 mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if self.save_freq != "epoch" and (not isinstance(self.save_freq, int) or isinstance(self.save_freq, bool)):
            raise ValueError(f"Unrecognized save_freq: {self.save_freq}. Expected save_freq are 'epoch' or "
                             "integer values")
        if save_weights_only:
            if not self.filepath.endswith((".weights.dlc", ".weights.h5")):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath "
                                 "provided must end in `.weights.dlc` (dlcore weights format) or `.weights.h5` "
                                 "(Keras 3). Received: "
                                 f"filepath={self.filepath}")
        elif not self.filepath.endswith((".dlc", ".keras")) or self.filepath.endswith(".weights.dlc"):
            raise ValueError("The filepath provided must end in `.dlc` (dlcore model format) or `.keras` (Keras 3). "
                             "Received: "
                             f"filepath={self.filepath}")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(epoch=self._current_epoch, batch=batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None and self.save_best_only:
            self._set_monitor_op()
        if self.save_freq == "epoch":
            self._save_model(epoch=epoch, batch=None, logs=logs)

    def _should_save_on_batch(self, batch):
        return _save_due(self, batch)

    def _should_save_model(self, epoch, batch, logs, filepath):
        logs = logs or {}
        if not self.save_best_only:
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=2)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn(f"Can save best model only when `monitor` is a scalar value. Received: {current}. "
                          "Falling back to `save_best_only=False`.", stacklevel=2)
            return True
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                      f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, batch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            self.model.save_weights(filepath, overwrite=True)
        else:
            self.model.save(filepath, overwrite=True)

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". Reason: {e}') from None


@register("callback")
class ReduceLROnPlateau(MonitorCallback):
    """Multiply the optimizer's learning rate by ``factor`` (not below ``min_lr``) when
    ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs, then wait
    ``cooldown`` epochs. Adds the current ``learning_rate`` to each epoch's logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0, **kwargs):
        super().__init__(monitor, mode, min_delta=min_delta)
        if "epsilon" in kwargs:
            warnings.warn("`epsilon` argument is deprecated and will be removed, use `min_delta` instead.",
                          stacklevel=2)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(optimizer.learning_rate)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(list(logs.keys()))}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                old_lr = float(optimizer.learning_rate)
                if old_lr > np.float32(self.min_lr):
                    new_lr = max(old_lr * self.factor, self.min_lr)
                    optimizer.learning_rate = new_lr
                    if self.verbose > 0:
                        print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new_lr}.")
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def in_cooldown(self):
        return self.cooldown_counter > 0


@register("callback")
class LearningRateScheduler(Callback):
    """At the start of each epoch set the learning rate to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), a float; adds ``learning_rate`` to each epoch's logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        try:
            learning_rate = self.schedule(epoch, float(optimizer.learning_rate))
        except TypeError:  # the old API: schedule(epoch)
            learning_rate = self.schedule(epoch)
        if not isinstance(learning_rate, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {learning_rate}")
        optimizer.learning_rate = float(learning_rate)
        if self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {learning_rate}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


@register("callback")
class CSVLogger(Callback):
    """Stream each epoch's logs to a CSV file: a header ``epoch,<keys in sorted order>`` (val_
    columns added when the first epoch has none), then one row per epoch. ``append=True`` keeps
    an existing file (without repeating its header)."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.sep = separator
        self.filename = os.fspath(filename)
        self.append = append
        self.writer = None
        self.keys = None
        self.append_header = True
        self.csv_file = None

    def on_train_begin(self, logs=None):
        self._writes = is_chief()  # distributed training: rank 0 writes the file
        if not self._writes:
            return
        if self.append:
            if os.path.exists(self.filename):
                with open(self.filename) as f:
                    self.append_header = not bool(len(f.readline()))
            mode = "a"
        else:
            mode = "w"
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.csv_file = open(self.filename, mode, newline="")
        self.writer = None
        self.keys = None

    def on_epoch_end(self, epoch, logs=None):
        if not self.__dict__.get("_writes", True):
            return
        logs = logs or {}

        def handle_value(k):
            is_zero_dim_ndarray = isinstance(k, np.ndarray) and k.ndim == 0
            if isinstance(k, str):
                return k
            if isinstance(k, collections.abc.Iterable) and not is_zero_dim_ndarray:
                return f'"[{", ".join(map(str, k))}]"'
            return k

        if self.keys is None:
            self.keys = sorted(logs.keys())
            if self.keys and not any(key.startswith("val_") for key in self.keys):
                self.keys.extend([f"val_{k}" for k in self.keys])
        if not self.writer:
            class CustomDialect(csv.excel):
                delimiter = self.sep

            self.writer = csv.DictWriter(self.csv_file, fieldnames=["epoch"] + (self.keys or []),
                                         dialect=CustomDialect)
            if self.append_header:
                self.writer.writeheader()
        row = collections.OrderedDict({"epoch": epoch})
        row.update((key, handle_value(logs.get(key, "NA"))) for key in self.keys)
        self.writer.writerow(row)
        self.csv_file.flush()

    def on_train_end(self, logs=None):
        if self.csv_file is not None and not self.csv_file.closed:
            self.csv_file.close()
        self.writer = None


@register("callback")
class TerminateOnNaN(Callback):
    """Stop training when a batch's loss is NaN or infinite (``raise_error=True``: raise a
    RuntimeError instead)."""

    def __init__(self, raise_error=False):
        super().__init__()
        self.raise_error = raise_error

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and (np.isnan(loss) or np.isinf(loss)):
            if self.raise_error:
                raise RuntimeError(f"NaN or Inf loss encountered at batch {batch}. Loss value: {loss}. "
                                   "Terminating training immediately.")
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


@register("callback")
class LambdaCallback(Callback):
    """A callback from plain functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch,
    logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_train_batch_begin(batch,
    logs)``, ``on_train_batch_end(batch, logs)`` (other hooks as keyword arguments)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        for hook, fn in (("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
                         ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
                         ("on_train_batch_begin", on_train_batch_begin),
                         ("on_train_batch_end", on_train_batch_end)):
            if fn is not None:
                setattr(self, hook, fn)


@register("callback")
class BackupAndRestore(Callback):
    """Resume training interrupted mid-way (an exception, a killed process): at the end of each
    epoch (or every ``save_freq`` batches) the weights, the optimizer state, dlcore's random state
    and the epoch are written to ``backup_dir`` (one ``.dlc`` checkpoint, replaced atomically);
    a later ``fit`` with this callback on the same model (or a rebuilt one) restores them and
    continues from the epoch after the last completed one. With ``save_freq="epoch"`` the resumed
    run is bit-identical to an uninterrupted one. ``double_checkpoint`` keeps the previous
    checkpoint as a fallback; ``delete_checkpoint`` removes the checkpoint when training ends
    (the directory too, if it is then empty)."""

    _FILE = "latest.dlc"

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False, delete_checkpoint=True):
        super().__init__()
        self.save_freq = save_freq
        self.double_checkpoint = double_checkpoint
        self.delete_checkpoint = delete_checkpoint
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = 0
        self._current_epoch = 0
        if not backup_dir:
            raise ValueError("Empty `backup_dir` argument passed")
        self.backup_dir = os.fspath(backup_dir)
        self._path = os.path.join(self.backup_dir, self._FILE)
        self._prev_path = self._path + ".bkp"
        if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool)):
            raise ValueError(f"Invalid value for argument `save_freq`. Received: save_freq={save_freq}. "
                             "Expected either 'epoch' or an integer value.")

    def on_train_begin(self, logs=None):
        if not self.model.built:
            raise ValueError("To use the BackupAndRestore callback, your model must be built before you call "
                             f"`fit()`. Model {self.model.name} is unbuilt. You can build it beforehand by "
                             "calling it on a batch of data.")
        try:
            self._load(self._path)
        except ValueError:
            if not (self.double_checkpoint and os.path.exists(self._prev_path)):
                raise
            warnings.warn(f"BackupAndRestore: {self._path} could not be read; restoring the previous "
                          "checkpoint instead", stacklevel=2)
            self._load(self._prev_path)

    def _load(self, path):
        from .. import saving

        if not os.path.exists(path):
            return
        training = saving.restore_checkpoint(self.model, path) or {}
        epoch = training.get("epoch", 0)
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"{path!r}: invalid epoch {epoch!r} in the checkpoint")
        self._current_epoch = epoch
        self.model._initial_epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if self.save_freq == "epoch":
            self._save_model()

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model()

    def _save_model(self):
        from .. import saving

        if not is_chief():  # distributed training: rank 0 writes the backup
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self._path):
            shutil.copyfile(self._path, self._prev_path)
        saving.save_checkpoint(self.model, self._path,
                               {"epoch": self._current_epoch, "batch": self._last_batch_seen})

    def _should_save_on_batch(self, batch):
        return _save_due(self, batch)

    def on_train_end(self, logs=None):
        if not self.delete_checkpoint or not is_chief():
            return
        for path in (self._path, self._prev_path):
            if os.path.exists(path):
                os.remove(path)
        if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
            os.rmdir(self.backup_dir)


__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "MonitorCallback", "EarlyStopping",
           "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler", "CSVLogger", "TerminateOnNaN",
           "LambdaCallback", "BackupAndRestore"]
