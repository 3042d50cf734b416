/* The float32 gate loops of the recurrences (_recurrent.pyx): sigmoid and tanh over a row, and
 * one LSTM row with the default activations fused, forward and backward, on dl_expf.h's
 * polynomials, compiled per ISA (dl_clones.h). */
#ifndef DL_RNN_CELLS_H
#define DL_RNN_CELLS_H

#include <stddef.h>

#include "dl_clones.h"
#include "dl_expf.h"

DL_CLONES static void dlr_sigmoid_f32(const float* x, float* y, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) y[i] = dl_sigmoidf(x[i]);
}

DL_CLONES static void dlr_tanh_f32(const float* x, float* y, ptrdiff_t n) {
    ptrdiff_t i;
    for (i = 0; i < n; i++) y[i] = dl_tanhf(x[i]);
}

/* One LSTM row with the default activations (tanh, sigmoid), fused: z (4n) pre-activations
   i, f, g, o in, the gates out; c updated in place; h written. */
DL_CLONES static void dlr_lstm_cell_f32(float* restrict z, float* restrict c,
                                         float* restrict h, ptrdiff_t n) {
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        float i = dl_sigmoidf(z[j]);
        float f = dl_sigmoidf(z[n + j]);
        float g = dl_tanhf(z[2 * n + j]);
        float o = dl_sigmoidf(z[3 * n + j]);
        float cc = f * c[j] + i * g;
        z[j] = i;
        z[n + j] = f;
        z[2 * n + j] = g;
        z[3 * n + j] = o;
        c[j] = cc;
        h[j] = o * dl_tanhf(cc);
    }
}

/* Its backward: gates z and c_{t-1} in; dz (4n) out; dc <- dc_{t-1}; dh zeroed. */
DL_CLONES static void dlr_lstm_cell_back_f32(const float* restrict z, const float* restrict cp,
                                              float* restrict dh, float* restrict dc,
                                              float* restrict dz, ptrdiff_t n) {
    ptrdiff_t j;
    for (j = 0; j < n; j++) {
        float i = z[j], f = z[n + j], g = z[2 * n + j], o = z[3 * n + j];
        float tc = dl_tanhf(f * cp[j] + i * g);
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

#endif
