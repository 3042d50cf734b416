"""Normalization family: BatchNormalization through the public layer, on the CNN's pooled maps
(batch 64 at 15x15x32 and 6x6x64) and a dense (256, 512) activation; inference (fused affine)
and training (batch statistics + backward). Rates: G elements/s. Skipped until dlcore has the
layer."""
import pytest

from benchmarks._bench import layer_forward, layer_train_step, measure, rand, require_layer

SHAPES = [(64, 15, 15, 32), (64, 6, 6, 64), (256, 512)]


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_batch_norm_inference(benchmark, shape):
    BN = require_layer("BatchNormalization")
    call = layer_forward(BN(), rand(*shape))
    n = 1
    for d in shape:
        n *= d
    measure(benchmark, call, elements=n)


@pytest.mark.parametrize("shape", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_batch_norm_train_step(benchmark, shape):
    BN = require_layer("BatchNormalization")
    step = layer_train_step(BN(), rand(*shape))
    n = 1
    for d in shape:
        n *= d
    measure(benchmark, step, elements=n)
