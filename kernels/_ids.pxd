# The bounds check of the kernels that index rows by input values (embedding lookups): the ops
# check ids with a clear message first; this keeps a replayed call (models/replay.py), which skips
# the ops' Python, from reading outside the table.
from libc.stdint cimport int32_t, int64_t

ctypedef fused index_t:
    int32_t
    int64_t


cdef inline Py_ssize_t first_out_of_range(const index_t* ids, Py_ssize_t n, Py_ssize_t rows) noexcept nogil:
    """The position of the first id outside [0, rows), or -1."""
    cdef Py_ssize_t i
    for i in range(n):
        if ids[i] < 0 or ids[i] >= rows:
            return i
    return -1
