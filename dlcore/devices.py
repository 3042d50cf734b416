"""Where arrays live: device names, the device scope, host/device copies.

    with dl.device("gpu:0"):      # Keras 3 spelling; "cuda", "cuda:0", "cpu" accepted too
        model = build_model()      # weights created on the GPU

A GPU is reached through numba.cuda (the ``cuda`` extra). This module imports numpy only:
numba.cuda is imported when a GPU device is chosen or listed, never by ``import dlcore``.
Tensors hold numba device arrays on a GPU; :data:`ARRAY_TYPES` is the type test the tensor and
op tiers use (empty until a GPU is chosen, so the CPU path pays one failed ``isinstance``).
"""
import contextlib
import contextvars
import re

import numpy as np

ARRAY_TYPES = ()  # numba device array types, filled when a GPU is chosen

_default = "cpu"
_scope = contextvars.ContextVar("dlcore_device", default=None)  # per thread / task, as Keras's scope
_NAME = re.compile(r"^(cpu|gpu|cuda)(?::(\d+))?$")


def parse(name):
    """The canonical name ("cpu" or "gpu:N") of a device spelling; ValueError if unknown."""
    match = _NAME.match(name.strip().lower()) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"device: expected 'cpu', 'gpu', 'gpu:N', 'cuda' or 'cuda:N', received {name!r}")
    kind, index = match.group(1), int(match.group(2) or 0)
    if kind == "cpu":
        if index != 0:
            raise ValueError(f"device: dlcore has one CPU device, 'cpu:0'; received {name!r}")
        return "cpu"
    return f"gpu:{index}"


def _cuda():
    """numba.cuda, or RuntimeError naming the ``cuda`` extra."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise RuntimeError("dlcore's GPU device needs numba's CUDA support, which is not installed "
                           f"({exc}); install it with `pip install dlcore[cuda]`") from exc
    return cuda


def _require_gpu(canonical):
    """Check that ``canonical`` ("gpu:N") exists, select it and register its array type."""
    global ARRAY_TYPES
    cuda = _cuda()
    if not cuda.is_available():
        raise RuntimeError(f"device {canonical!r}: no CUDA GPU is available (numba.cuda.is_available() "
                           "is False: no NVIDIA driver or device). dlcore does not fall back to the "
                           "CPU silently; use dl.device('cpu') or run where a GPU is present.")
    index = int(canonical.split(":")[1])
    count = len(cuda.gpus)
    if index >= count:
        raise ValueError(f"device {canonical!r}: this machine has {count} GPU(s), gpu:0..gpu:{count - 1}")
    cuda.select_device(index)
    ARRAY_TYPES = (type(cuda.device_array(1, dtype=np.float32)),)


def current():
    """The device new weights and batches go to: "cpu" or "gpu:N"."""
    scoped = _scope.get()
    return _default if scoped is None else scoped


@contextlib.contextmanager
def device(name):
    """Scope in which new variables are created on (and batches moved to) device ``name``."""
    canonical = parse(name)
    if canonical != "cpu":
        _require_gpu(canonical)
    token = _scope.set(canonical)
    try:
        yield canonical
    finally:
        _scope.reset(token)


def set_device(name):
    """Make ``name`` the default device outside any ``device`` scope."""
    global _default
    canonical = parse(name)
    if canonical != "cpu":
        _require_gpu(canonical)
    _default = canonical


def list_devices(device_type=None):
    """["cpu:0", "gpu:0", ...]: the devices dlcore can use (GPUs only with numba.cuda and a GPU),
    or those of ``device_type`` ("cpu" or "gpu")."""
    if device_type not in (None, "cpu", "gpu"):
        raise ValueError(f"list_devices: device_type must be None, 'cpu' or 'gpu', received {device_type!r}")
    found = ["cpu:0"]
    try:
        from numba import cuda
        if cuda.is_available():
            found += [f"gpu:{i}" for i in range(len(cuda.gpus))]
    except ImportError:
        pass
    return [d for d in found if device_type is None or d.startswith(device_type)]


def is_device_array(a):
    """Whether ``a`` is a GPU (numba device) array."""
    return isinstance(a, ARRAY_TYPES)


def on_gpu():
    """Whether the current device is a GPU."""
    return current() != "cpu"


def to_device(a):
    """``a`` (host array) as a device array on the current GPU; device arrays pass through."""
    if isinstance(a, ARRAY_TYPES):
        return a
    from numba import cuda
    return cuda.to_device(np.ascontiguousarray(a))


def to_host(a):
    """``a`` as a NumPy array (device arrays copied out)."""
    return a.copy_to_host() if isinstance(a, ARRAY_TYPES) else a


def zeros_like(a):
    """Zeros of ``a``'s shape and dtype on the device ``a`` lives on."""
    if isinstance(a, ARRAY_TYPES):
        if len(a.shape) == 0:  # a real device array refuses z[:] = 0 at rank 0 (the simulator allows it)
            from numba import cuda
            return cuda.to_device(np.zeros((), dtype=a.dtype))
        z = empty(a.shape, a.dtype, a)
        z[:] = 0
        return z
    return np.zeros_like(a)


def empty(shape, dtype, like):
    """An uninitialized array on the device ``like`` lives on (host if ``like`` is an ndarray)."""
    if isinstance(like, ARRAY_TYPES):
        from numba import cuda
        return cuda.device_array(shape, dtype=dtype)
    return np.empty(shape, dtype=dtype)


__all__ = ["device", "set_device", "list_devices", "current", "parse", "is_device_array", "to_device",
           "to_host"]
