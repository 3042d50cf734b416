"""The process's one BLAS thread switch state (see dl_blas_threads.h), bound into every extension
that calls BLAS from its own OpenMP threads.

``bind(module)`` hands ``module.bind_blas_threads`` the address of the state, which holds the
thread getters/setters of every OpenBLAS loaded in the process (``_config.blas_thread_hooks``);
``hooks()`` is how many were found (0: the kernels run their BLAS calls on one OpenMP thread).
"""
import ctypes

from . import _config

MAX_HOOKS = 8


class _State(ctypes.Structure):
    # Mirrors dl_blas_threads in dl_blas_threads.h.
    _fields_ = [
        ("n_hooks", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("saved", ctypes.c_int * MAX_HOOKS),
        ("get", ctypes.c_void_p * MAX_HOOKS),
        ("set", ctypes.c_void_p * MAX_HOOKS),
    ]


_STATE = _State()
for _i, (_, _getter, _setter) in enumerate(_config.blas_thread_hooks()[:MAX_HOOKS]):
    _STATE.get[_i] = ctypes.cast(_getter, ctypes.c_void_p).value
    _STATE.set[_i] = ctypes.cast(_setter, ctypes.c_void_p).value
    _STATE.n_hooks = _i + 1


def bind(module):
    """Bind the state into a Cython extension that cimports _blas_threads.pxd."""
    module.bind_blas_threads(ctypes.addressof(_STATE))


def hooks():
    """How many OpenBLAS thread setters were found in this process."""
    return _STATE.n_hooks


def depth():
    """Kernels currently inside the single-threaded section (0 between calls; for tests)."""
    return _STATE.depth
