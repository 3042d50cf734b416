"""Reduce family (kernels/reduce.py): sum over the batch axis (bias gradients). FLOPs: one add
per element."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels


@pytest.mark.parametrize("n,m", [(128, 512), (4096, 512), (64, 16384)])
def test_sum_axis0(benchmark, n, m):
    fn = kernels.get("sum_axis0")
    x, out = rand(n, m), np.empty(m, np.float32)
    threads = kernels.threads_for(n * m)
    measure(benchmark, lambda: fn(x, out, threads), flops=n * m, nbytes=4 * n * m)


def test_numpy_sum_axis0_reference(benchmark):
    x = rand(4096, 512)
    measure(benchmark, lambda: x.sum(axis=0), flops=x.size, nbytes=4 * x.size)
