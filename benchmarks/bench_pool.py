"""Pooling family: MaxPooling2D (and AveragePooling2D) 2x2 through the public layers, at the
CNN workload's pooling inputs, batch 64, forward and forward + backward. Pooling has no
multiply-adds: rates are G elements/s of the input. Skipped until dlcore has the layers."""
import pytest

from benchmarks import spec
from benchmarks._bench import layer_forward, layer_train_step, measure, rand, require_layer

CNN = spec.model_spec("cnn")
BATCH = spec.WORKLOADS["cnn-train"]["batch"]
SHAPES = [(oh, ow, f) for (_, _, _, f, oh, ow) in spec._cnn_shapes(CNN)[0]]  # conv outputs = pool inputs


@pytest.mark.parametrize("layer_name", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}" for s in SHAPES])
def test_pool2d_forward(benchmark, layer_name, shape):
    Pool = require_layer(layer_name)
    call = layer_forward(Pool(CNN["pool"]), rand(BATCH, *shape))
    measure(benchmark, call, elements=BATCH * shape[0] * shape[1] * shape[2])


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}" for s in SHAPES])
def test_maxpool2d_forward_backward(benchmark, shape):
    Pool = require_layer("MaxPooling2D")
    step = layer_train_step(Pool(CNN["pool"]), rand(BATCH, *shape))
    measure(benchmark, step, elements=BATCH * shape[0] * shape[1] * shape[2])
