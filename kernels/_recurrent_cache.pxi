# Included by _recurrent.pyx: packed copies of recurrent kernels kept across calls, for the
# batch-1 LSTM forward (dl_recurrent_b1.h). Packing R costs what 3 steps of the product cost
# (LSTM(128): 7.5 us), so a predict loop packs each layer's R once. R is the caller's array and
# may have been written since, so a cached copy is used only after comparing it with R bit for
# bit (LSTM(128): 4.4 us alone, about 1 us spread over the input projection in
# lstm_forward_inputs) and a changed or reallocated R is never read stale. The cache is keyed by
# R's address and shape, holds at most _CACHE_ENTRIES copies and _CACHE_BYTES bytes (least
# recently used evicted first); its bookkeeping runs under the GIL while the buffers it hands
# out are immutable and reference-counted, so concurrent forwards (which release the GIL)
# never see a buffer change or disappear under them.

cdef struct _Packed:
    const void* key       # R's address
    Py_ssize_t rows       # U
    Py_ssize_t ldr        # R's row stride
    float* data           # the packed copy (64-byte aligned)
    void* raw             # what malloc returned
    Py_ssize_t nbytes
    int finite            # all of R finite (dlr_b1_pack)
    int refs              # the table's reference + one per forward using it
    unsigned long long used


cdef enum:
    _CACHE_SLOTS = 16
cdef int _CACHE_ENTRIES = 8
cdef Py_ssize_t _CACHE_BYTES = 64 << 20
cdef _Packed* _cache[_CACHE_SLOTS]
cdef unsigned long long _cache_tick = 0
cdef Py_ssize_t _cache_packs = 0  # packs made (tests read it through packed_cache_info)


cdef _Packed* _packed_new(const float* r, Py_ssize_t u, Py_ssize_t ldr) noexcept nogil:
    """A new packed copy of R (refs 1: the caller's), or NULL when out of memory."""
    cdef Py_ssize_t nbytes = dlr_b1_pack_size(u) * sizeof(float)
    cdef _Packed* e = <_Packed*>malloc(sizeof(_Packed))
    if e == NULL:
        return NULL
    e.raw = malloc(nbytes + 64)
    if e.raw == NULL:
        free(e)
        return NULL
    e.data = <float*>((<Py_ssize_t>e.raw + 63) // 64 * 64)
    e.key, e.rows, e.ldr, e.nbytes, e.refs, e.used = r, u, ldr, nbytes, 1, 0
    e.finite = dlr_b1_pack(u, r, ldr, e.data)
    return e


cdef void _packed_release(_Packed* e) noexcept:
    """Drops one reference (GIL held); the last one frees the copy."""
    e.refs -= 1
    if e.refs == 0:
        free(e.raw)
        free(e)


cdef _Packed* _packed_lookup(const float* r, Py_ssize_t u, Py_ssize_t ldr) noexcept:
    """The cached copy for this address and shape with a reference for the caller (GIL held),
    or NULL. Its contents are not checked here (_lstm_b1 does)."""
    global _cache_tick
    cdef int i
    cdef _Packed* e
    for i in range(_CACHE_SLOTS):
        e = _cache[i]
        if e != NULL and e.key == <const void*>r and e.rows == u and e.ldr == ldr:
            _cache_tick += 1
            e.used = _cache_tick
            e.refs += 1
            return e
    return NULL


cdef void _packed_store(_Packed* fresh) noexcept:
    """Puts a fresh copy in the table (GIL held), replacing the entry of the same key, else the
    least recently used one when the table is full or over _CACHE_BYTES."""
    global _cache_tick
    cdef int i, free_slot = -1, oldest
    cdef Py_ssize_t total = fresh.nbytes
    cdef _Packed* e
    if fresh.nbytes > _CACHE_BYTES:
        return
    for i in range(_CACHE_SLOTS):
        e = _cache[i]
        if e != NULL and e.key == fresh.key and e.rows == fresh.rows and e.ldr == fresh.ldr:
            _cache[i] = NULL
            _packed_release(e)
    while True:
        total, free_slot, oldest = fresh.nbytes, -1, -1
        for i in range(_CACHE_SLOTS):
            e = _cache[i]
            if e == NULL:
                if free_slot < 0 and i < _CACHE_ENTRIES:
                    free_slot = i
            else:
                total += e.nbytes
                if oldest < 0 or e.used < _cache[oldest].used:
                    oldest = i
        if free_slot >= 0 and total <= _CACHE_BYTES:
            break
        if oldest < 0:
            return
        e = _cache[oldest]
        _cache[oldest] = NULL
        _packed_release(e)
    _cache_tick += 1
    fresh.used = _cache_tick
    fresh.refs += 1
    _cache[free_slot] = fresh


cdef _Packed* _packed_fresh(const float* r, Py_ssize_t u, Py_ssize_t ldr):
    """A new packed copy of R, stored in the table, with a reference for the caller (release it
    with _packed_release, GIL held), or NULL when out of memory. GIL held; packs without it."""
    global _cache_packs
    cdef _Packed* e
    with nogil:
        e = _packed_new(r, u, ldr)
    if e != NULL:
        _cache_packs += 1
        _packed_store(e)
    return e


def packed_cache_info():
    """(entries, bytes, packs made so far) of the batch-1 LSTM's packed-R cache (for tests)."""
    cdef int i, n = 0
    cdef Py_ssize_t nbytes = 0
    for i in range(_CACHE_SLOTS):
        if _cache[i] != NULL:
            n += 1
            nbytes += _cache[i].nbytes
    return n, nbytes, _cache_packs


def packed_cache_clear():
    """Empties the packed-R cache (copies in use are freed when their forwards end)."""
    cdef int i
    cdef _Packed* e
    for i in range(_CACHE_SLOTS):
        e = _cache[i]
        if e != NULL:
            _cache[i] = NULL
            _packed_release(e)
