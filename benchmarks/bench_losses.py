"""Losses family (kernels/losses.py): per-sample forward and backward of the losses the standard
workloads use (sparse categorical cross-entropy on probabilities) and of MSE. Rates: G elements/s
of the (M, C) prediction array."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels

SHAPES = [(128, 10), (4096, 1000)]


def _probs(m, c):
    p = rand(m, c) + 0.01
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("m,c", SHAPES)
def test_sparse_categorical_crossentropy_forward(benchmark, m, c):
    fn = kernels.get("sparse_categorical_crossentropy_forward")
    labels = np.random.default_rng(0).integers(0, c, m).astype(np.int64)
    p, loss = _probs(m, c), np.empty(m, np.float32)
    threads = kernels.threads_for(m * c)
    measure(benchmark, lambda: fn(labels, p, loss, False, 1e-7, threads), elements=m * c)


@pytest.mark.parametrize("m,c", SHAPES)
def test_sparse_categorical_crossentropy_backward(benchmark, m, c):
    fn = kernels.get("sparse_categorical_crossentropy_backward")
    labels = np.random.default_rng(0).integers(0, c, m).astype(np.int64)
    p, dloss, dp = _probs(m, c), np.full(m, 1.0 / m, np.float32), np.empty((m, c), np.float32)
    threads = kernels.threads_for(m * c)
    measure(benchmark, lambda: fn(labels, p, dloss, dp, False, 1e-7, threads), elements=m * c)


def test_mse_forward_backward(benchmark):
    m, d = 4096, 256
    fwd, bwd = kernels.get("mse_forward"), kernels.get("mse_backward")
    t, p = rand(m, d), rand(m, d, seed=1)
    loss, dloss, dp = np.empty(m, np.float32), np.full(m, 1.0 / m, np.float32), np.empty((m, d), np.float32)

    threads = kernels.threads_for(m * d)

    def step():
        fwd(t, p, loss, threads)
        bwd(t, p, dloss, dp, threads)

    measure(benchmark, step, elements=m * d)
