# Design: the recurrence of SimpleRNN, LSTM and GRU as one compiled loop over time, forward and
# backward (BPTT), and the GEMMs around it. Cython for both directions: forward because inference
# needs it (predict never imports numba), backward because each step is a small product on
# strided sub-matrices (one time slice of a batch-major (N, T, G) buffer) plus a fused epilogue,
# reached here with leading dimensions and no copies (Numba's np.dot needs contiguous operands
# and allocates).
#   - The op tier runs the input projection of all steps as one product (rows_matmul: z = x W + b,
#     (N, T, G)), then the recurrence kernel, and in backward the BPTT kernel, which yields the
#     gate pre-activation gradients dz of all steps, then dW = x^T dz, dR = hprev^T dz, db = column
#     sums (one rows_matmul_tn call: one pass over dz for the three) and dx = dz W^T (rows_matmul):
#     _recurrent_products.pxi.
#   - Per step: z[:, t] += h_{t-1} R accumulated straight into the time slice (ldc = T*G), then
#     the gate epilogue per batch row (nonlinearities, state update, output write) in one pass;
#     the activated gates overwrite z, which is what backward reads. A step's rows of z, dz and
#     the saved states are short pieces T rows apart (2 KB for LSTM(128)), too many streams for
#     the hardware prefetchers: the LSTM's gate loop prefetches each row's pieces of the next step
#     as it finishes the row, so they arrive during the step's product (LSTM(128) training step,
#     batch 64, 1 thread, CPU time in the step: forward 6.0 -> 5.4 ms, backward 5.6 -> 4.7 ms;
#     all rows' prefetches issued at once before the product gained a third of that). A zero
#     initial state (LSTM) adds one product 0 @ R to every row at step 0 instead of running it.
#   - float32 products use dl_sgemm.h's fixed-chain variants (one FMA chain per element, so
#     results do not depend on the batch size, the tiling or the thread count), not OpenBLAS,
#     which packs the whole recurrent kernel on every call: measured on LSTM(128), a 1-row step
#     3 us against 22 us, a 32-row step 17 us against 50 us. float64 (gradient checks) goes
#     through BLAS. Few-row forward passes (batch-1 inference, >= 6 steps) read R packed once per
#     call into column panels (measured: the 50-step recurrence 76 us against 124 us, packing
#     included), bit-identical to the unpacked path; other copies of R get a padded row stride
#     (_pad_ld). Step helpers and their measurements: _recurrent_steps.pxi.
#   - The batch-1 LSTM forward (inference: one row, tanh/sigmoid, no mask, dropout or recording;
#     AVX-512) is dl_recurrent_b1.h: R packed in 16-unit gate blocks, cached across calls and
#     checked against R bit for bit (_recurrent_cache.pxi), the gate math pipelined into the
#     product's chunks; bit-identical to the general path. Its entry reads the arrays through
#     NumPy's C API instead of typed memoryviews (_recurrent_b1.pxi), as rows_matmul's does for
#     small float32 products (the batch-1 input projection).
#   - float32 sigmoid and tanh use dl_expf.h's polynomials (about 2 ulp, NaN propagates), compiled
#     per ISA (dl_rnn_cells.h); float64 and other activations the exact _activations.pxd ones.
#   - Threads: a per-step barrier costs a scheduler tick whenever a thread is descheduled, so the
#     batch is split into chunks that each run the whole sequence with no barrier, and BLAS is
#     set to one thread meanwhile (dl_blas_threads.h).
#   - Masks (Keras semantics): a masked step keeps the states; its output is the previous output
#     (zeros before the first valid step), or zeros with zero_output (Bidirectional's
#     return_sequences layers). Masked rows still take part in the step's product; their gates
#     are not activated and their gate gradients are zero.
#   - Recurrent dropout: rmask_knu holds one (N, U) mask per gate (Keras's implementation 1), so
#     the step runs one product per gate on h * mask[g].
#   - go_backwards is the op's business (it reverses x and the mask), so the kernels always run
#     forward in time over their input.
#
# Legend: N batch, T time steps, K input features, U units, G = gates * U (LSTM 4U in gate order
# i, f, c, o; GRU 3U in order z, r, h; SimpleRNN U).
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memmove, memset

from kernels._activations cimport (
    floating, act_row, f_expm1, f_abs, ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH,
    ACT_LEAKY_RELU, ACT_ELU, ACT_SELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
    ACT_EXPONENTIAL,
)
from kernels._blas_threads cimport (
    dl_blas_bind, dl_blas_bound, dl_blas_serial_enter, dl_blas_serial_exit, sgemm, dgemm, dgemv,
)

from . import _blas

cdef extern from "dl_rnn_cells.h" nogil:
    void dlr_sigmoid_f32(const float* x, float* y, Py_ssize_t n)
    void dlr_tanh_f32(const float* x, float* y, Py_ssize_t n)
    void dlr_lstm_cell_f32(float* z, float* c, float* h, Py_ssize_t n)
    void dlr_lstm_cell_back_f32(const float* z, const float* cp, float* dh, float* dc, float* dz,
                                Py_ssize_t n)

cdef extern from "dl_recurrent_b1.h" nogil:
    int DLR_B1_AVAILABLE
    Py_ssize_t dlr_b1_pack_size(Py_ssize_t u)
    int dlr_b1_pack(Py_ssize_t u, const float* r, Py_ssize_t ldr, float* p)
    int dlr_b1_same(Py_ssize_t u, const float* r, Py_ssize_t ldr, const float* p)
    int dlr_b1_project(Py_ssize_t t_len, Py_ssize_t k, Py_ssize_t u, const float* x, const float* w,
                       const float* bias, float* z, int check, const float* r, Py_ssize_t ldr,
                       const float* p)
    void dlr_lstm_b1_forward(Py_ssize_t t_len, Py_ssize_t u, float* z, const float* p, int finite,
                             float* h, float* c, float* y, float* hbuf)

cdef extern from "dl_sgemm.h" nogil:
    void dl_sgemm_chain(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                        Py_ssize_t ldb, float beta, const float* bias, float* C, Py_ssize_t ldc)
    ctypedef struct dl_tn_part:
        const float* a
        Py_ssize_t lda
        Py_ssize_t k
        float* c
        Py_ssize_t ldc
    void dl_sgemm_chain_tn_parts(Py_ssize_t m, int nparts, const dl_tn_part* parts, Py_ssize_t j0,
                                 Py_ssize_t j1, const float* B, Py_ssize_t ldb)
    void dl_sgemm_chain_tn(Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0, Py_ssize_t j1, const float* A,
                           Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C, Py_ssize_t ldc)
    int dl_sgemm_chain_pack_width()
    int dl_sgemm_set_isa(int isa)
    int dl_sgemm_chain_pack(int k, int n, const float* B, Py_ssize_t ldb, float* P)
    void dl_sgemm_chain_packed(int m, int n, int k, const float* A, Py_ssize_t lda, const float* P,
                               float beta, float* C, Py_ssize_t ldc)

# float64 steps of up to this many rows run one BLAS gemv per row instead of a gemm.
GEMV_ROWS = 8
cdef int _GEMV_ROWS = GEMV_ROWS

# Activation codes whose derivative the backward kernels compute from the forward output.
BACKWARD_ACTIVATIONS = (ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_LEAKY_RELU, ACT_ELU,
                        ACT_SELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
                        ACT_EXPONENTIAL)


def bind_blas_threads(size_t address):
    """Bind the process's BLAS state: function table and thread switch (kernels/_blas.py)."""
    dl_blas_bind(address)


_blas.bind_at_import(bind_blas_threads)  # before any kernel of this module can call BLAS


include "_recurrent_steps.pxi"
include "_recurrent_cache.pxi"
include "_recurrent_b1.pxi"


# ---- SimpleRNN ---------------------------------------------------------------------------------
cdef void _rnn_fwd(floating* z, const floating* r, Py_ssize_t ldr, const floating* pk,
                   const unsigned char* mask, const floating* rm,
                   int act, floating a, bint zero_output, floating* h, floating* hprev, floating* y,
                   Py_ssize_t N, Py_ssize_t T, Py_ssize_t U, Py_ssize_t n0,
                   Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t ld = T * U, n, t
    cdef int m = <int>(n1 - n0)
    cdef floating* zr
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, z)
    for t in range(T):
        if hprev != NULL:
            for n in range(n0, n1):
                _copy(h + n * U, hprev + (n * T + t) * U, U)
        _project(h + n0 * U, <int>U, NULL if rm == NULL else rm + n0 * U, N * U, m, <int>U, 0, 1,
                 r, <int>ldr, pk, 1, z + n0 * ld + t * U, <int>ld, work)
        for n in range(n0, n1):
            if mask == NULL or mask[n * T + t] != 0:
                zr = z + n * ld + t * U
                _act(act, a, zr, zr, U)
                _copy(zr, h + n * U, U)
                if y != NULL:
                    _copy(zr, y + (n * T + t) * U, U)
            elif y != NULL:
                _masked_output(y + (n * T + t) * U, y + (n * T + t - 1) * U, t > 0, zero_output, U)
    free(work)


cdef void _rnn_bwd(const floating* z, const floating* rt, const unsigned char* mask,
                   const floating* rm, int act, floating a, bint zero_output, const floating* dy,
                   floating* dh, floating* dz, Py_ssize_t N, Py_ssize_t T, Py_ssize_t U,
                   Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t ld = T * U, n, t
    cdef int m = <int>(n1 - n0)
    cdef bint valid
    cdef floating* dzr
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, dz)
    cdef floating* carry = NULL
    if mask != NULL and not zero_output and dy != NULL:
        carry = _scratch(m * U, dz)
        _zero(carry, m * U)
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            valid = mask == NULL or mask[n * T + t] != 0
            dzr = dz + n * ld + t * U
            if dy != NULL:
                _output_grad(dh + n * U, dy + (n * T + t) * U,
                             NULL if carry == NULL else carry + (n - n0) * U, valid, mask != NULL,
                             zero_output, U)
            if valid:
                _dact(act, a, z + n * ld + t * U, dh + n * U, dzr, U)
                _zero(dh + n * U, U)
            else:
                _zero(dzr, U)
        _project_back(dz + n0 * ld + t * U, <int>ld, NULL if rm == NULL else rm + n0 * U, N * U, m,
                      <int>U, 0, 1, rt, dh + n0 * U, work)
    free(work)
    free(carry)


def simple_rnn_forward(floating[:, :, ::1] z_ntg, const floating[:, ::1] r_ug,
                       const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                       int activation, double alpha, bint zero_output, floating[:, ::1] h_nu,
                       floating[:, :, ::1] hprev_ntu, floating[:, :, ::1] y_ntu, int n_threads=1):
    """h_t = act(z_t + h_{t-1} @ R) for t = 0..T-1, masked steps keeping h (G = U).

    z_ntg: (N, T, U) float32/64, C-contiguous, IN/OUT: x @ W + b in; h_t (the activation) out
    r_ug: (U, U) same dtype, C-contiguous, IN: recurrent kernel
    mask_nt: (N, T) uint8, C-contiguous, IN (1 = valid step), or None
    rmask_knu: (1, N, U) same dtype, C-contiguous, IN: recurrent dropout mask, or None
    h_nu: (N, U) same dtype, C-contiguous, IN/OUT: initial state in, final state out
    hprev_ntu: (N, T, U) same dtype, C-contiguous, OUT: h_{t-1} at each step (backward), or None
    y_ntu: (N, T, U) same dtype, C-contiguous, OUT: the output sequence, or None
    activation: code from elementwise.ACTIVATIONS, alpha its parameter; zero_output: masked
    outputs are zeros instead of the previous output; n_threads: batch chunks run in parallel.
    """
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = h_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef floating* z = &z_ntg[0, 0, 0] if N * T * U else NULL
    cdef const floating* r = &r_ug[0, 0] if U else NULL
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef floating* h = &h_nu[0, 0] if N * U else NULL
    cdef floating* hprev = <floating*>_ptr3(hprev_ntu)
    cdef floating* y = <floating*>_ptr3(y_ntu)
    if N == 0 or T == 0 or U == 0:
        return
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* rp = NULL
    cdef const floating* rr = r
    cdef Py_ssize_t ldr = r_ug.shape[1]
    cdef floating* pk = NULL
    dl_blas_serial_enter(n_threads)
    with nogil:
        if _packs(N, T, rm):
            pk = _pack_columns(r, ldr, U, 0, U)
        elif N >= _PAD_MIN_ROWS:  # a padded copy for the multi-row tiles (see _pad_ld)
            rp = _padded(r, U, ldr, False)
            rr = rp
            ldr = _pad_ld(ldr)
        if chunks == 1:
            _rnn_fwd(z, rr, ldr, pk, mask, rm, activation, a, zero_output, h, hprev, y, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _rnn_fwd(z, rr, ldr, pk, mask, rm, activation, a, zero_output, h, hprev, y, N, T, U,
                         ch * N // chunks, (ch + 1) * N // chunks)
        free(rp)
        _free_pack(pk)
    dl_blas_serial_exit()


def simple_rnn_backward(const floating[:, :, ::1] z_ntg, const floating[:, ::1] r_ug,
                        const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                        int activation, double alpha, bint zero_output,
                        const floating[:, :, ::1] dy_ntu, floating[:, ::1] dh_nu,
                        floating[:, :, ::1] dz_ntg, int n_threads=1):
    """Backward through time of simple_rnn_forward.

    z_ntg: (N, T, U) float32/64, C-contiguous, IN: the forward's z out (h_t per step)
    r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, n_threads: as in the forward
    dy_ntu: (N, T, U) same dtype, C-contiguous, IN: gradient of the output sequence, or None
    dh_nu: (N, U) same dtype, C-contiguous, IN/OUT: gradient of the final state in, of the
    initial state out
    dz_ntg: (N, T, U) same dtype, C-contiguous, OUT: gradient of the pre-activations (zero at
    masked steps)
    """
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = dh_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    if N == 0 or T == 0 or U == 0:
        return
    cdef const floating* z = &z_ntg[0, 0, 0]
    cdef const floating* r = &r_ug[0, 0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef const floating* dy = _ptr3(dy_ntu)
    cdef floating* dh = &dh_nu[0, 0]
    cdef floating* dz = &dz_ntg[0, 0, 0]
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* rt
    dl_blas_serial_enter(n_threads)
    with nogil:
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _rnn_bwd(z, rt, mask, rm, activation, a, zero_output, dy, dh, dz, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _rnn_bwd(z, rt, mask, rm, activation, a, zero_output, dy, dh, dz, N, T, U,
                         ch * N // chunks, (ch + 1) * N // chunks)
        free(rt)
    dl_blas_serial_exit()


# ---- LSTM ---------------------------------------------------------------------------------------
cdef void _lstm_fwd(floating* z, const floating* r, Py_ssize_t ldr, const floating* pk,
                    const unsigned char* mask, const floating* rm,
                    int act, floating a, int rec, floating ra, bint zero_output, floating* h,
                    floating* c, floating* hprev, floating* cprev, floating* y,
                    const floating* zero_step, Py_ssize_t N, Py_ssize_t T, Py_ssize_t U,
                    Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """Rows [n0, n1) over all steps. zero_step: NULL, or (4U) the product 0 @ R of a zero row
    (_zero_row_product), which step 0 adds to every row instead of running the product when the
    initial h is zero: the same FMA chains, so the same values (NaN from a non-finite R too)."""
    cdef Py_ssize_t G = 4 * U, ld = T * G, n, t, j
    cdef Py_ssize_t row_u = U * sizeof(floating)
    cdef int m = <int>(n1 - n0)
    cdef floating* zr
    cdef floating* tmp = _scratch(U, z)
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, z)
    for t in range(T):
        if hprev != NULL:
            for n in range(n0, n1):
                _copy(h + n * U, hprev + (n * T + t) * U, U)
                _copy(c + n * U, cprev + (n * T + t) * U, U)
        if t == 0 and zero_step != NULL:
            for n in range(n0, n1):
                zr = z + n * ld
                for j in range(G):
                    zr[j] = zero_step[j] + zr[j]
        else:
            _project(h + n0 * U, <int>U, NULL if rm == NULL else rm + n0 * U, N * U, m, <int>U, 0,
                     4, r, <int>ldr, pk, 1, z + n0 * ld + t * G, <int>ld, work)
        for n in range(n0, n1):
            if t + 1 < T:  # row n's pieces of step t+1, while this step runs
                _prefetch_rows(z + n * ld + (t + 1) * G, 0, 1, G * sizeof(floating), True)
                if hprev != NULL:
                    _prefetch_rows(hprev + (n * T + t + 1) * U, 0, 1, row_u, True)
                    _prefetch_rows(cprev + (n * T + t + 1) * U, 0, 1, row_u, True)
            if mask == NULL or mask[n * T + t] != 0:
                zr = z + n * ld + t * G
                _lstm_cell(act, a, rec, ra, zr, c + n * U, h + n * U, tmp, U)
                if y != NULL:
                    _copy(h + n * U, y + (n * T + t) * U, U)
            elif y != NULL:
                _masked_output(y + (n * T + t) * U, y + (n * T + t - 1) * U, t > 0, zero_output, U)
    free(tmp)
    free(work)


cdef inline void _lstm_cell(int act, floating a, int rec, floating ra, floating* zr, floating* c,
                            floating* h, floating* tmp, Py_ssize_t U) noexcept nogil:
    """One row of the LSTM epilogue: zr (4U) pre-activations in, gates out; c, h updated."""
    cdef Py_ssize_t j
    if floating is float:
        if act == ACT_TANH and rec == ACT_SIGMOID:
            dlr_lstm_cell_f32(zr, c, h, U)
            return
    _act(rec, ra, zr, zr, 2 * U)
    _act(act, a, zr + 2 * U, zr + 2 * U, U)
    _act(rec, ra, zr + 3 * U, zr + 3 * U, U)
    for j in range(U):
        c[j] = zr[U + j] * c[j] + zr[j] * zr[2 * U + j]
    _act(act, a, c, tmp, U)
    for j in range(U):
        h[j] = zr[3 * U + j] * tmp[j]


cdef void _lstm_bwd(const floating* z, const floating* cprev, const floating* rt,
                    const unsigned char* mask, const floating* rm, int act, floating a, int rec,
                    floating ra, bint zero_output, const floating* dy, floating* dh, floating* dc,
                    floating* dz, Py_ssize_t N, Py_ssize_t T, Py_ssize_t U, Py_ssize_t n0,
                    Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t G = 4 * U, ld = T * G, n, t
    cdef Py_ssize_t row_u = U * sizeof(floating)
    cdef int m = <int>(n1 - n0)
    cdef bint valid
    cdef floating* dzr
    cdef floating* tc = _scratch(2 * U, dz)
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, dz)
    cdef floating* carry = NULL
    if mask != NULL and not zero_output and dy != NULL:
        carry = _scratch(m * U, dz)
        _zero(carry, m * U)
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            if t > 0:  # row n's pieces of step t-1, while this step runs
                _prefetch_rows(z + n * ld + (t - 1) * G, 0, 1, G * sizeof(floating), False)
                _prefetch_rows(dz + n * ld + (t - 1) * G, 0, 1, G * sizeof(floating), True)
                _prefetch_rows(cprev + (n * T + t - 1) * U, 0, 1, row_u, False)
            valid = mask == NULL or mask[n * T + t] != 0
            dzr = dz + n * ld + t * G
            if dy != NULL:
                _output_grad(dh + n * U, dy + (n * T + t) * U,
                             NULL if carry == NULL else carry + (n - n0) * U, valid, mask != NULL,
                             zero_output, U)
            if valid:
                _lstm_cell_back(act, a, rec, ra, z + n * ld + t * G, cprev + (n * T + t) * U,
                                dh + n * U, dc + n * U, dzr, tc, U)
            else:
                _zero(dzr, G)
        _project_back(dz + n0 * ld + t * G, <int>ld, NULL if rm == NULL else rm + n0 * U, N * U, m,
                      <int>U, 0, 4, rt, dh + n0 * U, work)
    free(tc)
    free(work)
    free(carry)


cdef inline void _lstm_cell_back(int act, floating a, int rec, floating ra, const floating* zr,
                                 const floating* cp, floating* dh, floating* dc, floating* dzr,
                                 floating* tc, Py_ssize_t U) noexcept nogil:
    """One row of the LSTM backward epilogue: gates zr (i, f, g, o) and c_{t-1} in; dzr (4U)
    out; dc becomes dc_{t-1}; dh is zeroed (the step's GEMM then adds dz @ R^T)."""
    cdef Py_ssize_t j
    cdef floating* dtc = tc + U
    if floating is float:
        if act == ACT_TANH and rec == ACT_SIGMOID:
            dlr_lstm_cell_back_f32(zr, cp, dh, dc, dzr, U)
            return
    for j in range(U):
        tc[j] = zr[U + j] * cp[j] + zr[j] * zr[2 * U + j]   # c_t recomputed
    _act(act, a, tc, tc, U)                                 # act(c_t)
    for j in range(U):
        dtc[j] = dh[j] * zr[3 * U + j]
        dzr[3 * U + j] = dh[j] * tc[j]                     # d(o)
    _dact(act, a, tc, dtc, dtc, U)
    for j in range(U):
        dc[j] = dc[j] + dtc[j]
        dzr[j] = dc[j] * zr[2 * U + j]                     # d(i)
        dzr[U + j] = dc[j] * cp[j]                         # d(f)
        dzr[2 * U + j] = dc[j] * zr[j]                     # d(g)
        dc[j] = dc[j] * zr[U + j]                          # dc_{t-1}
        dh[j] = 0
    _dact(rec, ra, zr, dzr, dzr, 2 * U)
    _dact(act, a, zr + 2 * U, dzr + 2 * U, dzr + 2 * U, U)
    _dact(rec, ra, zr + 3 * U, dzr + 3 * U, dzr + 3 * U, U)


def _lstm_forward(floating[:, :, ::1] z_ntg, const floating[:, ::1] r_ug,
                 const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                 int activation, double alpha, int recurrent_activation, double recurrent_alpha,
                 bint zero_output, floating[:, ::1] h_nu, floating[:, ::1] c_nu,
                 floating[:, :, ::1] hprev_ntu, floating[:, :, ::1] cprev_ntu,
                 floating[:, :, ::1] y_ntu, int n_threads=1):
    """lstm_forward on typed arrays (the general path; see lstm_forward)."""
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = h_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef floating ra = <floating>recurrent_alpha
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    if N == 0 or T == 0 or U == 0:
        return
    cdef floating* z = &z_ntg[0, 0, 0]
    cdef const floating* r = &r_ug[0, 0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef floating* h = &h_nu[0, 0]
    cdef floating* c = &c_nu[0, 0]
    cdef floating* hprev = <floating*>_ptr3(hprev_ntu)
    cdef floating* cprev = <floating*>_ptr3(cprev_ntu)
    cdef floating* y = <floating*>_ptr3(y_ntu)
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* zero_step = NULL
    cdef floating* rp = NULL
    cdef const floating* rr = r
    cdef Py_ssize_t ldr = r_ug.shape[1]
    cdef floating* pk = NULL
    if floating is float:
        if (N == 1 and mask == NULL and hprev == NULL and activation == ACT_TANH
                and recurrent_activation == ACT_SIGMOID and _packs(N, T, rm) and _b1_available()):
            _lstm_b1(z, r, ldr, h, c, y, T, U)
            return
    dl_blas_serial_enter(n_threads)
    with nogil:
        if _packs(N, T, rm):
            pk = _pack_columns(r, ldr, U, 0, 4 * U)
        elif N >= _PAD_MIN_ROWS:  # a padded copy for the multi-row tiles (see _pad_ld)
            rp = _padded(r, U, ldr, False)
            rr = rp
            ldr = _pad_ld(ldr)
        if floating is float:
            if pk == NULL and rm == NULL and _rows_zero(h, <int>U, <int>N, <int>U):
                zero_step = _zero_row_product(rr, ldr, U, 4 * U)
        if chunks == 1:
            _lstm_fwd(z, rr, ldr, pk, mask, rm, activation, a, recurrent_activation, ra, zero_output, h,
                      c, hprev, cprev, y, zero_step, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _lstm_fwd(z, rr, ldr, pk, mask, rm, activation, a, recurrent_activation, ra, zero_output,
                          h, c, hprev, cprev, y, zero_step, N, T, U, ch * N // chunks,
                          (ch + 1) * N // chunks)
        free(zero_step)
        free(rp)
        _free_pack(pk)
    dl_blas_serial_exit()


def lstm_backward(const floating[:, :, ::1] z_ntg, const floating[:, :, ::1] cprev_ntu,
                  const floating[:, ::1] r_ug, const unsigned char[:, ::1] mask_nt,
                  const floating[:, :, ::1] rmask_knu, int activation, double alpha,
                  int recurrent_activation, double recurrent_alpha, bint zero_output,
                  const floating[:, :, ::1] dy_ntu, floating[:, ::1] dh_nu, floating[:, ::1] dc_nu,
                  floating[:, :, ::1] dz_ntg, int n_threads=1):
    """Backward through time of lstm_forward.

    z_ntg: (N, T, 4U) float32/64, C-contiguous, IN: the forward's gates (i, f, g, o)
    cprev_ntu: (N, T, U) same dtype, C-contiguous, IN: the forward's c_{t-1} per step
    r_ug, mask_nt, rmask_knu, activations, zero_output, n_threads: as in the forward
    dy_ntu: (N, T, U) same dtype, C-contiguous, IN: gradient of the output sequence, or None
    dh_nu, dc_nu: (N, U) same dtype, C-contiguous, IN/OUT: gradients of the final states in, of
    the initial states out
    dz_ntg: (N, T, 4U) same dtype, C-contiguous, OUT: gradient of the gate pre-activations
    (zero at masked steps)
    """
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = dh_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef floating ra = <floating>recurrent_alpha
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    if N == 0 or T == 0 or U == 0:
        return
    cdef const floating* z = &z_ntg[0, 0, 0]
    cdef const floating* cprev = &cprev_ntu[0, 0, 0]
    cdef const floating* r = &r_ug[0, 0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef const floating* dy = _ptr3(dy_ntu)
    cdef floating* dh = &dh_nu[0, 0]
    cdef floating* dc = &dc_nu[0, 0]
    cdef floating* dz = &dz_ntg[0, 0, 0]
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* rt
    dl_blas_serial_enter(n_threads)
    with nogil:
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _lstm_bwd(z, cprev, rt, mask, rm, activation, a, recurrent_activation, ra, zero_output, dy,
                      dh, dc, dz, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _lstm_bwd(z, cprev, rt, mask, rm, activation, a, recurrent_activation, ra, zero_output,
                          dy, dh, dc, dz, N, T, U, ch * N // chunks, (ch + 1) * N // chunks)
        free(rt)
    dl_blas_serial_exit()


# ---- GRU ----------------------------------------------------------------------------------------
cdef void _gru_fwd(floating* z, const floating* r, Py_ssize_t ldr, const floating* pk,
                   const floating* pkh, const floating* br, const unsigned char* mask,
                   const floating* rm, int act, floating a, int rec, floating ra, bint reset_after,
                   bint zero_output, floating* h, floating* hprev, floating* aux, floating* y,
                   Py_ssize_t N, Py_ssize_t T, Py_ssize_t U, Py_ssize_t n0,
                   Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t G = 3 * U, ld = T * G, lda = T * U, n, t, j
    cdef int m = <int>(n1 - n0)
    cdef floating one = 1
    cdef floating* zr
    cdef floating* ar
    cdef floating* hr
    cdef const floating* mh
    cdef const floating* rmc = NULL if rm == NULL else rm + n0 * U
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, z)
    for t in range(T):
        if hprev != NULL:
            for n in range(n0, n1):
                _copy(h + n * U, hprev + (n * T + t) * U, U)
        _project(h + n0 * U, <int>U, rmc, N * U, m, <int>U, 0, 2, r, <int>ldr, pk, 1,
                 z + n0 * ld + t * G, <int>ld, work)
        if reset_after:
            # aux = h @ R_h (+ b_rh below), kept apart from x_h: r multiplies it
            _project(h + n0 * U, <int>U, rmc, N * U, m, <int>U, 2, 1, r, <int>ldr, pkh, 0,
                     aux + n0 * lda + t * U, <int>lda, work)
        for n in range(n0, n1):
            zr = z + n * ld + t * G
            ar = aux + n * lda + t * U
            if mask != NULL and mask[n * T + t] == 0:
                if not reset_after:
                    _zero(ar, U)  # this row's (r h) enters the h-part GEMM below
                continue
            _act(rec, ra, zr, zr, 2 * U)
            if reset_after:
                if br != NULL:
                    for j in range(U):
                        ar[j] = ar[j] + br[j]
                for j in range(U):
                    zr[2 * U + j] = zr[2 * U + j] + zr[U + j] * ar[j]
            else:
                hr = h + n * U
                if rm != NULL:
                    mh = rm + (2 * N + n) * U
                    for j in range(U):
                        ar[j] = zr[U + j] * (hr[j] * mh[j])
                else:
                    for j in range(U):
                        ar[j] = zr[U + j] * hr[j]
        if not reset_after:
            _project(aux + n0 * lda + t * U, <int>lda, NULL, 0, m, <int>U, 2, 1, r, <int>ldr, pkh,
                     one, z + n0 * ld + t * G + 2 * U, <int>ld, work)
        for n in range(n0, n1):
            if mask == NULL or mask[n * T + t] != 0:
                zr = z + n * ld + t * G
                hr = h + n * U
                _act(act, a, zr + 2 * U, zr + 2 * U, U)
                for j in range(U):
                    hr[j] = zr[j] * hr[j] + (one - zr[j]) * zr[2 * U + j]
                if y != NULL:
                    _copy(hr, y + (n * T + t) * U, U)
            elif y != NULL:
                _masked_output(y + (n * T + t) * U, y + (n * T + t - 1) * U, t > 0, zero_output, U)
    free(work)


cdef void _gru_bwd(const floating* z, const floating* hprev, const floating* aux, const floating* rt,
                   const unsigned char* mask, const floating* rm, int act, floating a, int rec,
                   floating ra, bint reset_after, bint zero_output, const floating* dy, floating* dh,
                   floating* dz, floating* dzr, Py_ssize_t N, Py_ssize_t T, Py_ssize_t U,
                   Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t G = 3 * U, ld = T * G, lda = T * U, n, t, j
    cdef int m = <int>(n1 - n0)
    cdef bint valid
    cdef floating one = 1
    cdef const floating* zr
    cdef const floating* hp
    cdef const floating* ar
    cdef const floating* mh
    cdef const floating* rmc = NULL if rm == NULL else rm + n0 * U
    cdef floating* dzrow
    cdef floating* drr
    cdef floating* dhr
    cdef floating* drh = NULL if reset_after else _scratch(m * U, dz)
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, dz)
    cdef floating* carry = NULL
    if mask != NULL and not zero_output and dy != NULL:
        carry = _scratch(m * U, dz)
        _zero(carry, m * U)
    for t in range(T - 1, -1, -1):
        for n in range(n0, n1):
            valid = mask == NULL or mask[n * T + t] != 0
            dhr = dh + n * U
            dzrow = dz + n * ld + t * G
            if dy != NULL:
                _output_grad(dhr, dy + (n * T + t) * U,
                             NULL if carry == NULL else carry + (n - n0) * U, valid, mask != NULL,
                             zero_output, U)
            if not valid:
                _zero(dzrow, G)
                if reset_after:
                    _zero(dzr + n * ld + t * G, G)
                continue
            zr = z + n * ld + t * G
            hp = hprev + (n * T + t) * U
            for j in range(U):
                dzrow[j] = dhr[j] * (hp[j] - zr[2 * U + j])        # d(z)
                dzrow[2 * U + j] = dhr[j] * (one - zr[j])          # d(hh)
                dhr[j] = dhr[j] * zr[j]                            # direct path to h_{t-1}
            _dact(act, a, zr + 2 * U, dzrow + 2 * U, dzrow + 2 * U, U)
            _dact(rec, ra, zr, dzrow, dzrow, U)
            if reset_after:
                ar = aux + n * lda + t * U
                drr = dzr + n * ld + t * G
                for j in range(U):
                    dzrow[U + j] = dzrow[2 * U + j] * ar[j]         # d(r)
                    drr[2 * U + j] = dzrow[2 * U + j] * zr[U + j]
                _dact(rec, ra, zr + U, dzrow + U, dzrow + U, U)
                _copy(dzrow, drr, 2 * U)
        if reset_after:
            _project_back(dzr + n0 * ld + t * G, <int>ld, rmc, N * U, m, <int>U, 0, 3, rt,
                          dh + n0 * U, work)
            continue
        # reset before: d(r h) = d(hh pre) @ R_h^T, then d(r) and the r path into h_{t-1}
        _mm(m, <int>U, <int>U, dz + n0 * ld + t * G + 2 * U, <int>ld, rt + 2 * U * _pad_ld(U),
            <int>_pad_ld(U), 0,
            drh, <int>U)
        for n in range(n0, n1):
            if mask != NULL and mask[n * T + t] == 0:
                continue
            zr = z + n * ld + t * G
            hp = hprev + (n * T + t) * U
            dzrow = dz + n * ld + t * G
            dhr = dh + n * U
            ar = drh + (n - n0) * U
            if rm != NULL:
                mh = rm + (2 * N + n) * U
                for j in range(U):
                    dzrow[U + j] = ar[j] * hp[j] * mh[j]
                    dhr[j] = dhr[j] + ar[j] * zr[U + j] * mh[j]
            else:
                for j in range(U):
                    dzrow[U + j] = ar[j] * hp[j]
                    dhr[j] = dhr[j] + ar[j] * zr[U + j]
            _dact(rec, ra, zr + U, dzrow + U, dzrow + U, U)
        _project_back(dz + n0 * ld + t * G, <int>ld, rmc, N * U, m, <int>U, 0, 2, rt,
                      dh + n0 * U, work)
    free(drh)
    free(work)
    free(carry)


def gru_forward(floating[:, :, ::1] z_ntg, const floating[:, ::1] r_ug, const floating[::1] brh_u,
                const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                int activation, double alpha, int recurrent_activation, double recurrent_alpha,
                bint reset_after, bint zero_output, floating[:, ::1] h_nu,
                floating[:, :, ::1] hprev_ntu, floating[:, :, ::1] aux_ntu,
                floating[:, :, ::1] y_ntu, int n_threads=1):
    """GRU over T steps (Keras gate order z, r, h), h_t = z h_{t-1} + (1 - z) hh with
    z, r = rec_act(x parts + h_{t-1} @ R[:, :2U]) and
    reset_after: hh = act(x_h + r * (h_{t-1} @ R_h + b_rh)); else hh = act(x_h + (r h_{t-1}) @ R_h).

    z_ntg: (N, T, 3U) float32/64, C-contiguous, IN/OUT: x @ W + b_in (+ the recurrent bias of
    the z and r parts) in; gates z, r, hh out
    r_ug: (U, 3U) same dtype, C-contiguous, IN: recurrent kernel
    brh_u: (U,) same dtype, C-contiguous, IN: the recurrent bias of the h part (reset_after), or
    None
    mask_nt: (N, T) uint8, C-contiguous, IN (1 = valid step), or None
    rmask_knu: (3, N, U) same dtype, C-contiguous, IN: recurrent dropout masks per gate, or None
    h_nu: (N, U) same dtype, C-contiguous, IN/OUT: initial state in, final state out
    hprev_ntu: (N, T, U) same dtype, C-contiguous, OUT: h_{t-1} per step, or None
    aux_ntu: (N, T, U) same dtype, C-contiguous, OUT (always): reset_after: h_{t-1} @ R_h + b_rh;
    else r * h_{t-1} (recurrent-dropout-masked)
    y_ntu: (N, T, U) same dtype, C-contiguous, OUT: the output sequence, or None
    n_threads: batch chunks run in parallel.
    """
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = h_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef floating ra = <floating>recurrent_alpha
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    if N == 0 or T == 0 or U == 0:
        return
    cdef floating* z = &z_ntg[0, 0, 0]
    cdef const floating* r = &r_ug[0, 0]
    cdef const floating* br = NULL if brh_u is None else &brh_u[0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef floating* h = &h_nu[0, 0]
    cdef floating* hprev = <floating*>_ptr3(hprev_ntu)
    cdef floating* aux = &aux_ntu[0, 0, 0]
    cdef floating* y = <floating*>_ptr3(y_ntu)
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* rp = NULL
    cdef const floating* rr = r
    cdef Py_ssize_t ldr = r_ug.shape[1]
    cdef floating* pk = NULL
    cdef floating* pkh = NULL
    dl_blas_serial_enter(n_threads)
    with nogil:
        if _packs(N, T, rm):  # z and r columns, then the h columns (their own products)
            pk = _pack_columns(r, ldr, U, 0, 2 * U)
            pkh = _pack_columns(r, ldr, U, 2 * U, 3 * U)
        elif N >= _PAD_MIN_ROWS:  # a padded copy for the multi-row tiles (see _pad_ld)
            rp = _padded(r, U, ldr, False)
            rr = rp
            ldr = _pad_ld(ldr)
        if chunks == 1:
            _gru_fwd(z, rr, ldr, pk, pkh, br, mask, rm, activation, a, recurrent_activation, ra,
                     reset_after, zero_output, h, hprev, aux, y, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _gru_fwd(z, rr, ldr, pk, pkh, br, mask, rm, activation, a, recurrent_activation, ra,
                         reset_after, zero_output, h, hprev, aux, y, N, T, U, ch * N // chunks,
                         (ch + 1) * N // chunks)
        free(rp)
        _free_pack(pkh)
        _free_pack(pk)
    dl_blas_serial_exit()


def gru_backward(const floating[:, :, ::1] z_ntg, const floating[:, :, ::1] hprev_ntu,
                 const floating[:, :, ::1] aux_ntu, const floating[:, ::1] r_ug,
                 const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                 int activation, double alpha, int recurrent_activation, double recurrent_alpha,
                 bint reset_after, bint zero_output, const floating[:, :, ::1] dy_ntu,
                 floating[:, ::1] dh_nu, floating[:, :, ::1] dz_ntg, floating[:, :, ::1] dzr_ntg,
                 int n_threads=1):
    """Backward through time of gru_forward.

    z_ntg: (N, T, 3U) float32/64, C-contiguous, IN: the forward's gates (z, r, hh)
    hprev_ntu, aux_ntu: (N, T, U) same dtype, C-contiguous, IN: the forward's h_{t-1} and aux
    r_ug, mask_nt, rmask_knu, activations, reset_after, zero_output, n_threads: as in the forward
    dy_ntu: (N, T, U) same dtype, C-contiguous, IN: gradient of the output sequence, or None
    dh_nu: (N, U) same dtype, C-contiguous, IN/OUT: gradient of the final state in, of the
    initial state out
    dz_ntg: (N, T, 3U) same dtype, C-contiguous, OUT: gradient of x @ W + b_in per gate (zero at
    masked steps)
    dzr_ntg: (N, T, 3U) same dtype, C-contiguous, OUT (reset_after; None otherwise): gradient of
    h_{t-1} @ R + b_rec per gate: the z and r parts equal dz's, the h part is dz_h * r
    """
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = dh_nu.shape[1]
    cdef int chunks, ch
    cdef floating a = <floating>alpha
    cdef floating ra = <floating>recurrent_alpha
    cdef const unsigned char* mask = NULL if mask_nt is None else &mask_nt[0, 0]
    if N == 0 or T == 0 or U == 0:
        return
    cdef const floating* z = &z_ntg[0, 0, 0]
    cdef const floating* hprev = &hprev_ntu[0, 0, 0]
    cdef const floating* aux = &aux_ntu[0, 0, 0]
    cdef const floating* r = &r_ug[0, 0]
    cdef const floating* rm = _ptr3(rmask_knu)
    cdef const floating* dy = _ptr3(dy_ntu)
    cdef floating* dh = &dh_nu[0, 0]
    cdef floating* dz = &dz_ntg[0, 0, 0]
    cdef floating* dzr = <floating*>_ptr3(dzr_ntg)
    chunks = 1 if floating is double else _n_chunks(N, n_threads)  # float64: BLAS, one chunk
    cdef floating* rt
    dl_blas_serial_enter(n_threads)
    with nogil:
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _gru_bwd(z, hprev, aux, rt, mask, rm, activation, a, recurrent_activation, ra, reset_after,
                     zero_output, dy, dh, dz, dzr, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _gru_bwd(z, hprev, aux, rt, mask, rm, activation, a, recurrent_activation, ra,
                         reset_after, zero_output, dy, dh, dz, dzr, N, T, U, ch * N // chunks,
                         (ch + 1) * N // chunks)
        free(rt)
    dl_blas_serial_exit()


include "_recurrent_products.pxi"
