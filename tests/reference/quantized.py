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
