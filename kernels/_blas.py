"""The process's one BLAS state (see dl_blas_threads.h), bound into every extension that calls BLAS.

It holds the BLAS function table the kernels call (sgemm, dgemm, sgemv, dgemv: NumPy's own BLAS
where ``_config.loaded_blas_functions`` recognizes it, else scipy.linalg.cython_blas's) and the
thread getters/setters of every OpenBLAS loaded in the process (``_config.blas_thread_hooks``).
Each extension binds it at its own import (``bind_at_import``); ``hooks()`` is how many thread
setters were found (0: the kernels run their BLAS calls on one OpenMP thread).
"""
import ctypes

from . import _config

MAX_HOOKS = 8
FUNCTIONS = ("sgemm", "dgemm", "sgemv", "dgemv")  # the order of dl_blas_threads.h's enum


class _State(ctypes.Structure):
    # Mirrors dl_blas_threads in dl_blas_threads.h.
    _fields_ = [
        ("n_hooks", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("saved", ctypes.c_int * MAX_HOOKS),
        ("get", ctypes.c_void_p * MAX_HOOKS),
        ("set", ctypes.c_void_p * MAX_HOOKS),
        ("int64", ctypes.c_int),
        ("fn", ctypes.c_void_p * len(FUNCTIONS)),
    ]


def _scipy_blas_functions():
    """(False, addresses) of scipy.linalg.cython_blas's functions (LP64), read from its C API."""
    import importlib
    import sys

    _config.preload_cython_blas()  # registers the extension alone, without scipy.linalg's package
    cython_blas = sys.modules.get("scipy.linalg.cython_blas") or importlib.import_module("scipy.linalg.cython_blas")

    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    capsules = cython_blas.__pyx_capi__
    return False, [get_pointer(capsules[name], get_name(capsules[name])) for name in FUNCTIONS]


def _fill(state):
    import numpy  # noqa: F401  (loads its BLAS)

    paths = _config._loaded_blas_libraries()
    found = _config.loaded_blas_functions(FUNCTIONS, paths)
    if found is None:
        state.int64, addresses = _scipy_blas_functions()
        paths = _config._loaded_blas_libraries()  # with scipy's OpenBLAS now
    else:
        state.int64, addresses, path = found
        _config.restart_blas_threads(path)  # its pool may predate dlcore's OPENBLAS_THREAD_TIMEOUT
    for i, address in enumerate(addresses):
        if not address:
            raise ImportError(f"dlcore's kernels found no BLAS {FUNCTIONS[i]} in this process")
        state.fn[i] = address
    for i, (_, getter, setter) in enumerate(_config.blas_thread_hooks(paths)[:MAX_HOOKS]):
        state.get[i] = ctypes.cast(getter, ctypes.c_void_p).value
        state.set[i] = ctypes.cast(setter, ctypes.c_void_p).value
        state.n_hooks = i + 1


_STATE = _State()
_fill(_STATE)


def bind_at_import(bind_blas_threads):
    """Bind the state into the extension whose ``bind_blas_threads`` this is (its module level
    calls this, so no kernel of it runs before BLAS is bound)."""
    bind_blas_threads(ctypes.addressof(_STATE))


def bind(module):
    """Bind the state into a Cython extension that cimports _blas_threads.pxd."""
    bind_at_import(module.bind_blas_threads)


def hooks():
    """How many OpenBLAS thread setters were found in this process."""
    return _STATE.n_hooks


def depth():
    """Kernels currently inside the single-threaded section (0 between calls; for tests)."""
    return _STATE.depth


def functions():
    """{name: address} of the BLAS functions the kernels call, and whether they take 64-bit
    integers (for tests and diagnostics)."""
    return {name: _STATE.fn[i] for i, name in enumerate(FUNCTIONS)}, bool(_STATE.int64)
