"""Reference pooling, padding and upsampling: plain NumPy in float64, from the definitions.

Written independently of dlcore (never imports it). Inputs are channels_last, (N, H, W, C).
Padded cells are NaN, so max/mean over a window skip them (np.nanmax / np.nanmean): "same"
padding never counts a padded cell, as Keras. Windows are visited one by one in Python: slow,
obviously right, and only used on small shapes.
"""
import numpy as np


def output_length(n, pool, stride, padding):
    if padding == "same":
        return -(-n // stride)
    return (n - pool) // stride + 1


def pad_before(n, pool, stride, padding):
    if padding != "same":
        return 0
    out = -(-n // stride)
    return max((out - 1) * stride + pool - n, 0) // 2


def _windows(x, pool, strides, padding):
    """(oh, ow, window) for each output cell; window (N, PH, PW, C) with NaN where padded."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    oh = output_length(h, pool[0], strides[0], padding)
    ow = output_length(w, pool[1], strides[1], padding)
    pt = pad_before(h, pool[0], strides[0], padding)
    pl = pad_before(w, pool[1], strides[1], padding)
    big = np.full((n, h + 2 * pool[0] + pt, w + 2 * pool[1] + pl, c), np.nan)
    big[:, pt:pt + h, pl:pl + w] = x
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * strides[0], j * strides[1]
            yield i, j, (r0 - pt, c0 - pl), big[:, r0:r0 + pool[0], c0:c0 + pool[1]]
    return oh, ow


def pool2d(x, pool, strides, padding, mode):
    """Max ("max") or mean ("average") pooling of (N, H, W, C) x, padded cells excluded."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    oh = output_length(h, pool[0], strides[0], padding)
    ow = output_length(w, pool[1], strides[1], padding)
    y = np.empty((n, oh, ow, c))
    for i, j, _, win in _windows(x, pool, strides, padding):
        y[:, i, j] = np.nanmax(win, axis=(1, 2)) if mode == "max" else np.nanmean(win, axis=(1, 2))
    return y


def pool2d_backward(x, dy, pool, strides, padding, mode):
    """The gradient of sum(pool2d(x) * dy) with respect to x: max sends each dy to the first
    maximum of its window (row-major order), average spreads it over the real cells."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    dx = np.zeros_like(x)
    for i, j, (top, left), win in _windows(x, pool, strides, padding):
        flat = win.reshape(n, -1, c)
        for b in range(n):
            for ch in range(c):
                cells = flat[b, :, ch]
                valid = np.flatnonzero(~np.isnan(cells))
                if mode == "max":
                    k = valid[np.argmax(cells[valid])]
                    targets = [k]
                    share = dy[b, i, j, ch]
                else:
                    targets = valid
                    share = dy[b, i, j, ch] / len(valid)
                for k in targets:
                    r, q = divmod(int(k), pool[1])
                    dx[b, top + r, left + q, ch] += share
    return dx


def upsample_nearest(x, size):
    return np.repeat(np.repeat(np.asarray(x, dtype=np.float64), size[0], axis=1), size[1], axis=2)


def upsample_bilinear(x, size):
    """Half-pixel bilinear upsampling (tf.image.resize "bilinear"), pixel by pixel."""
    x = np.asarray(x, dtype=np.float64)
    n, h, w, c = x.shape
    y = np.empty((n, h * size[0], w * size[1], c))

    def source(i, factor, length):
        s = min(max((i + 0.5) / factor - 0.5, 0.0), length - 1)
        lo = int(np.floor(s))
        return lo, min(lo + 1, length - 1), s - lo

    for i in range(h * size[0]):
        r0, r1, tr = source(i, size[0], h)
        for j in range(w * size[1]):
            c0, c1, tc = source(j, size[1], w)
            top = x[:, r0, c0] * (1 - tc) + x[:, r0, c1] * tc
            bottom = x[:, r1, c0] * (1 - tc) + x[:, r1, c1] * tc
            y[:, i, j] = top * (1 - tr) + bottom * tr
    return y


def reflect_pad(x, padding):
    """Mirror padding without repeating the edge: [a, b, c] by 2 -> [c, b, a, b, c, b, a]."""
    x = np.asarray(x, dtype=np.float64)
    (t, b), (l, r) = padding
    n, h, w, c = x.shape
    rows = [abs(i) if i < h else 2 * (h - 1) - i for i in range(-t, h + b)]
    cols = [abs(j) if j < w else 2 * (w - 1) - j for j in range(-l, w + r)]
    return x[:, rows][:, :, cols]


def global_pool(x, mode):
    """Max ("max") or mean ("average") over the L axis of (N, L, C) x, in float64."""
    x = np.asarray(x, dtype=np.float64)
    return x.max(axis=1) if mode == "max" else x.mean(axis=1)


def global_pool_backward(x, dy, mode):
    """dx (N, L, C) for dy (N, C): the max's gradient split evenly among the cells equal to the
    max (TensorFlow's reduce_max gradient); the mean's spread evenly over L."""
    x, dy = np.asarray(x, dtype=np.float64), np.asarray(dy, dtype=np.float64)
    if mode == "max":
        hit = x == x.max(axis=1, keepdims=True)
        return hit / hit.sum(axis=1, keepdims=True) * dy[:, None]
    return np.broadcast_to(dy[:, None] / x.shape[1], x.shape).copy()


def pool3d(x, pool, strides, padding, mode):
    """Max or mean pooling of (N, D, H, W, C) x over each 3-D window, padded (NaN) cells excluded."""
    x = np.asarray(x, dtype=np.float64)
    spatial = x.shape[1:4]
    out = [output_length(n, p, s, padding) for n, p, s in zip(spatial, pool, strides)]
    before = [pad_before(n, p, s, padding) for n, p, s in zip(spatial, pool, strides)]
    big = np.full((x.shape[0],) + tuple(n + 2 * p for n, p in zip(spatial, pool)) + x.shape[4:], np.nan)
    big[(slice(None),) + tuple(slice(b, b + n) for b, n in zip(before, spatial))] = x
    y = np.empty((x.shape[0], *out, x.shape[4]))
    for idx in np.ndindex(*out):
        win = big[(slice(None),) + tuple(slice(i * s, i * s + p) for i, s, p in zip(idx, strides, pool))]
        y[(slice(None),) + idx] = np.nanmax(win, axis=(1, 2, 3)) if mode == "max" else np.nanmean(win, axis=(1, 2, 3))
    return y
