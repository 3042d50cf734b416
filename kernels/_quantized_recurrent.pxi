# The int8 recurrences (included by _quantized.pyx): LSTM and GRU with an int8 recurrent kernel, for
# inference. The op runs the input projection of all steps first as one int8 GEMM (int8_matmul: the exact
# int32 q(x) W_q, (N, T, Gp), x quantized per row); these kernels then run the time loop, per step: h_{t-1}
# quantized per row (dl_quantize_row, Keras's abs-max rule), acc = q(h) @ R_q with the int8 GEMM (exact
# int32), the gate pre-activations z = x_acc / (w_scale x_scale) + b + acc / (r_scale h_scale) in a row
# buffer (products by the scales' reciprocals; the projection's float32 (N, T, G) pass and its division
# per element, 7 us of int8_dense_forward's 14 us at 50 x 32 x 512, are gone), then the float32 gate epilogue of
# the float kernels (dl_rnn_cells.h polynomials for sigmoid / tanh). The recurrent product stays int8 because it measures faster than
# float32 at the sizes that matter here: the runner's LSTM(128), 50 steps, 1 thread (AMD EPYC, VNNI,
# load ~5), the recurrence takes 68 us in int8 against 147 us for the float32 kernel (lstm_forward,
# R packed once per call) at batch 1, and 3.5 ms against 6.5 ms at batch 64 (per step: 128 bytes of
# h quantized, then 4 x 128 x 128 products on vpdpbusd, against float32 FMAs on a 256 KB kernel: both
# are bound by reading the kernel from L2, 64 KB against 256 KB per step). GRU's recurrent kernel is packed as two blocks, the
# z, r columns and the h columns: reset_after multiplies q(h) by both; otherwise the h block takes
# q(r * h_{t-1}), quantized per row again. Masks as the float kernels (a masked step keeps the states;
# its output is the previous one, or zeros with zero_output). Threads: the batch is split into chunks
# that each run the whole sequence (no barrier per step); every row is computed the same way whatever
# the split, so results are bit-identical for any n_threads.

cdef extern from "dl_rnn_cells.h" nogil:
    void dlr_sigmoid_f32(const float* x, float* y, Py_ssize_t n)
    void dlr_tanh_f32(const float* x, float* y, Py_ssize_t n)
    void dlr_lstm_cell_f32(float* z, float* c, float* h, Py_ssize_t n)

RNN_CHUNK_ROWS = 16  # rows per parallel chunk at least (fewer rows: one chunk)
cdef Py_ssize_t _RNN_CHUNK_ROWS = RNN_CHUNK_ROWS


cdef inline void _q_act(int code, float alpha, float* x, Py_ssize_t n) noexcept nogil:
    """x = act(x) in place (the float recurrences' activations)."""
    if code == ACT_SIGMOID:
        dlr_sigmoid_f32(x, x, n)
    elif code == ACT_TANH:
        dlr_tanh_f32(x, x, n)
    else:
        act_row(code, x, <const float*>NULL, x, n, alpha)


cdef inline void _q_output(float* y, Py_ssize_t n, Py_ssize_t T, Py_ssize_t t, Py_ssize_t U, const float* h,
                           bint valid, bint zero_output) noexcept nogil:
    """Row n's output at step t: h when the step is valid, else the previous output (zeros with
    zero_output or at step 0)."""
    cdef float* row = y + (n * T + t) * U
    if valid:
        memcpy(row, h, U * sizeof(float))
    elif zero_output or t == 0:
        memset(row, 0, U * sizeof(float))
    else:
        memcpy(row, row - U, U * sizeof(float))


cdef inline void _q_add_product(float* zr, const int32_t* acc, const float* inv_rs, float s, Py_ssize_t g) noexcept nogil:
    """zr += acc / (rs * s) as acc * (1 / rs) * (1 / s): one row's dequantized recurrent product (two
    products, not a division per element: measured 68 -> 66 us for the 50 steps of a batch-1 LSTM(128))."""
    cdef Py_ssize_t j
    cdef float inv_s = 1.0 / s
    for j in range(g):
        zr[j] = zr[j] + <float>acc[j] * (inv_rs[j] * inv_s)


ctypedef struct QRnn:
    Py_ssize_t N, T, U, up          # up: U rounded up to 4 (the quantized rows' width)
    const int32_t* ax               # (N, T, ldx) int32 input products q(x) W_q
    Py_ssize_t ldx
    const float* xs                 # (N, T) input row scales
    const float* iws                # (G,) reciprocals of the kernel scales
    const float* bias               # (G,) or NULL (GRU: the input bias + the recurrent z, r biases)
    const int8_t* pa                # packed R (LSTM: all 4U columns; GRU: the z, r columns)
    const int32_t* ca
    Py_ssize_t ga                   # columns of pa (4U, or 2U)
    const int8_t* ph                # GRU: packed R's h columns
    const int32_t* ch
    const float* rs                 # (G,) reciprocals of the recurrent kernel scales
    const float* brh                # GRU reset_after: the h part's recurrent bias, or NULL
    const unsigned char* mask       # (N, T) or NULL
    int act, rec
    float a, ra
    bint reset_after, zero_output
    float* h                        # (N, U) in/out
    float* c                        # LSTM (N, U) in/out
    float* y                        # (N, T, U) or NULL


cdef inline void _q_input_row(const QRnn* g, Py_ssize_t n, Py_ssize_t t, Py_ssize_t cols, float* zr) noexcept nogil:
    """zr[:cols] = x_acc / (w_scale x_scale) + b for row n at step t (as products by the reciprocals)."""
    cdef const int32_t* a = g.ax + (n * g.T + t) * g.ldx
    cdef float inv_s = 1.0 / g.xs[n * g.T + t]
    cdef Py_ssize_t j
    if g.bias != NULL:
        for j in range(cols):
            zr[j] = <float>a[j] * (g.iws[j] * inv_s) + g.bias[j]
    else:
        for j in range(cols):
            zr[j] = <float>a[j] * (g.iws[j] * inv_s)


cdef inline bint _valid(const QRnn* g, Py_ssize_t n, Py_ssize_t t) noexcept nogil:
    return g.mask == NULL or g.mask[n * g.T + t] != 0


cdef int _qlstm_rows(const QRnn* g, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """Rows [n0, n1) of int8_lstm_forward over all steps; -1 when out of memory."""
    cdef Py_ssize_t m = n1 - n0, U = g.U, G = 4 * U, gp = (G + 15) // 16 * 16, t, i, n
    cdef int8_t* q = <int8_t*>malloc(m * g.up)
    cdef float* hs = <float*>malloc(m * sizeof(float))
    cdef int32_t* acc = <int32_t*>malloc(m * gp * sizeof(int32_t))
    cdef float* zr = <float*>malloc(G * sizeof(float))
    cdef bint fused = g.act == ACT_TANH and g.rec == ACT_SIGMOID
    cdef float* tmp = <float*>malloc(U * sizeof(float))
    if q == NULL or hs == NULL or acc == NULL or tmp == NULL or zr == NULL:
        free(q); free(hs); free(acc); free(tmp); free(zr)
        return -1
    for t in range(g.T):
        for i in range(m):
            dl_quantize_row(U, g.up, g.h + (n0 + i) * U, q + i * g.up, hs + i)
        dl_igemm(m, gp // 16, g.up // 4, q, g.up, g.pa, g.ca, acc, gp)
        for i in range(m):
            n = n0 + i
            if _valid(g, n, t):
                _q_input_row(g, n, t, G, zr)
                _q_add_product(zr, acc + i * gp, g.rs, hs[i], G)
                if fused:
                    dlr_lstm_cell_f32(zr, g.c + n * U, g.h + n * U, U)
                else:
                    _q_lstm_cell(g, zr, g.c + n * U, g.h + n * U, tmp)
            if g.y != NULL:
                _q_output(g.y, n, g.T, t, U, g.h + n * U, _valid(g, n, t), g.zero_output)
    free(q); free(hs); free(acc); free(tmp); free(zr)
    return 0


cdef inline void _q_lstm_cell(const QRnn* g, float* zr, float* c, float* h, float* tmp) noexcept nogil:
    """One LSTM row with any activations: zr (4U) in, gates out; c, h updated."""
    cdef Py_ssize_t j, U = g.U
    _q_act(g.rec, g.ra, zr, 2 * U)
    _q_act(g.act, g.a, zr + 2 * U, U)
    _q_act(g.rec, g.ra, zr + 3 * U, U)
    for j in range(U):
        c[j] = zr[U + j] * c[j] + zr[j] * zr[2 * U + j]
        tmp[j] = c[j]
    _q_act(g.act, g.a, tmp, U)
    for j in range(U):
        h[j] = zr[3 * U + j] * tmp[j]


cdef int _qgru_rows(const QRnn* g, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    """Rows [n0, n1) of int8_gru_forward over all steps; -1 when out of memory."""
    cdef Py_ssize_t m = n1 - n0, U = g.U, G = 3 * U, t, i, j, n
    cdef Py_ssize_t gpa = (2 * U + 15) // 16 * 16, gph = (U + 15) // 16 * 16
    cdef int8_t* q = <int8_t*>malloc(m * g.up)
    cdef float* hs = <float*>malloc(m * sizeof(float))
    cdef int32_t* acc = <int32_t*>malloc(m * gpa * sizeof(int32_t))
    cdef int32_t* acch = <int32_t*>malloc(m * gph * sizeof(int32_t))
    cdef float* rh = <float*>malloc(m * U * sizeof(float))
    cdef float* zbuf = <float*>malloc(m * G * sizeof(float))  # the rows' gate pre-activations of a step
    cdef float* zr
    cdef float* hr
    cdef float v
    if q == NULL or hs == NULL or acc == NULL or acch == NULL or rh == NULL or zbuf == NULL:
        free(q); free(hs); free(acc); free(acch); free(rh); free(zbuf)
        return -1
    for t in range(g.T):
        for i in range(m):
            dl_quantize_row(U, g.up, g.h + (n0 + i) * U, q + i * g.up, hs + i)
        dl_igemm(m, gpa // 16, g.up // 4, q, g.up, g.pa, g.ca, acc, gpa)
        if g.reset_after:
            dl_igemm(m, gph // 16, g.up // 4, q, g.up, g.ph, g.ch, acch, gph)
        for i in range(m):
            n = n0 + i
            zr = zbuf + i * G
            if not _valid(g, n, t):
                memset(rh + i * U, 0, U * sizeof(float))
                continue
            _q_input_row(g, n, t, G, zr)
            _q_add_product(zr, acc + i * gpa, g.rs, hs[i], 2 * U)
            _q_act(g.rec, g.ra, zr, 2 * U)
            if g.reset_after:  # hh = x_h + r * (h R_h + b_rh)
                for j in range(U):
                    v = <float>acch[i * gph + j] * (g.rs[2 * U + j] * (1.0 / hs[i]))
                    if g.brh != NULL:
                        v = v + g.brh[j]
                    zr[2 * U + j] = zr[2 * U + j] + zr[U + j] * v
            else:
                hr = g.h + n * U
                for j in range(U):
                    rh[i * U + j] = zr[U + j] * hr[j]
        if not g.reset_after:  # hh = x_h + (r h) R_h: r h quantized per row
            for i in range(m):
                dl_quantize_row(U, g.up, rh + i * U, q + i * g.up, hs + i)
            dl_igemm(m, gph // 16, g.up // 4, q, g.up, g.ph, g.ch, acch, gph)
            for i in range(m):
                n = n0 + i
                if _valid(g, n, t):
                    _q_add_product(zbuf + i * G + 2 * U, acch + i * gph, g.rs + 2 * U, hs[i], U)
        for i in range(m):
            n = n0 + i
            if _valid(g, n, t):
                zr = zbuf + i * G
                hr = g.h + n * U
                _q_act(g.act, g.a, zr + 2 * U, U)
                for j in range(U):
                    hr[j] = zr[j] * hr[j] + (1.0 - zr[j]) * zr[2 * U + j]
            if g.y != NULL:
                _q_output(g.y, n, g.T, t, U, g.h + n * U, _valid(g, n, t), g.zero_output)
    free(q); free(hs); free(acc); free(acch); free(rh); free(zbuf)
    return 0


cdef void _qrnn_setup(QRnn* g, const int32_t[:, :, ::1] xacc_ntg, const float[:, ::1] x_scale_nt,
                      const float[::1] b_g, float[:, ::1] h_nu, float[:, :, ::1] y_ntu,
                      const unsigned char[:, ::1] mask_nt, const float[::1] w_scale_g, const float[::1] r_scale_g,
                      Py_ssize_t gates, int activation, double alpha, int recurrent_activation, double recurrent_alpha,
                      bint zero_output) except *:
    g.N, g.T, g.U = xacc_ntg.shape[0], xacc_ntg.shape[1], h_nu.shape[1]
    g.up = (g.U + 3) // 4 * 4
    g.ldx = xacc_ntg.shape[2]
    cdef Py_ssize_t G = gates * g.U
    if (g.ldx < G or h_nu.shape[0] != g.N or x_scale_nt.shape[0] != g.N or x_scale_nt.shape[1] != g.T
            or w_scale_g.shape[0] != G or r_scale_g.shape[0] != G or (b_g is not None and b_g.shape[0] != G)):
        raise ValueError(f"int8 recurrent kernels: expected xacc (N, T, >= {gates}U), x_scale (N, T), h (N, U), and "
                         f"w_scale, r_scale, b ({gates}U,); received xacc {(g.N, g.T, g.ldx)}, x_scale "
                         f"{(x_scale_nt.shape[0], x_scale_nt.shape[1])}, h {(h_nu.shape[0], h_nu.shape[1])}, w_scale "
                         f"({w_scale_g.shape[0]},), r_scale ({r_scale_g.shape[0]},), b "
                         f"{None if b_g is None else (b_g.shape[0],)}")
    if mask_nt is not None and (mask_nt.shape[0] != g.N or mask_nt.shape[1] != g.T):
        raise ValueError(f"int8 recurrent kernels: expected a mask of shape ({g.N}, {g.T}), received "
                         f"{(mask_nt.shape[0], mask_nt.shape[1])}")
    if y_ntu is not None and (y_ntu.shape[0] != g.N or y_ntu.shape[1] != g.T or y_ntu.shape[2] != g.U):
        raise ValueError(f"int8 recurrent kernels: expected y of shape ({g.N}, {g.T}, {g.U}), received "
                         f"{(y_ntu.shape[0], y_ntu.shape[1], y_ntu.shape[2])}")
    g.ax = &xacc_ntg[0, 0, 0] if g.N * g.T * g.ldx > 0 else NULL
    g.xs = &x_scale_nt[0, 0] if g.N * g.T > 0 else NULL
    g.bias = NULL if b_g is None or G == 0 else &b_g[0]
    g.h = &h_nu[0, 0] if g.N * g.U > 0 else NULL
    g.y = NULL if y_ntu is None or g.N * g.T * g.U == 0 else &y_ntu[0, 0, 0]
    g.mask = NULL if mask_nt is None or g.N * g.T == 0 else &mask_nt[0, 0]
    g.rs = g.iws = NULL  # the reciprocals: _qrnn_run
    g.act, g.a, g.rec, g.ra = activation, <float>alpha, recurrent_activation, <float>recurrent_alpha
    g.zero_output = zero_output
    g.c, g.ph, g.ch, g.brh, g.reset_after = NULL, NULL, NULL, NULL, False


cdef inline int _qrnn_chunk(const QRnn* g, bint lstm, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    if lstm:
        return _qlstm_rows(g, n0, n1)
    return _qgru_rows(g, n0, n1)


cdef void _qrnn_run(QRnn* g, const float[::1] w_scale_g, const float[::1] r_scale_g, bint lstm,
                    int n_threads) except *:
    cdef Py_ssize_t chunks = g.N // _RNN_CHUNK_ROWS, ch, j, n = r_scale_g.shape[0]
    cdef int bad = 0
    cdef float* inv = <float*>malloc(2 * n * sizeof(float))
    if inv == NULL:
        raise MemoryError()
    for j in range(n):
        inv[j] = 1.0 / r_scale_g[j]
        inv[n + j] = 1.0 / w_scale_g[j]
    g.rs, g.iws = inv, inv + n
    if n_threads <= 1 or chunks <= 1:
        with nogil:
            bad = _qrnn_chunk(g, lstm, 0, g.N)
    else:
        for ch in prange(chunks, nogil=True, num_threads=min(n_threads, chunks), schedule="dynamic"):
            if _qrnn_chunk(g, lstm, ch * g.N // chunks, (ch + 1) * g.N // chunks) != 0:
                bad += 1
    free(inv)
    g.rs = g.iws = NULL
    if bad:
        raise MemoryError()


def int8_lstm_forward(const int32_t[:, :, ::1] xacc_ntg, const float[:, ::1] x_scale_nt, const float[::1] w_scale_g,
                      const float[::1] b_g, const int8_t[::1] packed, const int32_t[::1] csum_g,
                      const float[::1] r_scale_g, const unsigned char[:, ::1] mask_nt, int activation, double alpha,
                      int recurrent_activation, double recurrent_alpha, bint zero_output, float[:, ::1] h_nu,
                      float[:, ::1] c_nu, float[:, :, ::1] y_ntu, int n_threads=1):
    """LSTM over T steps (gates i, f, c, o) with int8 kernels W_q (K, 4U) and R_q (U, 4U), R_q packed by
    int8_pack: z_t = xacc_t / (w_scale_g x_scale) + b_g + (q(h_{t-1}) @ R_q) / (r_scale_g h_scale), then the
    float32 cell (see lstm_forward).

    xacc_ntg: (N, T, Gp) int32, C-contiguous, IN: q(x) @ W_q (int8_matmul; Gp >= 4U)
    x_scale_nt: (N, T) float32, C-contiguous, IN: the input rows' scales (quantize_rows)
    w_scale_g: (4U,) float32, C-contiguous, IN
    b_g: (4U,) float32, C-contiguous, IN, or None
    packed: int8 from int8_pack of R_q (U, 4U), IN
    csum_g: (Gp,) int32 from int8_pack, IN
    r_scale_g: (4U,) float32, C-contiguous, IN
    mask_nt: (N, T) uint8, C-contiguous, IN (1 = valid step), or None
    h_nu, c_nu: (N, U) float32, C-contiguous, IN/OUT: initial states in, final states out
    y_ntu: (N, T, U) float32, C-contiguous, OUT: the output sequence, or None
    """
    cdef QRnn g
    _qrnn_setup(&g, xacc_ntg, x_scale_nt, b_g, h_nu, y_ntu, mask_nt, w_scale_g, r_scale_g, 4, activation, alpha,
                recurrent_activation, recurrent_alpha, zero_output)
    if c_nu.shape[0] != g.N or c_nu.shape[1] != g.U:
        raise ValueError(f"int8_lstm_forward: expected c of shape ({g.N}, {g.U}), received {(c_nu.shape[0], c_nu.shape[1])}")
    if g.N == 0 or g.T == 0 or g.U == 0:
        return
    g.c = &c_nu[0, 0]
    g.pa, g.ca, g.ga = &packed[0], &csum_g[0], 4 * g.U
    _qrnn_run(&g, w_scale_g, r_scale_g, True, n_threads)


def int8_gru_forward(const int32_t[:, :, ::1] xacc_ntg, const float[:, ::1] x_scale_nt, const float[::1] w_scale_g,
                     const float[::1] b_g, const int8_t[::1] packed_zr, const int32_t[::1] csum_zr,
                     const int8_t[::1] packed_h, const int32_t[::1] csum_h, const float[::1] r_scale_g,
                     const float[::1] brh_u, const unsigned char[:, ::1] mask_nt, int activation, double alpha,
                     int recurrent_activation, double recurrent_alpha, bint reset_after, bint zero_output,
                     float[:, ::1] h_nu, float[:, :, ::1] y_ntu, int n_threads=1):
    """GRU over T steps (gates z, r, h) with int8 kernels W_q (K, 3U) and R_q (U, 3U), R_q packed as two
    blocks, R_q[:, :2U] and R_q[:, 2U:] (see gru_forward for the cell): with x_t = xacc_t / (w_scale_g
    x_scale) + b_g, z, r = rec_act(x_zr + q(h) R_zr / scales); reset_after: hh = act(x_h + r * (q(h) R_h /
    scales + b_rh)), else hh = act(x_h + q(r h) R_h / scales).

    xacc_ntg: (N, T, Gp) int32, C-contiguous, IN: q(x) @ W_q (int8_matmul; Gp >= 3U)
    x_scale_nt: (N, T) float32, C-contiguous, IN: the input rows' scales (quantize_rows)
    w_scale_g: (3U,) float32, C-contiguous, IN
    b_g: (3U,) float32, C-contiguous, IN: the input bias (+ the recurrent z, r biases), or None
    packed_zr, csum_zr: int8_pack of R_q[:, :2U], IN
    packed_h, csum_h: int8_pack of R_q[:, 2U:], IN
    r_scale_g: (3U,) float32, C-contiguous, IN
    brh_u: (U,) float32, C-contiguous, IN: the h part's recurrent bias (reset_after), or None
    mask_nt: (N, T) uint8, C-contiguous, IN (1 = valid step), or None
    h_nu: (N, U) float32, C-contiguous, IN/OUT: initial state in, final state out
    y_ntu: (N, T, U) float32, C-contiguous, OUT: the output sequence, or None
    """
    cdef QRnn g
    _qrnn_setup(&g, xacc_ntg, x_scale_nt, b_g, h_nu, y_ntu, mask_nt, w_scale_g, r_scale_g, 3, activation, alpha,
                recurrent_activation, recurrent_alpha, zero_output)
    if g.N == 0 or g.T == 0 or g.U == 0:
        return
    g.pa, g.ca, g.ga = &packed_zr[0], &csum_zr[0], 2 * g.U
    g.ph, g.ch = &packed_h[0], &csum_h[0]
    g.brh = NULL if brh_u is None else &brh_u[0]
    g.reset_after = reset_after
    _qrnn_run(&g, w_scale_g, r_scale_g, False, n_threads)
