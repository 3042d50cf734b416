# Included by _recurrent.pyx: the batch-1 LSTM forward's entry (dl_recurrent_b1.h on R packed
# once per layer, _recurrent_cache.pxi). lstm_forward takes its arrays as objects and reads the
# batch-1 inference call's pointers through NumPy's C API after checking type, dtype, layout and
# shapes (about 0.1 us), where typed memoryviews cost about 0.5 us each (2.7 us of a call that
# does 120 us of work); every other call goes to _lstm_forward, the typed general path.
cimport numpy as cnp

from ._team cimport team_run

cnp.import_array()

cdef extern from "dl_recurrent_b1.h" nogil:
    ctypedef struct dlr_b1_job:
        Py_ssize_t n_parts
    void dlr_b1_job_init(dlr_b1_job* j, Py_ssize_t t_len, Py_ssize_t u, Py_ssize_t n_parts, float* z,
                         const float* p, int finite, float* h, float* c, float* y, float* hbuf)
    void dlr_b1_chunk(dlr_b1_job* j, Py_ssize_t chunk)
    void dlr_b1_whole(dlr_b1_job* j)
    void dlr_b1_job_end(const dlr_b1_job* j)


cdef inline bint _b1_available() noexcept nogil:
    """Whether the batch-1 LSTM forward runs here: AVX-512 chosen for the products (set_isa)."""
    return DLR_B1_AVAILABLE != 0 and dl_sgemm_chain_pack_width() == 64


cdef void _b1_chunk(void* job, Py_ssize_t chunk) noexcept nogil:
    dlr_b1_chunk(<dlr_b1_job*>job, chunk)


cdef void _b1_whole(void* job) noexcept nogil:
    dlr_b1_whole(<dlr_b1_job*>job)


cdef int _lstm_b1(float* z, const float* r, Py_ssize_t ldr, float* h, float* c, float* y,
                  Py_ssize_t T, Py_ssize_t U, const float* x=NULL, const float* w=NULL,
                  const float* bias=NULL, Py_ssize_t K=0, int n_threads=1) except -1:
    """One row, no mask, no dropout, nothing recorded, tanh/sigmoid: dlr_lstm_b1_forward on R
    packed once per layer (_recurrent_cache.pxi), checked against R first. With x (T, K) and w
    (K, 4U) (and bias (4U,) or NULL), the input projection z = x w + bias runs here too, with
    the check spread over it (dlr_b1_project). n_threads > 1: the recurrence on the thread team,
    units split by blocks (dl_recurrent_b1.h's job), the same bits. Called with the GIL held."""
    cdef bint same = False, projected = False
    cdef _Packed* e = _packed_lookup(r, U, ldr)
    cdef float* hbuf
    cdef dlr_b1_job job
    if e != NULL:
        with nogil:
            if x != NULL:
                same = dlr_b1_project(T, K, U, x, w, bias, z, 1, r, ldr, e.data)
                projected = True
            else:
                same = dlr_b1_same(U, r, ldr, e.data)
        if not same:
            _packed_release(e)
            e = NULL
    if e == NULL:
        e = _packed_fresh(r, U, ldr)
        if e == NULL:
            raise MemoryError("lstm_forward: no memory for the packed recurrent kernel")
    hbuf = <float*>malloc((2 * U + 32) * sizeof(float))
    if hbuf == NULL:
        _packed_release(e)
        raise MemoryError("lstm_forward: no memory for the state buffers")
    with nogil:
        if x != NULL and not projected:
            dlr_b1_project(T, K, U, x, w, bias, z, 0, r, ldr, e.data)
        if n_threads > 1:  # h_{t-1} and h_t on 64-byte lines: the parts write whole lines
            dlr_b1_job_init(&job, T, U, n_threads, z, e.data, e.finite, h, c, y,
                            <float*>((<size_t>hbuf + 63) & ~(<size_t>63)))
        if n_threads > 1 and job.n_parts > 1:
            team_run(_b1_chunk, &job, job.n_parts, n_threads, T * U * 4 * U, _b1_whole)
            dlr_b1_job_end(&job)
        else:
            dlr_lstm_b1_forward(T, U, z, e.data, e.finite, h, c, y, hbuf)
    free(hbuf)
    _packed_release(e)
    return 0


cdef float* _f32(object a, int ndim, bint writable) except? NULL:
    """a's data when a is a C-contiguous, aligned float32 ndarray of ndim dimensions (writable
    if asked), else NULL."""
    cdef cnp.ndarray arr
    if not cnp.PyArray_CheckExact(a):
        return NULL
    arr = <cnp.ndarray>a
    if (cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or cnp.PyArray_NDIM(arr) != ndim
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISALIGNED(arr)
            or (writable and not cnp.PyArray_ISWRITEABLE(arr))):
        return NULL
    return <float*>cnp.PyArray_DATA(arr)


cdef bint _lstm_b1_call(object z_ntg, object r_ug, object h_nu, object c_nu, object y_ntu,
                        const float* x=NULL, const float* w=NULL, const float* bias=NULL,
                        Py_ssize_t K=0, int n_threads=1) except -1:
    """Runs the batch-1 forward when the arrays fit it (one row, float32, C-contiguous, shapes
    consistent, T >= _PACK_MIN_STEPS); False: they do not, nothing was done."""
    cdef float* z = _f32(z_ntg, 3, True)
    cdef float* r = _f32(r_ug, 2, False)
    cdef float* h = _f32(h_nu, 2, True)
    cdef float* c = _f32(c_nu, 2, True)
    cdef float* y = NULL
    cdef cnp.npy_intp* zs
    cdef cnp.npy_intp* ys
    cdef Py_ssize_t T, U
    if z == NULL or r == NULL or h == NULL or c == NULL:
        return False
    zs = cnp.PyArray_DIMS(<cnp.ndarray>z_ntg)
    T, U = zs[1], cnp.PyArray_DIMS(<cnp.ndarray>h_nu)[1]
    if (zs[0] != 1 or U < 1 or zs[2] != 4 * U or T < _PACK_MIN_STEPS
            or cnp.PyArray_DIMS(<cnp.ndarray>r_ug)[0] != U or cnp.PyArray_DIMS(<cnp.ndarray>r_ug)[1] != 4 * U
            or cnp.PyArray_DIMS(<cnp.ndarray>h_nu)[0] != 1 or cnp.PyArray_DIMS(<cnp.ndarray>c_nu)[0] != 1
            or cnp.PyArray_DIMS(<cnp.ndarray>c_nu)[1] != U):
        return False
    if y_ntu is not None:
        y = _f32(y_ntu, 3, True)
        if y == NULL:
            return False
        ys = cnp.PyArray_DIMS(<cnp.ndarray>y_ntu)
        if ys[0] != 1 or ys[1] != T or ys[2] != U:
            return False
    _lstm_b1(z, r, 4 * U, h, c, y, T, U, x, w, bias, K, n_threads)
    return True


def lstm_forward(z_ntg, r_ug, mask_nt, rmask_knu, int activation, double alpha,
                 int recurrent_activation, double recurrent_alpha, bint zero_output, h_nu, c_nu,
                 hprev_ntu, cprev_ntu, y_ntu, int n_threads=1):
    """LSTM over T steps (Keras gate order i, f, c, o):
    i, f, o = rec_act(z_t + h_{t-1} @ R) parts, g = act(...), c_t = f c_{t-1} + i g,
    h_t = o act(c_t).

    z_ntg: (N, T, 4U) float32/64, C-contiguous, IN/OUT: x @ W + b in; gates i, f, g, o out
    r_ug: (U, 4U) same dtype, C-contiguous, IN: recurrent kernel
    mask_nt: (N, T) uint8, C-contiguous, IN (1 = valid step), or None
    rmask_knu: (4, N, U) same dtype, C-contiguous, IN: recurrent dropout masks per gate, or None
    h_nu, c_nu: (N, U) same dtype, C-contiguous, IN/OUT: initial states in, final states out
    hprev_ntu, cprev_ntu: (N, T, U) same dtype, C-contiguous, OUT: h_{t-1}, c_{t-1} per step
    (both or neither), or None
    y_ntu: (N, T, U) same dtype, C-contiguous, OUT: the output sequence, or None
    activation/alpha, recurrent_activation/recurrent_alpha: codes from elementwise.ACTIVATIONS;
    n_threads: batch chunks run in parallel.
    """
    if (mask_nt is None and rmask_knu is None and hprev_ntu is None and cprev_ntu is None
            and activation == ACT_TANH and recurrent_activation == ACT_SIGMOID and _b1_available()
            and _lstm_b1_call(z_ntg, r_ug, h_nu, c_nu, y_ntu, NULL, NULL, NULL, 0, n_threads)):
        return
    _lstm_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
                  recurrent_alpha, zero_output, h_nu, c_nu, hprev_ntu, cprev_ntu, y_ntu, n_threads)


def lstm_forward_inputs(x_tk, w_kg, b_g, z_ntg, r_ug, h_nu, c_nu, y_ntu, int n_threads=1):
    """One row of LSTM inference from its inputs (Keras gate order i, f, c, o; tanh and sigmoid;
    no mask or dropout; nothing recorded for backward): z = x @ W + b for all steps, then the
    recurrence of lstm_forward, in one call (batch-1 predict: the input projection hides the
    check of the cached packed R, see dl_recurrent_b1.h). Results equal rows_matmul followed by
    lstm_forward, bit for bit, which is what runs where the batch-1 path does not.

    x_tk: (T, K) float32/64, C-contiguous, IN: the row's inputs
    w_kg: (K, 4U) same dtype, C-contiguous, IN: kernel
    b_g: (4U,) same dtype, C-contiguous, IN, or None
    z_ntg: (1, T, 4U) same dtype, C-contiguous, OUT: gates i, f, g, o
    r_ug: (U, 4U) same dtype, C-contiguous, IN: recurrent kernel
    h_nu, c_nu: (1, U) same dtype, C-contiguous, IN/OUT: initial states in, final states out
    y_ntu: (1, T, U) same dtype, C-contiguous, OUT: the output sequence, or None
    n_threads: the recurrence's units split over the thread team (the same bits for any count)
    """
    cdef const float* x = _f32(x_tk, 2, False)
    cdef const float* w = _f32(w_kg, 2, False)
    cdef bint fits = (_b1_available() and x != NULL and w != NULL and _f32(r_ug, 2, False) != NULL
                      and _f32(z_ntg, 3, True) != NULL)
    cdef const float* bias = NULL
    cdef Py_ssize_t K = 0
    cdef cnp.npy_intp* wd
    if fits:
        K = cnp.PyArray_DIMS(<cnp.ndarray>x_tk)[1]
        wd = cnp.PyArray_DIMS(<cnp.ndarray>w_kg)
        fits = (K > 0 and wd[0] == K and wd[1] == cnp.PyArray_DIMS(<cnp.ndarray>r_ug)[1]
                and cnp.PyArray_DIMS(<cnp.ndarray>z_ntg)[1] == cnp.PyArray_DIMS(<cnp.ndarray>x_tk)[0])
    if fits and b_g is not None:
        bias = _f32(b_g, 1, False)
        fits = bias != NULL and cnp.PyArray_DIMS(<cnp.ndarray>b_g)[0] == wd[1]
    if fits and _lstm_b1_call(z_ntg, r_ug, h_nu, c_nu, y_ntu, x, w, bias, K, n_threads):
        return
    rows_matmul(x_tk, w_kg, b_g, z_ntg.reshape(z_ntg.shape[1], z_ntg.shape[2]))
    lstm_forward(z_ntg, r_ug, None, None, ACT_TANH, 0.0, ACT_SIGMOID, 0.0, False, h_nu, c_nu, None,
                 None, y_ntu, n_threads)
