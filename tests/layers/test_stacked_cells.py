"""RNN([cell, cell]) / StackedRNNCells (Keras 3): the cells run in order at each step. Checked
by the harness, by the closed form "a stack of cells = stacked RNN layers with
return_sequences", and against keras when it is installed."""
import numpy as np
import pytest
from harness import check_layer

import dlcore as dl
from dlcore import layers as L

N, T, K, U1, U2 = 3, 5, 4, 6, 2
X = np.random.default_rng(0).normal(size=(N, T, K)).astype("float32")


def test_harness_rnn_over_stacked_cells():
    check_layer(L.RNN, dict(cell=L.StackedRNNCells([L.SimpleRNNCell(U1), L.LSTMCell(U2)]), return_sequences=True),
                (N, T, K), (N, T, U2), expected_num_trainable_weights=6)


def _stack_vs_layers(cells, layer_classes, units):
    stacked = L.RNN(cells, return_state=True)
    out, *states = stacked(X)
    first = layer_classes[0](units[0], return_sequences=True, return_state=True)
    second = layer_classes[1](units[1], return_state=True)
    seq, *s1 = first(X)
    last, *s2 = second(seq)
    first.set_weights([w.value for w in cells[0].weights])
    second.set_weights([w.value for w in cells[1].weights])
    seq, *s1 = first(X)
    last, *s2 = second(seq)
    return out, states, last, s1 + s2


@pytest.mark.parametrize("kinds", [(L.SimpleRNNCell, L.SimpleRNN), (L.LSTMCell, L.LSTM), (L.GRUCell, L.GRU)])
def test_a_stack_of_cells_equals_stacked_layers(kinds):
    cell_cls, layer_cls = kinds
    cells = [cell_cls(U1), L.LSTMCell(U2)]
    out, states, expected_out, expected_states = _stack_vs_layers(cells, [layer_cls, L.LSTM], [U1, U2])
    np.testing.assert_allclose(out.value, expected_out.value, rtol=1e-5, atol=1e-6)
    assert len(states) == len(expected_states)  # flat: the first cell's states, then the second's
    for s, e in zip(states, expected_states):
        np.testing.assert_allclose(s.value, e.value, rtol=1e-5, atol=1e-6)


def test_state_size_config_and_paths():
    rnn = L.RNN([L.SimpleRNNCell(U1), L.LSTMCell(U2)])
    assert isinstance(rnn.cell, L.StackedRNNCells)
    assert rnn.cell.state_size == [U1, U2, U2] and rnn.cell.output_size == U2
    rnn(X)
    paths = [w.path for w in rnn.weights]
    assert len(set(paths)) == len(paths) == 6
    clone = L.RNN.from_config(rnn.get_config())
    clone(X)
    clone.set_weights(rnn.get_weights())
    np.testing.assert_allclose(clone(X).value, rnn(X).value, rtol=1e-6)


def test_model_with_stacked_cells_trains_and_saves(tmp_path):
    model = dl.Sequential([dl.Input((T, K)), L.RNN([L.GRUCell(U1), L.GRUCell(U2)]), L.Dense(1)])
    model.compile("adam", "mse")
    history = model.fit(X, np.ones((N, 1), "float32"), epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = str(tmp_path / "m.dlc")
    model.save(path)
    loaded = dl.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)


def test_matches_keras():
    keras = pytest.importorskip("keras")
    ours = L.RNN([L.SimpleRNNCell(U1), L.GRUCell(U2)], return_sequences=True)
    out = ours(X)
    theirs = keras.layers.RNN([keras.layers.SimpleRNNCell(U1), keras.layers.GRUCell(U2)], return_sequences=True)
    theirs(X)
    theirs.set_weights(ours.get_weights())  # same weight order and layouts as Keras
    np.testing.assert_allclose(out.value, np.asarray(theirs(X)), rtol=1e-5, atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="non-empty list of cells"):
        L.StackedRNNCells([])
    with pytest.raises(ValueError, match="`call` method and a `state_size`"):
        L.RNN([L.SimpleRNNCell(2), L.Dense(3)])
    cells = L.StackedRNNCells([L.SimpleRNNCell(2), L.SimpleRNNCell(3)])
    cells.build((N, K))
    with pytest.raises(ValueError, match=r"expected 2 states \(sizes \[2, 3\]\), received 1"):
        cells(X[:, 0], [np.zeros((N, 2), "float32")])
