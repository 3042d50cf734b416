# Design: the recurrence of SimpleRNN, LSTM and GRU as one compiled loop over time, forward and
# backward (BPTT), the GEMMs around it, and the embedding gather/scatter. Cython for both
# directions: forward because inference needs it (predict never imports numba), backward because
# each step is a small product on strided sub-matrices (one time slice of a batch-major (N, T, G)
# buffer) plus a fused epilogue, reached here with leading dimensions and no copies (Numba's
# np.dot needs contiguous operands and allocates).
#   - The op tier runs the input projection of all steps as one product (rows_matmul: z = x W + b,
#     (N, T, G)), then the recurrence kernel, and in backward the BPTT kernel, which yields the
#     gate pre-activation gradients dz of all steps, then the weight gradients as products over
#     all steps (rows_matmul_tn: dW = x^T dz, dR = hprev^T dz, db = column sums of dz) and
#     dx = dz W^T (rows_matmul).
#   - Per step: z[:, t] += h_{t-1} R accumulated straight into the time slice (ldc = T*G), then
#     the gate epilogue per batch row: nonlinearities, state update, output write, in one pass
#     (float32 LSTM with tanh/sigmoid: one fused C loop per row, forward and backward). The
#     activated gates overwrite z, which is what backward reads.
#   - float32 products use dlr_sgemm / dlr_sgemm_tn below (register tiles, AVX-512 / AVX2 / SSE2
#     chosen at run time), not OpenBLAS, measured on the LSTM(128) shapes: OpenBLAS packs the
#     whole recurrent kernel on every call (about 20 us for 128x512, so a 1-row step costs 22 us
#     against 3 us here, a 32-row step 50 us against 17 us), and the weight-gradient products run
#     at 156-187 GFLOPS against OpenBLAS's 82-111 on one core. Each output element is a single
#     FMA chain in a fixed order, so results do not depend on the batch size, the tiling or the
#     thread count. The copies of R the kernels read get a padded row stride (_pad_ld): a 2 KB
#     stride put a column panel into two L1 sets and halved the step's speed.
#   - Few-row forward passes (fewer than 8 rows and at least 6 steps, float32, no recurrent
#     dropout: batch-1 inference) read R packed once per call into panels of 64 columns (AVX-512;
#     16 AVX2, 8 SSE2), each panel's rows contiguous (dlr_spack, dlr_sgemm_packed), so a step
#     streams R in the order the FMAs consume it. Measured on LSTM(128) at batch 1 (R is 256 KB:
#     it comes from L2 every step, and the step is bound by L2 bandwidth): 1.4 us per step
#     against 2.0-2.2 us reading R's 2 KB-strided rows in place; the recurrence of 50 steps
#     76 us against 124 us, packing included (3.5 us, about 5 steps' savings: the packed path
#     starts at 6 steps).
#     The panels start 16 bytes past a cache line (_PACK_OFFSET): in-process A/B over 8 processes,
#     71-74 us against 81-83 us for line-aligned panels (32 bytes: the same as 16). About one
#     process in four measured the packed recurrence at 105-115 us instead of 72-80, stable
#     within the process, and never with address randomization off (setarch -R: 10 of 10 fast):
#     the tiles stored their accumulators with memcpy from the accumulator array, whose address
#     GCC then kept on the stack, where the randomized low address bits 4K-aliased with the
#     streamed panel loads. Copying each accumulator to a local before the store keeps them in
#     registers: 32 of 32 processes fast since. Reading R in place measures 114-124 us.
#     Same FMA chains as dlr_sgemm, so the results are bit-identical to the unpacked path's
#     (tested); the column tail of dlr_sgemm is a zero-padded vector chain for that reason (GCC
#     vectorized the scalar tail loop in order as separate multiply and add).
#   - A step whose state is exactly zero (the first one without an initial state) skips the
#     product when the packed R is finite (checked while packing): every chain would give +0,
#     so z + 0 is stored instead, bit-identical (signed zeros included), one step of 50 saved.
#   - Tried and dropped (measured, batch-1 LSTM(128)): a pipelined step that runs each chunk's
#     gate epilogue between the FMAs of the next chunk's tile (78 us against 76 us: the epilogue
#     is only about 3 us of the 76); packing W for the input projection (10.7 us against 9.4 us
#     min, 11.1 us p25 reading W in place: 50 x 32 x 512 is bound by the FMA units, not by W's
#     loads); prefetching the next step's first 8-48 KB of packed R during the gate epilogue
#     (77-79 us against 74 us); software prefetching and non-temporal hints inside the R stream,
#     and alternating the panel order step by step to reuse the L1 (no clear change in a C model
#     of the step).
#   - float64 (gradient checks) goes through BLAS (dgemm/dgemv) in one chunk.
#   - Threads: a per-step barrier costs a scheduler tick whenever a thread is descheduled (often,
#     on a busy 2-core machine: one LSTM forward took 16 ms single-threaded against a 0.9 s median
#     with 2-thread BLAS per step). So the batch is split into chunks of at least MIN_CHUNK_ROWS
#     rows (n_threads of them at most) that each run the whole sequence with no barrier, and the
#     products around the recurrence split rows or output columns the same way, on the same
#     OpenMP team (a threaded BLAS call right after an OpenMP region waits for the team's
#     spinning workers). BLAS is set to one thread during these kernels (bind_blas_threads).
#   - float32 sigmoid and tanh use vectorizable polynomial approximations (Cephes expf and tanhf
#     polynomials, about 2 ulp; NaN propagates), compiled for AVX-512, AVX2 and the baseline with
#     GCC's target_clones where available; float64 and other activations use the exact
#     _activations.pxd functions.
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
# i, f, c, o; GRU 3U in order z, r, h; SimpleRNN U), V vocabulary rows, D embedding width.
from cython.parallel cimport prange
from libc.stdlib cimport malloc, free
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv

from kernels._activations cimport (
    floating, act_row, f_exp, f_expm1, f_abs, ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH,
    ACT_LEAKY_RELU, ACT_ELU, ACT_SELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
    ACT_EXPONENTIAL,
)

cdef extern from *:
    """
    /* Vectorizable float32 exp/sigmoid/tanh (Cephes polynomials). Clamps keep NaN: x > c ? c : x
       is false for NaN. Compiled for AVX-512, AVX2 and the baseline where GCC has target_clones. */
    #include <string.h>
    #include <stdint.h>
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
        && (__GNUC__ >= 11)
    #define DLR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
    #else
    #define DLR_CLONES
    #endif

    static inline float dlr_expf(float x) {
        float r, g, y, s;
        int32_t n, bits;
        x = x > 88.0f ? 88.0f : x;
        x = x < -87.0f ? -87.0f : x;
        r = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
        g = x - r * 0.693359375f;
        g = g + r * 2.12194440e-4f;
        y = ((((1.9875691500E-4f * g + 1.3981999507E-3f) * g + 8.3334519073E-3f) * g
              + 4.1665795894E-2f) * g + 1.6666665459E-1f) * g + 5.0000001201E-1f;
        y = y * (g * g) + g + 1.0f;
        n = (int32_t)r;
        bits = (n + 127) << 23;
        memcpy(&s, &bits, sizeof(s));
        return y * s;
    }

    static inline float dlr_sigmoidf(float x) {
        return 1.0f / (1.0f + dlr_expf(-x));
    }

    static inline float dlr_tanhf(float x) {
        float ax = x < 0.0f ? -x : x;
        float z = x * x;
        float p = ((((-5.70498872745E-3f * z + 2.06390887954E-2f) * z - 5.37397155531E-2f) * z
                    + 1.33314422036E-1f) * z - 3.33332819422E-1f) * z * x + x;
        float e = dlr_expf(2.0f * ax);
        float q = 1.0f - 2.0f / (e + 1.0f);
        q = x < 0.0f ? -q : q;
        return ax < 0.625f ? p : q;
    }

    DLR_CLONES static void dlr_sigmoid_f32(const float* x, float* y, Py_ssize_t n) {
        Py_ssize_t i;
        for (i = 0; i < n; i++) y[i] = dlr_sigmoidf(x[i]);
    }

    DLR_CLONES static void dlr_tanh_f32(const float* x, float* y, Py_ssize_t n) {
        Py_ssize_t i;
        for (i = 0; i < n; i++) y[i] = dlr_tanhf(x[i]);
    }

    /* One LSTM row with the default activations (tanh, sigmoid), fused: z (4n) pre-activations
       i, f, g, o in, the gates out; c updated in place; h written. */
    DLR_CLONES static void dlr_lstm_cell_f32(float* restrict z, float* restrict c,
                                             float* restrict h, Py_ssize_t n) {
        Py_ssize_t j;
        for (j = 0; j < n; j++) {
            float i = dlr_sigmoidf(z[j]);
            float f = dlr_sigmoidf(z[n + j]);
            float g = dlr_tanhf(z[2 * n + j]);
            float o = dlr_sigmoidf(z[3 * n + j]);
            float cc = f * c[j] + i * g;
            z[j] = i;
            z[n + j] = f;
            z[2 * n + j] = g;
            z[3 * n + j] = o;
            c[j] = cc;
            h[j] = o * dlr_tanhf(cc);
        }
    }

    /* Its backward: gates z and c_{t-1} in; dz (4n) out; dc <- dc_{t-1}; dh zeroed. */
    DLR_CLONES static void dlr_lstm_cell_back_f32(const float* restrict z, const float* restrict cp,
                                                  float* restrict dh, float* restrict dc,
                                                  float* restrict dz, Py_ssize_t n) {
        Py_ssize_t j;
        for (j = 0; j < n; j++) {
            float i = z[j], f = z[n + j], g = z[2 * n + j], o = z[3 * n + j];
            float tc = dlr_tanhf(f * cp[j] + i * g);
            float d = dh[j];
            float dct = dc[j] + d * o * (1.0f - tc * tc);
            dz[j] = dct * g * (i * (1.0f - i));
            dz[n + j] = dct * cp[j] * (f * (1.0f - f));
            dz[2 * n + j] = dct * i * (1.0f - g * g);
            dz[3 * n + j] = d * tc * (o * (1.0f - o));
            dc[j] = dct * f;
            dh[j] = 0.0f;
        }
    }
    """
    void dlr_sigmoid_f32(const float* x, float* y, Py_ssize_t n) nogil
    void dlr_tanh_f32(const float* x, float* y, Py_ssize_t n) nogil
    void dlr_lstm_cell_f32(float* z, float* c, float* h, Py_ssize_t n) nogil
    void dlr_lstm_cell_back_f32(const float* z, const float* cp, float* dh, float* dc, float* dz,
                                Py_ssize_t n) nogil


cdef extern from *:
    """
    /* Row-major float32 C (m, n) = A (m, k) @ B (k, n) + beta C (beta 0 or 1), for the per-step
       products of the recurrences. B (the recurrent kernel) is read in place, never packed: a
       register tile of MR rows x NV vectors accumulates over k with one FMA chain per output
       element in the order p = 0..k-1, so every element's value is independent of m, of the
       tile it falls in and of how the rows are split into chunks (remainder rows use a wider
       1-row tile, remainder columns 1-vector tiles and a scalar tail, with the same chain).
       Rows go in blocks of DLR_ROW_BLOCK, so their A rows stay in L1 while B streams from L2.
       AVX-512 (16 lanes, 4x4 tile), AVX2+FMA (8 lanes, 4x2) and the baseline (4 lanes, 4x2) are
       chosen once at run time. */
    #define DLR_MR 4

    #define DLR_TILE(NAME, ATTR, VT, W, NV, MR)                                                   \\
    ATTR static inline void NAME(Py_ssize_t i0, Py_ssize_t j0, int k, const float* A,           \\
                                 Py_ssize_t lda, const float* B, Py_ssize_t ldb, float beta, const float* bias,    \\
                                 float* C, Py_ssize_t ldc) {                                     \\
        VT acc[MR][NV];                                                                          \\
        VT bv[NV];                                                                               \\
        VT old;                                                                                  \\
        int r, v, p;                                                                             \\
        for (r = 0; r < MR; r++)                                                                 \\
            for (v = 0; v < NV; v++) {                                                           \\
                if (bias) { VT in_; memcpy(&in_, bias + j0 + v * W, sizeof(VT)); acc[r][v] = in_; } \\
                else acc[r][v] = (VT){0};                                                        \\
            }                                                                                    \\
        for (p = 0; p < k; p++) {                                                                \\
            const float* b = B + (Py_ssize_t)p * ldb + j0;                                       \\
            for (v = 0; v < NV; v++) { VT in_; memcpy(&in_, b + v * W, sizeof(VT)); bv[v] = in_; } \\
            for (r = 0; r < MR; r++) {                                                           \\
                float a = A[(i0 + r) * lda + p];                                                 \\
                for (v = 0; v < NV; v++) acc[r][v] += a * bv[v];                                 \\
            }                                                                                    \\
        }                                                                                        \\
        for (r = 0; r < MR; r++) {                                                               \\
            for (v = 0; v < NV; v++) {                                                           \\
                float* c = C + (i0 + r) * ldc + j0 + v * W;                                      \\
                if (beta != 0.0f) {                                                              \\
                    memcpy(&old, c, sizeof(VT));                                                 \\
                    acc[r][v] += old;                                                            \\
                }                                                                                \\
                { VT out_ = acc[r][v]; memcpy(c, &out_, sizeof(VT)); }                            \\
            }                                                                                    \\
        }                                                                                        \\
    }

    #define DLR_ROW_BLOCK 16  /* rows whose A block stays in L1 while B's panels stream */

    #define DLR_GEMM(NAME, ATTR, VT, W, NV)                                                      \\
    DLR_TILE(NAME##_mn, ATTR, VT, W, NV, DLR_MR)                                                 \\
    DLR_TILE(NAME##_m1, ATTR, VT, W, 1, DLR_MR)                                                  \\
    DLR_TILE(NAME##_1w, ATTR, VT, W, 4 * NV, 1)                                                  \\
    DLR_TILE(NAME##_11, ATTR, VT, W, 1, 1)                                                       \\
    DLR_TILE(NAME##_r1, ATTR, VT, W, NV, 1)                                                      \\
    DLR_TILE(NAME##_r2, ATTR, VT, W, NV, 2)                                                      \\
    DLR_TILE(NAME##_r3, ATTR, VT, W, NV, 3)                                                      \\
    /* The last n - j < W columns, one zero-padded vector per row: the same vector FMA chain as \\
       the full tiles' lanes (a scalar loop would be vectorized in order as mul + add). */     \\
    ATTR static void NAME##_tail(Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j, int n, int k,     \\
                                 const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, \\
                                 float beta, const float* bias, float* C, Py_ssize_t ldc) {     \\
        Py_ssize_t i, q, w = n - j;                                                              \\
        int p;                                                                                   \\
        VT acc, bv;                                                                              \\
        float t[W];                                                                              \\
        if (w <= 0) return;                                                                      \\
        for (i = i0; i < i1; i++) {                                                              \\
            memset(t, 0, sizeof(t));                                                             \\
            if (bias) memcpy(t, bias + j, w * sizeof(float));                                    \\
            memcpy(&acc, t, sizeof(VT));                                                         \\
            for (p = 0; p < k; p++) {                                                            \\
                memcpy(t, B + (Py_ssize_t)p * ldb + j, w * sizeof(float));                       \\
                memcpy(&bv, t, sizeof(VT));                                                      \\
                acc += A[i * lda + p] * bv;                                                      \\
            }                                                                                    \\
            memcpy(t, &acc, sizeof(VT));                                                         \\
            for (q = 0; q < w; q++)                                                              \\
                C[i * ldc + j + q] = beta != 0.0f ? t[q] + C[i * ldc + j + q] : t[q];            \\
        }                                                                                        \\
    }                                                                                            \\
    ATTR static void NAME(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,  \\
                          Py_ssize_t ldb, float beta, const float* bias, float* C, Py_ssize_t ldc) {               \\
        Py_ssize_t i0, i1, i, j, jp = n - n % (NV * W);                                          \\
        Py_ssize_t m4 = m - m % DLR_MR;                                                          \\
        /* rows past the last DLR_MR-row tile join the last row block, 1-3 rows per panel tile, \\
           while its panel of B is in L1 (in-process A/B, the 50 x 32 x 512 input projection:  \\
           10.6 -> 10.3 us against 1-row tiles over all of B) */                                \\
        Py_ssize_t rem = m4 > 0 ? m - m4 : 0;                                                    \\
        for (i0 = 0; i0 < m4; i0 += DLR_ROW_BLOCK) {                                             \\
            i1 = i0 + DLR_ROW_BLOCK < m4 ? i0 + DLR_ROW_BLOCK : m4;                              \\
            for (j = 0; j < jp; j += NV * W) {                                                   \\
                for (i = i0; i < i1; i += DLR_MR) NAME##_mn(i, j, k, A, lda, B, ldb, beta, bias, C, ldc); \\
                if (i1 == m4 && rem == 3) NAME##_r3(m4, j, k, A, lda, B, ldb, beta, bias, C, ldc); \\
                else if (i1 == m4 && rem == 2) NAME##_r2(m4, j, k, A, lda, B, ldb, beta, bias, C, ldc); \\
                else if (i1 == m4 && rem == 1) NAME##_r1(m4, j, k, A, lda, B, ldb, beta, bias, C, ldc); \\
            }                                                                                    \\
            for (; j + W <= n; j += W)                                                           \\
                for (i = i0; i < i1; i += DLR_MR) NAME##_m1(i, j, k, A, lda, B, ldb, beta, bias, C, ldc); \\
            NAME##_tail(i0, i1, j, n, k, A, lda, B, ldb, beta, bias, C, ldc);                          \\
        }                                                                                        \\
        for (i = m4; i < m; i++) {                                                               \\
            j = rem ? jp : 0;                                                                    \\
            for (; j + 4 * NV * W <= n; j += 4 * NV * W)                                         \\
                NAME##_1w(i, j, k, A, lda, B, ldb, beta, bias, C, ldc);                                \\
            for (; j + W <= n; j += W) NAME##_11(i, j, k, A, lda, B, ldb, beta, bias, C, ldc);         \\
            NAME##_tail(i, i + 1, j, n, k, A, lda, B, ldb, beta, bias, C, ldc);                        \\
        }                                                                                        \\
    }

    /* Row-major float32 C (k, n)[:, j0:j1] = A^T B for A (m, k), B (m, n): the weight gradients
       (hprev^T dz, x^T dz). Tiles of MR rows of C x NV vectors, the sum over the m rows of A and
       B in blocks of DLR_TN_PB (each block of a column panel of B packed once, so the power-of-two
       row stride of dz does not thrash L1 across the row tiles), each element one FMA chain
       p = 0..m-1 carried across the blocks through C: results independent of the blocking and
       of how [j0, j1) ranges split the columns between threads. */
    #define DLR_TN_PB 128

    #define DLR_TN_TILE(NAME, ATTR, VT, W, NV, MR)                                                \\
    ATTR static inline void NAME(Py_ssize_t i0, Py_ssize_t j0, Py_ssize_t p0, Py_ssize_t p1,    \\
                                 const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb, \\
                                 float* C, Py_ssize_t ldc, int first) {                          \\
        VT acc[MR][NV];                                                                          \\
        VT bv[NV];                                                                               \\
        int r, v;                                                                                \\
        Py_ssize_t p;                                                                            \\
        for (r = 0; r < MR; r++)                                                                 \\
            for (v = 0; v < NV; v++) {                                                           \\
                if (first) acc[r][v] = (VT){0};                                                  \\
                else { VT in_; memcpy(&in_, C + (i0 + r) * ldc + j0 + v * W, sizeof(VT)); acc[r][v] = in_; } \\
            }                                                                                    \\
        for (p = p0; p < p1; p++) {                                                              \\
            const float* b = B + p * ldb + j0;                                                   \\
            const float* a = A + p * lda + i0;                                                   \\
            for (v = 0; v < NV; v++) { VT in_; memcpy(&in_, b + v * W, sizeof(VT)); bv[v] = in_; } \\
            for (r = 0; r < MR; r++) {                                                           \\
                float av = a[r];                                                                 \\
                for (v = 0; v < NV; v++) acc[r][v] += av * bv[v];                                \\
            }                                                                                    \\
        }                                                                                        \\
        for (r = 0; r < MR; r++)                                                                 \\
            for (v = 0; v < NV; v++) { VT out_ = acc[r][v]; memcpy(C + (i0 + r) * ldc + j0 + v * W, &out_, sizeof(VT)); } \\
    }

    #define DLR_TN(NAME, ATTR, VT, W, NV)                                                        \\
    DLR_TN_TILE(NAME##_mn, ATTR, VT, W, NV, DLR_MR)                                              \\
    DLR_TN_TILE(NAME##_1n, ATTR, VT, W, NV, 1)                                                   \\
    DLR_TN_TILE(NAME##_m1, ATTR, VT, W, 1, DLR_MR)                                               \\
    DLR_TN_TILE(NAME##_11, ATTR, VT, W, 1, 1)                                                    \\
    ATTR static void NAME(Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0, Py_ssize_t j1,             \\
                          const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,       \\
                          float* C, Py_ssize_t ldc) {                                            \\
        Py_ssize_t p0, p1, i, j, p;                                                              \\
        int first;                                                                               \\
        float bp[DLR_TN_PB * NV * W];  /* one block of a column panel of B, packed */          \\
        for (p0 = 0; p0 < m; p0 += DLR_TN_PB) {                                                  \\
            p1 = p0 + DLR_TN_PB < m ? p0 + DLR_TN_PB : m;                                        \\
            first = p0 == 0;                                                                     \\
            for (j = j0; j + NV * W <= j1; j += NV * W) {                                        \\
                for (p = p0; p < p1; p++)                                                        \\
                    memcpy(bp + (p - p0) * NV * W, B + p * ldb + j, NV * W * sizeof(float));     \\
                for (i = 0; i + DLR_MR <= k; i += DLR_MR)                                        \\
                    NAME##_mn(i, 0, 0, p1 - p0, A + p0 * lda, lda, bp, NV * W, C + j, ldc, first); \\
                for (; i < k; i++)                                                               \\
                    NAME##_1n(i, 0, 0, p1 - p0, A + p0 * lda, lda, bp, NV * W, C + j, ldc, first); \\
            }                                                                                    \\
            for (; j + W <= j1; j += W) {                                                        \\
                for (i = 0; i + DLR_MR <= k; i += DLR_MR)                                        \\
                    NAME##_m1(i, j, p0, p1, A, lda, B, ldb, C, ldc, first);                      \\
                for (; i < k; i++) NAME##_11(i, j, p0, p1, A, lda, B, ldb, C, ldc, first);       \\
            }                                                                                    \\
            for (; j < j1; j++)                                                                  \\
                for (i = 0; i < k; i++) {                                                        \\
                    float acc = first ? 0.0f : C[i * ldc + j];                                   \\
                    for (p = p0; p < p1; p++) acc += A[p * lda + i] * B[p * ldb + j];            \\
                    C[i * ldc + j] = acc;                                                        \\
                }                                                                                \\
        }                                                                                        \\
    }

    /* Few-row steps (batch-1 inference) on a panel-packed B (dlr_spack): B's n columns in
       panels of PW = NV * W columns, panel q at P + q * k * PW holding k rows of PW floats
       contiguously (zeros past n), so a step streams B once, in the order the FMAs consume it.
       Tiles: DLR_MR rows x 1 panel, 1 row x 4 panels (16 AVX-512 accumulators), 1 row x 1
       panel; panels outermost, so a panel stays in L1 for all the DLR_MR-row tiles. Each
       element is the same FMA chain as in DLR_GEMM (0, then p = 0..k-1, then + beta C), so
       results are bit-identical to dlr_sgemm's. */
    #define DLR_PTILE(NAME, ATTR, VT, W, NV, NP, MR)                                              \\
    ATTR static inline void NAME(int k, const float* A, Py_ssize_t lda, const float* P,         \\
                                 Py_ssize_t ps, float beta, float* C, Py_ssize_t ldc,           \\
                                 Py_ssize_t ncols) {                                             \\
        VT acc[MR][NP * NV];                                                                     \\
        VT bv, old;                                                                              \\
        float a[MR];                                                                             \\
        float tmp[NP * NV * W];                                                                  \\
        int r, s, v, p;                                                                          \\
        Py_ssize_t j;                                                                            \\
        for (r = 0; r < MR; r++)                                                                 \\
            for (v = 0; v < NP * NV; v++) acc[r][v] = (VT){0};                                   \\
        for (p = 0; p < k; p++) {                                                                \\
            const float* b = P + (Py_ssize_t)p * (NV * W);                                       \\
            for (r = 0; r < MR; r++) a[r] = A[r * lda + p];                                      \\
            for (s = 0; s < NP; s++)                                                             \\
                for (v = 0; v < NV; v++) {                                                       \\
                    memcpy(&bv, b + s * ps + v * W, sizeof(VT));                                 \\
                    for (r = 0; r < MR; r++) acc[r][s * NV + v] += a[r] * bv;                    \\
                }                                                                                \\
        }                                                                                        \\
        for (r = 0; r < MR; r++) {                                                               \\
            float* c = C + r * ldc;                                                              \\
            if (ncols >= NP * NV * W) {                                                          \\
                for (v = 0; v < NP * NV; v++) {                                                  \\
                    if (beta != 0.0f) {                                                          \\
                        memcpy(&old, c + v * W, sizeof(VT));                                     \\
                        acc[r][v] += old;                                                        \\
                    }                                                                            \\
                    VT out_ = acc[r][v];                                                         \\
                    memcpy(c + v * W, &out_, sizeof(VT));                                        \\
                }                                                                                \\
            } else {                                                                             \\
                for (v = 0; v < NP * NV; v++) {                                                  \\
                    VT out_ = acc[r][v];                                                         \\
                    memcpy(tmp + v * W, &out_, sizeof(VT));                                      \\
                }                                                                                \\
                for (j = 0; j < ncols; j++) c[j] = beta != 0.0f ? tmp[j] + c[j] : tmp[j];        \\
            }                                                                                    \\
        }                                                                                        \\
    }

    #define DLR_PGEMM(NAME, ATTR, VT, W, NV)                                                     \\
    DLR_PTILE(NAME##_41, ATTR, VT, W, NV, 1, DLR_MR)                                             \\
    DLR_PTILE(NAME##_14, ATTR, VT, W, NV, 4, 1)                                                  \\
    DLR_PTILE(NAME##_11, ATTR, VT, W, NV, 1, 1)                                                  \\
    ATTR static void NAME(int m, int n, int k, const float* A, Py_ssize_t lda, const float* P,  \\
                          float beta, float* C, Py_ssize_t ldc) {                                \\
        const Py_ssize_t pw = NV * W, ps = (Py_ssize_t)k * (NV * W);                             \\
        Py_ssize_t np = (n + pw - 1) / pw, m4 = m - m % DLR_MR, i, q;                            \\
        for (q = 0; q < np; q++)                                                                 \\
            for (i = 0; i < m4; i += DLR_MR)                                                     \\
                NAME##_41(k, A + i * lda, lda, P + q * ps, ps, beta, C + i * ldc + q * pw, ldc,  \\
                          n - q * pw);                                                           \\
        for (i = m4; i < m; i++) {                                                               \\
            for (q = 0; q + 4 <= np; q += 4)                                                     \\
                NAME##_14(k, A + i * lda, lda, P + q * ps, ps, beta, C + i * ldc + q * pw, ldc,  \\
                          n - q * pw);                                                           \\
            for (; q < np; q++)                                                                  \\
                NAME##_11(k, A + i * lda, lda, P + q * ps, ps, beta, C + i * ldc + q * pw, ldc,  \\
                          n - q * pw);                                                           \\
        }                                                                                        \\
    }                                                                                            \\
    /* Packs B; returns 1 when all of B is finite (then a zero row times B is exactly zero). */  \\
    ATTR static int NAME##_pack(int k, int n, const float* B, Py_ssize_t ldb, float* P) {       \\
        const Py_ssize_t pw = NV * W;                                                            \\
        Py_ssize_t q, p, w, j;                                                                   \\
        uint32_t bits, bad = 0;                                                                  \\
        for (q = 0; q * pw < n; q++) {                                                           \\
            w = n - q * pw < pw ? n - q * pw : pw;                                               \\
            for (p = 0; p < k; p++) {                                                            \\
                float* dst = P + (q * k + p) * pw;                                               \\
                const float* src = B + p * ldb + q * pw;                                         \\
                for (j = 0; j < w; j++) {                                                        \\
                    memcpy(&bits, src + j, sizeof(bits));                                        \\
                    bad |= (bits & 0x7f800000u) == 0x7f800000u;                                  \\
                    dst[j] = src[j];                                                             \\
                }                                                                                \\
                for (; j < pw; j++) dst[j] = 0.0f;                                               \\
            }                                                                                    \\
        }                                                                                        \\
        return !bad;                                                                             \\
    }

    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    typedef float dlr_v16 __attribute__((vector_size(64)));
    typedef float dlr_v8 __attribute__((vector_size(32)));
    typedef float dlr_v4 __attribute__((vector_size(16)));
    DLR_GEMM(dlr_sgemm_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dlr_v16, 16, 4)
    DLR_GEMM(dlr_sgemm_avx2, __attribute__((target("avx2,fma"))), dlr_v8, 8, 2)
    DLR_GEMM(dlr_sgemm_base, , dlr_v4, 4, 2)
    DLR_TN(dlr_sgemm_tn_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dlr_v16, 16, 4)
    DLR_TN(dlr_sgemm_tn_avx2, __attribute__((target("avx2,fma"))), dlr_v8, 8, 2)
    DLR_TN(dlr_sgemm_tn_base, , dlr_v4, 4, 2)
    DLR_PGEMM(dlr_sgemm_p_avx512, __attribute__((target("avx512f,avx512vl,avx2,fma"))), dlr_v16, 16, 4)
    DLR_PGEMM(dlr_sgemm_p_avx2, __attribute__((target("avx2,fma"))), dlr_v8, 8, 2)
    DLR_PGEMM(dlr_sgemm_p_base, , dlr_v4, 4, 2)
    typedef void (*dlr_sgemm_fn)(int, int, int, const float*, Py_ssize_t, const float*, Py_ssize_t,
                                 float, const float*, float*, Py_ssize_t);
    static dlr_sgemm_fn dlr_sgemm_impl = 0;
    static void dlr_sgemm(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                          Py_ssize_t ldb, float beta, const float* bias, float* C, Py_ssize_t ldc) {
        dlr_sgemm_fn fn = dlr_sgemm_impl;
        if (fn == 0) {  /* chosen once; a race only stores the same pointer twice */
            __builtin_cpu_init();
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
                fn = dlr_sgemm_avx512;
            else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
                fn = dlr_sgemm_avx2;
            else
                fn = dlr_sgemm_base;
            dlr_sgemm_impl = fn;
        }
        fn(m, n, k, A, lda, B, ldb, beta, bias, C, ldc);
    }
    static void dlr_sgemm_tn(Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0, Py_ssize_t j1,
                             const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                             float* C, Py_ssize_t ldc) {
        if (dlr_sgemm_impl == 0) dlr_sgemm(0, 0, 0, A, lda, B, ldb, 0.0f, 0, C, ldc);  /* pick the ISA */
        if (dlr_sgemm_impl == dlr_sgemm_avx512)
            dlr_sgemm_tn_avx512(m, k, j0, j1, A, lda, B, ldb, C, ldc);
        else if (dlr_sgemm_impl == dlr_sgemm_avx2)
            dlr_sgemm_tn_avx2(m, k, j0, j1, A, lda, B, ldb, C, ldc);
        else
            dlr_sgemm_tn_base(m, k, j0, j1, A, lda, B, ldb, C, ldc);
    }
    /* The panel width of dlr_spack's layout for the chosen ISA (0: no packed path). */
    static int dlr_pack_width(void) {
        if (dlr_sgemm_impl == 0) dlr_sgemm(0, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0);  /* pick the ISA */
        return dlr_sgemm_impl == dlr_sgemm_avx512 ? 64 : dlr_sgemm_impl == dlr_sgemm_avx2 ? 16 : 8;
    }
    static int dlr_spack(int k, int n, const float* B, Py_ssize_t ldb, float* P) {
        int pw = dlr_pack_width();
        if (pw == 64) return dlr_sgemm_p_avx512_pack(k, n, B, ldb, P);
        if (pw == 16) return dlr_sgemm_p_avx2_pack(k, n, B, ldb, P);
        return dlr_sgemm_p_base_pack(k, n, B, ldb, P);
    }
    static void dlr_sgemm_packed(int m, int n, int k, const float* A, Py_ssize_t lda,
                                 const float* P, float beta, float* C, Py_ssize_t ldc) {
        if (dlr_sgemm_impl == dlr_sgemm_avx512)
            dlr_sgemm_p_avx512(m, n, k, A, lda, P, beta, C, ldc);
        else if (dlr_sgemm_impl == dlr_sgemm_avx2)
            dlr_sgemm_p_avx2(m, n, k, A, lda, P, beta, C, ldc);
        else
            dlr_sgemm_p_base(m, n, k, A, lda, P, beta, C, ldc);
    }
    /* Tests: select the product kernels' ISA (0 AVX-512, 1 AVX2, 2 baseline) where the CPU has
       it; returns the previous one, or -1 (unchanged) where it does not. */
    static int dlr_set_isa(int isa) {
        int old;
        if (dlr_sgemm_impl == 0) dlr_sgemm(0, 0, 0, 0, 0, 0, 0, 0.0f, 0, 0, 0);
        old = dlr_sgemm_impl == dlr_sgemm_avx512 ? 0 : dlr_sgemm_impl == dlr_sgemm_avx2 ? 1 : 2;
        if (isa == 0 && !(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")))
            return -1;
        if (isa == 1 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            return -1;
        dlr_sgemm_impl = isa == 0 ? dlr_sgemm_avx512 : isa == 1 ? dlr_sgemm_avx2 : dlr_sgemm_base;
        return old;
    }
    #elif defined(__GNUC__)
    typedef float dlr_v4 __attribute__((vector_size(16)));
    DLR_GEMM(dlr_sgemm, , dlr_v4, 4, 2)
    DLR_TN(dlr_sgemm_tn, , dlr_v4, 4, 2)
    DLR_PGEMM(dlr_sgemm_packed, , dlr_v4, 4, 2)
    static int dlr_pack_width(void) { return 8; }
    static int dlr_set_isa(int isa) { return -1; }
    static int dlr_spack(int k, int n, const float* B, Py_ssize_t ldb, float* P) {
        return dlr_sgemm_packed_pack(k, n, B, ldb, P);
    }
    #else
    static void dlr_sgemm(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                          Py_ssize_t ldb, float beta, const float* bias, float* C, Py_ssize_t ldc) {
        Py_ssize_t i, j;
        int p;
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) {
                float acc = bias ? bias[j] : 0.0f;
                for (p = 0; p < k; p++) acc += A[i * lda + p] * B[(Py_ssize_t)p * ldb + j];
                C[i * ldc + j] = beta != 0.0f ? acc + C[i * ldc + j] : acc;
            }
    }
    static void dlr_sgemm_tn(Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0, Py_ssize_t j1,
                             const float* A, Py_ssize_t lda, const float* B, Py_ssize_t ldb,
                             float* C, Py_ssize_t ldc) {
        Py_ssize_t i, j, p;
        for (i = 0; i < k; i++)
            for (j = j0; j < j1; j++) {
                float acc = 0.0f;
                for (p = 0; p < m; p++) acc += A[p * lda + i] * B[p * ldb + j];
                C[i * ldc + j] = acc;
            }
    }
    static int dlr_pack_width(void) { return 0; }
    static int dlr_set_isa(int isa) { return -1; }
    static int dlr_spack(int k, int n, const float* B, Py_ssize_t ldb, float* P) { return 0; }
    static void dlr_sgemm_packed(int m, int n, int k, const float* A, Py_ssize_t lda,
                                 const float* P, float beta, float* C, Py_ssize_t ldc) {}
    #endif
    """
    void dlr_sgemm(int m, int n, int k, const float* A, Py_ssize_t lda, const float* B,
                   Py_ssize_t ldb, float beta, const float* bias, float* C, Py_ssize_t ldc) nogil
    void dlr_sgemm_tn(Py_ssize_t m, Py_ssize_t k, Py_ssize_t j0, Py_ssize_t j1, const float* A,
                      Py_ssize_t lda, const float* B, Py_ssize_t ldb, float* C,
                      Py_ssize_t ldc) nogil
    int dlr_pack_width() nogil
    int dlr_set_isa(int isa) nogil
    int dlr_spack(int k, int n, const float* B, Py_ssize_t ldb, float* P) nogil
    void dlr_sgemm_packed(int m, int n, int k, const float* A, Py_ssize_t lda, const float* P,
                          float beta, float* C, Py_ssize_t ldc) nogil


# float64 steps of up to this many rows run one BLAS gemv per row instead of a gemm.
GEMV_ROWS = 8
cdef int _GEMV_ROWS = GEMV_ROWS

# Activation codes whose derivative the backward kernels compute from the forward output.
BACKWARD_ACTIVATIONS = (ACT_LINEAR, ACT_RELU, ACT_SIGMOID, ACT_TANH, ACT_LEAKY_RELU, ACT_ELU,
                        ACT_SELU, ACT_SOFTPLUS, ACT_SOFTSIGN, ACT_HARD_SIGMOID, ACT_RELU6,
                        ACT_EXPONENTIAL)


# ---- BLAS on row-major strided operands -------------------------------------------------------
cdef inline void _scale_row(floating* c, int n, floating beta) noexcept nogil:
    cdef int j
    if beta == 0:
        for j in range(n):
            c[j] = 0
    elif beta != 1:
        for j in range(n):
            c[j] = c[j] * beta


cdef void _mm(int m, int n, int k, const floating* a, int lda, const floating* b, int ldb,
              floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major c (m, n) = a (m, k) @ b (k, n) + beta * c, row strides lda/ldb/ldc (elements).

    float32: dlr_sgemm (no packing, chunk-independent results, see the C block); float64 (the
    gradient checks): BLAS, one dgemv per row up to GEMV_ROWS rows.
    """
    cdef char tn = b'N'
    cdef int one_i = 1, i
    cdef floating one = 1
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        for i in range(m):
            _scale_row(c + <Py_ssize_t>i * ldc, n, beta)
        return
    if floating is float:
        dlr_sgemm(m, n, k, a, lda, b, ldb, beta, NULL, c, ldc)
        return
    if m <= _GEMV_ROWS:
        # b row-major (k, n) is column-major (n, k) with leading dimension ldb: c_row = B @ a_row
        for i in range(m):
            dgemv(&tn, &n, &k, &one, <double*>b, &ldb, <double*>(a + <Py_ssize_t>i * lda), &one_i,
                  &beta, c + <Py_ssize_t>i * ldc, &one_i)
        return
    # Row-major C = A B is column-major C^T = B^T A^T: pass (B, A) swapped.
    dgemm(&tn, &tn, &n, &m, &k, &one, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


# ---- activations and their derivatives from the output ----------------------------------------
cdef inline void _act(int code, floating alpha, const floating* x, floating* y,
                      Py_ssize_t n) noexcept nogil:
    """y = act(x) over n elements (y may alias x)."""
    if floating is float:
        if code == ACT_SIGMOID:
            dlr_sigmoid_f32(x, y, n)
            return
        if code == ACT_TANH:
            dlr_tanh_f32(x, y, n)
            return
    act_row(code, x, NULL, y, n, alpha)


cdef inline void _dact(int code, floating alpha, const floating* y, const floating* dy,
                       floating* dx, Py_ssize_t n) noexcept nogil:
    """dx = dy * act'(x), from the output y = act(x) (codes in BACKWARD_ACTIVATIONS)."""
    cdef Py_ssize_t i
    cdef floating v
    cdef floating one = 1
    cdef floating sixth = <floating>(1.0 / 6.0)
    cdef floating selu_scale = <floating>1.0507009873554805
    cdef floating selu_as = <floating>1.7580993408473766
    if code == ACT_SIGMOID:
        for i in range(n):
            dx[i] = dy[i] * (y[i] * (one - y[i]))
    elif code == ACT_TANH:
        for i in range(n):
            dx[i] = dy[i] * (one - y[i] * y[i])
    elif code == ACT_LINEAR:
        for i in range(n):
            dx[i] = dy[i]
    elif code == ACT_RELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else 0
    elif code == ACT_LEAKY_RELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else dy[i] * alpha
    elif code == ACT_ELU:
        for i in range(n):
            dx[i] = dy[i] if y[i] > 0 else dy[i] * (y[i] + alpha)
    elif code == ACT_SELU:
        for i in range(n):
            dx[i] = dy[i] * selu_scale if y[i] > 0 else dy[i] * (y[i] + selu_as)
    elif code == ACT_SOFTPLUS:
        for i in range(n):
            dx[i] = dy[i] * (-f_expm1(-y[i]))
    elif code == ACT_SOFTSIGN:
        for i in range(n):
            v = one - f_abs(y[i])
            dx[i] = dy[i] * v * v
    elif code == ACT_HARD_SIGMOID:
        for i in range(n):
            dx[i] = dy[i] * sixth if (y[i] > 0 and y[i] < 1) else 0
    elif code == ACT_RELU6:
        for i in range(n):
            dx[i] = dy[i] if (y[i] > 0 and y[i] < 6) else 0
    elif code == ACT_EXPONENTIAL:
        for i in range(n):
            dx[i] = dy[i] * y[i]
    else:
        for i in range(n):
            dx[i] = dy[i]


# ---- shared per-row helpers -------------------------------------------------------------------
cdef inline void _copy(const floating* src, floating* dst, Py_ssize_t n) noexcept nogil:
    memcpy(dst, src, n * sizeof(floating))


cdef inline void _zero(floating* dst, Py_ssize_t n) noexcept nogil:
    memset(dst, 0, n * sizeof(floating))


cdef inline void _masked_output(floating* y_row, const floating* prev_row, bint has_prev,
                                bint zero_output, Py_ssize_t u) noexcept nogil:
    """A masked step's output: zeros, or the previous output (zeros before step 0)."""
    if zero_output or not has_prev:
        _zero(y_row, u)
    else:
        _copy(prev_row, y_row, u)


cdef inline void _output_grad(floating* dh, const floating* dy_row, floating* carry, bint valid,
                              bint masked, bint zero_output, Py_ssize_t u) noexcept nogil:
    """Adds step t's output gradient to dh (Keras masked-output semantics, see Design).

    No mask: dh += dy. zero_output: only valid steps' outputs depend on the step. Otherwise a
    masked output copies the previous output, so its gradient is carried back to the last valid
    step (carry holds it).
    """
    cdef Py_ssize_t j
    if not masked:
        for j in range(u):
            dh[j] = dh[j] + dy_row[j]
    elif zero_output:
        if valid:
            for j in range(u):
                dh[j] = dh[j] + dy_row[j]
    else:
        if valid:
            for j in range(u):
                dh[j] = dh[j] + dy_row[j] + carry[j]
                carry[j] = 0
        else:
            for j in range(u):
                carry[j] = carry[j] + dy_row[j]


cdef void _project(const floating* h, int ldh, const floating* rmask, Py_ssize_t rm_gstride, int n,
                   int u, int g0, int ng, const floating* r, int ldr, const floating* pk,
                   floating beta, floating* z, int ldz, floating* work) noexcept nogil:
    """z (n, ng*u) = (h masked per gate) @ r[:, g0*u:(g0+ng)*u] + beta * z (row stride ldz).

    rmask: NULL, or the masks of these n rows, gate g at rmask + g * rm_gstride (rows of u):
    gate g uses h * mask[g] (work: n * u scratch). pk: NULL, or (float32, no rmask) those
    columns of r packed by _pack_columns, which the product then reads instead of r.
    """
    cdef int g, i, j
    cdef const floating* m
    cdef const floating* hr
    cdef floating* w
    if floating is float:
        if pk != NULL:
            if _pack_finite(pk) and _rows_zero(h, ldh, n, u):
                # h = 0 (the first step without an initial state): every FMA chain gives +0
                for i in range(n):
                    w = z + <Py_ssize_t>i * ldz
                    for j in range(ng * u):
                        w[j] = w[j] + <float>0 if beta != 0 else <float>0
            else:
                dlr_sgemm_packed(n, ng * u, u, h, ldh, pk, beta, z, ldz)
            return
    if rmask == NULL:
        _mm(n, ng * u, u, h, ldh, r + g0 * u, ldr, beta, z, ldz)
        return
    for g in range(g0, g0 + ng):
        for i in range(n):
            m = rmask + g * rm_gstride + <Py_ssize_t>i * u
            hr = h + <Py_ssize_t>i * ldh
            w = work + <Py_ssize_t>i * u
            for j in range(u):
                w[j] = hr[j] * m[j]
        _mm(n, u, u, work, u, r + g * u, ldr, beta, z + (g - g0) * u, ldz)


cdef void _project_back(const floating* dz, int ldz, const floating* rmask, Py_ssize_t rm_gstride,
                        int n, int u, int g0, int ng, const floating* rt, floating* dh,
                        floating* work) noexcept nogil:
    """dh (n, u) += sum over gates g0..g0+ng-1 of (dz[:, g - g0] @ R[:, g]^T) * mask[g] (no mask:
    one GEMM); rt = R^T (gates * u, u) row-major with row stride _pad_ld(u); dz holds ng*u columns per row (row stride
    ldz); masks as in _project."""
    cdef int g, i, j
    cdef int ldt = <int>_pad_ld(u)
    cdef const floating* m
    cdef floating* d
    cdef floating* w
    if rmask == NULL:
        _mm(n, u, ng * u, dz, ldz, rt + <Py_ssize_t>g0 * u * ldt, ldt, 1, dh, u)
        return
    for g in range(g0, g0 + ng):
        _mm(n, u, u, dz + (g - g0) * u, ldz, rt + <Py_ssize_t>g * u * ldt, ldt, 0, work, u)
        for i in range(n):
            m = rmask + g * rm_gstride + <Py_ssize_t>i * u
            d = dh + <Py_ssize_t>i * u
            w = work + <Py_ssize_t>i * u
            for j in range(u):
                d[j] = d[j] + w[j] * m[j]


# Forward passes with fewer rows read R in place: the padded copy (_pad_ld) costs more than it
# saves when a step is one or two row products (batch-1 inference: 10 us of a 120 us call).
cdef Py_ssize_t _PAD_MIN_ROWS = 8


# Forward passes of fewer rows and at least this many steps (float32, no recurrent dropout)
# read a panel-packed copy of R (_pack_columns, dlr_sgemm_packed): packing costs what about 5
# steps save (LSTM(128): 3.5 us against 2.0 -> 1.35 us per step).
cdef Py_ssize_t _PACK_MIN_STEPS = 6


cdef inline bint _packs(Py_ssize_t n, Py_ssize_t t, const void* rmask) noexcept nogil:
    return n < _PAD_MIN_ROWS and t >= _PACK_MIN_STEPS and rmask == NULL


cdef inline Py_ssize_t _pad_ld(Py_ssize_t cols) noexcept nogil:
    """Row stride of the kernels' copies of the recurrent kernel: cols rounded up to 16 floats,
    plus 16 when that is an even number of 64-byte lines. A power-of-two stride (2 KB for
    LSTM(128)'s 512 columns) maps a column panel's rows onto two L1 sets and makes every B load
    an L2 load (measured: 90 vs 190 GFLOPS for a 32x128x512 step)."""
    cdef Py_ssize_t ld = (cols + 15) // 16 * 16
    if (ld // 16) % 2 == 0:
        ld += 16
    return ld


cdef floating* _padded(const floating* r, Py_ssize_t rows, Py_ssize_t cols,
                       bint transpose) noexcept nogil:
    """A malloc'd copy of r (rows, cols), or of r^T (cols, rows), with row stride _pad_ld of its
    row length (the caller frees it)."""
    cdef Py_ssize_t out_rows = cols if transpose else rows
    cdef Py_ssize_t out_cols = rows if transpose else cols
    cdef Py_ssize_t ld = _pad_ld(out_cols)
    cdef floating* out = <floating*>malloc((out_rows * ld + 1) * sizeof(floating))
    cdef Py_ssize_t i, j
    memset(out, 0, out_rows * ld * sizeof(floating))
    if transpose:
        for i in range(rows):
            for j in range(cols):
                out[j * ld + i] = r[i * cols + j]
    else:
        for i in range(rows):
            memcpy(out + i * ld, r + i * cols, cols * sizeof(floating))
    return out


# Bytes past a 64-byte boundary where the packed panels start (measured: see the Design block).
cdef Py_ssize_t _PACK_OFFSET = 16


cdef floating* _pack_columns(const floating* r, Py_ssize_t ldr, Py_ssize_t rows, Py_ssize_t c0,
                             Py_ssize_t c1) noexcept nogil:
    """float32: a panel-packed copy of r[:, c0:c1] for dlr_sgemm_packed (free it with
    _free_pack); NULL for float64 or where the build has no packed product."""
    cdef int pw
    cdef Py_ssize_t panels, addr
    cdef char* raw
    cdef floating* out
    if floating is double:
        return NULL
    else:
        pw = dlr_pack_width()
        if pw == 0:
            return NULL
        panels = (c1 - c0 + pw - 1) // pw
        raw = <char*>malloc(panels * rows * pw * sizeof(floating) + 160)
        if raw == NULL:
            return NULL
        addr = (<Py_ssize_t>raw + 16 + 63) // 64 * 64 + _PACK_OFFSET
        out = <floating*>addr
        (<void**>out)[-1] = raw
        (<int*>out)[-3] = dlr_spack(<int>rows, <int>(c1 - c0), r + c0, ldr, out)
        return out


cdef inline void _free_pack(void* pk) noexcept nogil:
    if pk != NULL:
        free((<void**>pk)[-1])


cdef inline bint _pack_finite(const void* pk) noexcept nogil:
    """Whether the columns packed at pk are all finite (then 0 @ R is exactly +0)."""
    return (<const int*>pk)[-3] != 0


cdef inline bint _rows_zero(const floating* h, int ldh, int n, int u) noexcept nogil:
    cdef int i, j
    for i in range(n):
        for j in range(u):
            if h[<Py_ssize_t>i * ldh + j] != 0:
                return False
    return True


# ---- batch chunks: rows are independent, so each thread runs the whole sequence for its rows ----
# The per-step GEMMs always run single-threaded (BLAS is set to one thread for the duration of a
# recurrence and restored after, through the setter kernels/recurrent.py binds): a threaded
# BLAS call per time step puts a barrier in every step, and each barrier costs a scheduler tick
# whenever a thread is descheduled, which is often on a busy 2-core machine (measured: 16 ms
# single-threaded vs 0.9 s median with 2-thread BLAS for one LSTM(128) forward at batch 64 under
# load). Parallelism comes from batch chunks instead: at most n_threads chunks of at least
# MIN_CHUNK_ROWS rows, each running every time step on its own rows, so the threads never wait
# for each other inside the sequence. Without a bound setter the kernels run in one chunk.
MIN_CHUNK_ROWS = 16
cdef Py_ssize_t _MIN_CHUNK_ROWS = MIN_CHUNK_ROWS
ctypedef void (*_set_threads_t)(int) noexcept nogil
ctypedef int (*_get_threads_t)() noexcept nogil
cdef _set_threads_t _blas_set = NULL
cdef _get_threads_t _blas_get = NULL


def bind_blas_threads(size_t set_address, size_t get_address):
    """Give the kernels the BLAS library's thread setter and getter (C function addresses; 0: none)."""
    global _blas_set, _blas_get
    _blas_set = <_set_threads_t>set_address
    _blas_get = <_get_threads_t>get_address


cdef int _n_chunks(Py_ssize_t n, int n_threads) noexcept nogil:
    """Chunks of at least MIN_CHUNK_ROWS rows (one when n_threads is 1); more chunks than
    threads, handed out dynamically, so a descheduled thread's share moves to the other ones."""
    cdef Py_ssize_t c = n // _MIN_CHUNK_ROWS
    if c < 1 or n_threads <= 1:
        c = 1
    return <int>c


cdef inline int _team(int chunks, int n_threads) noexcept nogil:
    return chunks if chunks < n_threads else n_threads


cdef inline int _blas_single() noexcept nogil:
    """Set BLAS to one thread for a recurrence (see above); returns the count to restore."""
    cdef int old
    if _blas_get == NULL or _blas_set == NULL:
        return 1
    old = _blas_get()
    if old != 1:
        _blas_set(1)
    return old


cdef inline void _blas_restore(int old) noexcept nogil:
    if old != 1:
        _blas_set(old)


cdef inline floating* _scratch(Py_ssize_t n, floating* like) noexcept nogil:
    """malloc'd scratch of n elements of like's type (like is only a type witness)."""
    return <floating*>malloc((n + 1) * sizeof(floating))


cdef inline const floating* _ptr3(const floating[:, :, ::1] a) noexcept nogil:
    return NULL if a is None else &a[0, 0, 0]


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
    cdef int chunks, ch, old
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
    with nogil:
        old = _blas_single()
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
        _blas_restore(old)
        free(rp)
        _free_pack(pk)


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
    cdef int chunks, ch, old
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
    with nogil:
        old = _blas_single()
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _rnn_bwd(z, rt, mask, rm, activation, a, zero_output, dy, dh, dz, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _rnn_bwd(z, rt, mask, rm, activation, a, zero_output, dy, dh, dz, N, T, U,
                         ch * N // chunks, (ch + 1) * N // chunks)
        _blas_restore(old)
        free(rt)


# ---- LSTM ---------------------------------------------------------------------------------------
cdef void _lstm_fwd(floating* z, const floating* r, Py_ssize_t ldr, const floating* pk,
                    const unsigned char* mask, const floating* rm,
                    int act, floating a, int rec, floating ra, bint zero_output, floating* h,
                    floating* c, floating* hprev, floating* cprev, floating* y, Py_ssize_t N,
                    Py_ssize_t T, Py_ssize_t U, Py_ssize_t n0, Py_ssize_t n1) noexcept nogil:
    cdef Py_ssize_t G = 4 * U, ld = T * G, n, t
    cdef int m = <int>(n1 - n0)
    cdef floating* zr
    cdef floating* tmp = _scratch(U, z)
    cdef floating* work = NULL if rm == NULL else _scratch(m * U, z)
    for t in range(T):
        if hprev != NULL:
            for n in range(n0, n1):
                _copy(h + n * U, hprev + (n * T + t) * U, U)
                _copy(c + n * U, cprev + (n * T + t) * U, U)
        _project(h + n0 * U, <int>U, NULL if rm == NULL else rm + n0 * U, N * U, m, <int>U, 0, 4,
                 r, <int>ldr, pk, 1, z + n0 * ld + t * G, <int>ld, work)
        for n in range(n0, n1):
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


def lstm_forward(floating[:, :, ::1] z_ntg, const floating[:, ::1] r_ug,
                 const unsigned char[:, ::1] mask_nt, const floating[:, :, ::1] rmask_knu,
                 int activation, double alpha, int recurrent_activation, double recurrent_alpha,
                 bint zero_output, floating[:, ::1] h_nu, floating[:, ::1] c_nu,
                 floating[:, :, ::1] hprev_ntu, floating[:, :, ::1] cprev_ntu,
                 floating[:, :, ::1] y_ntu, int n_threads=1):
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
    cdef Py_ssize_t N = z_ntg.shape[0], T = z_ntg.shape[1], U = h_nu.shape[1]
    cdef int chunks, ch, old
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
    cdef floating* rp = NULL
    cdef const floating* rr = r
    cdef Py_ssize_t ldr = r_ug.shape[1]
    cdef floating* pk = NULL
    with nogil:
        old = _blas_single()
        if _packs(N, T, rm):
            pk = _pack_columns(r, ldr, U, 0, 4 * U)
        elif N >= _PAD_MIN_ROWS:  # a padded copy for the multi-row tiles (see _pad_ld)
            rp = _padded(r, U, ldr, False)
            rr = rp
            ldr = _pad_ld(ldr)
        if chunks == 1:
            _lstm_fwd(z, rr, ldr, pk, mask, rm, activation, a, recurrent_activation, ra, zero_output, h,
                      c, hprev, cprev, y, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _lstm_fwd(z, rr, ldr, pk, mask, rm, activation, a, recurrent_activation, ra, zero_output,
                          h, c, hprev, cprev, y, N, T, U, ch * N // chunks, (ch + 1) * N // chunks)
        _blas_restore(old)
        free(rp)
        _free_pack(pk)


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
    cdef int chunks, ch, old
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
    with nogil:
        old = _blas_single()
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _lstm_bwd(z, cprev, rt, mask, rm, activation, a, recurrent_activation, ra, zero_output, dy,
                      dh, dc, dz, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _lstm_bwd(z, cprev, rt, mask, rm, activation, a, recurrent_activation, ra, zero_output,
                          dy, dh, dc, dz, N, T, U, ch * N // chunks, (ch + 1) * N // chunks)
        _blas_restore(old)
        free(rt)


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
    cdef int chunks, ch, old
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
    with nogil:
        old = _blas_single()
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
        _blas_restore(old)
        free(rp)
        _free_pack(pkh)
        _free_pack(pk)


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
    cdef int chunks, ch, old
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
    with nogil:
        old = _blas_single()
        rt = _padded(r, U, r_ug.shape[1], True)
        if chunks == 1:
            _gru_bwd(z, hprev, aux, rt, mask, rm, activation, a, recurrent_activation, ra, reset_after,
                     zero_output, dy, dh, dz, dzr, N, T, U, 0, N)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _gru_bwd(z, hprev, aux, rt, mask, rm, activation, a, recurrent_activation, ra,
                         reset_after, zero_output, dy, dh, dz, dzr, N, T, U, ch * N // chunks,
                         (ch + 1) * N // chunks)
        _blas_restore(old)
        free(rt)


# ---- Embedding ----------------------------------------------------------------------------------
def embedding_forward(const int64_t[::1] ids_n, const floating[:, ::1] w_vd,
                      floating[:, ::1] y_nd, int n_threads=1):
    """y_nd[i] = w_vd[ids_n[i]] (ids assumed in [0, V): the op checks them).

    ids_n: (N,) int64, C-contiguous, IN (N = all lookups, flattened)
    w_vd: (V, D) float32/64, C-contiguous, IN
    y_nd: (N, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = w_vd.shape[1], i
    if N == 0 or D == 0:
        return
    if n_threads <= 1:
        with nogil:
            for i in range(N):
                _copy(&w_vd[ids_n[i], 0], &y_nd[i, 0], D)
    else:
        for i in prange(N, nogil=True, num_threads=n_threads, schedule="static"):
            _copy(&w_vd[ids_n[i], 0], &y_nd[i, 0], D)


def embedding_backward(const int64_t[::1] ids_n, const floating[:, ::1] dy_nd,
                       floating[:, ::1] dw_vd):
    """dw_vd[ids_n[i]] += dy_nd[i] for i = 0..N-1 in order (scatter-add, deterministic).

    ids_n: (N,) int64, C-contiguous, IN
    dy_nd: (N, D) float32/64, C-contiguous, IN
    dw_vd: (V, D) same dtype, C-contiguous, IN/OUT (accumulated into; zero it first)
    """
    cdef Py_ssize_t N = ids_n.shape[0], D = dy_nd.shape[1], i, j
    cdef floating* row
    cdef const floating* src
    if N == 0 or D == 0:
        return
    with nogil:
        for i in range(N):
            row = &dw_vd[ids_n[i], 0]
            src = &dy_nd[i, 0]
            for j in range(D):
                row[j] = row[j] + src[j]


def set_isa(int isa):
    """Select the float32 product kernels' ISA: 0 AVX-512, 1 AVX2, 2 baseline (for tests; the
    default is the best the CPU has). Returns the previous selection, or -1 (nothing changed)
    where the CPU or the build lacks it."""
    return dlr_set_isa(isa)


def fast_activation(int code, const float[::1] x_n, float[::1] y_n):
    """y_n = act(x_n) with the float32 kernels the recurrence uses (for tests).

    x_n, y_n: (N,) float32, C-contiguous, IN / OUT
    """
    with nogil:
        _act(code, <float>0, &x_n[0], &y_n[0], x_n.shape[0])


def step_matmul(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
                double beta=0.0, bint packed=False):
    """c = a @ b + beta * c through the recurrences' per-step product (for tests and benchmarks);
    packed (float32): through the panel-packed product the few-row forward steps use.

    a: (M, K) float32/64, C-contiguous, IN; b: (K, N) same dtype, C-contiguous, IN;
    c: (M, N) same dtype, C-contiguous, IN/OUT (beta 0 or 1)
    """
    cdef int m = <int>c.shape[0], n = <int>c.shape[1], k = <int>a.shape[1]
    cdef floating* pk = NULL
    if m == 0 or n == 0:
        return
    with nogil:
        if packed and k > 0:
            pk = _pack_columns(&b[0, 0], n, k, 0, n)
        if floating is float and pk != NULL:
            dlr_sgemm_packed(m, n, k, &a[0, 0], k, pk, <float>beta, &c[0, 0], n)
            _free_pack(pk)
        else:
            _mm(m, n, k, &a[0, 0] if k else NULL, k, &b[0, 0] if k else NULL, n, <floating>beta,
                &c[0, 0], n)


# ---- the GEMMs around the recurrence, on the same threads ----------------------------------------
# The input projection (z = x W + b for all steps), the input gradient (dx = dz W^T) and the
# weight gradients (dW = x^T dz, dR = hprev^T dz, db = sum dz) run here rather than through
# threaded BLAS: an OpenMP team that has just run a recurrence keeps spinning for a while, and a
# threaded BLAS call right after it waits for a scheduler tick (measured: backward 2x slower than
# single-threaded on 2 cores). So each runs in row chunks on OpenMP threads with single-threaded
# calls. rows_matmul's float32 path is dlr_sgemm (per-element results independent of the
# chunking); rows_matmul_tn sums fixed blocks of rows (TN_BLOCKS at most, never depending on the
# thread count) in block order, so results are identical for any n_threads.
TN_BLOCKS = 16
cdef Py_ssize_t _TN_BLOCKS = TN_BLOCKS
cdef Py_ssize_t _TN_MIN_ROWS = 64
cdef Py_ssize_t _ROWS_CHUNK = 256
# Output columns per task of rows_matmul_tn (float32): each task reads all of a once.
cdef Py_ssize_t _TN_COLUMNS = 128


def rows_matmul(const floating[:, ::1] a_mk, const floating[:, ::1] b_kn, const floating[::1] bias_n,
                floating[:, ::1] c_mn, bint trans_b=False, int n_threads=1):
    """c_mn = a_mk @ op(b) + bias_n, rows in parallel chunks; op(b) = b_kn, or b^T with b (N, K).

    a_mk: (M, K) float32/64, C-contiguous, IN
    b_kn: (K, N) (or (N, K) with trans_b) same dtype, C-contiguous, IN
    bias_n: (N,) same dtype, C-contiguous, IN, or None
    c_mn: (M, N) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t M = c_mn.shape[0], N = c_mn.shape[1], K = a_mk.shape[1], i, j
    cdef int chunks, ch, old
    cdef Py_ssize_t ldb
    cdef const floating* a
    cdef const floating* bias = NULL if bias_n is None else &bias_n[0]
    cdef floating* c
    cdef floating* bp
    if M == 0 or N == 0:
        return
    c = &c_mn[0, 0]
    if K == 0:
        for i in range(M):
            for j in range(N):
                c[i * N + j] = bias[j] if bias != NULL else 0
        return
    a = &a_mk[0, 0]
    chunks = <int>(M // _ROWS_CHUNK)  # dynamic chunks, more than threads (see _n_chunks)
    if chunks < 1 or n_threads <= 1 or floating is double:  # float64: BLAS, one chunk
        chunks = 1
    with nogil:
        old = _blas_single()
        if trans_b or M >= _ROWS_CHUNK:  # transposed, or enough rows to pay for a padded copy
            bp = _padded(&b_kn[0, 0], N if trans_b else K, K if trans_b else N, trans_b)
            ldb = _pad_ld(N)
        else:
            bp = NULL
            ldb = N
        if chunks == 1:
            _rows_mm(a, K, &b_kn[0, 0] if bp == NULL else bp, ldb, bias, c, N, 0, M)
        else:
            for ch in prange(chunks, num_threads=_team(chunks, n_threads), schedule="dynamic"):
                _rows_mm(a, K, bp, ldb, bias, c, N, ch * M // chunks, (ch + 1) * M // chunks)
        _blas_restore(old)
        free(bp)


cdef void _rows_mm(const floating* a, Py_ssize_t K, const floating* b, Py_ssize_t ldb,
                   const floating* bias, floating* c, Py_ssize_t N, Py_ssize_t i0,
                   Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef Py_ssize_t step = 256  # rows per call: the A block stays in L2
    cdef Py_ssize_t r0, r1
    r0 = i0
    while r0 < i1:
        r1 = r0 + step if r0 + step < i1 else i1
        if floating is float:  # the bias starts each element's sum: one pass over c
            dlr_sgemm(<int>(r1 - r0), <int>N, <int>K, a + r0 * K, K, b, ldb, 0, bias, c + r0 * N, N)
        else:
            if bias != NULL:
                for i in range(r0, r1):
                    memcpy(c + i * N, bias, N * sizeof(floating))
            _mm(<int>(r1 - r0), <int>N, <int>K, a + r0 * K, <int>K, b, <int>ldb,
                1 if bias != NULL else 0, c + r0 * N, <int>N)
        r0 = r1


def rows_matmul_tn(const floating[:, ::1] a_mk, const floating[:, ::1] b_mn, floating[:, ::1] c_kn,
                   floating[::1] colsum_n, int n_threads=1):
    """c_kn = a_mk^T @ b_mn (a sum over the M rows), and colsum_n = column sums of b_mn.

    float32: dlr_sgemm_tn, each thread owning a range of output columns (one FMA chain per
    element over the rows in order). float64: fixed blocks of rows (at most TN_BLOCKS,
    independent of n_threads), one BLAS partial product per block, added in block order.
    a_mk: (M, K) float32/64, C-contiguous, IN
    b_mn: (M, N) same dtype, C-contiguous, IN
    c_kn: (K, N) same dtype, C-contiguous, OUT
    colsum_n: (N,) same dtype, C-contiguous, OUT, or None
    """
    cdef Py_ssize_t M = b_mn.shape[0], N = b_mn.shape[1], K = a_mk.shape[1]
    cdef Py_ssize_t blocks, blk, i, j, r0, r1, size
    cdef int old, threads
    cdef floating* parts
    cdef floating* sums = NULL
    cdef floating* c
    cdef floating acc
    cdef const floating* a
    cdef const floating* b
    if K == 0 or N == 0:
        return
    c = &c_kn[0, 0]
    if M == 0:
        memset(c, 0, K * N * sizeof(floating))
        if colsum_n is not None:
            memset(&colsum_n[0], 0, N * sizeof(floating))
        return
    a = &a_mk[0, 0]
    b = &b_mn[0, 0]
    blocks = M // _TN_MIN_ROWS
    if blocks > _TN_BLOCKS:
        blocks = _TN_BLOCKS
    if blocks < 1:
        blocks = 1
    threads = n_threads if n_threads < blocks else <int>blocks
    if threads < 1 or _blas_set == NULL:
        threads = 1
    size = K * N
    if floating is float:
        # ranges of 64 output columns over all rows, handed out dynamically: no partial sums
        blocks = (N + _TN_COLUMNS - 1) // _TN_COLUMNS
        sums = NULL if colsum_n is None else &colsum_n[0]
        with nogil:
            if n_threads <= 1 or blocks == 1:
                _tn_columns(a, b, c, sums, M, K, N, 0, N)
            else:
                for blk in prange(blocks, num_threads=_team(<int>blocks, n_threads), schedule="dynamic"):
                    _tn_columns(a, b, c, sums, M, K, N, blk * _TN_COLUMNS,
                                N if blk == blocks - 1 else (blk + 1) * _TN_COLUMNS)
        return
    with nogil:
        old = _blas_single()
        parts = c if blocks == 1 else <floating*>malloc((blocks * size + 1) * sizeof(floating))
        if colsum_n is not None:
            sums = <floating*>malloc((blocks * N + 1) * sizeof(floating))
        if threads == 1:
            for blk in range(blocks):
                _tn_block(a, b, K, N, blk * M // blocks, (blk + 1) * M // blocks, parts + blk * size,
                          NULL if sums == NULL else sums + blk * N)
        else:
            for blk in prange(blocks, num_threads=threads, schedule="static"):
                _tn_block(a, b, K, N, blk * M // blocks, (blk + 1) * M // blocks, parts + blk * size,
                          NULL if sums == NULL else sums + blk * N)
        _blas_restore(old)
        if blocks > 1:
            for i in range(size):
                acc = parts[i]
                for blk in range(1, blocks):
                    acc = acc + parts[blk * size + i]
                c[i] = acc
            free(parts)
        if sums != NULL:
            for j in range(N):
                acc = sums[j]
                for blk in range(1, blocks):
                    acc = acc + sums[blk * N + j]
                colsum_n[j] = acc
            free(sums)


cdef void _tn_columns(const float* a, const float* b, float* c, float* sums, Py_ssize_t M,
                      Py_ssize_t K, Py_ssize_t N, Py_ssize_t j0, Py_ssize_t j1) noexcept nogil:
    """c[:, j0:j1] = a^T b[:, j0:j1] and sums[j0:j1] = column sums, every row in order."""
    cdef Py_ssize_t i, j
    cdef const float* row
    dlr_sgemm_tn(M, K, j0, j1, a, K, b, N, c, N)
    if sums != NULL:
        for j in range(j0, j1):
            sums[j] = 0
        for i in range(M):
            row = b + i * N
            for j in range(j0, j1):
                sums[j] = sums[j] + row[j]


cdef void _tn_block(const floating* a, const floating* b, Py_ssize_t K, Py_ssize_t N, Py_ssize_t r0,
                    Py_ssize_t r1, floating* out, floating* sums) noexcept nogil:
    """out (K, N) = a[r0:r1]^T @ b[r0:r1]; sums (N,) = column sums of b[r0:r1] (if not NULL)."""
    cdef char tn = b'N'
    cdef char tt = b'T'
    cdef int k = <int>(r1 - r0), n = <int>N, m = <int>K
    cdef Py_ssize_t i, j
    cdef floating one = 1, zero = 0
    if k <= 0:
        memset(out, 0, K * N * sizeof(floating))
    else:
        # Row-major out (K, N) = A^T B is column-major out^T (N, K) = B^T A: B as (N, k) col-major
        # with ld N ('N'), A as (K, k) col-major with ld K, transposed ('T').
        if floating is float:
            sgemm(&tn, &tt, &n, &m, &k, &one, <float*>(b + r0 * N), &n, <float*>(a + r0 * K), &m,
                  &zero, out, &n)
        else:
            dgemm(&tn, &tt, &n, &m, &k, &one, <double*>(b + r0 * N), &n, <double*>(a + r0 * K), &m,
                  &zero, out, &n)
    if sums != NULL:
        memset(sums, 0, N * sizeof(floating))
        for i in range(r0, r1):
            for j in range(N):
                sums[j] = sums[j] + b[i * N + j]

