"""SwapEMAWeights, as ``keras.callbacks.SwapEMAWeights``: evaluate and predict with the
optimizer's moving averages of the weights (``use_ema=True``), train with the raw weights."""
import numpy as np

from ..registry import register
from .core import Callback


@register("callback")
class SwapEMAWeights(Callback):
    """Swaps the model's trainable weights with the optimizer's EMA copies around evaluation
    and prediction (``on_test_*``, ``on_predict_*``), so validation metrics are those of the
    averaged weights. ``swap_on_epoch=True`` also swaps at each epoch end and back at the next
    epoch's begin, so callbacks after it (ModelCheckpoint) see the EMA weights; at the last
    epoch the averages are restored so that fit's final overwrite leaves the EMA weights."""

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _ema_optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # LossScaleOptimizer
        if optimizer is None or not getattr(optimizer, "use_ema", False):
            raise ValueError("SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                             f"Received: use_ema={getattr(optimizer, 'use_ema', None)}")
        if not hasattr(optimizer, "_model_variables_moving_average"):
            raise ValueError("SwapEMAWeights: the optimizer has no moving averages yet; it is built on "
                             "the first training step (call fit, or optimizer.build(weights), first).")
        return optimizer

    def _swap_variables(self):
        optimizer = self._ema_optimizer()
        for variable, average in zip(optimizer._trainable_variables,
                                     optimizer._model_variables_moving_average):
            current = np.array(variable.value, copy=True)
            variable.value[...] = average
            average[...] = current

    def _finalize_ema_values(self):
        optimizer = self._ema_optimizer()
        for variable, average in zip(optimizer._trainable_variables,
                                     optimizer._model_variables_moving_average):
            average[...] = variable.value

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
            # fit overwrites the weights with the averages at its end: put the averages back
            if epoch == self.params.get("epochs", 0) - 1:
                self._finalize_ema_values()

    def _swap_in(self):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def _swap_out(self):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_test_begin(self, logs=None):
        self._swap_in()

    def on_test_end(self, logs=None):
        self._swap_out()

    def on_predict_begin(self, logs=None):
        self._swap_in()

    def on_predict_end(self, logs=None):
        self._swap_out()
