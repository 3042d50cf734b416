# Design: per-sample losses, Keras 3 (TensorFlow backend) semantics, reduced over the LAST axis
# only. The op tier reshapes y_true / y_pred to 2-D (M, D) (M = every leading dim) and does the
# batch reduction and sample weighting itself. Cython, not Numba: the forward pass is needed by
# `evaluate`, which must not import numba; backward kernels sit beside their forward so that the
# two share one row core and one set of clipping rules.
#   - One OpenMP thread per row block (prange over M, schedule="static"); each row is reduced
#     sequentially by the thread that owns it, so every output is bit-identical for any n_threads.
#   - Per-element transcendentals run in the array dtype (expf/logf/... for float32, as TF
#     computes float32 losses in float32), while every row sum and the per-row log-sum-exp are
#     accumulated in double, then rounded once to the array dtype. Cost is dominated by scalar
#     libm calls (~3 ns each; no SIMD math without -ffast-math, which would break NaN checks).
#   - Clip bounds are rounded to the array dtype first, as TF does (`clip_by_value(output, eps,
#     1 - eps)` with eps cast to the output dtype).
#   - Softmax gradients store exp(x - max) in the output row while summing, then rescale it in
#     place: one exp per element.
#   - Clipping gradients follow TF's minimum/maximum gradients: zero where a value lies strictly
#     outside [eps, 1 - eps], passed through at the bounds themselves.
#   - Logit paths are stable for any finite logit: max-shifted log-sum-exp, log1p(exp(-|x|)),
#     sigmoid/softplus by sign.
#   - softmax cross-entropy's gradient is the exact one, sum_c(t) * softmax(x) - t (TF's kernel
#     returns softmax(x) - t, which equals it when each target row sums to 1).
#
# Legend: M samples (every leading dim flattened), D values per sample (the last axis),
#         C classes (the last axis of class scores).
from cython.parallel cimport prange
from libc.math cimport fabs, log
from libc.stdint cimport int64_t

from kernels._activations cimport floating, f_exp, f_log, f_log1p, f_tanh

cdef double LOG2 = 0.6931471805599453


# ---------------------------------------------------------------------------------------------
# Scalar helpers
# ---------------------------------------------------------------------------------------------

cdef inline floating _neg_abs(floating x) noexcept nogil:
    return x if x < 0 else -x


cdef inline floating _softplus(floating z) noexcept nogil:
    """log(1 + exp(z)), stable for any finite z."""
    if z > 0:
        return z + f_log1p(f_exp(-z))
    return f_log1p(f_exp(z))


cdef inline floating _sigmoid(floating x) noexcept nogil:
    cdef floating e = f_exp(_neg_abs(x))
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


cdef inline double _sign(double e) noexcept nogil:
    if e > 0:
        return 1.0
    if e < 0:
        return -1.0
    return 0.0


# ---------------------------------------------------------------------------------------------
# Row cores: one sample (row of D or C values) each
# ---------------------------------------------------------------------------------------------

cdef inline double _mse_row(const floating* t, const floating* p, Py_ssize_t d) noexcept nogil:
    cdef double s = 0.0, e
    cdef Py_ssize_t j
    for j in range(d):
        e = <double>t[j] - <double>p[j]
        s += e * e
    return s / d


cdef inline void _mse_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                               Py_ssize_t d) noexcept nogil:
    cdef double scale = 2.0 * dl / d
    cdef Py_ssize_t j
    for j in range(d):
        dp[j] = <floating>(scale * (<double>p[j] - <double>t[j]))


cdef inline double _mae_row(const floating* t, const floating* p, Py_ssize_t d) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(d):
        s += fabs(<double>t[j] - <double>p[j])
    return s / d


cdef inline void _mae_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                               Py_ssize_t d) noexcept nogil:
    cdef double scale = dl / d
    cdef Py_ssize_t j
    for j in range(d):
        dp[j] = <floating>(scale * _sign(<double>p[j] - <double>t[j]))


cdef inline double _huber_row(const floating* t, const floating* p, Py_ssize_t d,
                              double delta) noexcept nogil:
    cdef double s = 0.0, e, a
    cdef Py_ssize_t j
    for j in range(d):
        e = <double>p[j] - <double>t[j]
        a = fabs(e)
        if a <= delta:
            s += 0.5 * e * e
        else:
            s += delta * a - 0.5 * delta * delta
    return s / d


cdef inline void _huber_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                                 Py_ssize_t d, double delta) noexcept nogil:
    cdef double scale = dl / d, e
    cdef Py_ssize_t j
    for j in range(d):
        e = <double>p[j] - <double>t[j]
        if fabs(e) <= delta:
            dp[j] = <floating>(scale * e)
        else:
            dp[j] = <floating>(scale * delta * _sign(e))


cdef inline double _log_cosh_row(const floating* t, const floating* p, Py_ssize_t d) noexcept nogil:
    cdef double s = 0.0
    cdef floating e
    cdef Py_ssize_t j
    for j in range(d):
        e = p[j] - t[j]
        s += <double>e + <double>_softplus(-2 * e) - LOG2
    return s / d


cdef inline void _log_cosh_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                                    Py_ssize_t d) noexcept nogil:
    cdef double scale = dl / d
    cdef Py_ssize_t j
    for j in range(d):
        dp[j] = <floating>(scale * f_tanh(p[j] - t[j]))


cdef inline double _bce_prob_row(const floating* t, const floating* p, Py_ssize_t d,
                                 floating lo, floating hi) noexcept nogil:
    cdef double s = 0.0, tj
    cdef floating c
    cdef Py_ssize_t j
    for j in range(d):
        c = p[j]
        if c < lo:
            c = lo
        elif c > hi:
            c = hi
        tj = t[j]
        s += tj * f_log(c) + (1.0 - tj) * f_log(1 - c)
    return -s / d


cdef inline void _bce_prob_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                                    Py_ssize_t d, floating lo, floating hi) noexcept nogil:
    cdef double scale = dl / d, c, tj
    cdef Py_ssize_t j
    for j in range(d):
        c = p[j]
        if c < lo or c > hi:
            dp[j] = 0
        else:
            tj = t[j]
            dp[j] = <floating>(scale * ((1.0 - tj) / (1.0 - c) - tj / c))


cdef inline double _bce_logit_row(const floating* t, const floating* x, Py_ssize_t d) noexcept nogil:
    cdef double s = 0.0, xj
    cdef Py_ssize_t j
    for j in range(d):
        xj = x[j]
        # max(x, 0) - x t + log1p(exp(-|x|)), as tf.nn.sigmoid_cross_entropy_with_logits.
        s += (xj if xj > 0 else 0.0) - xj * <double>t[j] + <double>f_log1p(f_exp(_neg_abs(x[j])))
    return s / d


cdef inline void _bce_logit_row_grad(const floating* t, const floating* x, double dl, floating* dp,
                                     Py_ssize_t d) noexcept nogil:
    cdef double scale = dl / d
    cdef Py_ssize_t j
    for j in range(d):
        dp[j] = <floating>(scale * (<double>_sigmoid(x[j]) - <double>t[j]))


cdef inline double _row_sum(const floating* p, Py_ssize_t c) noexcept nogil:
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(c):
        s += p[j]
    return s


cdef inline floating _row_max(const floating* x, Py_ssize_t c) noexcept nogil:
    cdef floating mx = x[0]
    cdef Py_ssize_t j
    for j in range(1, c):
        if x[j] > mx:
            mx = x[j]
    return mx


cdef inline double _row_logsumexp(const floating* x, Py_ssize_t c) noexcept nogil:
    cdef floating mx = _row_max(x, c)
    cdef double s = 0.0
    cdef Py_ssize_t j
    for j in range(c):
        s += f_exp(x[j] - mx)
    return mx + log(s)


cdef inline double _row_softmax_into(const floating* x, floating* e, Py_ssize_t c) noexcept nogil:
    """e_j = exp(x_j - max x) (unnormalised); returns 1 / sum_j e_j."""
    cdef floating mx = _row_max(x, c)
    cdef double s = 0.0
    cdef floating v
    cdef Py_ssize_t j
    for j in range(c):
        v = f_exp(x[j] - mx)
        e[j] = v
        s += v
    return 1.0 / s


cdef inline double _cce_prob_row(const floating* t, const floating* p, Py_ssize_t c,
                                 double lo, double hi) noexcept nogil:
    # p / sum(p), clipped to [eps, 1 - eps], then -sum t log(.)
    cdef double inv = 1.0 / _row_sum(p, c), s = 0.0
    cdef floating r
    cdef Py_ssize_t j
    for j in range(c):
        r = <floating>(p[j] * inv)
        if r < lo:
            r = lo
        elif r > hi:
            r = hi
        s += <double>t[j] * <double>f_log(r)
    return -s


cdef inline void _cce_prob_row_grad(const floating* t, const floating* p, double dl, floating* dp,
                                    Py_ssize_t c, double lo, double hi) noexcept nogil:
    # g_j = dL/dr_j = -t_j / r_j (0 where clipped); dL/dp_j = (g_j - sum_k g_k r_k) / S.
    # The clip test uses r rounded to the array dtype, exactly as the forward does.
    cdef double inv = 1.0 / _row_sum(p, c), r, g, gr = 0.0
    cdef floating rf
    cdef Py_ssize_t j
    for j in range(c):
        rf = <floating>(p[j] * inv)
        if rf >= lo and rf <= hi:
            gr -= <double>t[j]          # g_j * r_j = -t_j
    for j in range(c):
        r = p[j] * inv
        rf = <floating>r
        if rf >= lo and rf <= hi:
            g = -<double>t[j] / r
        else:
            g = 0.0
        dp[j] = <floating>(dl * inv * (g - gr))


cdef inline double _cce_logit_row(const floating* t, const floating* x, Py_ssize_t c) noexcept nogil:
    cdef double lse = _row_logsumexp(x, c), s = 0.0
    cdef Py_ssize_t j
    for j in range(c):
        s += <double>t[j] * (lse - <double>x[j])
    return s


cdef inline void _cce_logit_row_grad(const floating* t, const floating* x, double dl, floating* dp,
                                     Py_ssize_t c) noexcept nogil:
    cdef double inv = _row_softmax_into(x, dp, c), st = _row_sum(t, c)
    cdef double scale = st * inv
    cdef Py_ssize_t j
    for j in range(c):
        dp[j] = <floating>(dl * (scale * <double>dp[j] - <double>t[j]))


cdef inline double _scce_logit_row(int64_t label, const floating* x, Py_ssize_t c) noexcept nogil:
    return _row_logsumexp(x, c) - <double>x[label]


cdef inline void _scce_logit_row_grad(int64_t label, const floating* x, double dl, floating* dp,
                                      Py_ssize_t c) noexcept nogil:
    cdef double inv = _row_softmax_into(x, dp, c), g
    cdef Py_ssize_t j
    for j in range(c):
        g = <double>dp[j] * inv
        if j == label:
            g -= 1.0
        dp[j] = <floating>(dl * g)


cdef inline double _clipped_row_sum(const floating* p, Py_ssize_t c, floating lo,
                                    floating hi) noexcept nogil:
    cdef double s = 0.0, q
    cdef Py_ssize_t j
    for j in range(c):
        q = p[j]
        if q < lo:
            q = lo
        elif q > hi:
            q = hi
        s += q
    return s


cdef inline double _scce_prob_row(int64_t label, const floating* p, Py_ssize_t c,
                                  floating lo, floating hi) noexcept nogil:
    # TF backend: q = log(clip(p)); loss = logsumexp(q) - q[label] = log(sum clip(p)) - log(clip(p)[label]).
    cdef double q = p[label]
    if q < lo:
        q = lo
    elif q > hi:
        q = hi
    return log(_clipped_row_sum(p, c, lo, hi)) - log(q)


cdef inline void _scce_prob_row_grad(int64_t label, const floating* p, double dl, floating* dp,
                                     Py_ssize_t c, floating lo, floating hi) noexcept nogil:
    # dL/dq_j = clip(p)_j / S - [j == label]; dq_j/dp_j = 1 / p_j inside the clip range, else 0.
    cdef double inv = 1.0 / _clipped_row_sum(p, c, lo, hi), q
    cdef Py_ssize_t j
    for j in range(c):
        q = p[j]
        if q < lo or q > hi:
            dp[j] = 0
        elif j == label:
            dp[j] = <floating>(dl * (inv - 1.0 / q))
        else:
            dp[j] = <floating>(dl * inv)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------

def mse_forward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                floating[::1] loss_out_m, int n_threads=1):
    """loss_out_m[i] = mean_d (y_true - y_pred)^2.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        loss_out_m[i] = <floating>_mse_row(&y_true_md[i, 0], &y_pred_md[i, 0], d)


def mse_backward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                 const floating[::1] dloss_m, floating[:, ::1] dpred_out_md, int n_threads=1):
    """dpred_out_md = d(sum_i dloss_m[i] * mse_i) / d y_pred = dloss * 2 (p - t) / D.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    dloss_m: (M,) same dtype, IN
    dpred_out_md: (M, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        _mse_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i], &dpred_out_md[i, 0], d)


def mae_forward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                floating[::1] loss_out_m, int n_threads=1):
    """loss_out_m[i] = mean_d |y_true - y_pred|.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        loss_out_m[i] = <floating>_mae_row(&y_true_md[i, 0], &y_pred_md[i, 0], d)


def mae_backward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                 const floating[::1] dloss_m, floating[:, ::1] dpred_out_md, int n_threads=1):
    """dpred_out_md = dloss * sign(p - t) / D (sign(0) = 0).

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    dloss_m: (M,) same dtype, IN
    dpred_out_md: (M, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        _mae_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i], &dpred_out_md[i, 0], d)


def huber_forward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                  floating[::1] loss_out_m, double delta=1.0, int n_threads=1):
    """loss_out_m[i] = mean_d (0.5 e^2 if |e| <= delta else delta (|e| - 0.5 delta)), e = p - t.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        loss_out_m[i] = <floating>_huber_row(&y_true_md[i, 0], &y_pred_md[i, 0], d, delta)


def huber_backward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                   const floating[::1] dloss_m, floating[:, ::1] dpred_out_md,
                   double delta=1.0, int n_threads=1):
    """dpred_out_md = dloss * (e if |e| <= delta else delta sign(e)) / D, e = p - t.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    dloss_m: (M,) same dtype, IN
    dpred_out_md: (M, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        _huber_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i], &dpred_out_md[i, 0], d,
                        delta)


def log_cosh_forward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                     floating[::1] loss_out_m, int n_threads=1):
    """loss_out_m[i] = mean_d log(cosh(e)) = mean_d (e + softplus(-2 e) - log 2), e = p - t.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        loss_out_m[i] = <floating>_log_cosh_row(&y_true_md[i, 0], &y_pred_md[i, 0], d)


def log_cosh_backward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                      const floating[::1] dloss_m, floating[:, ::1] dpred_out_md, int n_threads=1):
    """dpred_out_md = dloss * tanh(p - t) / D.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN
    dloss_m: (M,) same dtype, IN
    dpred_out_md: (M, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
        _log_cosh_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i], &dpred_out_md[i, 0], d)


def binary_crossentropy_forward(const floating[:, ::1] y_true_md, const floating[:, ::1] y_pred_md,
                                floating[::1] loss_out_m, bint from_logits=False,
                                double eps=1e-7, int n_threads=1):
    """loss_out_m[i] = mean_d binary cross-entropy.

    Probabilities: p clipped to [eps, 1 - eps], -(t log p + (1 - t) log(1 - p)).
    Logits: max(x, 0) - x t + log1p(exp(-|x|)).

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN (probabilities, or logits if from_logits)
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    cdef floating lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_bce_logit_row(&y_true_md[i, 0], &y_pred_md[i, 0], d)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_bce_prob_row(&y_true_md[i, 0], &y_pred_md[i, 0], d, lo, hi)


def binary_crossentropy_backward(const floating[:, ::1] y_true_md,
                                 const floating[:, ::1] y_pred_md, const floating[::1] dloss_m,
                                 floating[:, ::1] dpred_out_md, bint from_logits=False,
                                 double eps=1e-7, int n_threads=1):
    """dpred_out_md = dloss * d(bce)/dp / D.

    Probabilities: ((1 - t) / (1 - p) - t / p), 0 where p lies outside [eps, 1 - eps].
    Logits: sigmoid(x) - t.

    y_true_md: (M, D) float32/64, C-contiguous, IN
    y_pred_md: (M, D) same dtype, C-contiguous, IN (probabilities, or logits if from_logits)
    dloss_m: (M,) same dtype, IN
    dpred_out_md: (M, D) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_md.shape[0], d = y_pred_md.shape[1], i
    cdef floating lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _bce_logit_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i],
                                &dpred_out_md[i, 0], d)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _bce_prob_row_grad(&y_true_md[i, 0], &y_pred_md[i, 0], dloss_m[i],
                               &dpred_out_md[i, 0], d, lo, hi)


def categorical_crossentropy_forward(const floating[:, ::1] y_true_mc,
                                     const floating[:, ::1] y_pred_mc, floating[::1] loss_out_m,
                                     bint from_logits=False, double eps=1e-7, int n_threads=1):
    """loss_out_m[i] = -sum_c t log(q).

    Probabilities: q = clip(p / sum_c p, eps, 1 - eps). Logits: q = softmax(x), via log-sum-exp.

    y_true_mc: (M, C) float32/64, C-contiguous, IN
    y_pred_mc: (M, C) same dtype, C-contiguous, IN (probabilities, or logits if from_logits)
    loss_out_m: (M,) same dtype, OUT
    """
    cdef Py_ssize_t m = y_pred_mc.shape[0], c = y_pred_mc.shape[1], i
    cdef double lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_cce_logit_row(&y_true_mc[i, 0], &y_pred_mc[i, 0], c)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_cce_prob_row(&y_true_mc[i, 0], &y_pred_mc[i, 0], c, lo, hi)


def categorical_crossentropy_backward(const floating[:, ::1] y_true_mc,
                                      const floating[:, ::1] y_pred_mc,
                                      const floating[::1] dloss_m, floating[:, ::1] dpred_out_mc,
                                      bint from_logits=False, double eps=1e-7, int n_threads=1):
    """dpred_out_mc = dloss * d(cce)/dp.

    Probabilities: through the normalisation p / sum p and the clip (0 where clipped).
    Logits: sum_c(t) * softmax(x) - t.

    y_true_mc: (M, C) float32/64, C-contiguous, IN
    y_pred_mc: (M, C) same dtype, C-contiguous, IN (probabilities, or logits if from_logits)
    dloss_m: (M,) same dtype, IN
    dpred_out_mc: (M, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_mc.shape[0], c = y_pred_mc.shape[1], i
    cdef double lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _cce_logit_row_grad(&y_true_mc[i, 0], &y_pred_mc[i, 0], dloss_m[i],
                                &dpred_out_mc[i, 0], c)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _cce_prob_row_grad(&y_true_mc[i, 0], &y_pred_mc[i, 0], dloss_m[i],
                               &dpred_out_mc[i, 0], c, lo, hi)


def sparse_categorical_crossentropy_forward(const int64_t[::1] labels_m,
                                            const floating[:, ::1] y_pred_mc,
                                            floating[::1] loss_out_m, bint from_logits=False,
                                            double eps=1e-7, int n_threads=1):
    """loss_out_m[i] = logsumexp(q) - q[label].

    Logits: q = x. Probabilities (TF backend): q = log(clip(p, eps, 1 - eps)).

    labels_m: (M,) int64 in [0, C), IN
    y_pred_mc: (M, C) float32/64, C-contiguous, IN (probabilities, or logits if from_logits)
    loss_out_m: (M,) same dtype as y_pred_mc, OUT
    """
    cdef Py_ssize_t m = y_pred_mc.shape[0], c = y_pred_mc.shape[1], i
    cdef floating lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_scce_logit_row(labels_m[i], &y_pred_mc[i, 0], c)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            loss_out_m[i] = <floating>_scce_prob_row(labels_m[i], &y_pred_mc[i, 0], c, lo, hi)


def sparse_categorical_crossentropy_backward(const int64_t[::1] labels_m,
                                             const floating[:, ::1] y_pred_mc,
                                             const floating[::1] dloss_m,
                                             floating[:, ::1] dpred_out_mc,
                                             bint from_logits=False, double eps=1e-7,
                                             int n_threads=1):
    """dpred_out_mc = dloss * d(scce)/dp.

    Logits: softmax(x) - onehot(label). Probabilities: (1 / sum clip(p) - [c == label] / p),
    0 where p lies outside [eps, 1 - eps].

    labels_m: (M,) int64 in [0, C), IN
    y_pred_mc: (M, C) float32/64, C-contiguous, IN (probabilities, or logits if from_logits)
    dloss_m: (M,) same dtype as y_pred_mc, IN
    dpred_out_mc: (M, C) same dtype, C-contiguous, OUT
    """
    cdef Py_ssize_t m = y_pred_mc.shape[0], c = y_pred_mc.shape[1], i
    cdef floating lo = <floating>eps, hi = <floating>(1.0 - eps)
    if from_logits:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _scce_logit_row_grad(labels_m[i], &y_pred_mc[i, 0], dloss_m[i], &dpred_out_mc[i, 0], c)
    else:
        for i in prange(m, nogil=True, num_threads=n_threads, schedule="static"):
            _scce_prob_row_grad(labels_m[i], &y_pred_mc[i, 0], dloss_m[i], &dpred_out_mc[i, 0],
                                c, lo, hi)
