"""Dropout family (kernels/dropout.py): forward (mask from caller-drawn uniforms) and backward,
Numba, on one million float32 elements. Rates: G elements/s and GB/s."""
import numpy as np

from benchmarks._bench import measure, rand
from dlcore import kernels

N = 1 << 20


def test_dropout_forward(benchmark):
    fn = kernels.get("dropout_forward")
    x, u, y, mask = rand(N), rand(N, seed=1), np.empty(N, np.float32), np.empty(N, np.uint8)
    fn(x, u, 0.5, y, mask)
    measure(benchmark, lambda: fn(x, u, 0.5, y, mask), elements=N, nbytes=13 * N)


def test_dropout_backward(benchmark):
    fwd, bwd = kernels.get("dropout_forward"), kernels.get("dropout_backward")
    x, u, y, mask = rand(N), rand(N, seed=1), np.empty(N, np.float32), np.empty(N, np.uint8)
    fwd(x, u, 0.5, y, mask)
    dy, dx = rand(N, seed=2), np.empty(N, np.float32)
    bwd(dy, mask, 0.5, dx)
    measure(benchmark, lambda: bwd(dy, mask, 0.5, dx), elements=N, nbytes=9 * N)
