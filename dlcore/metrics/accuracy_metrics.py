"""Accuracy metrics: the per-sample functions (NumPy) and their Mean wrappers."""
import numpy as np

from .. import config
from ..ops.losses import squeeze_or_expand_to_same_rank
from ..registry import register
from .base import _KIND, _np, _Wrapper


# ---- accuracy functions (NumPy) -------------------------------------------------------------
def _same_shape(name, t, p):
    t, p = squeeze_or_expand_to_same_rank(t, p)
    if t.shape != p.shape:
        raise ValueError(f"{name}: y_true and y_pred must have the same shape; received "
                         f"y_true.shape={t.shape}, y_pred.shape={p.shape}")
    return t, p


def accuracy(y_true, y_pred):
    """mean(y_true == y_pred, axis=-1)."""
    p = _np(y_pred)
    t = _np(y_true).astype(p.dtype, copy=False)
    t, p = _same_shape("accuracy", t, p)
    return np.mean(np.equal(t, p), axis=-1, dtype=config.floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """mean(y_true == (y_pred > threshold), axis=-1)."""
    t, p = _same_shape("binary_accuracy", _np(y_true), _np(y_pred))
    threshold = np.asarray(threshold, dtype=p.dtype) if p.dtype.kind == "f" else threshold
    predicted = (p > threshold).astype(t.dtype)
    return np.mean(np.equal(t, predicted), axis=-1, dtype=config.floatx())


def categorical_accuracy(y_true, y_pred):
    """argmax(y_true, -1) == argmax(y_pred, -1), per sample."""
    t, p = _np(y_true), _np(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"categorical_accuracy: y_true (one-hot) and y_pred must have the same "
                         f"shape; received y_true.shape={t.shape}, y_pred.shape={p.shape}")
    return np.equal(np.argmax(t, axis=-1), np.argmax(p, axis=-1)).astype(config.floatx())


def _sparse_targets(name, t, p):
    received = t.shape
    if t.ndim == p.ndim and t.shape[-1:] == (1,):
        t = t.reshape(t.shape[:-1])
    if t.shape != p.shape[:-1]:
        raise ValueError(f"{name}: y_true must hold one integer label per sample, of shape "
                         f"{p.shape[:-1]} for y_pred of shape {p.shape}; received "
                         f"y_true.shape={received}")
    return t


def sparse_categorical_accuracy(y_true, y_pred):
    """y_true == argmax(y_pred, -1), per sample (y_true: integer labels, (N,) or (N, 1))."""
    t, p = _np(y_true), _np(y_pred)
    t = _sparse_targets("sparse_categorical_accuracy", t, p)
    return np.equal(t, np.argmax(p, axis=-1).astype(t.dtype)).astype(config.floatx())


def _in_top_k(targets, predictions, k):
    """tf.math.in_top_k: fewer than k classes score strictly higher than the target (ties count
    in); False for out-of-range targets or rows with non-finite scores."""
    c = predictions.shape[-1]
    targets = np.asarray(targets)
    in_range = (targets >= 0) & (targets < c) & (targets == np.round(targets))
    safe = np.where(in_range, targets, 0).astype(np.int64)
    target_scores = np.take_along_axis(predictions, safe[:, None], axis=-1)
    higher = np.sum(predictions > target_scores, axis=-1)
    finite = np.all(np.isfinite(predictions), axis=-1)
    return in_range & finite & (higher < k)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether argmax(y_true) is among the k highest scores of y_pred, per sample."""
    t, p = _np(y_true), _np(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"top_k_categorical_accuracy: y_true (one-hot) and y_pred must have the "
                         f"same shape; received y_true.shape={t.shape}, y_pred.shape={p.shape}")
    labels = np.argmax(t, axis=-1)
    matches = _in_top_k(labels.reshape(-1), p.reshape(-1, p.shape[-1]), k)
    return matches.reshape(labels.shape).astype(config.floatx())


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    """Whether the integer label is among the k highest scores of y_pred, per sample."""
    t, p = _np(y_true), _np(y_pred)
    t = _sparse_targets("sparse_top_k_categorical_accuracy", t, p)
    matches = _in_top_k(t.reshape(-1), p.reshape(-1, p.shape[-1]), k)
    return matches.reshape(t.shape).astype(config.floatx())


# ---- accuracy metrics ------------------------------------------------------------------------
@register(_KIND)
class Accuracy(_Wrapper):
    """How often y_pred equals y_true."""

    _function = staticmethod(accuracy)

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class BinaryAccuracy(_Wrapper):
    """How often (y_pred > threshold) equals the binary y_true."""

    _function = staticmethod(binary_accuracy)

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if threshold is not None and (threshold <= 0 or threshold >= 1):
            raise ValueError("Invalid value for argument `threshold`. Expected a value in interval "
                             f"(0, 1). Received: threshold={threshold}")
        super().__init__(name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold


@register(_KIND)
class CategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals argmax(one-hot y_true)."""

    _function = staticmethod(categorical_accuracy)

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class SparseCategoricalAccuracy(_Wrapper):
    """How often argmax(y_pred) equals the integer label."""

    _function = staticmethod(sparse_categorical_accuracy)

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)


@register(_KIND)
class TopKCategoricalAccuracy(_Wrapper):
    """How often the one-hot target is among the top ``k`` predictions."""

    _function = staticmethod(top_k_categorical_accuracy)

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=k)
        self.k = k


@register(_KIND)
class SparseTopKCategoricalAccuracy(_Wrapper):
    """How often the integer target is among the top ``k`` predictions."""

    _function = staticmethod(sparse_top_k_categorical_accuracy)

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype, k=k)
        self.k = k
