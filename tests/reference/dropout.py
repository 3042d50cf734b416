"""NumPy reference for the dropout kernels (inverted dropout, as Keras): a value is kept where its
uniform draw u >= rate and scaled by 1 / (1 - rate); the gradient is the same mask and scale."""
import numpy as np


def dropout(x, u, rate):
    """(y, mask) in x's dtype / uint8: y = x * mask / (1 - rate), mask = u >= rate."""
    x = np.asarray(x)
    mask = (np.asarray(u, dtype=np.float64) >= rate).astype(np.uint8)
    scale = x.dtype.type(1.0 / (1.0 - rate))
    return np.where(mask == 1, x * scale, x.dtype.type(0)), mask


def dropout_backward(dy, mask, rate):
    """dx = dy * mask / (1 - rate), in dy's dtype."""
    dy = np.asarray(dy)
    return np.where(np.asarray(mask) == 1, dy * dy.dtype.type(1.0 / (1.0 - rate)), dy.dtype.type(0))


def philox4x32_10(counter, key):
    """The four 32-bit words of Philox4x32-10 (Random123) at ``counter`` (4 ints) under ``key`` (2 ints)."""
    c, (k0, k1) = list(counter), key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k1, p0 & 0xFFFFFFFF]
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c


def philox_uniform(key0, key1, n, dtype):
    """u[i] from Philox4x32-10 under key (key0, key1): float32 element i is word i % 4 of the block at
    counter (i // 4, 0, 0, 0), its top 24 bits over 2**24; float64 element i takes words 2 (i % 2) and
    2 (i % 2) + 1 of block i // 2, (w >> 5) * 2**26 + (w' >> 6) over 2**53 (as NumPy's doubles)."""
    u = np.empty(n, dtype=dtype)
    per = 4 if np.dtype(dtype) == np.float32 else 2
    for i in range(n):
        block = i // per
        words = philox4x32_10((block & 0xFFFFFFFF, block >> 32, 0, 0), (key0, key1))
        if per == 4:
            u[i] = (words[i % 4] >> 8) / 2.0 ** 24
        else:
            w0, w1 = words[2 * (i % 2)], words[2 * (i % 2) + 1]
            u[i] = ((w0 >> 5) * 2 ** 26 + (w1 >> 6)) / 2.0 ** 53
    return u
