"""Process-level defaults, applied once by ``import dlcore`` before the compiled libraries load.

A value the user set (an environment variable) always wins.
"""
import ctypes
import os
import sys

# glibc mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Blocks below this size come from the heap and are reused after free (glibc's ceiling for it).
MMAP_THRESHOLD = 32 << 20
# Free memory at the top of the heap kept for reuse instead of being returned to the OS.
TRIM_THRESHOLD = 256 << 20

memory_reuse = False  # whether retain_freed_memory() changed the allocator


def set_thread_waiting_defaults():
    """How idle OpenMP threads (Cython kernels, Numba's omp layer) wait for the next region.

    libgomp's default spins 300,000 rounds, which on a busy 2-core machine stole the cores from
    the next kernel and from BLAS (an MLP training step: 27 ms, against 1.4 ms with passive
    waiting). Purely passive waiting pays a futex wake-up (tens of microseconds on this VM) at
    every parallel region instead: with 2 threads on an idle machine an MLP step took 2.92 ms
    and a CNN step 10.6 ms. A short spin (GOMP_SPINCOUNT=1000, about a microsecond) keeps most
    of both: 1.55 / 7.8 ms idle, and 3.2 / 15.5 ms with a busy loop on the other core (passive:
    2.1 / 14.9; spinning 10,000 rounds: 7.1 / 27.8)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")  # libgomp: overrides PASSIVE's zero spin
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def retain_freed_memory():
    """Let glibc reuse freed activation buffers instead of unmapping them.

    By default glibc serves blocks above 128 KiB (raised dynamically up to the largest block
    freed) from fresh mmaps and trims the heap top past 2x that, so every training step
    allocated its multi-megabyte activations and gradients on new pages: 2,500 page faults and
    about 6 ms of a 22 ms CNN step (batch 64) went to the kernel zeroing pages. With blocks up to
    MMAP_THRESHOLD taken from the heap and up to TRIM_THRESHOLD of free heap kept, the step has
    no page faults and the peak RSS is unchanged (it is the peak of live buffers either way).
    Skipped off glibc, when the user set any MALLOC_* variable or GLIBC_TUNABLES, or with
    DLCORE_RETAIN_FREED_MEMORY=0.
    """
    global memory_reuse
    if not sys.platform.startswith("linux") or os.environ.get("DLCORE_RETAIN_FREED_MEMORY") == "0":
        return False
    if "GLIBC_TUNABLES" in os.environ or any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    memory_reuse = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return memory_reuse
