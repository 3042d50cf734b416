"""Callbacks: hooks into fit / evaluate / predict (Keras semantics)."""
from .registry import register
from .utils.progbar import Progbar


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
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass
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
        self.bar = Progbar(self.params.get("steps") or 1, verbose=self.params.get("verbose", 1))

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

        def call(*args):
            for cb in self.callbacks:
                getattr(cb, hook)(*args)

        return call
