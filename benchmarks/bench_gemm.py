"""GEMM family (kernels/gemm.py): matmul (BLAS through scipy) and dense_forward (GEMM + fused
bias/activation epilogue), at square sizes, at the MLP workload's shapes (forward and the two
backward products), and NumPy's matmul as the reference BLAS. FLOPs: 2 m n k."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels
from dlcore.kernels.elementwise import ACTIVATIONS

matmul = kernels.get("matmul")
dense_forward = kernels.get("dense_forward")
RELU = ACTIVATIONS["relu"]


@pytest.mark.parametrize("n", [256, 512, 1024])
def test_matmul_square_float32(benchmark, n):
    a, b, c = rand(n, n), rand(n, n, seed=1), np.empty((n, n), np.float32)
    measure(benchmark, lambda: matmul(a, b, c), flops=2 * n ** 3)


def test_numpy_matmul_1024_reference(benchmark):
    n = 1024
    a, b, c = rand(n, n), rand(n, n, seed=1), np.empty((n, n), np.float32)
    measure(benchmark, lambda: np.matmul(a, b, out=c), flops=2 * n ** 3)


def test_matmul_512_float64(benchmark):
    n = 512
    a, b, c = rand(n, n, dtype=np.float64), rand(n, n, dtype=np.float64, seed=1), np.empty((n, n))
    measure(benchmark, lambda: matmul(a, b, c), flops=2 * n ** 3)


# (N, K, M) of the MLP workload's layers at batch 128
MLP_SHAPES = [(128, 784, 512), (128, 512, 256), (128, 256, 10)]


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_forward(benchmark, n, k, m):
    x, w, y = rand(n, k), rand(k, m, seed=1), np.empty((n, m), np.float32)
    measure(benchmark, lambda: matmul(x, w, y), flops=2 * n * k * m)


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_weight_grad(benchmark, n, k, m):
    """dW (K, M) = x^T (K, N) @ dy (N, M)."""
    x, dy, dw = rand(n, k), rand(n, m, seed=1), np.empty((k, m), np.float32)
    measure(benchmark, lambda: matmul(x, dy, dw, trans_a=True), flops=2 * n * k * m)


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_input_grad(benchmark, n, k, m):
    """dx (N, K) = dy (N, M) @ W^T (M, K)."""
    dy, w, dx = rand(n, m), rand(k, m, seed=1), np.empty((n, k), np.float32)
    measure(benchmark, lambda: matmul(dy, w, dx, trans_b=True), flops=2 * n * k * m)


@pytest.mark.parametrize("n", [1, 128])
def test_dense_forward_relu(benchmark, n):
    k, m = 784, 512
    x, w, b, y = rand(n, k), rand(k, m, seed=1), rand(m, seed=2), np.empty((n, m), np.float32)
    threads = kernels.threads_for(n * k * m)
    measure(benchmark, lambda: dense_forward(x, w, b, RELU, 0.0, y, threads), flops=2 * n * k * m)
