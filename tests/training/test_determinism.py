"""Seeded training is bit-identical run to run: ``dl.utils.set_random_seed`` fixes the initial
weights, dropout masks and shuffling; another seed gives another run."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _data():
    rng = np.random.default_rng(123)  # the data does not depend on dlcore's seed
    x = rng.normal(size=(48, 6)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(6, 3)), axis=1)
    return x, y


def _run(seed, optimizer="adam"):
    """Build, compile and fit from ``set_random_seed(seed)``: Dropout, shuffling, a validation split."""
    dl.utils.set_random_seed(seed)
    model = dl.Sequential([
        dl.Input(shape=(6,)),
        layers.Dense(16, activation="relu", kernel_regularizer=dl.regularizers.L2(1e-4)),
        layers.Dropout(0.3),
        layers.Dense(8, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = _data()
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=True, validation_split=0.25, verbose=0)
    return model.get_weights(), history.history, model.predict(x, verbose=0)


def test_same_seed_is_bit_identical():
    weights_a, history_a, pred_a = _run(0)
    dl.utils.clear_session()
    weights_b, history_b, pred_b = _run(0)
    assert history_a == history_b  # floats compared exactly
    assert len(weights_a) == len(weights_b) == 6
    for i, (a, b) in enumerate(zip(weights_a, weights_b)):
        assert a.tobytes() == b.tobytes(), f"weight {i} differs between two runs with the same seed"
    assert pred_a.tobytes() == pred_b.tobytes()


def test_different_seed_differs():
    weights_a, history_a, _ = _run(0)
    weights_c, history_c, _ = _run(1)
    assert history_a["loss"] != history_c["loss"]
    assert all(not np.array_equal(a, c) for a, c in zip(weights_a[::2], weights_c[::2]))  # every kernel


def test_seed_governs_dropout_and_shuffling_not_only_initialization():
    """Same initial weights, then two fits from different seeds: only the dropout masks and the
    batch order differ, and they must change the result."""
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.5),
                           layers.Dense(3, activation="softmax")])
    initial = model.get_weights()
    x, y = _data()
    results = []
    for seed in (5, 5, 6):
        model.set_weights(initial)
        model.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        dl.utils.set_random_seed(seed)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(results[0], results[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results[0][0], results[2][0])


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None, True])
def test_set_random_seed_rejects_non_integers(seed):
    with pytest.raises(ValueError, match="non-negative integer"):
        dl.utils.set_random_seed(seed)
