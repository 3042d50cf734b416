"""NumPy references for the int8 kernels, from Keras's definitions (keras.quantizers.abs_max_quantize
and Dense/Embedding ``_int8_call``), never importing the kernels."""
import numpy as np


def quantize_rows(x):
    """(q int8 (N, K), scale float32 (N,)): scale = 127 / (max|x| + 1e-7), q = clip(round(x scale))."""
    x = np.asarray(x, dtype=np.float32)
    scale = (np.float32(127.0) / (np.abs(x).max(axis=1) + np.float32(1e-7))).astype(np.float32)
    q = np.clip(np.round(x * scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def int8_matmul(q, w):
    """The exact integer product q (N, K) @ w (K, M), as int64."""
    return np.asarray(q, dtype=np.int64) @ np.asarray(w, dtype=np.int64)


def int8_dense(x, w, w_scale, bias=None, relu=False):
    """float32 y = (q @ w) / (w_scale * x_scale) + bias (then relu), Keras's operation order."""
    q, x_scale = quantize_rows(x)
    acc = int8_matmul(q, w).astype(np.float32)
    y = acc / (np.asarray(w_scale, np.float32)[None, :] * x_scale[:, None])
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    return np.maximum(y, 0) if relu else y


def int8_embedding(ids, table, scale):
    """table[ids] / scale[ids] in float32."""
    ids = np.asarray(ids)
    return np.asarray(table, np.float32)[ids] / np.asarray(scale, np.float32)[ids][..., None]


def quantize_static(x, scale):
    """clip(round_half_even(x * scale), -127, 127) as int8, a static per-tensor scale."""
    return np.clip(np.round(np.asarray(x, np.float32) * np.float32(scale)), -127, 127).astype(np.int8)


def quantize_samples(x):
    """(q int8, scale (N,) float32): Keras's abs-max rule over each sample of x (N, ...)."""
    q, scale = quantize_rows(np.asarray(x, np.float32).reshape(len(x), -1))
    return q.reshape(np.shape(x)), scale


def int8_conv2d(q, x_scale, w, w_scale, bias=None, strides=(1, 1), pads=(0, 0), dilation=(1, 1), out_hw=None,
                relu=False, out_scale=None, groups=1):
    """The int8 convolution of q (N, H, W, C) int8 by w (KH, KW, C / groups, M) int8, exact in int64
    (zeros outside the input; pads: top / left, out_hw: the output size), then
    y = acc / (w_scale * x_scale[n]) + bias (then relu) in float32, or with ``out_scale`` requantized
    to int8. groups = C gives the depthwise convolution (w (KH, KW, 1, C * DM))."""
    q = np.asarray(q, np.int64)
    w = np.asarray(w, np.int64)
    n, h, wd, c = q.shape
    kh, kw, cg, m = w.shape
    (sh, sw), (ph, pw), (dh, dw) = strides, pads, dilation
    oh, ow = out_hw
    padded = np.zeros((n, h + 2 * ph + kh * dh + sh * oh, wd + 2 * pw + kw * dw + sw * ow, c), np.int64)
    padded[:, ph:ph + h, pw:pw + wd] = q
    acc = np.zeros((n, oh, ow, m), np.int64)
    mg = m // groups
    for a in range(kh):
        for b in range(kw):
            patch = padded[:, a * dh:a * dh + sh * (oh - 1) + 1:sh, b * dw:b * dw + sw * (ow - 1) + 1:sw]
            for g in range(groups):
                acc[..., g * mg:(g + 1) * mg] += patch[..., g * cg:(g + 1) * cg] @ w[a, b, :, g * mg:(g + 1) * mg]
    y = acc.astype(np.float32) / (np.asarray(w_scale, np.float32) * np.asarray(x_scale, np.float32)[:, None, None, None])
    if bias is not None:
        y = y + np.asarray(bias, np.float32)
    if relu:
        y = np.maximum(y, 0)
    return y if out_scale is None else quantize_static(y, out_scale)


def int8_max_pool2d(x, pool, strides):
    """"valid" max pooling of (N, H, W, C) int8 by windows ``pool`` moved by ``strides``."""
    x = np.asarray(x)
    (ph, pw), (sh, sw) = pool, strides
    oh, ow = (x.shape[1] - ph) // sh + 1, (x.shape[2] - pw) // sw + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), -128, np.int8)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * sh:i * sh + ph, j * sw:j * sw + pw].max(axis=(1, 2))
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def int8_lstm(z, r_q, r_scale, h, c, mask=None, zero_output=False):
    """The int8 LSTM recurrence (gates i, f, c, o; tanh / sigmoid) over z (N, T, 4U) = x W + b, in float64
    after the exact integer product: per step q(h) @ r_q / (r_scale * h_scale) joins z. Returns
    (outputs (N, T, U), h, c)."""
    z, h, c = np.array(z, np.float64), np.array(h, np.float64), np.array(c, np.float64)
    n, t_len, g = z.shape
    u = g // 4
    ys = np.zeros((n, t_len, u))
    for t in range(t_len):
        q, s = quantize_rows(h.astype(np.float32))
        zt = z[:, t] + int8_matmul(q, r_q) / (np.asarray(r_scale, np.float64) * s[:, None])
        i, f, gg, o = _sigmoid(zt[:, :u]), _sigmoid(zt[:, u:2 * u]), np.tanh(zt[:, 2 * u:3 * u]), _sigmoid(zt[:, 3 * u:])
        c_new = f * c + i * gg
        h_new = o * np.tanh(c_new)
        valid = np.ones(n, bool) if mask is None else np.asarray(mask[:, t], bool)
        c = np.where(valid[:, None], c_new, c)
        h = np.where(valid[:, None], h_new, h)
        prev = ys[:, t - 1] if t > 0 and not zero_output else np.zeros((n, u))
        ys[:, t] = np.where(valid[:, None], h, prev)
    return ys, h, c


def int8_gru(z, r_q, r_scale, h, brh=None, reset_after=True, mask=None):
    """The int8 GRU recurrence (gates z, r, h; tanh / sigmoid) over z (N, T, 3U) = x W + b_in (+ the
    recurrent z, r biases), in float64 after the exact integer products. Returns (outputs, h)."""
    z, h = np.array(z, np.float64), np.array(h, np.float64)
    n, t_len, g = z.shape
    u = g // 3
    rs = np.asarray(r_scale, np.float64)
    ys = np.zeros((n, t_len, u))
    for t in range(t_len):
        q, s = quantize_rows(h.astype(np.float32))
        prod = int8_matmul(q, r_q) / (rs * s[:, None])
        zz = _sigmoid(z[:, t, :u] + prod[:, :u])
        rr = _sigmoid(z[:, t, u:2 * u] + prod[:, u:2 * u])
        if reset_after:
            hh = np.tanh(z[:, t, 2 * u:] + rr * (prod[:, 2 * u:] + (0 if brh is None else brh)))
        else:
            q2, s2 = quantize_rows((rr * h).astype(np.float32))
            hh = np.tanh(z[:, t, 2 * u:] + int8_matmul(q2, r_q[:, 2 * u:]) / (rs[2 * u:] * s2[:, None]))
        h_new = zz * h + (1 - zz) * hh
        valid = np.ones(n, bool) if mask is None else np.asarray(mask[:, t], bool)
        h = np.where(valid[:, None], h_new, h)
        ys[:, t] = np.where(valid[:, None], h, ys[:, t - 1] if t > 0 else 0)
    return ys, h
