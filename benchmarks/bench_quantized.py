"""int8 family (kernels/quantized.py): the int8 dense forward (dynamic row quantization + int8 GEMM
+ rescale/bias/relu epilogue) against the float32 dense_forward at the MLP workload's layer shapes,
batch 256 and batch 1, one thread. Ops: 2 n k m."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels
from dlcore.kernels.elementwise import ACTIVATIONS

RELU = ACTIVATIONS["relu"]
# (K, M) of the MLP workload's layers (784-512-256-10)
MLP_LAYERS = [(784, 512), (512, 256), (256, 10)]


def _int8_case(n, k, m):
    x = rand(n, k)
    w = np.random.default_rng(1).integers(-127, 128, size=(k, m)).astype(np.int8)
    packed = np.empty(((m + 15) // 16) * ((k + 3) // 4) * 64, np.int8)
    csum = np.empty((m + 15) // 16 * 16, np.int32)
    kernels.get("int8_pack")(w, packed, csum)
    ws, b, y = np.full(m, 100.0, np.float32), np.zeros(m, np.float32), np.empty((n, m), np.float32)
    forward = kernels.get("int8_dense_forward")

    def run():
        forward(x, packed, csum, ws, b, RELU, 0.0, y, 1)

    return run


@pytest.mark.parametrize("n", [256, 1])
@pytest.mark.parametrize("k,m", MLP_LAYERS)
def test_int8_dense_forward_mlp(benchmark, n, k, m):
    measure(benchmark, _int8_case(n, k, m), flops=2 * n * k * m)


@pytest.mark.parametrize("n", [256, 1])
@pytest.mark.parametrize("k,m", MLP_LAYERS)
def test_float32_dense_forward_mlp_reference(benchmark, n, k, m):
    x, w, b, y = rand(n, k), rand(k, m, seed=1), np.zeros(m, np.float32), np.empty((n, m), np.float32)
    dense_forward = kernels.get("dense_forward")
    measure(benchmark, lambda: dense_forward(x, w, b, RELU, 0.0, y, 1), flops=2 * n * k * m)
