"""Global settings: float type, epsilon, thread count."""
import numpy as np

from . import kernels

_FLOATX = "float32"
_EPSILON = 1e-7


def floatx():
    """The default float type, as a string ("float32")."""
    return _FLOATX


def set_floatx(value):
    global _FLOATX
    if value not in ("float32", "float64"):
        raise ValueError(f"floatx must be 'float32' or 'float64', received {value!r}")
    _FLOATX = value


def epsilon():
    """The fuzz factor used by losses and metrics (Keras: 1e-7)."""
    return _EPSILON


def set_epsilon(value):
    global _EPSILON
    _EPSILON = float(value)


_IMAGE_DATA_FORMAT = "channels_last"


def image_data_format():
    """dlcore's layers are channels_last (NHWC), as Keras's default."""
    return _IMAGE_DATA_FORMAT


def num_threads():
    """Threads used by every kernel: Cython OpenMP, Numba and BLAS."""
    return kernels.num_threads()


def set_num_threads(n):
    """One thread setting for Numba, OpenMP and BLAS (default: the cores available)."""
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, received {n!r}")
    kernels.set_num_threads(int(n))
