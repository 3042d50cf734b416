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
