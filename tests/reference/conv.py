"""Reference convolutions for the conv tests: plain NumPy in float64, from the definitions.

Never imports dlcore. Layouts are Keras's: inputs (N, H, W, C) channels_last, kernels
(KH, KW, C_in/groups, C_out); a 1-D convolution is the 2-D one with H = KH = 1.

- ``conv2d``: pad explicitly, then for each tap (kh, kw) a strided slice of the padded input
  times that tap's (C_in/groups, C_out) matrix, summed (einsum per group);
- ``conv2d_transpose``: the scatter definition: each input pixel (i, j) adds ``x[i, j] @ w^T`` to
  the output window at (i*s + kh*d, j*s + kw*d), then the padding is cropped;
- the Keras padding rules (``same_pads``, ``valid``, ``causal``) and output lengths
  (``conv_output_length``, ``deconv_output_length``, from keras/src/utils and the TF op docs).
"""
import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


# ---- padding arithmetic (Keras / TF) ------------------------------------------------------------
def conv_output_length(length, kernel, padding, stride, dilation=1):
    """Keras: ceil(L / s) for "same" (and "reflect", dlcore's extension), floor((L - d(k-1) - 1)
    / s) + 1 for "valid", as "same" for "causal"."""
    effective = (kernel - 1) * dilation + 1
    if padding in ("same", "causal", "reflect"):
        return -(-length // stride)
    return (length - effective) // stride + 1


def same_pads(length, kernel, stride, dilation=1):
    """TF's "SAME": total = max((out - 1) s + d(k - 1) + 1 - L, 0), the smaller half first."""
    out = -(-length // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - length, 0)
    return total // 2, total - total // 2


def pads(length, kernel, padding, stride, dilation=1):
    """(before, after) padding of one axis for a Keras padding mode."""
    if padding in ("same", "reflect"):
        return same_pads(length, kernel, stride, dilation)
    if padding == "causal":
        return (kernel - 1) * dilation, 0
    return 0, 0


def deconv_output_length(length, kernel, padding, output_padding=None, stride=1, dilation=1):
    """Keras's Conv*Transpose output length (keras/src/utils/conv_utils-style formula)."""
    kernel = kernel + (kernel - 1) * (dilation - 1)
    if output_padding is None:
        if padding == "valid":
            return length * stride + max(kernel - stride, 0)
        return length * stride
    pad = kernel // 2 if padding == "same" else 0
    return (length - 1) * stride + kernel - 2 * pad + output_padding


# ---- convolutions -------------------------------------------------------------------------------
def conv2d(x, w, stride=1, padding=((0, 0), (0, 0)), dilation=1, groups=1, bias=None):
    """y[n, i, j, o] = sum_{kh, kw, c} xpad[n, i*sh + kh*dh, j*sw + kw*dw, g*CG + c] w[kh, kw, c, o]."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    (pt, pb), (pl, pr) = padding
    n, h, wd, c = x.shape
    kh_, kw_, cg, o = w.shape
    assert c == cg * groups and o % groups == 0
    og = o // groups
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + wd, :] = x
    oh = (xp.shape[1] - (kh_ - 1) * dh - 1) // sh + 1
    ow = (xp.shape[2] - (kw_ - 1) * dw - 1) // sw + 1
    y = np.zeros((n, max(oh, 0), max(ow, 0), o))
    if oh <= 0 or ow <= 0:
        return y
    for kh in range(kh_):
        for kw in range(kw_):
            patch = xp[:, kh * dh:kh * dh + (oh - 1) * sh + 1:sh, kw * dw:kw * dw + (ow - 1) * sw + 1:sw, :]
            for g in range(groups):
                y[..., g * og:(g + 1) * og] += np.einsum(
                    "nhwc,co->nhwo", patch[..., g * cg:(g + 1) * cg], w[kh, kw, :, g * og:(g + 1) * og])
    if bias is not None:
        y += np.asarray(bias, dtype=np.float64)
    return y


def conv2d_transpose(x, w, out_hw, stride=1, pad_top_left=(0, 0), dilation=1, groups=1):
    """The transposed convolution (= the gradient of conv2d with respect to its input).

    x: (N, IH, IW, C_out) with w: (KH, KW, C_in/groups, C_out), as conv2d's (dy, w); the result
    has shape (N, out_hw[0], out_hw[1], C_in): out[n, i*sh + kh*dh - pt, j*sw + kw*dw - pl, c]
    += x[n, i, j, :] @ w[kh, kw, c, :], positions outside the output dropped.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pl = pad_top_left
    n, ih_, iw_, o = x.shape
    kh_, kw_, cg, _ = w.shape
    og = o // groups
    h, wd = out_hw
    full_h = max((ih_ - 1) * sh + (kh_ - 1) * dh + 1, pt + h)
    full_w = max((iw_ - 1) * sw + (kw_ - 1) * dw + 1, pl + wd)
    full = np.zeros((n, full_h, full_w, cg * groups))
    for i in range(ih_):
        for j in range(iw_):
            for kh in range(kh_):
                for kw in range(kw_):
                    for g in range(groups):
                        full[:, i * sh + kh * dh, j * sw + kw * dw, g * cg:(g + 1) * cg] += (
                            x[:, i, j, g * og:(g + 1) * og] @ w[kh, kw, :, g * og:(g + 1) * og].T)
    return full[:, pt:pt + h, pl:pl + wd, :]


def conv2d_grad_weight(x, dy, kernel_hw, stride=1, padding=((0, 0), (0, 0)), dilation=1, groups=1):
    """dL/dw for L = sum(conv2d(x, w) * dy): for each tap, the padded input slice times dy."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    (pt, pb), (pl, pr) = padding
    n, h, wd, c = x.shape
    _, oh, ow, o = dy.shape
    cg, og = c // groups, o // groups
    xp = np.zeros((n, h + pt + pb, wd + pl + pr, c))
    xp[:, pt:pt + h, pl:pl + wd, :] = x
    kh_, kw_ = kernel_hw
    dw_ = np.zeros((kh_, kw_, cg, o))
    for kh in range(kh_):
        for kw in range(kw_):
            patch = xp[:, kh * dh:kh * dh + (oh - 1) * sh + 1:sh, kw * dw:kw * dw + (ow - 1) * sw + 1:sw, :]
            for g in range(groups):
                dw_[kh, kw, :, g * og:(g + 1) * og] = np.einsum(
                    "nhwc,nhwo->co", patch[..., g * cg:(g + 1) * cg], dy[..., g * og:(g + 1) * og])
    return dw_


def depthwise_conv2d(x, w, stride=1, padding=((0, 0), (0, 0)), dilation=1):
    """Keras DepthwiseConv2D: w (KH, KW, C, M); output channel c*M + m sees input channel c only."""
    w = np.asarray(w, dtype=np.float64)
    kh_, kw_, c, m = w.shape
    return conv2d(x, w.reshape(kh_, kw_, 1, c * m), stride, padding, dilation, groups=c)


def separable_conv2d(x, depthwise, pointwise, stride=1, padding=((0, 0), (0, 0)), dilation=1):
    """Keras SeparableConv2D: the depthwise convolution, then a 1x1 convolution."""
    return conv2d(depthwise_conv2d(x, depthwise, stride, padding, dilation), pointwise)


def conv1d(x, w, stride=1, padding=(0, 0), dilation=1, groups=1):
    """x (N, L, C), w (K, C_in/groups, C_out): conv2d with H = KH = 1."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    y = conv2d(x[:, None], w[None], (1, stride), ((0, 0), tuple(padding)), (1, dilation), groups)
    return y[:, 0]


def reflect_pad(x, pad_h, pad_w):
    """NumPy "reflect" padding of the spatial axes of an NHWC array (dlcore's padding="reflect")."""
    return np.pad(np.asarray(x, dtype=np.float64), ((0, 0), pad_h, pad_w, (0, 0)), mode="reflect")


def conv3d(x, w, stride=1, padding=((0, 0),) * 3, dilation=1, groups=1, bias=None):
    """y[n, d, i, j, o] = sum_{kd, kh, kw, c} xpad[n, d*sd + kd*dd, i*sh + kh*dh, j*sw + kw*dw, g*CG + c]
    w[kd, kh, kw, c, o]: x (N, D, H, W, C), w (KD, KH, KW, C_in/groups, C_out), one tap at a time."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    s = (stride,) * 3 if np.isscalar(stride) else tuple(stride)
    dl = (dilation,) * 3 if np.isscalar(dilation) else tuple(dilation)
    xp = np.pad(x, ((0, 0),) + tuple(tuple(p) for p in padding) + ((0, 0),))
    cg, o = w.shape[3:]
    og = o // groups
    out = [(xp.shape[1 + a] - (w.shape[a] - 1) * dl[a] - 1) // s[a] + 1 for a in range(3)]
    y = np.zeros((x.shape[0], *out, o))
    for tap in np.ndindex(*w.shape[:3]):
        key = tuple(slice(t * d, t * d + (m - 1) * st + 1, st) for t, d, m, st in zip(tap, dl, out, s))
        patch = xp[(slice(None),) + key]
        for g in range(groups):
            y[..., g * og:(g + 1) * og] += patch[..., g * cg:(g + 1) * cg] @ w[tap][:, g * og:(g + 1) * og]
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)


def conv2d_max_pool2x2(x, w, padding=((0, 0), (0, 0)), bias=None, relu=False):
    """max over 2x2 stride-2 windows (floor) of (relu of) conv2d(x, w, 1, padding) + bias."""
    z = conv2d(x, w, 1, padding, bias=bias)
    if relu:
        z = np.maximum(z, 0.0)
    ph, pw = z.shape[1] // 2, z.shape[2] // 2
    z = z[:, :2 * ph, :2 * pw]
    return z.reshape(z.shape[0], ph, 2, pw, 2, z.shape[3]).max(axis=(2, 4))


def conv2d_max_pool2x2_grad(x, w, dy, padding=((0, 0), (0, 0)), bias=None, relu=False):
    """(dw, db) for L = sum(conv2d_max_pool2x2(x, w, padding, bias, relu) * dy): dy goes to the
    first maximum of each window (times relu's derivative there), then conv2d_grad_weight."""
    z = conv2d(x, w, 1, padding, bias=bias)
    ph, pw = z.shape[1] // 2, z.shape[2] // 2
    dz = np.zeros_like(z)
    for n, i, j, o in np.ndindex(z.shape[0], ph, pw, z.shape[3]):
        window = [z[n, 2 * i + a, 2 * j + b, o] for a in (0, 1) for b in (0, 1)]
        a, b = divmod(int(np.argmax(np.maximum(window, 0.0) if relu else window)), 2)
        if not relu or z[n, 2 * i + a, 2 * j + b, o] > 0:
            dz[n, 2 * i + a, 2 * j + b, o] = dy[n, i, j, o]
    return conv2d_grad_weight(x, dz, w.shape[:2], 1, padding), dz.sum(axis=(0, 1, 2))


def bias_add(y, b):
    """y + b over the last (channel) axis, in float64."""
    return np.asarray(y, dtype=np.float64) + np.asarray(b, dtype=np.float64)


def depth_columns(x, kernel_d, stride_d, pad_d, dilation_d, groups, out_d):
    """Conv3D's depth taps on the channel axis, element by element: cols[n * OD + o, h, w,
    (g * KD + t) * CG + c] = x[n, o * stride_d + t * dilation_d - pad_d, h, w, g * CG + c], 0 outside."""
    x = np.asarray(x, dtype=np.float64)
    n, d, h, w, ch = x.shape
    cg = ch // groups
    cols = np.zeros((n * out_d, h, w, groups * kernel_d * cg))
    for i, o, g, t in np.ndindex(n, out_d, groups, kernel_d):
        src = o * stride_d + t * dilation_d - pad_d
        if 0 <= src < d:
            cols[i * out_d + o, :, :, (g * kernel_d + t) * cg:(g * kernel_d + t + 1) * cg] = \
                x[i, src, :, :, g * cg:(g + 1) * cg]
    return cols


def depth_columns_vjp(dcols, x_shape, kernel_d, stride_d, pad_d, dilation_d, groups):
    """The gradient of depth_columns' input: each tap's slice added back at its source depth."""
    dcols = np.asarray(dcols, dtype=np.float64)
    n, d, h, w, ch = x_shape
    cg, out_d = ch // groups, dcols.shape[0] // n
    dx = np.zeros(x_shape)
    for i, o, g, t in np.ndindex(n, out_d, groups, kernel_d):
        src = o * stride_d + t * dilation_d - pad_d
        if 0 <= src < d:
            dx[i, src, :, :, g * cg:(g + 1) * cg] += \
                dcols[i * out_d + o, :, :, (g * kernel_d + t) * cg:(g * kernel_d + t + 1) * cg]
    return dx


def kernel_depth_to_channels(w):
    """(KD, KH, KW, CG, O) -> (KH, KW, KD * CG, O): w2[kh, kw, t * CG + c, o] = w[t, kh, kw, c, o]."""
    kd, kh, kw, cg, o = w.shape
    w2 = np.zeros((kh, kw, kd * cg, o), dtype=w.dtype)
    for t, c in np.ndindex(kd, cg):
        w2[:, :, t * cg + c] = w[t, :, :, c]
    return w2


def kernel_channels_to_depth(w2, kernel_d):
    """The inverse of kernel_depth_to_channels."""
    kh, kw, kdcg, o = w2.shape
    cg = kdcg // kernel_d
    w = np.zeros((kernel_d, kh, kw, cg, o), dtype=w2.dtype)
    for t, c in np.ndindex(kernel_d, cg):
        w[t, :, :, c] = w2[:, :, t * cg + c]
    return w
