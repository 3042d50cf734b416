"""dlcore.kernels: compiled compute on NumPy buffers (tier 3).

Arrays in, preallocated arrays out; no knowledge of tensors, layers or models. Each family
module ends with a ``KERNELS`` table; :func:`get` looks a kernel up by name. Cython kernels are
ready at import; Numba kernels compile on their first call (see ``_config.jit``).
"""
import importlib
import threading

from . import _config
from ._config import (max_threads, num_threads, numba_cache_dir, set_num_threads, team_threads_for_macs, threads_for,
                      threads_for_macs)


FAMILIES = ("gemm", "elementwise", "reduce", "losses", "dropout", "optim", "conv", "pooling", "normalization",
            "recurrent", "embedding", "attention", "quantized")

# get() imports families in this order until it finds a name (the forward families inference
# needs first), so predicting a saved CNN never imports the optimizer or loss kernels; names()
# and _load_table() import every family and check that no name is defined twice.
_SEARCH_ORDER = ("gemm", "elementwise", "conv", "pooling", "normalization", "recurrent", "embedding",
                 "attention", "reduce", "dropout", "losses", "optim")
_SEARCH_ORDER += tuple(f for f in FAMILIES if f not in _SEARCH_ORDER)
_table = {}
_loaded = set()
_loading = threading.RLock()  # predict threads may look up kernels for the first time together


class _Recording(threading.local):
    calls = None  # a list while this thread records its kernel calls (see :class:`recording`)


_recording = _Recording()


class _Recorded:
    """A kernel that appends ``(kernel, args, result)`` to a list on each call."""

    __slots__ = ("fn", "calls")

    def __init__(self, fn, calls):
        self.fn, self.calls = fn, calls

    def __call__(self, *args, **kwargs):
        result = self.fn(*args, **kwargs)
        self.calls.append((self.fn, args, kwargs, result))
        return result


class recording:
    """Context in which the kernels that :func:`get` hands out on this thread append
    ``(kernel, args, kwargs, result)`` to ``calls`` when called (a CUDA kernel appends
    ``(None, name, None, None)``): how an inference plan captures the kernel calls of a call."""

    __slots__ = ("calls", "previous")

    def __init__(self, calls):
        self.calls = calls

    def __enter__(self):
        self.previous = _recording.calls
        _recording.calls = self.calls
        return self.calls

    def __exit__(self, *exc):
        _recording.calls = self.previous


def _load_family(family):
    if family in _loaded:
        return
    try:
        module = importlib.import_module(f"{__name__}.{family}")
    except ImportError as exc:
        if "_" + family in str(exc) or "No module named 'dlcore.kernels._" in str(exc):
            raise ImportError(
                f"dlcore's compiled kernels were not built ({exc}). Install dlcore with "
                "`pip install .` (or `pip install -e .` in a source checkout) so that "
                "the Cython extensions are compiled."
            ) from exc
        raise
    for name, fn in module.KERNELS.items():
        if name in _table:
            raise RuntimeError(f"kernel {name!r} is defined by two families")
        _table[name] = fn
    _loaded.add(family)


def _load_table():
    """The table of every kernel (one dict, shared with get())."""
    if len(_loaded) < len(FAMILIES):
        with _loading:
            for family in FAMILIES:
                _load_family(family)
    return _table


def get(name, device="cpu"):
    """The kernel called ``name`` for ``device``: "cpu" (the compiled table, families loaded on
    first use) or "cuda" (the numba.cuda twins in ``kernels/cuda``, same names and signatures,
    imported on first request)."""
    if device != "cpu":
        if device != "cuda":
            raise ValueError(f"kernels.get: device must be 'cpu' or 'cuda', received {device!r}")
        if _recording.calls is not None:
            _recording.calls.append((None, name, None, None))
        table = _cuda_table()
        try:
            return table[name]
        except KeyError:
            raise KeyError(f"no cuda kernel named {name!r}; known cuda kernels: {sorted(table)}") from None
    fn = _table.get(name)
    if fn is None:
        with _loading:
            for family in _SEARCH_ORDER:
                fn = _table.get(name)
                if fn is not None:
                    break
                _load_family(family)
            fn = _table.get(name)
        if fn is None:
            raise KeyError(f"no kernel named {name!r}; known kernels: {sorted(_table)}") from None
    calls = _recording.calls
    if calls is not None:
        return _Recorded(fn, calls)
    return fn


_cuda = None


def _cuda_table():
    """The CUDA kernel table; ImportError naming the ``cuda`` extra when numba.cuda is missing."""
    global _cuda
    if _cuda is None:
        try:
            from . import cuda

            _cuda = cuda.table()
        except ImportError as exc:
            raise ImportError(f"dlcore's GPU kernels need numba's CUDA support ({exc}); install it "
                              "with `pip install dlcore[cuda]` (numba-cuda)") from exc
    return _cuda


def names():
    """All CPU kernel names."""
    return sorted(_load_table())


__all__ = ["get", "names", "recording", "num_threads", "max_threads", "set_num_threads", "threads_for", "threads_for_macs", "team_threads_for_macs",
           "numba_cache_dir",
           "FAMILIES"]
