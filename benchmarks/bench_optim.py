"""Optimizer family (kernels/optim.py): fused in-place updates (Numba) on one million float32
parameters. Memory-bound: GB/s of the arrays read and written (SGD with momentum: w, g, m read,
w, m written; Adam: w, g, m, v read, w, m, v written)."""
import numpy as np

from benchmarks._bench import measure, rand
from dlcore import kernels

N = 1 << 20


def test_sgd_momentum_update(benchmark):
    fn = kernels.get("sgd_update")
    w, g, m = rand(N), rand(N, seed=1) * 1e-3, np.zeros(N, np.float32)
    fn(w, g, m, 0.01, 0.9, False)  # compile outside the timing
    measure(benchmark, lambda: fn(w, g, m, 0.01, 0.9, False), elements=N, nbytes=4 * N * 5)


def test_adam_update(benchmark):
    fn = kernels.get("adam_update")
    w, g = rand(N), rand(N, seed=1) * 1e-3
    m, v, vhat = np.zeros(N, np.float32), np.zeros(N, np.float32), np.zeros(0, np.float32)
    fn(w, g, m, v, vhat, 1e-3, 0.9, 0.999, 1e-7, False)
    measure(benchmark, lambda: fn(w, g, m, v, vhat, 1e-3, 0.9, 0.999, 1e-7, False), elements=N, nbytes=4 * N * 7)
