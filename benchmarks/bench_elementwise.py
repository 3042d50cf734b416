"""Elementwise family (kernels/elementwise.py): activation forward and backward (Cython),
softmax forward/backward (Numba). No FLOPs are defined for transcendental activations: rates are
G elements/s and GB/s (bytes read + written)."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels
from dlcore.kernels.elementwise import ACTIVATIONS

N = 1 << 20  # one million float32 elements (4 MiB)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "gelu", "silu"])
def test_activation_forward(benchmark, name):
    fwd = kernels.get("activation_forward")
    x, y = rand(N) * 4 - 2, np.empty(N, np.float32)
    threads = kernels.num_threads()
    measure(benchmark, lambda: fwd(ACTIVATIONS[name], x, 0.0, y, threads), elements=N, nbytes=8 * N)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"])
def test_activation_backward(benchmark, name):
    fwd, bwd = kernels.get("activation_forward"), kernels.get("activation_backward")
    code = ACTIVATIONS[name]
    x, y, dy, dx = rand(N) * 4 - 2, np.empty(N, np.float32), rand(N, seed=1), np.empty(N, np.float32)
    fwd(code, x, 0.0, y, 1)
    bwd(code, x, y, dy, 0.0, dx)  # warm up outside the timing
    measure(benchmark, lambda: bwd(code, x, y, dy, 0.0, dx), elements=N, nbytes=16 * N)


@pytest.mark.parametrize("rows,cols", [(128, 10), (4096, 1000)])
def test_softmax_forward(benchmark, rows, cols):
    fwd = kernels.get("softmax_forward")
    x, y = rand(rows, cols), np.empty((rows, cols), np.float32)
    threads = kernels.threads_for(rows * cols)
    measure(benchmark, lambda: fwd(x, y, threads), elements=rows * cols, nbytes=8 * rows * cols)


def test_softmax_backward(benchmark):
    rows, cols = 4096, 1000
    fwd, bwd = kernels.get("softmax_forward"), kernels.get("softmax_backward")
    x, y, dy, dx = rand(rows, cols), np.empty((rows, cols), np.float32), rand(rows, cols, seed=1), \
        np.empty((rows, cols), np.float32)
    fwd(x, y, 1)
    bwd(y, dy, dx)
    measure(benchmark, lambda: bwd(y, dy, dx), elements=rows * cols, nbytes=12 * rows * cols)
