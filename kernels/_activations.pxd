# Design: the scalar activation functions shared by _elementwise.pyx (activation_forward,
# softmax) and _gemm.pyx (dense_forward's fused epilogue), and the kernels' one set of
# precision-matched libm wrappers (f_exp, f_log, ...: _losses.pyx, _recurrent.pyx). Everything here is `inline`, so
# cimporting this file adds no runtime import and no call overhead. Math runs in the array's
# own precision (expf for float32, exp for float64); the row sums of softmax accumulate in double.
# The row functions dispatch on the activation code once per row and then run a tight loop, so
# the cheap activations (relu, leaky_relu, relu6, ...) vectorize. NaN propagates through every
# activation (relu(NaN) is NaN), so NaN checks keep working.
#
# Legend: n elements of one row (or of a flat array).
from libc.math cimport (exp, expf, expm1, expm1f, log, logf, log1p, log1pf, erfc, erfcf,
                        tanh, tanhf, fabs, fabsf)
from cython cimport floating

# Activation codes (the Python-level table is elementwise.ACTIVATIONS).
cdef enum:
    ACT_LINEAR = 0
    ACT_RELU = 1
    ACT_SIGMOID = 2
    ACT_TANH = 3
    ACT_LEAKY_RELU = 4
    ACT_ELU = 5
    ACT_SELU = 6
    ACT_GELU = 7
    ACT_GELU_TANH = 8
    ACT_SILU = 9
    ACT_SOFTPLUS = 10
    ACT_SOFTSIGN = 11
    ACT_HARD_SIGMOID = 12
    ACT_RELU6 = 13
    ACT_EXPONENTIAL = 14
    ACT_SOFTMAX = 15
    ACT_LOG_SOFTMAX = 16
    ACT_N_ELEMENTWISE = 15  # codes below this are elementwise

# Keras constants, written as literals where used (a .pxd cannot hold initialized variables):
# selu alpha 1.6732632423543772, scale 1.0507009873554805 (alpha*scale 1.7580993408473766);
# 1/sqrt(2) 0.7071067811865476; sqrt(2/pi) 0.7978845608028654; gelu_tanh cubic 0.044715.


# ---- precision-matched libm ------------------------------------------------------------------
cdef inline floating f_exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating f_expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating f_log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating f_log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef inline floating f_erfc(floating x) noexcept nogil:
    if floating is float:
        return erfcf(x)
    else:
        return erfc(x)


cdef inline floating f_tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating f_abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


# ---- scalar activations (stable for any finite x) --------------------------------------------
cdef inline floating act_relu(floating x) noexcept nogil:
    return 0 if x < 0 else x  # NaN stays NaN


cdef inline floating act_sigmoid(floating x) noexcept nogil:
    # z = exp(-|x|) never overflows; sigmoid(x) = 1/(1+z) for x >= 0, z/(1+z) for x < 0.
    cdef floating z = f_exp(-f_abs(x))
    cdef floating r = 1 / (1 + z)
    return r if x >= 0 else z * r


cdef inline floating act_leaky_relu(floating x, floating alpha) noexcept nogil:
    return alpha * x if x < 0 else x


cdef inline floating act_elu(floating x, floating alpha) noexcept nogil:
    return alpha * f_expm1(x) if x < 0 else x


cdef inline floating act_selu(floating x) noexcept nogil:
    cdef floating a = <floating>1.7580993408473766, s = <floating>1.0507009873554805
    return a * f_expm1(x) if x < 0 else s * x


cdef inline floating act_gelu(floating x) noexcept nogil:
    # 0.5 x (1 + erf(x/sqrt2)) == 0.5 x erfc(-x/sqrt2), without the cancellation for x << 0.
    return <floating>0.5 * x * f_erfc(-x * <floating>0.7071067811865476)


cdef inline floating act_gelu_tanh(floating x) noexcept nogil:
    # 0.5 x (1 + tanh(u)) == x sigmoid(2u), u = sqrt(2/pi)(x + 0.044715 x^3).
    cdef floating u = <floating>0.7978845608028654 * (x + <floating>0.044715 * x * x * x)
    return x * act_sigmoid(2 * u)


cdef inline floating act_silu(floating x) noexcept nogil:
    return x * act_sigmoid(x)


cdef inline floating act_softplus(floating x) noexcept nogil:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)).
    return (x if x > 0 else 0) + f_log1p(f_exp(-f_abs(x)))


cdef inline floating act_softsign(floating x) noexcept nogil:
    return x / (1 + f_abs(x))


cdef inline floating act_relu6(floating x) noexcept nogil:
    cdef floating v = 0 if x < 0 else x
    return 6 if v > 6 else v


cdef inline floating act_hard_sigmoid(floating x) noexcept nogil:
    return act_relu6(x + 3) / 6


cdef inline floating act_scalar(int code, floating x, floating alpha) noexcept nogil:
    """One elementwise activation (codes 0..14); unknown codes act as linear."""
    if code == ACT_RELU:
        return act_relu(x)
    elif code == ACT_SIGMOID:
        return act_sigmoid(x)
    elif code == ACT_TANH:
        return f_tanh(x)
    elif code == ACT_LEAKY_RELU:
        return act_leaky_relu(x, alpha)
    elif code == ACT_ELU:
        return act_elu(x, alpha)
    elif code == ACT_SELU:
        return act_selu(x)
    elif code == ACT_GELU:
        return act_gelu(x)
    elif code == ACT_GELU_TANH:
        return act_gelu_tanh(x)
    elif code == ACT_SILU:
        return act_silu(x)
    elif code == ACT_SOFTPLUS:
        return act_softplus(x)
    elif code == ACT_SOFTSIGN:
        return act_softsign(x)
    elif code == ACT_HARD_SIGMOID:
        return act_hard_sigmoid(x)
    elif code == ACT_RELU6:
        return act_relu6(x)
    elif code == ACT_EXPONENTIAL:
        return f_exp(x)
    return x


# ---- row functions ----------------------------------------------------------------------------
cdef inline void act_row(int code, const floating* x, const floating* b, floating* y,
                         Py_ssize_t n, floating alpha) noexcept nogil:
    """y[i] = act(x[i] + b[i]) for i < n; b may be NULL (no bias); y may alias x.

    Elementwise codes only (0..14). One branch per code outside the loop keeps each loop tight.
    """
    cdef Py_ssize_t i
    if code == ACT_LINEAR:
        if b != NULL:
            for i in range(n):
                y[i] = x[i] + b[i]
        elif y != x:
            for i in range(n):
                y[i] = x[i]
    elif code == ACT_RELU:
        if b != NULL:
            for i in range(n):
                y[i] = act_relu(x[i] + b[i])
        else:
            for i in range(n):
                y[i] = act_relu(x[i])
    elif code == ACT_LEAKY_RELU:
        if b != NULL:
            for i in range(n):
                y[i] = act_leaky_relu(x[i] + b[i], alpha)
        else:
            for i in range(n):
                y[i] = act_leaky_relu(x[i], alpha)
    elif code == ACT_RELU6:
        if b != NULL:
            for i in range(n):
                y[i] = act_relu6(x[i] + b[i])
        else:
            for i in range(n):
                y[i] = act_relu6(x[i])
    elif code == ACT_HARD_SIGMOID:
        if b != NULL:
            for i in range(n):
                y[i] = act_hard_sigmoid(x[i] + b[i])
        else:
            for i in range(n):
                y[i] = act_hard_sigmoid(x[i])
    elif code == ACT_SOFTSIGN:
        if b != NULL:
            for i in range(n):
                y[i] = act_softsign(x[i] + b[i])
        else:
            for i in range(n):
                y[i] = act_softsign(x[i])
    else:
        # Transcendental activations: the libm call dominates, one generic loop is enough.
        if b != NULL:
            for i in range(n):
                y[i] = act_scalar(code, x[i] + b[i], alpha)
        else:
            for i in range(n):
                y[i] = act_scalar(code, x[i], alpha)


cdef inline void softmax_row(const floating* x, const floating* b, floating* y,
                             Py_ssize_t n) noexcept nogil:
    """y = softmax(x + b) over n elements (max subtracted first); b may be NULL; y may alias x."""
    cdef Py_ssize_t i
    cdef floating v, m, e
    cdef double s = 0
    if n <= 0:
        return
    m = x[0] + (b[0] if b != NULL else 0)
    for i in range(n):
        v = x[i] + (b[i] if b != NULL else 0)
        y[i] = v
        if v > m:
            m = v
    for i in range(n):
        e = f_exp(y[i] - m)
        y[i] = e
        s += e
    v = <floating>(1.0 / s)
    for i in range(n):
        y[i] = y[i] * v


cdef inline void log_softmax_row(const floating* x, const floating* b, floating* y,
                                 Py_ssize_t n) noexcept nogil:
    """y = log_softmax(x + b) = (x + b - max) - log(sum(exp(x + b - max))); b may be NULL."""
    cdef Py_ssize_t i
    cdef floating v, m, lse
    cdef double s = 0
    if n <= 0:
        return
    m = x[0] + (b[0] if b != NULL else 0)
    for i in range(n):
        v = x[i] + (b[i] if b != NULL else 0)
        y[i] = v
        if v > m:
            m = v
    for i in range(n):
        s += f_exp(y[i] - m)
    lse = <floating>log(s)
    for i in range(n):
        y[i] = (y[i] - m) - lse


cdef inline void epilogue_row(int code, floating* y, const floating* bias, Py_ssize_t n,
                              floating alpha) noexcept nogil:
    """y = act(y + bias) over one row of n outputs in place, for any code (softmax and
    log_softmax run over the row); bias may be NULL."""
    if code == ACT_SOFTMAX:
        softmax_row(y, bias, y, n)
    elif code == ACT_LOG_SOFTMAX:
        log_softmax_row(y, bias, y, n)
    else:
        act_row(code, y, bias, y, n, alpha)
