"""int8 LSTM / GRU (a dlcore extension of ``quantize("int8")``: Keras 3.15 quantizes no recurrent
layer): variables, outputs against the NumPy int8 reference, the accuracy bound on the runner's LSTM
workload, Bidirectional, saving, errors, inference only, the kernels held once, and PyTorch's dynamic
quantization of the same LSTM as a peer."""
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import quantized as ref  # noqa: E402


def _x(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _model(layer, t_len=7, k=5):
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input((t_len, k)), layer])
    model.build((None, t_len, k))
    return model


def _projection(cell, x, bias):
    """z = int8 x W + bias over all steps (the reference's dense product), (N, T, G)."""
    n, t_len, k = x.shape
    z = ref.int8_dense(x.reshape(n * t_len, k), cell.kernel.value, cell.kernel_scale.value, bias)
    return z.reshape(n, t_len, -1)


def test_lstm_quantize_variables_and_policy():
    model = _model(layers.LSTM(16, name="lstm"))
    lstm = model.layers[0]
    kernel, recurrent = lstm.cell.kernel.value.copy(), lstm.cell.recurrent_kernel.value.copy()
    model.quantize("int8")
    assert lstm.quantization_mode == "int8" and lstm.dtype_policy.name == "int8_from_float32"
    assert [(w.path, w.dtype, w.shape) for w in lstm.weights] == [
        ("lstm/lstm_cell/bias", np.float32, (64,)), ("lstm/lstm_cell/kernel", np.int8, (5, 64)),
        ("lstm/lstm_cell/kernel_scale", np.float32, (64,)), ("lstm/lstm_cell/recurrent_kernel", np.int8, (16, 64)),
        ("lstm/lstm_cell/recurrent_kernel_scale", np.float32, (64,))]
    assert lstm.trainable_weights == [lstm.cell.bias]
    assert lstm.get_config()["dtype"] == "int8_from_float32"
    for w, v, s in ((kernel, lstm.cell.kernel, lstm.cell.kernel_scale),
                    (recurrent, lstm.cell.recurrent_kernel, lstm.cell.recurrent_kernel_scale)):
        q, scale = ref.quantize_rows(w.T)  # per output column
        np.testing.assert_array_equal(v.value, q.T)
        np.testing.assert_array_equal(s.value, scale)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_int8_lstm_matches_reference(go_backwards):
    model = _model(layers.LSTM(12, return_sequences=True, go_backwards=go_backwards))
    model.quantize("int8")
    cell = model.layers[0].cell
    x = _x((3, 7, 5))
    xs = x[:, ::-1] if go_backwards else x
    z = _projection(cell, xs, cell.bias.value)
    u = cell.units
    expected, _, _ = ref.int8_lstm(z, cell.recurrent_kernel.value, cell.recurrent_kernel_scale.value,
                                   np.zeros((3, u), np.float32), np.zeros((3, u), np.float32))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=2e-4)


@pytest.mark.parametrize("reset_after", [True, False])
def test_int8_gru_matches_reference(reset_after):
    model = _model(layers.GRU(12, reset_after=reset_after, return_state=True))
    model.quantize("int8")
    cell = model.layers[0].cell
    x = _x((3, 7, 5), seed=2)
    u, b = cell.units, cell.bias.value
    bias_in, brh = (b, None) if not reset_after else (b[0] + np.concatenate([b[1][:2 * u], np.zeros(u, np.float32)]),
                                                      b[1][2 * u:])
    z = _projection(cell, x, bias_in)
    _, h = ref.int8_gru(z, cell.recurrent_kernel.value, cell.recurrent_kernel_scale.value,
                        np.zeros((3, u), np.float32), brh, reset_after)
    out, state = model(x)
    np.testing.assert_allclose(out.value, h, atol=2e-4)
    np.testing.assert_array_equal(out.value, state.value)


def test_int8_lstm_masks_and_initial_state():
    inp, h0, c0 = dl.Input((6, 4)), dl.Input((8,)), dl.Input((8,))
    masked = layers.Masking(0.0)(inp)
    out = layers.LSTM(8, return_sequences=True)(masked, initial_state=[h0, c0])
    model = dl.Model([inp, h0, c0], out)
    x = _x((3, 6, 4), seed=3)
    x[1, 2:] = 0.0  # masked steps repeat the last output
    states = [_x((3, 8), seed=4) * 0.5, _x((3, 8), seed=5) * 0.5]
    y_float = model.predict([x] + states, verbose=0)
    model.quantize("int8")
    y = model.predict([x] + states, verbose=0)
    np.testing.assert_array_equal(y[1, 2:], np.broadcast_to(y[1, 1], (4, 8)))
    assert np.abs(y - y_float).max() < 0.02


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_int8_recurrent_accuracy_on_the_runner_workload(kind):
    """The runner's LSTM workload (128 units, 50 steps, 32 features, Dense(10) softmax): the int8 model's
    last hidden state stays within 0.01 of float32 (|h| < 1) and its probabilities within 0.002."""
    dl.utils.set_random_seed(0)
    inp = dl.Input((50, 32))
    h = getattr(layers, kind)(128)(inp)
    model = dl.Model(inp, [h, layers.Dense(10, activation="softmax")(h)])
    x = _x((16, 50, 32))
    h_float, p_float = model.predict_on_batch(x)
    model.quantize("int8")
    h_int8, p_int8 = model.predict_on_batch(x)
    assert np.abs(h_int8 - h_float).max() < 0.01
    assert np.abs(p_int8 - p_float).max() < 0.002


@pytest.mark.parametrize("ext", [".dlc", ".keras"])
def test_int8_bidirectional_save_load(tmp_path, ext):
    inp = dl.Input((7, 5))
    out = layers.Dense(3)(layers.Bidirectional(layers.GRU(8, return_sequences=True))(inp))
    model = dl.Model(inp, out)
    x = _x((4, 7, 5))
    y_float = model.predict_on_batch(x)
    model.quantize("int8")
    assert model.float_layers == []
    y = model.predict_on_batch(x)
    assert np.abs(y - y_float).max() < 0.05 * np.abs(y_float).max()
    path = os.fspath(tmp_path / f"m{ext}")
    model.save(path)
    loaded = dl.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), y)
    ints = [w for w in loaded.weights if w.dtype == np.int8]
    assert len(ints) == 5  # two kernels per direction and the Dense kernel
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_int8_recurrent_errors_and_float_layers():
    model = _model(layers.LSTM(4))
    with pytest.raises(ValueError, match="invalid quantization mode"):
        model.layers[0].quantize("int4")
    model.quantize("int8")
    with pytest.raises(ValueError, match="already quantized"):
        model.layers[0].quantize("int8")
    x = _x((2, 7, 5))
    with pytest.raises(ValueError, match="inference only"):
        with dl.GradientTape():
            model(x, training=True)
    simple = _model(layers.SimpleRNN(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simple.quantize("int8")
    assert simple.float_layers == ["simple_rnn_cell"]
    with pytest.raises(TypeError, match="SimpleRNN"):
        simple.layers[0].quantize("int8")
    unbuilt = layers.GRU(4)
    with pytest.raises(ValueError, match="isn't yet built"):
        unbuilt.quantize("int8")
    wide = dl.Sequential([dl.Input((3, 2)), layers.LSTM(4, dtype="float64")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wide.quantize("int8")
    assert wide.float_layers == ["lstm_cell"]


def test_int8_kernels_held_once():
    """After a call, each int8 kernel lives only in its packed panels; ``value`` unpacks a read-only
    Keras-layout copy, and ``assign`` replaces it (repacked on the next call)."""
    model = _model(layers.GRU(16))
    model.quantize("int8")
    cell = model.layers[0].cell
    x = _x((2, 7, 5))
    y = model.predict_on_batch(x)
    before = cell.recurrent_kernel.value.copy()
    for v in (cell.kernel, cell.recurrent_kernel):
        assert v._keras is None and v._packs is not None
    assert len(cell.recurrent_kernel._packs) == 2  # GRU: the z, r columns and the h columns
    with pytest.raises(ValueError, match="read-only"):
        cell.recurrent_kernel.value[0, 0] = 1
    cell.recurrent_kernel.assign(np.zeros_like(before))
    assert not np.array_equal(model.predict_on_batch(x), y)
    cell.recurrent_kernel.assign(before)
    np.testing.assert_array_equal(model.predict_on_batch(x), y)
    with pytest.raises(ValueError, match="cannot assign"):
        cell.recurrent_kernel.assign(before[:1])


def test_int8_lstm_against_torch_dynamic_quantization():
    """PyTorch's dynamic quantization of the same LSTM (torch.ao.quantization.quantize_dynamic) as a peer:
    dlcore's int8 error against float32 is no worse than twice PyTorch's."""
    torch = pytest.importorskip("torch")
    dl.utils.set_random_seed(0)
    model = _model(layers.LSTM(32), t_len=20, k=8)
    cell = model.layers[0].cell
    w, r, b = (v.value.copy() for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    x = _x((8, 20, 8))
    y_float = model.predict_on_batch(x)
    model.quantize("int8")
    err = np.abs(model.predict_on_batch(x) - y_float).max()
    net = torch.nn.LSTM(8, 32, batch_first=True)
    with torch.no_grad():  # Keras gates i, f, c, o = PyTorch's i, f, g, o; (in, 4U) -> (4U, in)
        net.weight_ih_l0.copy_(torch.from_numpy(w.T))
        net.weight_hh_l0.copy_(torch.from_numpy(r.T))
        net.bias_ih_l0.copy_(torch.from_numpy(b))
        net.bias_hh_l0.zero_()
        out_float = net(torch.from_numpy(x))[1][0][0].numpy()
        np.testing.assert_allclose(out_float, y_float, atol=1e-5)
        # quantize_dynamic swaps children only: the LSTM goes in a container
        qnet = torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(net), {torch.nn.LSTM}, dtype=torch.qint8)
        assert type(qnet[0]) is not torch.nn.LSTM
        torch_err = np.abs(qnet(torch.from_numpy(x))[1][0][0].numpy() - y_float).max()
    print(f"int8 max error vs float32: dlcore {err:.2e}, PyTorch dynamic {torch_err:.2e}")
    assert err <= 2 * torch_err + 1e-4, (err, torch_err)
