"""dlcore.kernels: compiled compute on NumPy buffers (tier 3).

Arrays in, preallocated arrays out; no knowledge of tensors, layers or models. Each family
module ends with a ``KERNELS`` table; :func:`get` looks a kernel up by name. Cython kernels are
ready at import; Numba kernels compile on their first call (see ``_config.jit``).
"""
import importlib

from . import _config
from ._config import max_threads, num_threads, numba_cache_dir, set_num_threads, threads_for

_config.preload_cython_blas()

FAMILIES = ("gemm", "elementwise", "reduce", "losses", "dropout", "optim", "conv", "pooling", "norm", "normalization",
            "recurrent", "embedding", "attention")

_table = None


def _load_table():
    global _table
    if _table is None:
        table = {}
        for family in FAMILIES:
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
                if name in table:
                    raise RuntimeError(f"kernel {name!r} is defined by two families")
                table[name] = fn
        _table = table
    return _table


def get(name, device="cpu"):
    """The kernel called ``name`` for ``device``: "cpu" (the compiled table) or "cuda" (the
    numba.cuda twins in ``kernels/cuda``, same names and signatures, imported on first request)."""
    if device == "cpu":
        table = _table if _table is not None else _load_table()
    elif device == "cuda":
        table = _cuda_table()
    else:
        raise ValueError(f"kernels.get: device must be 'cpu' or 'cuda', received {device!r}")
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"no {device} kernel named {name!r}; known {device} kernels: {sorted(table)}") from None


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


__all__ = ["get", "names", "num_threads", "max_threads", "set_num_threads", "threads_for", "numba_cache_dir",
           "FAMILIES"]
