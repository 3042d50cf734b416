"""Reference per-sample losses in plain NumPy (never imports dlcore).

Written from the published Keras 3 definitions (keras/src/losses/losses.py and the TensorFlow
backend's keras/src/backend/tensorflow/nn.py): each loss is reduced over the LAST axis only.
Clip bounds are rounded to the input dtype before clipping, as TF casts `epsilon()` and
`1 - epsilon()` to the tensor dtype; everything after the clip is evaluated in float64.

Legend: M samples, D values per sample, C classes.
"""
import numpy as np

EPSILON = 1e-7  # keras.backend.epsilon()


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _clip(p, eps):
    p = np.asarray(p)
    lo = np.asarray(eps, dtype=p.dtype)
    hi = np.asarray(1.0 - eps, dtype=p.dtype)
    return np.clip(p, lo, hi).astype(np.float64)


def _logsumexp(x):
    mx = np.max(x, axis=-1, keepdims=True)
    return (mx + np.log(np.sum(np.exp(x - mx), axis=-1, keepdims=True)))[..., 0]


def _softplus(z):
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def mean_squared_error(y_true, y_pred):
    return np.mean(np.square(_f64(y_true) - _f64(y_pred)), axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.mean(np.abs(_f64(y_true) - _f64(y_pred)), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    error = _f64(y_pred) - _f64(y_true)
    abs_error = np.abs(error)
    return np.mean(
        np.where(abs_error <= delta, 0.5 * np.square(error), delta * abs_error - 0.5 * delta**2),
        axis=-1,
    )


def log_cosh(y_true, y_pred):
    x = _f64(y_pred) - _f64(y_true)
    return np.mean(x + _softplus(-2.0 * x) - np.log(2.0), axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, eps=EPSILON):
    t = _f64(y_true)
    if from_logits:
        x = _f64(y_pred)
        # tf.nn.sigmoid_cross_entropy_with_logits
        bce = np.maximum(x, 0.0) - x * t + np.log1p(np.exp(-np.abs(x)))
    else:
        p = _clip(y_pred, eps)
        bce = -(t * np.log(p) + (1.0 - t) * np.log(1.0 - p))
    return np.mean(bce, axis=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, eps=EPSILON):
    t = _f64(y_true)
    if from_logits:
        x = _f64(y_pred)
        log_softmax = x - _logsumexp(x)[..., None]
        return -np.sum(t * log_softmax, axis=-1)
    p = np.asarray(y_pred)
    p = p / np.sum(p, axis=-1, keepdims=True)
    p = _clip(p, eps)
    return -np.sum(t * np.log(p), axis=-1)


def sparse_categorical_crossentropy(labels, y_pred, from_logits=False, eps=EPSILON):
    labels = np.asarray(labels, dtype=np.int64)
    if from_logits:
        q = _f64(y_pred)
    else:
        q = np.log(_clip(y_pred, eps))
    # tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits=q)
    picked = np.take_along_axis(q, labels[..., None], axis=-1)[..., 0]
    return _logsumexp(q) - picked
