"""Recurrent models on "gpu:0" under NUMBA_ENABLE_CUDASIM=1 equal the CPU (run by
tests/cuda/test_cudasim.py in its own process): an Embedding-LSTM-Dense step, the three cells with
return_sequences both ways, masks, go_backwards, save on GPU / load on CPU."""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

import dlcore as dl  # noqa: E402
from dlcore import devices  # noqa: E402

RNG = np.random.default_rng(0)
IDS = RNG.integers(1, 12, (6, 4))
IDS[0, 2:] = 0  # padding, masked with mask_zero
IDS[1] = 0  # a fully masked row: its LSTM output is zeros
LABELS = RNG.integers(0, 3, 6)


def lstm_model(mask_zero=False):
    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(4,), dtype="int64"), dl.layers.Embedding(12, 4, mask_zero=mask_zero),
                           dl.layers.LSTM(3), dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def assert_same_weights(gpu, cpu, rtol=1e-4):
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        assert isinstance(b, np.ndarray)
        np.testing.assert_allclose(b, a, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("mask_zero", [True])  # the unmasked cells: test_recurrent_layers_...
def test_embedding_lstm_dense_step_on_gpu_equals_cpu(mask_zero):
    cpu = lstm_model(mask_zero)
    cpu_logs = cpu.fit(IDS, LABELS, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    with dl.device("gpu:0"):
        gpu = lstm_model(mask_zero)
        assert all(devices.is_device_array(v.value) for v in gpu.trainable_weights)
        gpu_logs = gpu.fit(IDS, LABELS, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    assert_same_weights(gpu, cpu)
    np.testing.assert_allclose(gpu_logs["loss"], cpu_logs["loss"], rtol=1e-4)
    assert gpu_logs["accuracy"] == cpu_logs["accuracy"]
    probs = gpu.predict(IDS, verbose=0)
    assert type(probs) is np.ndarray
    np.testing.assert_allclose(probs, cpu.predict(IDS, verbose=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("ext", ["keras"])  # .dlc and .keras share the GPU weight copy-out (sim_training)
def test_lstm_saved_on_gpu_loads_on_cpu(tmp_path, ext):
    with dl.device("gpu:0"):
        gpu = lstm_model()
        gpu.fit(IDS, LABELS, epochs=1, batch_size=6, verbose=0)
        expected = gpu.predict(IDS, verbose=0)
        gpu.save(tmp_path / f"m.{ext}")
    cpu = dl.saving.load_model(tmp_path / f"m.{ext}")
    assert all(type(v.value) is np.ndarray for v in cpu.weights)
    np.testing.assert_allclose(cpu.predict(IDS, verbose=0), expected, rtol=1e-5, atol=1e-6)


def rnn_model(layer, return_sequences):
    dl.utils.clear_session()
    dl.utils.set_random_seed(1)
    model = dl.Sequential([dl.Input(shape=(3, 3)), layer(return_sequences), dl.layers.Dense(2)])
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="mse")
    return model


LAYERS = {
    "simple_rnn": lambda seq: dl.layers.SimpleRNN(3, return_sequences=seq),
    "lstm_backwards": lambda seq: dl.layers.LSTM(3, return_sequences=seq, go_backwards=True),
    "gru": lambda seq: dl.layers.GRU(3, return_sequences=seq),
    "gru_reset_before": lambda seq: dl.layers.GRU(3, return_sequences=seq, reset_after=False),
}


# each cell's other return_sequences mode runs in test_recurrent_ops_with_states_mask_and_go_backwards_on_gpu
@pytest.mark.parametrize("name,return_sequences", [("simple_rnn", False), ("lstm_backwards", True), ("gru", False),
                                                   ("gru_reset_before", True)])
def test_recurrent_layers_train_and_predict_on_gpu(name, return_sequences):
    x = RNG.standard_normal((5, 3, 3)).astype(np.float32)
    y = RNG.standard_normal((5, 3, 2) if return_sequences else (5, 2)).astype(np.float32)
    cpu = rnn_model(LAYERS[name], return_sequences)
    cpu.fit(x, y, epochs=1, batch_size=5, verbose=0)
    with dl.device("gpu:0"):
        gpu = rnn_model(LAYERS[name], return_sequences)
        gpu.fit(x, y, epochs=1, batch_size=5, verbose=0)
    assert_same_weights(gpu, cpu)
    np.testing.assert_allclose(gpu.predict(x, verbose=0), cpu.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


DROPOUT_LAYERS = {  # with recurrent_dropout set too, each gate has its own input mask
    "simple_rnn": lambda seq: dl.layers.SimpleRNN(3, dropout=0.3, recurrent_dropout=0.4, return_sequences=seq),
    "lstm_backwards": lambda seq: dl.layers.LSTM(3, dropout=0.3, recurrent_dropout=0.4, go_backwards=True,
                                                 return_sequences=seq),
    "gru_reset_before": lambda seq: dl.layers.GRU(3, recurrent_dropout=0.4, dropout=0.3, reset_after=False,
                                                  return_sequences=seq),
}


# one input mask for every gate (GRU with reset_after, LSTM without recurrent dropout): the op test below
@pytest.mark.parametrize("name,return_sequences", [("simple_rnn", False), ("lstm_backwards", True),
                                                   ("gru_reset_before", False)])
def test_dropout_and_recurrent_dropout_steps_on_gpu_equal_the_cpu_step(name, return_sequences):
    x = RNG.standard_normal((5, 3, 3)).astype(np.float32)
    y = RNG.standard_normal((5, 3, 2) if return_sequences else (5, 2)).astype(np.float32)
    cpu = rnn_model(DROPOUT_LAYERS[name], return_sequences)
    cpu_loss = cpu.train_on_batch(x, y)
    with dl.device("gpu:0"):
        gpu = rnn_model(DROPOUT_LAYERS[name], return_sequences)
        gpu_loss = gpu.train_on_batch(x, y)
    assert_same_weights(gpu, cpu)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)


@pytest.mark.filterwarnings("ignore:.*overflow encountered")  # the simulator's uint64 dropout hash wraps
@pytest.mark.parametrize("causal,mask,rate", [(False, False, 0.0), (True, True, 0.0), (False, False, 0.3)])
def test_dot_product_attention_op_on_gpu_equals_cpu(causal, mask, rate):
    q, k, v = (RNG.standard_normal(s).astype(np.float32) for s in [(2, 3, 2, 4), (2, 5, 1, 4), (2, 5, 1, 3)])
    m = RNG.random((2, 1, 3, 5)) > 0.3 if mask else None
    dout = RNG.standard_normal((2, 3, 2, 3)).astype(np.float32)
    results = []
    for where in ("cpu", "gpu:0"):
        with dl.device(where):
            tensors = [dl.Tensor(devices.to_device(a) if where != "cpu" else a) for a in (q, k, v)]
            with dl.GradientTape() as tape:
                tape.watch(tensors)
                out = dl.ops.dot_product_attention(*tensors, mask=m, is_causal=causal, dropout_rate=rate, seed=7)
            dy = dl.Tensor(devices.to_device(dout) if where != "cpu" else dout)
            grads = tape.gradient(out, tensors, output_gradients=dy)
        results.append([devices.to_host(t.value) for t in [out, *grads]])
    assert all(devices.is_device_array(g.value) for g in grads)
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_multi_head_self_attention_trains_on_gpu_like_the_cpu():
    x = RNG.standard_normal((4, 3, 4)).astype(np.float32)
    y = RNG.standard_normal((4, 3, 4)).astype(np.float32)

    def build():
        dl.utils.clear_session()
        dl.utils.set_random_seed(3)
        inputs = dl.Input(shape=(3, 4))
        out = dl.layers.MultiHeadAttention(num_heads=2, key_dim=2)(inputs, inputs, use_causal_mask=True)
        model = dl.Model(inputs, dl.layers.Dense(4)(out))
        # SGD: the key bias's gradient is zero up to rounding, which Adam would scale up to a step
        model.compile(optimizer=dl.optimizers.SGD(0.1), loss="mse")
        return model

    cpu = build()
    cpu_loss = cpu.train_on_batch(x, y)
    with dl.device("gpu:0"):
        gpu = build()
        gpu_loss = gpu.train_on_batch(x, y)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    assert_same_weights(gpu, cpu)
    np.testing.assert_allclose(gpu.predict(x, verbose=0), cpu.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


def test_stateful_lstm_carries_its_states_across_gpu_calls():
    x = RNG.standard_normal((2, 3, 3)).astype(np.float32)
    outs = []
    for where in ("cpu", "gpu:0"):
        with dl.device(where):
            dl.utils.clear_session()
            dl.utils.set_random_seed(4)
            model = dl.Sequential([dl.Input(shape=(3, 3), batch_size=2), dl.layers.LSTM(3, stateful=True)])
            outs.append([model.predict_on_batch(x), model.predict_on_batch(x)])
    np.testing.assert_allclose(outs[1], outs[0], rtol=1e-4, atol=1e-6)
    assert not np.allclose(outs[0][0], outs[0][1])  # the second call started from the first's states


@pytest.mark.parametrize("op,gates,kwargs", [
    ("lstm", 4, {"zero_output_for_mask": True}),
    ("gru", 3, {"reset_after": False}),
    ("gru", 3, {"reset_after": True, "return_sequences": True}),
    ("simple_rnn", 1, {"return_sequences": True}),
])
def test_recurrent_ops_with_states_mask_and_go_backwards_on_gpu(op, gates, kwargs):
    n, t_len, k, u = 3, 4, 2, 3
    x = RNG.standard_normal((n, t_len, k)).astype(np.float32)
    w = (RNG.standard_normal((k, gates * u)) * 0.5).astype(np.float32)
    r = (RNG.standard_normal((u, gates * u)) * 0.5).astype(np.float32)
    b = RNG.standard_normal((2, 3 * u) if kwargs.get("reset_after") else (gates * u,)).astype(np.float32)
    states = [RNG.standard_normal((n, u)).astype(np.float32) for _ in range(2 if op == "lstm" else 1)]
    mask = np.array([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 1, 1]], dtype=bool)  # row 1: the states pass through
    results = []
    for where in ("cpu", "gpu:0"):
        with dl.device(where):
            move = devices.to_device if where != "cpu" else (lambda a: a)
            tensors = [dl.Tensor(move(a)) for a in [x, w, r, b, *states]]
            with dl.GradientTape() as tape:
                tape.watch(tensors)
                init = tensors[4:] if op == "lstm" else tensors[4]
                outs = getattr(dl.ops, op)(*tensors[:4], initial_state=init, mask=mask, go_backwards=True, **kwargs)
            seeds = [dl.Tensor(move(np.full(o.shape, 0.5 + i, np.float32))) for i, o in enumerate(outs)]
            grads = tape.gradient(list(outs), tensors, output_gradients=seeds)
        results.append([devices.to_host(t.value) for t in [*outs, *grads]])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_attention_on_gpu_errors_are_clear():
    q = RNG.standard_normal((1, 2, 1, 2)).astype(np.float32)
    with dl.device("gpu:0"):
        on_gpu = dl.Tensor(devices.to_device(q))
        with pytest.raises(TypeError, match="on the GPU, `key` must be a GPU array of the query's dtype float32"):
            dl.ops.dot_product_attention(on_gpu, q, on_gpu)
        bias = dl.Tensor(np.zeros((1, 1, 2, 2), np.float32))
        with dl.GradientTape() as tape:
            tape.watch(bias)
            out = dl.ops.dot_product_attention(on_gpu, on_gpu, on_gpu, bias=bias)
        with pytest.raises(ValueError, match="the gradient of `bias` has no GPU path yet"):
            tape.gradient(out, bias, output_gradients=dl.Tensor(devices.to_device(np.ones_like(q))))


@pytest.mark.parametrize("op,gates,kwargs,per_gate", [("lstm", 4, {}, True), ("gru", 3, {"reset_after": False}, True),
                                                      ("gru", 3, {"reset_after": True}, False),
                                                      ("simple_rnn", 1, {}, False)])
def test_recurrent_ops_with_dropout_masks_on_gpu_equal_the_cpu_gradients(op, gates, kwargs, per_gate):
    n, t_len, k, u = 3, 4, 2, 3
    x = RNG.standard_normal((n, t_len, k)).astype(np.float32)
    w = (RNG.standard_normal((k, gates * u)) * 0.5).astype(np.float32)
    r = (RNG.standard_normal((u, gates * u)) * 0.5).astype(np.float32)
    b = RNG.standard_normal((2, 3 * u) if kwargs.get("reset_after") else (gates * u,)).astype(np.float32)
    x_masks = ((RNG.random((gates if per_gate else 1, n, k)) > 0.3) / 0.7).astype(np.float32)
    h_masks = ((RNG.random((gates, n, u)) > 0.3) / 0.7).astype(np.float32)
    results = []
    for where, masked in (("cpu", True), ("gpu:0", True), ("gpu:0", False)):
        with dl.device(where):
            move = devices.to_device if where != "cpu" else (lambda a: a)
            tensors = [dl.Tensor(move(a)) for a in [x, w, r, b]]
            with dl.GradientTape() as tape:
                tape.watch(tensors)
                outs = getattr(dl.ops, op)(*tensors, return_sequences=True, go_backwards=True,
                                           input_dropout_mask=x_masks if masked else None,
                                           recurrent_dropout_mask=move(h_masks) if masked else None, **kwargs)
            seeds = [dl.Tensor(move(np.full(o.shape, 0.5 + i, np.float32))) for i, o in enumerate(outs)]
            grads = tape.gradient(list(outs), tensors, output_gradients=seeds)
        results.append([devices.to_host(t.value) for t in [*outs, *grads]])
    for cpu, gpu, _ in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
    assert not np.allclose(results[1][0], results[2][0])  # the masks change the outputs
