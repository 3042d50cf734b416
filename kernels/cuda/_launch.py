"""Launch geometry and small device-side helpers shared by the CUDA families."""
import numpy as np
from numba import config as numba_config
from numba import cuda

THREADS_PER_BLOCK = 128 if not numba_config.ENABLE_CUDASIM else 16


def grid_1d(n):
    """(blocks, threads) covering ``n`` threads, at least one block."""
    return max(1, (n + THREADS_PER_BLOCK - 1) // THREADS_PER_BLOCK), THREADS_PER_BLOCK


_zeros = {}


def dummy_vector(dtype):
    """A 1-element device vector of ``dtype``: stands in for an absent optional array argument."""
    key = np.dtype(dtype)
    if key not in _zeros:
        _zeros[key] = cuda.to_device(np.zeros(1, dtype=key))
    return _zeros[key]
