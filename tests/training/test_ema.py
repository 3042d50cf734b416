"""use_ema in fit and the SwapEMAWeights callback (Keras 3 semantics): evaluation inside fit
sees the moving averages, training continues from the raw weights, fit ends with the averages."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import callbacks as C
from dlcore import optimizers as O


def _data():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    return x, (x @ rng.standard_normal((3, 1))).astype(np.float32)


def _model(**opt_kwargs):
    dl.utils.set_random_seed(1)
    model = dl.Sequential([dl.layers.Input((3,)), dl.layers.Dense(1)])
    model.compile(optimizer=O.SGD(learning_rate=0.05, **opt_kwargs), loss="mse")
    return model


class _Record(C.Callback):
    """Records the weights seen at on_test_begin and at epoch end."""

    def __init__(self):
        super().__init__()
        self.at_test, self.at_epoch_end = [], []

    def on_test_begin(self, logs=None):
        self.at_test.append([w.copy() for w in self.model.get_weights()])

    def on_epoch_end(self, epoch, logs=None):
        self.at_epoch_end.append([w.copy() for w in self.model.get_weights()])


def test_fit_ends_with_the_moving_averages():
    x, y = _data()
    model = _model(use_ema=True, ema_momentum=0.9)
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for w, average in zip(model.get_weights(), model.optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(w, average)


@pytest.mark.parametrize("swap_on_epoch", [False, True])
def test_swap_ema_weights_evaluates_with_the_averages(swap_on_epoch):
    x, y = _data()
    model = _model(use_ema=True, ema_momentum=0.9)
    record = _Record()
    averages = []

    class _Averages(C.Callback):
        def on_test_begin(self, logs=None):
            opt = self.model.optimizer
            # after SwapEMAWeights: the averages are in the model, the raw weights in the slots
            averages.append([w.copy() for w in self.model.get_weights()])
            raw.append([a.copy() for a in opt._model_variables_moving_average])

    raw = []
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_data=(x, y),
              callbacks=[C.SwapEMAWeights(swap_on_epoch=swap_on_epoch), _Averages(), record])
    assert len(averages) == 3
    for epoch in range(3):
        # training continued from the raw weights: the model and slots hold different values
        assert not all(np.array_equal(a, r) for a, r in zip(averages[epoch], raw[epoch]))
    # at epoch end, callbacks after it see the averages with swap_on_epoch, else the raw weights
    expected = averages if swap_on_epoch else raw
    for seen, want in zip(record.at_epoch_end, expected):
        for a, b in zip(seen, want):
            np.testing.assert_array_equal(a, b)
    # fit ends with the averages in the model either way
    for w, average in zip(model.get_weights(), model.optimizer._model_variables_moving_average):
        np.testing.assert_array_equal(w, average)


def test_swap_ema_weights_evaluate_restores_raw_weights():
    x, y = _data()
    model = _model(use_ema=True, ema_momentum=0.5)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.optimizer.apply([np.ones_like(w) for w in model.get_weights()], model.trainable_weights)
    before = [w.copy() for w in model.get_weights()]
    averages = [a.copy() for a in model.optimizer._model_variables_moving_average]
    swap = C.SwapEMAWeights()
    ema_loss = model.evaluate(x, y, verbose=0, callbacks=[swap])
    raw_loss = model.evaluate(x, y, verbose=0)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    model.set_weights(averages)
    assert ema_loss == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-6)
    assert ema_loss != pytest.approx(raw_loss, rel=1e-6)


def test_swap_ema_weights_requires_use_ema():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="use_ema=True"):
        model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), callbacks=[C.SwapEMAWeights()])


def test_swap_ema_weights_with_loss_scale_optimizer():
    x, y = _data()
    dl.utils.set_random_seed(1)
    model = dl.Sequential([dl.layers.Input((3,)), dl.layers.Dense(1)])
    model.compile(optimizer=O.LossScaleOptimizer(O.Adam(0.01, use_ema=True)), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0, validation_data=(x, y),
              callbacks=[C.SwapEMAWeights(swap_on_epoch=True)])
    inner = model.optimizer.inner_optimizer
    for w, average in zip(model.get_weights(), inner._model_variables_moving_average):
        np.testing.assert_array_equal(w, average)
