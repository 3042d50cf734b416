"""Data beyond arrays (Keras 3's data adapters): generators and iterables of batches,
PyDataset (threads, processes), scipy sparse matrices; with their errors."""
import warnings

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

RNG = np.random.default_rng(0)
X = RNG.normal(size=(24, 4)).astype("float32")
Y = RNG.integers(0, 3, 24)


def _model(lr=0.05):
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(dl.optimizers.SGD(lr), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _batches(x=X, y=Y, batch=8, repeat=1, weights=None):
    for _ in range(repeat):
        for i in range(0, len(x), batch):
            if weights is None:
                yield x[i:i + batch], y[i:i + batch]
            else:
                yield x[i:i + batch], y[i:i + batch], weights[i:i + batch]


def test_generator_fit_matches_array_fit():
    a, b = _model(), _model()
    ha = a.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    hb = b.fit(_batches(repeat=2), steps_per_epoch=3, epochs=2, verbose=0)
    for k in ha.history:
        np.testing.assert_allclose(ha.history[k], hb.history[k], rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


def test_iterable_of_batches_is_re_read_each_epoch_and_weights_travel():
    model = _model()
    class Reiterable:  # not a list: a list is one array per model input, as in Keras
        def __iter__(self):
            return _batches(weights=np.ones(24, "float32"))

    batches = Reiterable()
    history = model.fit(batches, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 3
    a = model.evaluate(batches, verbose=0)
    b = model.evaluate(X, Y, batch_size=8, verbose=0)
    assert a == pytest.approx(b, rel=1e-6)
    np.testing.assert_allclose(model.predict(iter([X[:10], X[10:]]), verbose=0), model.predict(X, verbose=0),
                               rtol=1e-6)


def test_generator_running_out_stops_training_with_a_warning():
    model = _model()
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(_batches(), steps_per_epoch=3, epochs=4, verbose=0)
    assert len(history.history["loss"]) == 1  # epoch 2 found nothing: Keras stops there


def test_generator_validation_data_with_validation_steps():
    model = _model()
    history = model.fit(X, Y, epochs=2, verbose=0, validation_data=_batches(repeat=10), validation_steps=2)
    assert len(history.history["val_loss"]) == 2


def test_generator_errors_are_clear():
    model = _model()

    def ragged():
        yield X[:8], Y[:8]
        yield X[:8, :3], Y[:8]

    with pytest.raises(ValueError, match=r"batch 2 of the generator has per-sample shapes x \[\(3,\)\], y \[\(\)\] "
                                         r"but its first batch had x \[\(4,\)\], y \[\(\)\]"):
        model.fit(ragged(), verbose=0)
    with pytest.raises(ValueError, match="mixes batch sizes"):
        model.fit(iter([(X[:8], Y[:7])]), verbose=0)
    with pytest.raises(ValueError, match="`y` must be None when x is a generator"):
        model.fit(_batches(), Y, verbose=0)
    with pytest.raises(ValueError, match="validation_split is only supported for arrays"):
        model.fit(_batches(), validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="batches hold no targets"):
        model.fit(iter([X[:8]]), verbose=0)
    with pytest.raises(TypeError, match=r"expected numeric data .* holding a str \('a'\)"):
        model.fit(iter([(np.array([["a", 1, 2, 3]], dtype=object), Y[:1])]), verbose=0)
    with pytest.raises(ValueError, match="tuple of 4 elements"):
        model.fit(iter([(X[:2], Y[:2], None, None)]), verbose=0)


class Batches(dl.utils.PyDataset):
    def __init__(self, n_batches=3, batch=8, length=None, **kwargs):
        super().__init__(**kwargs)
        self.n_batches, self.batch, self.length = n_batches, batch, length
        self.epochs_ended = 0
        self.fetched = []

    def __len__(self):
        return self.n_batches if self.length is None else self.length

    def __getitem__(self, index):
        if index >= self.n_batches:
            raise IndexError(f"batch {index} out of range")
        self.fetched.append(index)
        s = slice(index * self.batch, (index + 1) * self.batch)
        return X[s], Y[s]

    def on_epoch_end(self):
        self.epochs_ended += 1


@pytest.mark.parametrize("kwargs", [{}, {"workers": 2, "max_queue_size": 2},
                                    {"workers": 2, "use_multiprocessing": True}])
def test_py_dataset_matches_arrays(kwargs):
    a, b = _model(), _model()
    ha = a.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    data = Batches(**kwargs)
    hb = b.fit(data, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    assert data.epochs_ended == 2
    np.testing.assert_allclose(b.predict(data, verbose=0), b.predict(X, verbose=0), rtol=1e-6)
    assert b.evaluate(data, verbose=0) == pytest.approx(b.evaluate(X, Y, batch_size=8, verbose=0), rel=1e-6)


def test_py_dataset_shuffles_batch_order_and_sequence_alias():
    assert dl.utils.Sequence is dl.utils.PyDataset
    data = Batches()
    _model().fit(data, epochs=4, shuffle=True, verbose=0)
    orders = [data.fetched[i:i + 3] for i in range(0, 12, 3)]
    assert all(sorted(o) == [0, 1, 2] for o in orders) and len({tuple(o) for o in orders}) > 1


def test_py_dataset_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"__len__ returns 5 but __getitem__\(3\) raised IndexError"):
        model.fit(Batches(length=5), shuffle=False, verbose=0)
    with pytest.raises(ValueError, match="`workers` must be a positive integer"):
        Batches(workers=0)
    with pytest.raises(TypeError, match="use_multiprocessing"):
        Batches(use_multiprocessing="yes")

    class Endless(Batches):
        __len__ = None

        @property
        def num_batches(self):
            return None

    with pytest.raises(ValueError, match="no __len__ .* pass steps_per_epoch"):
        model.fit(Endless(), verbose=0)
    model.fit(Endless(n_batches=10), steps_per_epoch=2, epochs=2, verbose=0)


def test_scipy_sparse_inputs_are_densified_per_batch():
    sparse = pytest.importorskip("scipy.sparse")
    xs = sparse.random(24, 4, density=0.5, format="coo", random_state=0, dtype=np.float32)
    dense = xs.toarray()
    ha = _model().fit(dense, Y, batch_size=8, epochs=2, verbose=0)  # shuffled the same: one seed each
    b = _model()
    hb = b.fit(xs, Y, batch_size=8, epochs=2, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(b.predict(xs, verbose=0), b.predict(dense, verbose=0), rtol=1e-6)
    assert b.evaluate(xs, Y, verbose=0) == pytest.approx(b.evaluate(dense, Y, verbose=0), rel=1e-6)
    with pytest.raises(ValueError, match=r"\(None, 4\)|4"):
        b.fit(sparse.random(24, 5, format="csr", dtype=np.float32), Y, verbose=0)
    bad = sparse.csr_matrix(np.array([[np.nan, 0, 0, 0]] * 24, "float32"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        b.fit(bad, Y, verbose=0)


def test_class_weight_applies_to_generator_batches():
    a, b = _model(), _model()
    cw = {0: 2.0, 1: 1.0, 2: 0.5}
    ha = a.fit(X, Y, batch_size=8, epochs=1, shuffle=False, class_weight=cw, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hb = b.fit(_batches(), class_weight=cw, verbose=0)
    np.testing.assert_allclose(ha.history["loss"], hb.history["loss"], rtol=1e-6)


def test_progress_of_a_source_without_length_is_unknown(capsys):
    model = _model()
    model.fit(_batches(), epochs=1, verbose=1)
    model.predict(iter([X[:8], X[8:]]), verbose=1)
    out = capsys.readouterr().out
    assert "3/Unknown" in out and "2/Unknown" in out
