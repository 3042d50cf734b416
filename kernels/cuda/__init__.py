"""dlcore.kernels.cuda: numba.cuda mirrors of the CPU kernels (optional, the ``cuda`` extra).

Each family module (gemm, elementwise, reduce, losses, optim, conv, pooling, normalization,
dropout, recurrent, embedding, attention) ends with a ``KERNELS`` table whose names and Python signatures equal the CPU twins'
(``tests/cuda`` checks both), so the op tier calls ``kernels.get(name, device="cuda")`` with the
same arguments it passes on the CPU. The arrays are numba device arrays (``n_threads`` arguments
are accepted and ignored). Importing this package imports ``numba.cuda``; ``dlcore.kernels``
imports it only when a GPU kernel is requested, so ``import dlcore`` never does.

Legend as in the CPU families. Launches: one thread per output element (or per row where a row
reduces), ``THREADS_PER_BLOCK`` threads per block; matmul uses TILE x TILE shared-memory tiles.
"""
import importlib

FAMILIES = ("gemm", "elementwise", "reduce", "losses", "optim", "conv", "pooling", "normalization", "dropout",
            "recurrent", "embedding", "attention")

_table = None


def table():
    """{name: kernel} over every CUDA family (compiled lazily by numba on first launch)."""
    global _table
    if _table is None:
        merged = {}
        for family in FAMILIES:
            module = importlib.import_module(f"{__name__}.{family}")
            for name, fn in module.KERNELS.items():
                if name in merged:
                    raise RuntimeError(f"CUDA kernel {name!r} is defined by two families")
                merged[name] = fn
        _table = merged
    return _table


def names():
    """All CUDA kernel names."""
    return sorted(table())


__all__ = ["table", "names", "FAMILIES"]
