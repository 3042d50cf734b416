"""Global settings: float type, epsilon, thread count, the compiled-kernel cache directory."""
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


def set_dtype_policy(policy):
    """Keras's ``keras.config.set_dtype_policy``: dl.mixed_precision.set_global_policy."""
    from . import mixed_precision

    mixed_precision.set_global_policy(policy)


def dtype_policy():
    """Keras's ``keras.config.dtype_policy``: the global DTypePolicy."""
    from . import mixed_precision

    return mixed_precision.global_policy()


_IMAGE_DATA_FORMAT = "channels_last"


def image_data_format():
    """dlcore's layers are channels_last (NHWC), as Keras's default."""
    return _IMAGE_DATA_FORMAT


def num_threads():
    """Threads used by every kernel: Cython OpenMP, Numba and BLAS."""
    return kernels.num_threads()


def max_threads():
    """The largest count set_num_threads accepts: the machine's logical CPUs, at least 8."""
    return kernels.max_threads()


def set_num_threads(n):
    """One thread setting for Numba, OpenMP and BLAS (default: the cores available).

    ``n`` is an integer in [1, max_threads()]: threads beyond the logical CPUs only take turns
    on them, each with its own scratch buffers (see ``dlcore.kernels._config.max_threads``).
    A process forked after its parent ran multi-threaded kernels runs them on 1 thread and
    refuses more (RuntimeError), because OpenMP cannot start threads in such a child.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"set_num_threads expects a positive integer, received {n!r}")
    kernels.set_num_threads(int(n))


def kernel_cache_dir():
    """The directory holding dlcore's compiled Numba kernels, or None when nothing is writable.

    ``$DLCORE_CACHE_DIR/numba-<version>-<cpu>`` if set, else ``$NUMBA_CACHE_DIR`` if set, else
    ``~/.cache/dlcore/numba-<version>-<cpu>`` (``$XDG_CACHE_HOME`` honoured; a per-user temp
    directory when home is not writable), created if missing. Never inside the installed
    package; deleting it only costs a recompile.
    """
    return kernels.numba_cache_dir()


def set_device(name):
    """The default device for new weights and batches: "cpu", "gpu", "gpu:N" (or "cuda[:N]").

    A GPU needs numba's CUDA support (``pip install dlcore[cuda]``) and a device; otherwise
    RuntimeError, never a silent CPU fallback."""
    from . import devices as device

    device.set_device(name)


def get_device():
    """The current device: "cpu" or "gpu:N"."""
    from . import devices as device

    return device.current()


def list_devices(device_type=None):
    """["cpu:0", "gpu:0", ...]: the devices dlcore can use (imports numba.cuda when installed)."""
    from . import devices as device

    return device.list_devices(device_type)
