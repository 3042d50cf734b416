"""``pickle.dumps(model)`` after ``fit`` (issue 10): the model and its compiled optimizer come back
as a working model that predicts the same and keeps training exactly as the original does."""
import pickle

import numpy as np
import pytest

import dlcore as dl

pytestmark = pytest.mark.usefixtures("fresh_session")


def _data(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5, 3)).astype(np.float32), rng.normal(size=(n, 2)).astype(np.float32)


def _functional():
    inputs = dl.Input(shape=(5, 3))
    h = dl.layers.LSTM(4)(inputs)
    h = dl.layers.Dropout(0.2, seed=1)(h)
    return dl.Model(inputs, dl.layers.Dense(2)(h))


def _sequential():
    return dl.Sequential([dl.Input(shape=(5, 3)), dl.layers.Flatten(), dl.layers.Dense(4, activation="relu"),
                          dl.layers.BatchNormalization(), dl.layers.Dense(2)])


OPTIMIZERS = [
    lambda: dl.optimizers.SGD(0.05, momentum=0.9, nesterov=True),
    lambda: dl.optimizers.Adagrad(0.05),
    lambda: dl.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
    lambda: dl.optimizers.Adam(0.01, amsgrad=True),
    lambda: dl.optimizers.AdamW(0.01),
    lambda: dl.optimizers.Adamax(0.01),
    lambda: dl.optimizers.Nadam(0.01),
]


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS, ids=lambda f: type(f()).__name__)
@pytest.mark.parametrize("make_model", [_sequential, _functional], ids=["sequential", "functional"])
def test_a_fitted_model_pickles_and_keeps_training(make_model, make_optimizer):
    x, y = _data()
    model = make_model()
    model.compile(optimizer=make_optimizer(), loss="mse", metrics=["mae"])
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)

    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    assert clone.optimizer.iterations == model.optimizer.iterations == 2
    for a, b in zip(clone.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a, b)

    # both keep training, step for step the same; the clone's slots are its own
    again = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history
    clone_again = clone.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0).history
    assert again.keys() == clone_again.keys()
    for key in again:
        np.testing.assert_allclose(clone_again[key], again[key], rtol=1e-6)
    np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    for a, b in zip(clone.optimizer.variables, model.optimizer.variables):
        assert not np.shares_memory(a, b)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_the_clone_updates_its_own_weights_through_its_optimizer():
    x, y = _data()
    model = _sequential()
    model.compile(optimizer=dl.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    clone = pickle.loads(pickle.dumps(model))
    before = [w.copy() for w in model.get_weights()]
    clone.train_on_batch(x, y)
    for w, b in zip(model.get_weights(), before):  # the original did not move
        np.testing.assert_array_equal(w, b)
    optimizer = clone.optimizer
    assert all(v is w for v, w in zip(optimizer._trainable_variables, clone.trainable_weights))
    for flat, slots in ((optimizer._flat_m, optimizer._momentums), (optimizer._flat_v, optimizer._velocities)):
        assert all(np.shares_memory(f, s) for f, s in zip(flat, slots))


def test_weight_decay_exclusions_survive_pickling():
    x, y = _data()
    model = _sequential()
    optimizer = dl.optimizers.AdamW(0.01, weight_decay=0.5)
    optimizer.exclude_from_weight_decay(var_list=[model.layers[-1].kernel])
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    clone = pickle.loads(pickle.dumps(model))
    assert clone.optimizer._excluded_variables[0] is clone.layers[-1].kernel
    assert not clone.optimizer._use_weight_decay(clone.layers[-1].kernel)
    assert clone.optimizer._use_weight_decay(clone.layers[1].kernel)
