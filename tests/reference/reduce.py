"""NumPy reference for the reduction kernels (float64, from the definitions)."""
import numpy as np


def sum_axis0(x):
    """Column sums of a (M, N) array, in float64."""
    return np.asarray(x, dtype=np.float64).sum(axis=0)


def sum_all(x, divisor=1.0):
    """The sum of every element divided by ``divisor``, in float64."""
    return np.asarray(x, dtype=np.float64).sum() / divisor
