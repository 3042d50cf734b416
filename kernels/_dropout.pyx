# Design: the dropout family's counter-based generator, Cython over dl_philox.h. It was a Numba
# loop of scalar Philox rounds (1.9 ms for the 524,288 draws of one transformer Dropout, 4% of a
# training step); the rounds of 16 blocks at once in AVX-512 registers take about 0.2 ms, and
# ahead-of-time code adds no JIT compile to a first training step. The draw is the same bits as
# before (and as kernels/cuda/dropout.py): u[i] depends on (key, i) only. OpenMP runs over fixed
# chunks of CHUNK_BLOCKS whole blocks (disjoint writes), so results do not depend on the thread
# count; the partial last block is written on the calling thread.
#
# Legend: N elements, per = 4 (float32) or 2 (float64) elements per Philox block.
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

from . import _config

cdef extern from "dl_sgemm.h" nogil:
    int dl_sgemm_available()

cdef extern from "dl_philox.h" nogil:
    void dl_philox_block(uint64_t block, uint32_t k0, uint32_t k1, uint32_t* w)
    void dl_philox_store_f32(const uint32_t* w, float* u, Py_ssize_t n)
    void dl_philox_store_f64(const uint32_t* w, double* u, Py_ssize_t n)
    void dl_philox_f32(uint32_t k0, uint32_t k1, uint64_t b0, uint64_t b1, float* u, int vector)
    void dl_philox_f64(uint32_t k0, uint32_t k1, uint64_t b0, uint64_t b1, double* u)

ctypedef fused floating:
    float
    double

# Blocks per OpenMP chunk (a multiple of the 16-block vector step): 64 KB of float32 draws.
CHUNK_BLOCKS = 4096
cdef uint64_t _CHUNK = CHUNK_BLOCKS
cdef int _VECTOR = dl_sgemm_available()


def set_isa(int isa):
    """0: the AVX-512 rounds where the CPU has them; 1: the scalar rounds (for tests). Returns the
    previous selection, or -1 (nothing changed) where the CPU or the build lacks it."""
    global _VECTOR
    if isa not in (0, 1) or (isa == 0 and not dl_sgemm_available()):
        return -1
    previous = 0 if _VECTOR else 1
    _VECTOR = 1 if isa == 0 else 0
    return previous


def philox_uniform(key0, key1, floating[::1] u_out_n):
    """u_out_n[i] = a uniform [0, 1) draw that depends only on (key0, key1, i).

    key0, key1: Python ints in [0, 2**32), IN (the key)
    u_out_n: (N,) float32/64, C-contiguous, OUT: float32 from 24 bits, float64 from 53

    Block b = i // 4 (float32: words b0..b3 give elements 4b..4b+3, 24 top bits each) or
    i // 2 (float64: words (w0, w1) and (w2, w3) give 2b, 2b+1, 27 + 26 bits as NumPy's doubles).
    """
    cdef uint32_t k0 = <uint32_t>(int(key0) & 0xFFFFFFFF), k1 = <uint32_t>(int(key1) & 0xFFFFFFFF)
    cdef Py_ssize_t n = u_out_n.shape[0]
    cdef Py_ssize_t per = 4 if floating is float else 2
    cdef uint64_t full = <uint64_t>(n // per), b1
    cdef Py_ssize_t chunks = <Py_ssize_t>((full + _CHUNK - 1) // _CHUNK), ch
    cdef uint32_t w[4]
    cdef int threads = _config.threads_for(n * 16)
    cdef int vector = _VECTOR
    if n == 0:
        return
    for ch in prange(chunks, nogil=True, num_threads=threads, schedule="static"):
        b1 = (<uint64_t>ch + 1) * _CHUNK
        if b1 > full:
            b1 = full
        if floating is float:
            dl_philox_f32(k0, k1, <uint64_t>ch * _CHUNK, b1, &u_out_n[0], vector)
        else:
            dl_philox_f64(k0, k1, <uint64_t>ch * _CHUNK, b1, &u_out_n[0])
    if <Py_ssize_t>full * per < n:
        dl_philox_block(full, k0, k1, w)
        if floating is float:
            dl_philox_store_f32(w, &u_out_n[full * per], n - full * per)
        else:
            dl_philox_store_f64(w, &u_out_n[full * per], n - full * per)
