"""Recurrent family: LSTM and GRU through the public layers at the recurrent workloads' shapes
(128 units, 50 steps, 32 features), batch 1 and 64, forward (inference) and forward + backward
through time. FLOPs: T 2 (features + units) gates units per sample (x3 with backward).
Skipped until dlcore has the layers."""
import pytest

from benchmarks import spec
from benchmarks._bench import layer_forward, layer_train_step, measure, rand, require_layer


def _setup(cell, batch):
    model = spec.model_spec(cell.lower())
    layer = require_layer(cell)(model["units"])
    x = rand(batch, model["timesteps"], model["features"])
    flops = (spec.forward_flops(model) - 2 * model["units"] * model["classes"]) * batch
    return layer, x, flops


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("batch", [1, 64])
def test_recurrent_forward(benchmark, cell, batch):
    layer, x, flops = _setup(cell, batch)
    measure(benchmark, layer_forward(layer, x), flops=flops)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrent_forward_backward(benchmark, cell):
    layer, x, flops = _setup(cell, 64)
    measure(benchmark, layer_train_step(layer, x), flops=3 * flops)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrent_forward_backward_masked(benchmark, cell):
    """Variable-length batch: half the sequences padded to twice their length (mask skips it)."""
    import numpy as np

    import dlcore as dl

    layer, x, flops = _setup(cell, 64)
    mask = np.ones(x.shape[:2], dtype=bool)
    mask[::2, x.shape[1] // 2:] = False
    xt = dl.Variable(x)

    def step():
        with dl.GradientTape() as tape:
            tape.watch(xt)
            loss = dl.ops.sum(layer(xt, mask=mask, training=True))
        return tape.gradient(loss, [xt, *layer.trainable_weights])

    step()
    measure(benchmark, step, flops=3 * flops)


@pytest.mark.parametrize("rows", [1, 32, 64])
def test_step_matmul_kernel(benchmark, rows):
    """The per-step product h @ R of LSTM(128): (rows, 128) @ (128, 512), float32."""
    from dlcore.kernels import recurrent

    h, r = rand(rows, 128), rand(128, 512)
    out = rand(rows, 512)
    measure(benchmark, lambda: recurrent.step_matmul(h, r, out), flops=2 * rows * 128 * 512)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_recurrence_kernel_batch1(benchmark, cell):
    """The recurrence kernel alone at batch 1 (50 steps of h @ R + the gates; the LSTM's R packed
    once per layer and checked against R per call, the GRU's packed per call): float32, no mask,
    nothing saved for backward."""
    import numpy as np

    from dlcore.kernels import elementwise, recurrent

    model = spec.model_spec(cell.lower())
    t_len, u = model["timesteps"], model["units"]
    gates = 4 if cell == "LSTM" else 3
    z0, r = rand(1, t_len, gates * u), rand(u, gates * u) * 0.1
    z, h, c = z0.copy(), np.zeros((1, u), np.float32), np.zeros((1, u), np.float32)
    aux = np.empty((1, t_len, u), np.float32)
    tanh, sigmoid = elementwise.ACTIVATIONS["tanh"], elementwise.ACTIVATIONS["sigmoid"]

    def run():
        h[:] = 0
        c[:] = 0
        if cell == "LSTM":
            recurrent.lstm_forward(z, r, None, None, tanh, 0.0, sigmoid, 0.0, False, h, c, None, None, None)
        else:
            recurrent.gru_forward(z, r, r[0, :u].copy(), None, None, tanh, 0.0, sigmoid, 0.0, True, False, h,
                                  None, aux, None)

    measure(benchmark, run, flops=2 * t_len * u * gates * u)


def test_lstm_forward_inputs_batch1(benchmark):
    """Batch-1 LSTM inference as ops.lstm runs it: the input projection (with the cached packed
    R's check spread over it) and the recurrence in one call (lstm_forward_inputs)."""
    import numpy as np

    from dlcore.kernels import recurrent

    model = spec.model_spec("lstm")
    t_len, u, k = model["timesteps"], model["units"], model["features"]
    x, w, b, r = rand(t_len, k), rand(k, 4 * u) * 0.2, rand(4 * u), rand(u, 4 * u) * 0.1
    z, h, c = np.empty((1, t_len, 4 * u), np.float32), np.zeros((1, u), np.float32), np.zeros((1, u), np.float32)

    def run():
        h[:] = 0
        c[:] = 0
        recurrent.lstm_forward_inputs(x, w, b, z, r, h, c, None)

    measure(benchmark, run, flops=2 * t_len * 4 * u * (u + k))
