"""TensorBoard, as ``keras.callbacks.TensorBoard``: scalars of the logs and histograms of the
weights, written as TensorBoard event files (``log_dir/train``, ``log_dir/validation``) with
``tensorboardX`` (the optional extra ``dlcore[tensorboard]``; TensorFlow is not needed to write
or to read them)."""
import os
import time

import numpy as np

from ..distribute.strategy import is_chief
from ..registry import register
from .core import Callback

_EXTRA_HINT = ("The TensorBoard callback writes event files with the `tensorboardX` package, which is "
               "not installed: install the optional extra with `pip install \"dlcore[tensorboard]\"` "
               "(or `pip install tensorboardX`).")


def _summary_writer_class():
    try:
        from tensorboardX import SummaryWriter
    except ImportError as exc:
        raise ImportError(_EXTRA_HINT) from exc
    return SummaryWriter


def _scalar(value):
    """A log value as a float, or None for values that are not scalars."""
    value = getattr(value, "value", value)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return float(array) if array.size == 1 else None


@register("callback")
class TensorBoard(Callback):
    """``TensorBoard(log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
    write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
    embeddings_metadata=None)``.

    Per epoch (step = epoch index): ``epoch_<name>`` for each training log in ``train/`` and for
    each ``val_<name>`` log (prefix dropped) in ``validation/``, ``epoch_learning_rate``, and with
    ``write_steps_per_second`` ``epoch_steps_per_second``. ``update_freq`` "batch" or an integer
    n also writes ``batch_<name>`` every n training batches (step = global batch count). Every
    ``histogram_freq`` epochs, a histogram of each weight (``<weight path>/histogram``). After a
    validation run inside fit, ``evaluation_<name>_vs_iterations`` (step = optimizer iterations).
    dlcore has no TensorFlow graph, so ``write_graph`` writes nothing; images, profiling and
    embeddings are not supported and raise a ValueError when requested."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        try:
            log_dir = os.fspath(log_dir)
        except TypeError:
            raise TypeError(f"TensorBoard: `log_dir` must be a path; received {type(log_dir).__name__}") from None
        if not isinstance(histogram_freq, int) or isinstance(histogram_freq, bool) or histogram_freq < 0:
            raise ValueError("TensorBoard: `histogram_freq` must be an integer >= 0. Received: "
                             f"histogram_freq={histogram_freq!r}")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (not isinstance(update_freq, int) or isinstance(update_freq, bool)
                                       or update_freq < 1):
            raise ValueError("TensorBoard: `update_freq` must be 'epoch', 'batch' or an integer >= 1. "
                             f"Received: update_freq={update_freq!r}")
        for arg, value in (("write_images", write_images), ("profile_batch", profile_batch),
                           ("embeddings_freq", embeddings_freq), ("embeddings_metadata", embeddings_metadata)):
            if value:
                raise ValueError(f"TensorBoard: `{arg}` is not supported by dlcore (no images, profiler or "
                                 f"embedding projector). Received: {arg}={value!r}")
        self._writer_class = _summary_writer_class()
        self.log_dir = log_dir
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self._writers = {}
        self._global_train_batch = 0
        self._epoch_start = None
        self._epoch_batches = 0

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_writers"] = {}
        return state

    def _writer(self, which):
        writer = self._writers.get(which)
        if writer is None:
            writer = self._writers[which] = self._writer_class(log_dir=os.path.join(self.log_dir, which))
        return writer

    def _write_scalars(self, which, prefix, logs, step):
        writer = None
        for name, value in logs.items():
            value = _scalar(value)
            if value is not None:
                writer = writer or self._writer(which)
                writer.add_scalar(prefix + name, value, global_step=int(step))

    def _close(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_train_begin(self, logs=None):
        self._global_train_batch = 0

    def on_train_end(self, logs=None):
        self._close()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()
        self._epoch_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        self._epoch_batches += 1
        if not is_chief() or self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        self._write_scalars("train", "batch_", logs or {}, self._global_train_batch)

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if not is_chief() or optimizer is None:
            return
        self._write_scalars("validation", "evaluation_", {f"{k}_vs_iterations": v for k, v in (logs or {}).items()},
                            optimizer.iterations)

    def on_epoch_end(self, epoch, logs=None):
        if not is_chief():
            return
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in train:
            train["learning_rate"] = optimizer.learning_rate
        if self.write_steps_per_second and self._epoch_start is not None:
            elapsed = time.perf_counter() - self._epoch_start
            train["steps_per_second"] = self._epoch_batches / elapsed if elapsed > 0 else 0.0
        self._write_scalars("train", "epoch_", train, epoch)
        if val:
            self._write_scalars("validation", "epoch_", val, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        for writer in self._writers.values():
            writer.flush()

    def _log_weights(self, epoch):
        writer = self._writer("train")
        for weight in self.model.weights:
            name = (getattr(weight, "path", None) or weight.name).replace(":", "_")
            values = np.asarray(weight.value, dtype=np.float64)
            if values.size:
                writer.add_histogram(name + "/histogram", values, global_step=int(epoch))
