/* The batch-1 LSTM forward (float32, AVX-512, default activations: tanh, sigmoid), for
 * _recurrent.pyx: one row of the recurrence with the gate math fused into the step's product.
 *
 * Why: at batch 1 a step's product h (1, U) @ R (U, 4U) reads all of R from L2 once (LSTM(128):
 * 256 KB per step, about 2.2 us at the 32 bytes per cycle a Zen 4 core's L2 delivers), while
 * the FMA units idle half the time; the gate math (5 transcendental functions per unit, ~170
 * vector instructions per 16 units) is the opposite. The general path runs them one after the
 * other. Here R is packed in blocks of 16 units (per block: U rows of 64 floats, the i, f, g, o
 * columns of those units side by side, zeros past U), so one block of the product yields every
 * gate of its units, and the gate math of block b runs in stages between the 16-row chunks of
 * block b + 1's product (software pipelining; the next step's first block waits only for the
 * chunk that reads the last block's units). Measured on the runner's LSTM(128), 50 steps, C
 * harness, 1 thread, CPU time, Zen 4: 136 us (pack per call + panel product + cell) -> 120 us;
 * the product alone 113 us (the L2 floor). The packed copy is kept across calls and compared
 * with R on each call (_recurrent_cache.pxi); dlr_b1_project, the input projection of a batch-1
 * pass (lstm_forward_inputs), runs that comparison spread over its tiles: the projection is
 * bound by the FMAs and the comparison by L2 (projection 16.6 -> 15.3 us, + comparison 4.4 us
 * alone -> 16.3 us together).
 *
 * Results are bit-identical to the general path (dl_sgemm_chain_packed + dlr_lstm_cell_f32):
 * each element of z + h R is the same FMA chain (0, p = 0..U-1, then + z), and the vector gate
 * functions (dl_expf.h's 16-lane forms) are the same operations as its scalar ones, with the same
 * FMA contractions (tests/kernels/test_recurrent.py compares rows against the batch path; a
 * test compares the cell over random bits). A block whose h has a NaN is recomputed with
 * dlr_lstm_cell_f32 itself, so NaN signs and payloads match too. */
#ifndef DL_RECURRENT_B1_H
#define DL_RECURRENT_B1_H

#include <stddef.h>
#include <stdint.h>
#include <sched.h>
#include <string.h>

#include "dl_rnn_cells.h"
#include "dl_sgemm.h"
#include "dl_team.h"  /* dl_team_now_ns; the multi-threaded form is a team job */

#define DLR_B1_UNITS 16

/* Floats of the packed layout for U units. */
static ptrdiff_t dlr_b1_pack_size(ptrdiff_t u)
{
    return (u + DLR_B1_UNITS - 1) / DLR_B1_UNITS * u * 4 * DLR_B1_UNITS;
}

/* Packs R (U, 4U), row stride ldr, into P; returns 1 when all of R is finite. */
static int dlr_b1_pack(ptrdiff_t u, const float* r, ptrdiff_t ldr, float* p)
{
    ptrdiff_t u0, row, g, j, w;
    uint32_t bits, bad = 0;
    for (u0 = 0; u0 < u; u0 += DLR_B1_UNITS) {
        w = u - u0 < DLR_B1_UNITS ? u - u0 : DLR_B1_UNITS;
        for (row = 0; row < u; row++)
            for (g = 0; g < 4; g++) {
                const float* src = r + row * ldr + g * u + u0;
                float* dst = p + (u0 * u + row * DLR_B1_UNITS) * 4 + g * DLR_B1_UNITS;
                for (j = 0; j < w; j++) {
                    memcpy(&bits, src + j, sizeof(bits));
                    bad |= (bits & 0x7f800000u) == 0x7f800000u;
                    dst[j] = src[j];
                }
                for (; j < DLR_B1_UNITS; j++) dst[j] = 0.0f;
            }
    }
    return !bad;
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define DLR_B1_AVAILABLE 1
#define DLR_V __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))

/* Whether P holds exactly R's bits (the cache's check that R did not change since it was
   packed): LSTM(128) 4.4 us, at L2 bandwidth (memcmp per 64-byte segment: 9.5 us). */
DLR_V static int dlr_b1_same(ptrdiff_t u, const float* r, ptrdiff_t ldr, const float* p)
{
    ptrdiff_t u0, row;
    for (u0 = 0; u0 < u; u0 += DLR_B1_UNITS) {
        __mmask16 m = u - u0 >= DLR_B1_UNITS ? (__mmask16)0xffff : (__mmask16)((1u << (u - u0)) - 1);
        __m512i d0 = _mm512_setzero_si512(), d1 = d0;
        const float* pb = p + u0 * u * 4;
        for (row = 0; row < u; row++) {
            const float* rr = r + row * ldr + u0;
            const float* pr = pb + row * 4 * DLR_B1_UNITS;
            d0 = _mm512_or_si512(d0, _mm512_xor_si512(_mm512_load_si512(pr),
                                 _mm512_castps_si512(_mm512_maskz_loadu_ps(m, rr))));
            d1 = _mm512_or_si512(d1, _mm512_xor_si512(_mm512_load_si512(pr + 16),
                                 _mm512_castps_si512(_mm512_maskz_loadu_ps(m, rr + u))));
            d0 = _mm512_or_si512(d0, _mm512_xor_si512(_mm512_load_si512(pr + 32),
                                 _mm512_castps_si512(_mm512_maskz_loadu_ps(m, rr + 2 * u))));
            d1 = _mm512_or_si512(d1, _mm512_xor_si512(_mm512_load_si512(pr + 48),
                                 _mm512_castps_si512(_mm512_maskz_loadu_ps(m, rr + 3 * u))));
        }
        d0 = _mm512_or_si512(d0, d1);
        if (_mm512_test_epi32_mask(d0, d0))
            return 0;
    }
    return 1;
}

/* One unit of the cache check: row cq of block cb of P against R (4 segments of 16 floats);
   then the next unit (cq, cb: running counters, no division in the loop). */
#define DLR_B1_CHECK_UNIT()                                                                      \
    {                                                                                            \
        const ptrdiff_t u0_ = cb * DLR_B1_UNITS;                                                 \
        __mmask16 m_ = u - u0_ >= DLR_B1_UNITS ? (__mmask16)0xffff                               \
                                               : (__mmask16)((1u << (u - u0_)) - 1);             \
        const float* rr_ = r + cq * ldr + u0_;                                                   \
        const float* pr_ = p + (u0_ * u + cq * DLR_B1_UNITS) * 4;                                \
        d0 = _mm512_or_si512(d0, _mm512_xor_si512(_mm512_load_si512(pr_),                       \
                             _mm512_castps_si512(_mm512_maskz_loadu_ps(m_, rr_))));              \
        d1 = _mm512_or_si512(d1, _mm512_xor_si512(_mm512_load_si512(pr_ + 16),                   \
                             _mm512_castps_si512(_mm512_maskz_loadu_ps(m_, rr_ + u))));          \
        d0 = _mm512_or_si512(d0, _mm512_xor_si512(_mm512_load_si512(pr_ + 32),                   \
                             _mm512_castps_si512(_mm512_maskz_loadu_ps(m_, rr_ + 2 * u))));      \
        d1 = _mm512_or_si512(d1, _mm512_xor_si512(_mm512_load_si512(pr_ + 48),                   \
                             _mm512_castps_si512(_mm512_maskz_loadu_ps(m_, rr_ + 3 * u))));      \
        if (++cq == u) {                                                                         \
            cq = 0;                                                                              \
            cb++;                                                                                \
        }                                                                                        \
    }

/* The input projection of a batch-1 pass, z (t, 4u) = x (t, k) W (k, 4u) + bias (or no bias):
   each element one FMA chain (the bias or 0, then p = 0..k-1), as dl_sgemm_chain's, in tiles of
   4 rows x 64 columns. With check, the comparison of the cached P with R (dlr_b1_same) runs
   spread over the tiles: the projection is bound by the FMAs and the comparison by L2, so it
   costs little there (LSTM(128), T = 50, K = 32: 4.4 us alone). Returns whether P equals R (1
   without check). */
DLR_V static int dlr_b1_project(ptrdiff_t t_len, ptrdiff_t k, ptrdiff_t u, const float* x,
                                const float* w, const float* bias, float* z, int check,
                                const float* r, ptrdiff_t ldr, const float* p)
{
    const ptrdiff_t g4 = 4 * u, nb = (u + DLR_B1_UNITS - 1) / DLR_B1_UNITS;
    const ptrdiff_t tiles = (t_len + 3) / 4 * ((g4 + 63) / 64);
    const ptrdiff_t per_tile = check ? (nb * u + tiles - 1) / tiles : 0;
    ptrdiff_t cb = check ? 0 : nb, cq = 0, i0, j0, q, v, n;
    __m512i d0 = _mm512_setzero_si512(), d1 = d0;
    for (j0 = 0; j0 < g4; j0 += 64) {
        __mmask16 mk[4];
        __m512 bv[4];
        for (v = 0; v < 4; v++) {
            ptrdiff_t left = g4 - j0 - 16 * v;
            mk[v] = left >= 16 ? (__mmask16)0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            bv[v] = bias ? _mm512_maskz_loadu_ps(mk[v], bias + j0 + 16 * v) : _mm512_setzero_ps();
        }
        for (i0 = 0; i0 < t_len; i0 += 4) {
            const ptrdiff_t rows = t_len - i0 < 4 ? t_len - i0 : 4;
            const float* x0 = x + i0 * k;
            const float* x1 = x + (i0 + (rows > 1 ? 1 : 0)) * k;
            const float* x2 = x + (i0 + (rows > 2 ? 2 : 0)) * k;
            const float* x3 = x + (i0 + (rows > 3 ? 3 : 0)) * k;
            __m512 acc[4][4];
            acc[0][0] = acc[1][0] = acc[2][0] = acc[3][0] = bv[0];
            acc[0][1] = acc[1][1] = acc[2][1] = acc[3][1] = bv[1];
            acc[0][2] = acc[1][2] = acc[2][2] = acc[3][2] = bv[2];
            acc[0][3] = acc[1][3] = acc[2][3] = acc[3][3] = bv[3];
#define DLR_B1_PROJ_ROWS(LOAD)                                                                   \
            for (q = 0; q < k; q++) {                                                            \
                const float* wr = w + q * g4 + j0;                                               \
                __m512 w0 = LOAD(0), w1 = LOAD(1), w2 = LOAD(2), w3 = LOAD(3), a;                \
                DLR_B1_ROW(0, x0)                                                                \
                DLR_B1_ROW(1, x1)                                                                \
                DLR_B1_ROW(2, x2)                                                                \
                DLR_B1_ROW(3, x3)                                                                \
                if ((q & 1) && n < per_tile && cb < nb) {                                        \
                    DLR_B1_CHECK_UNIT()                                                          \
                    n++;                                                                         \
                }                                                                                \
            }
#define DLR_B1_ROW(RW, XR)                                                                       \
                a = _mm512_set1_ps(XR[q]);                                                       \
                acc[RW][0] = _mm512_fmadd_ps(a, w0, acc[RW][0]);                                 \
                acc[RW][1] = _mm512_fmadd_ps(a, w1, acc[RW][1]);                                 \
                acc[RW][2] = _mm512_fmadd_ps(a, w2, acc[RW][2]);                                 \
                acc[RW][3] = _mm512_fmadd_ps(a, w3, acc[RW][3]);
#define DLR_B1_FULL(V) _mm512_loadu_ps(wr + 16 * (V))
#define DLR_B1_MASKED(V) _mm512_maskz_loadu_ps(mk[V], wr + 16 * (V))
            n = 0;
            if (j0 + 64 <= g4) {
                DLR_B1_PROJ_ROWS(DLR_B1_FULL)
            } else {
                DLR_B1_PROJ_ROWS(DLR_B1_MASKED)
            }
#undef DLR_B1_FULL
#undef DLR_B1_MASKED
#undef DLR_B1_ROW
#undef DLR_B1_PROJ_ROWS
            /* constant indices only, so acc stays in registers */
#define DLR_B1_STORE(RW)                                                                         \
            if (RW < rows) {                                                                     \
                float* zr_ = z + (i0 + RW) * g4 + j0;                                            \
                _mm512_mask_storeu_ps(zr_, mk[0], acc[RW][0]);                                   \
                _mm512_mask_storeu_ps(zr_ + 16, mk[1], acc[RW][1]);                              \
                _mm512_mask_storeu_ps(zr_ + 32, mk[2], acc[RW][2]);                              \
                _mm512_mask_storeu_ps(zr_ + 48, mk[3], acc[RW][3]);                              \
            }
            DLR_B1_STORE(0)
            DLR_B1_STORE(1)
            DLR_B1_STORE(2)
            DLR_B1_STORE(3)
#undef DLR_B1_STORE
            for (; n < per_tile && cb < nb; n++)
                DLR_B1_CHECK_UNIT()
        }
    }
    while (cb < nb)
        DLR_B1_CHECK_UNIT()
    d0 = _mm512_or_si512(d0, d1);
    return !_mm512_test_epi32_mask(d0, d0);
}

/* One block's gate math, run in stages: pre-activations (already in z) in registers. */
typedef struct {
    __m512 i, f, g, o, c;  /* gates (pre-activations until their stage ran), c_{t-1} */
    float* z;              /* the block's gates in the z row (stride u) */
    float* cp;             /* c of the block's units */
    float* h;              /* h_t of the block's units */
    float* y;              /* the output row's units, or NULL */
    __mmask16 m;           /* lanes inside U */
    int stage;             /* next stage, 5 = none pending */
} dlr_b1_cell;

DLR_V static void dlr_b1_finish(dlr_b1_cell* s, ptrdiff_t u)
{
    __m512 cc = _mm512_fmadd_ps(s->f, s->c, _mm512_mul_ps(s->i, s->g));
    __m512 h = _mm512_mul_ps(s->o, dl_v16_tanhf(cc));
    if (_mm512_mask_cmp_ps_mask(s->m, h, h, _CMP_UNORD_Q)) {
        /* a NaN: dlr_lstm_cell_f32 on the pre-activations (still in z), for its NaN bits */
        float zt[4 * DLR_B1_UNITS], ct[DLR_B1_UNITS], ht[DLR_B1_UNITS];
        int g, w = __builtin_popcount((unsigned)s->m);
        for (g = 0; g < 4; g++) memcpy(zt + g * w, s->z + g * u, (size_t)w * sizeof(float));
        _mm512_mask_storeu_ps(ct, s->m, s->c);
        dlr_lstm_cell_f32(zt, ct, ht, w);
        for (g = 0; g < 4; g++) memcpy(s->z + g * u, zt + g * w, (size_t)w * sizeof(float));
        cc = _mm512_maskz_loadu_ps(s->m, ct);
        h = _mm512_maskz_loadu_ps(s->m, ht);
    } else {
        _mm512_mask_storeu_ps(s->z, s->m, s->i);
        _mm512_mask_storeu_ps(s->z + u, s->m, s->f);
        _mm512_mask_storeu_ps(s->z + 2 * u, s->m, s->g);
        _mm512_mask_storeu_ps(s->z + 3 * u, s->m, s->o);
    }
    _mm512_mask_storeu_ps(s->cp, s->m, cc);
    _mm512_mask_storeu_ps(s->h, s->m, h);
    if (s->y) _mm512_mask_storeu_ps(s->y, s->m, h);
}

/* Runs the pending stages due before chunk ch of nch (all of them when ch >= nch). */
DLR_V static inline void dlr_b1_stages(dlr_b1_cell* s, ptrdiff_t ch, ptrdiff_t nch, ptrdiff_t u)
{
    while (s->stage < 5 && (ch >= nch || s->stage * (nch - 1) / 5 <= ch)) {
        switch (s->stage++) {
        case 0: s->i = dl_v16_sigmoidf(s->i); break;
        case 1: s->f = dl_v16_sigmoidf(s->f); break;
        case 2: s->g = dl_v16_tanhf(s->g); break;
        case 3: s->o = dl_v16_sigmoidf(s->o); break;
        default: dlr_b1_finish(s, u);
        }
    }
}

/* LSTM over t steps for one row: z (t, 4u) x W + b in, gates out; h, c (u) in/out; y (t, u)
   out or NULL; p: R packed by dlr_b1_pack; finite: its return value (a zero initial h then
   skips the first product, whose every element is +0). hbuf: 2u floats of scratch. */
DLR_V static void dlr_lstm_b1_forward(ptrdiff_t t_len, ptrdiff_t u, float* z, const float* p,
                                      int finite, float* h, float* c, float* y, float* hbuf)
{
    const ptrdiff_t g4 = 4 * u, nch = (u + DLR_B1_UNITS - 1) / DLR_B1_UNITS;
    ptrdiff_t t, b, ch, q, q1, j;
    int skip = finite;
    float* hp = hbuf;
    float* hn = hbuf + u;
    float* tmp;
    dlr_b1_cell s;
    s.stage = 5;
    memcpy(hp, h, (size_t)u * sizeof(float));
    for (j = 0; j < u && skip; j++) skip = h[j] == 0.0f;
    for (t = 0; t < t_len; t++) {
        float* zr = z + t * g4;
        for (b = 0; b < nch; b++) {
            const ptrdiff_t u0 = b * DLR_B1_UNITS;
            const float* pb = p + u0 * u * 4;
            __mmask16 m = u - u0 >= DLR_B1_UNITS ? (__mmask16)0xffff
                                                 : (__mmask16)((1u << (u - u0)) - 1);
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            if (!(skip && t == 0))
                for (ch = 0; ch < nch; ch++) {
                    dlr_b1_stages(&s, ch, nch, u);
                    q1 = (ch + 1) * DLR_B1_UNITS < u ? (ch + 1) * DLR_B1_UNITS : u;
                    for (q = ch * DLR_B1_UNITS; q < q1; q++) {
                        const float* r = pb + q * 4 * DLR_B1_UNITS;
                        __m512 a = _mm512_set1_ps(hp[q]);
                        a0 = _mm512_fmadd_ps(a, _mm512_load_ps(r), a0);
                        a1 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 16), a1);
                        a2 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 32), a2);
                        a3 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 48), a3);
                    }
                }
            dlr_b1_stages(&s, nch, nch, u);
            /* the chain's end: + z (beta 1); the pre-activations stay in z for the fallback */
            s.i = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, zr + u0));
            s.f = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(m, zr + u + u0));
            s.g = _mm512_add_ps(a2, _mm512_maskz_loadu_ps(m, zr + 2 * u + u0));
            s.o = _mm512_add_ps(a3, _mm512_maskz_loadu_ps(m, zr + 3 * u + u0));
            _mm512_mask_storeu_ps(zr + u0, m, s.i);
            _mm512_mask_storeu_ps(zr + u + u0, m, s.f);
            _mm512_mask_storeu_ps(zr + 2 * u + u0, m, s.g);
            _mm512_mask_storeu_ps(zr + 3 * u + u0, m, s.o);
            s.c = _mm512_maskz_loadu_ps(m, c + u0);
            s.z = zr + u0;
            s.cp = c + u0;
            s.h = hn + u0;
            s.y = y ? y + t * u + u0 : NULL;
            s.m = m;
            s.stage = 0;
        }
        tmp = hp;
        hp = hn;
        hn = tmp;
    }
    dlr_b1_stages(&s, nch, nch, u);
    memcpy(h, hp, (size_t)u * sizeof(float));
}

/* The recurrence on several threads (batch-1 predict at 2+ threads): the blocks are split into
 * parts, part q on the thread team's q-th participant, and every step ends with a barrier (each
 * part's done count). Per step a core then reads only its part of P from its own L2 (LSTM(128) on
 * 2 threads: 128 KB each instead of 256 KB on one). Each unit runs the same operations as in
 * dlr_lstm_b1_forward, so the bits do not depend on the thread count; a part finishes its gate
 * math before its barrier (no pipelining across steps).
 *
 * Who runs what: the team's chunk 0 (the caller, it claims from the front) leads: each step it
 * runs part 0, then every part whose helper has not arrived, then waits for the others, taking
 * over a part still unclaimed DLR_B1_PATIENCE_NS after it got there. Chunk q >= 1 (a worker) helps
 * with part q: it waits for the step before, claims its part (a CAS on its next step) and runs
 * it. Nobody waits for a part that no running thread has claimed, so a worker that is late or
 * never comes costs the leader at most the patience once, and the job runs alone correctly. A
 * thread that has waited longer than the patience yields its core at each look (a participant
 * sharing its core, 1-CPU affinity with 2 threads forced: slowest of 20 calls 8.4 ms without the
 * yield, 0.35 and 8.2 ms in two runs with it; the load guard then runs the job alone).
 * LSTM(128), T 50, K 32, alternated in one process, 2 threads against 1: 139 -> 108 us a call
 * (2.8 -> 1.95 us a step; one part alone 1.65, so the barrier costs ~0.3; prefetching the other
 * part's h lines and the next z row gained nothing); LSTM(256) 634 -> 325 us, LSTM(64) 40 -> 37.
 * The input projection stays on the caller (it hides the cache check). */
#define DLR_B1_MAX_PARTS 8
#define DLR_B1_PATIENCE_NS 20000

typedef struct {
    int64_t next;  /* the next step of this part nobody claimed */
    int64_t done;  /* steps of this part finished */
    int present;   /* its helper arrived */
} __attribute__((aligned(64))) dlr_b1_part;

typedef struct {
    ptrdiff_t t_len, u, n_parts;
    float* z;
    const float* p;
    float *h, *c, *y, *hbuf;  /* hbuf: h_{t-1} at hbuf + (t & 1) u, h_t at the other half */
    int finite;                /* dlr_b1_pack's result for P */
    int skip;                  /* a zero h_{-1} with finite R: step 0 has no product */
    dlr_b1_part part[DLR_B1_MAX_PARTS];
} dlr_b1_job;

/* Blocks [b0, b1) of step t; then marks part q done with step t. The block loop is
 * dlr_lstm_b1_forward's, written out again: one always-inline block function shared by both
 * changed GCC's operand order at the z add, and a NaN input's sign then came out of the other
 * operand (17 rows of the random-bits test against the general cell differed in NaN signs). */
DLR_V static void dlr_b1_run_part(dlr_b1_job* j, ptrdiff_t q, ptrdiff_t t)
{
    const ptrdiff_t u = j->u, g4 = 4 * u, nch = (u + DLR_B1_UNITS - 1) / DLR_B1_UNITS;
    const ptrdiff_t b0 = q * nch / j->n_parts, b1 = (q + 1) * nch / j->n_parts;
    const float* hp = j->hbuf + (t & 1) * u;
    float* hn = j->hbuf + ((t + 1) & 1) * u;
    float* zr = j->z + t * g4;
    ptrdiff_t b, ch, qq, q1;
    dlr_b1_cell s;
    s.stage = 5;
    for (b = b0; b < b1; b++) {
        const ptrdiff_t u0 = b * DLR_B1_UNITS;
        const float* pb = j->p + u0 * u * 4;
        __mmask16 m = u - u0 >= DLR_B1_UNITS ? (__mmask16)0xffff : (__mmask16)((1u << (u - u0)) - 1);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        if (!(j->skip && t == 0))
            for (ch = 0; ch < nch; ch++) {
                dlr_b1_stages(&s, ch, nch, u);
                q1 = (ch + 1) * DLR_B1_UNITS < u ? (ch + 1) * DLR_B1_UNITS : u;
                for (qq = ch * DLR_B1_UNITS; qq < q1; qq++) {
                    const float* r = pb + qq * 4 * DLR_B1_UNITS;
                    __m512 a = _mm512_set1_ps(hp[qq]);
                    a0 = _mm512_fmadd_ps(a, _mm512_load_ps(r), a0);
                    a1 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 16), a1);
                    a2 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 32), a2);
                    a3 = _mm512_fmadd_ps(a, _mm512_load_ps(r + 48), a3);
                }
            }
        dlr_b1_stages(&s, nch, nch, u);
        s.i = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(m, zr + u0));
        s.f = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(m, zr + u + u0));
        s.g = _mm512_add_ps(a2, _mm512_maskz_loadu_ps(m, zr + 2 * u + u0));
        s.o = _mm512_add_ps(a3, _mm512_maskz_loadu_ps(m, zr + 3 * u + u0));
        _mm512_mask_storeu_ps(zr + u0, m, s.i);
        _mm512_mask_storeu_ps(zr + u + u0, m, s.f);
        _mm512_mask_storeu_ps(zr + 2 * u + u0, m, s.g);
        _mm512_mask_storeu_ps(zr + 3 * u + u0, m, s.o);
        s.c = _mm512_maskz_loadu_ps(m, j->c + u0);
        s.z = zr + u0;
        s.cp = j->c + u0;
        s.h = hn + u0;
        s.y = j->y ? j->y + t * u + u0 : NULL;
        s.m = m;
        s.stage = 0;
    }
    dlr_b1_stages(&s, nch, nch, u);
    __atomic_store_n(&j->part[q].done, (int64_t)t + 1, __ATOMIC_RELEASE);
}

static int dlr_b1_claim(dlr_b1_job* j, ptrdiff_t q, ptrdiff_t t)
{
    int64_t expected = t;
    return __atomic_compare_exchange_n(&j->part[q].next, &expected, (int64_t)t + 1, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The team's chunk: 0 leads, q >= 1 helps with part q (see above). */
DLR_V static void dlr_b1_chunk(dlr_b1_job* j, ptrdiff_t chunk)
{
    ptrdiff_t t, q;
    if (chunk == 0) {
        for (t = 0; t < j->t_len; t++) {
            if (dlr_b1_claim(j, 0, t))
                dlr_b1_run_part(j, 0, t);
            for (q = 1; q < j->n_parts; q++)
                if (!__atomic_load_n(&j->part[q].present, __ATOMIC_ACQUIRE) && dlr_b1_claim(j, q, t))
                    dlr_b1_run_part(j, q, t);
            for (q = 1; q < j->n_parts; q++) {
                int64_t since = 0, now = 0;
                unsigned spins = 0;
                while (__atomic_load_n(&j->part[q].done, __ATOMIC_ACQUIRE) <= t) {
                    if ((++spins & 31) == 0) {
                        now = dl_team_now_ns();
                        if (since == 0)
                            since = now;
                    }
                    if (__atomic_load_n(&j->part[q].next, __ATOMIC_ACQUIRE) == t) {
                        int take = !__atomic_load_n(&j->part[q].present, __ATOMIC_ACQUIRE)
                                   || (since && now - since > DLR_B1_PATIENCE_NS);
                        if (take && dlr_b1_claim(j, q, t)) {
                            dlr_b1_run_part(j, q, t);
                            break;
                        }
                    } else if (since && now - since > DLR_B1_PATIENCE_NS) {
                        sched_yield();  /* its runner may wait for this core */
                    }
                    _mm_pause();
                }
            }
        }
    } else if (chunk < j->n_parts) {
        q = chunk;
        __atomic_store_n(&j->part[q].present, 1, __ATOMIC_RELEASE);
        for (t = 0; t < j->t_len; t++) {
            ptrdiff_t p;
            /* wait for step t - 1 (the leader runs until the end, so this ends) */
            for (p = 0; p < j->n_parts; p++) {
                int64_t since = 0;
                unsigned spins = 0;
                while (__atomic_load_n(&j->part[p].done, __ATOMIC_ACQUIRE) < t) {
                    if ((++spins & 31) == 0) {
                        int64_t now = dl_team_now_ns();
                        if (since == 0)
                            since = now;
                        else if (now - since > DLR_B1_PATIENCE_NS)
                            sched_yield();  /* the leader may wait for this core */
                    }
                    _mm_pause();
                }
            }
            if (dlr_b1_claim(j, q, t))
                dlr_b1_run_part(j, q, t);
        }
    }
}

/* The job on one thread (the team's serial form): dlr_lstm_b1_forward, pipelined across steps. */
DLR_V static void dlr_b1_whole(dlr_b1_job* j)
{
    dlr_lstm_b1_forward(j->t_len, j->u, j->z, j->p, j->finite, j->h, j->c, j->y, j->hbuf);
}

/* Sets up the job (hbuf: 2u floats); then the team runs chunks 0..n_parts-1 (or dlr_b1_whole),
 * and dlr_b1_job_end writes the final h. */
static void dlr_b1_job_init(dlr_b1_job* j, ptrdiff_t t_len, ptrdiff_t u, ptrdiff_t n_parts, float* z,
                            const float* p, int finite, float* h, float* c, float* y, float* hbuf)
{
    ptrdiff_t q, k;
    const ptrdiff_t nch = (u + DLR_B1_UNITS - 1) / DLR_B1_UNITS;
    memset(j, 0, sizeof(*j));
    j->t_len = t_len;
    j->u = u;
    j->n_parts = n_parts < 1 ? 1 : n_parts > DLR_B1_MAX_PARTS ? DLR_B1_MAX_PARTS : n_parts;
    if (j->n_parts > nch) j->n_parts = nch;
    j->z = z;
    j->p = p;
    j->h = h;
    j->finite = finite;
    j->c = c;
    j->y = y;
    j->hbuf = hbuf;
    memcpy(hbuf, h, (size_t)u * sizeof(float));
    j->skip = finite;
    for (k = 0; k < u && j->skip; k++) j->skip = h[k] == 0.0f;
    for (q = 0; q < j->n_parts; q++) j->part[q].next = j->part[q].done = 0;
}

/* The final h after the team ran the job (dlr_b1_whole wrote the same). */
static void dlr_b1_job_end(const dlr_b1_job* j)
{
    memcpy(j->h, j->hbuf + (j->t_len & 1) * j->u, (size_t)j->u * sizeof(float));
}
#else
#define DLR_B1_AVAILABLE 0
static void dlr_lstm_b1_forward(ptrdiff_t t_len, ptrdiff_t u, float* z, const float* p,
                                int finite, float* h, float* c, float* y, float* hbuf) {}
static int dlr_b1_same(ptrdiff_t u, const float* r, ptrdiff_t ldr, const float* p) { return 0; }
static int dlr_b1_project(ptrdiff_t t_len, ptrdiff_t k, ptrdiff_t u, const float* x,
                          const float* w, const float* bias, float* z, int check,
                          const float* r, ptrdiff_t ldr, const float* p) { return 0; }
typedef struct { ptrdiff_t n_parts; } dlr_b1_job;
static void dlr_b1_chunk(dlr_b1_job* j, ptrdiff_t chunk) {}
static void dlr_b1_whole(dlr_b1_job* j) {}
static void dlr_b1_job_init(dlr_b1_job* j, ptrdiff_t t_len, ptrdiff_t u, ptrdiff_t n_parts, float* z,
                            const float* p, int finite, float* h, float* c, float* y,
                            float* hbuf) { j->n_parts = 1; }
static void dlr_b1_job_end(const dlr_b1_job* j) {}
#endif

#endif
