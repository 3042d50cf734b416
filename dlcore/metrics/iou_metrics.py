"""Intersection-over-union metrics, as ``keras.metrics`` (IoU, MeanIoU, OneHotIoU, OneHotMeanIoU,
BinaryIoU): predictions and labels accumulate in a (num_classes, num_classes) confusion matrix
(rows: true class, columns: predicted class), and ``result`` is the mean, over the target
classes with a non-empty union, of TP / (TP + FP + FN).

As in Keras 3, the metric's dtype defaults to "int64" and labels, predictions and sample weights
are cast to it (float weights are truncated there, with Keras's warning); pass ``dtype="float32"``
for fractional weights. Entries whose label or prediction lies outside [0, num_classes), or
whose label is ``ignore_class``, are left out.
"""
import warnings

import numpy as np

from ..registry import register
from .base import _KIND, Metric, _np


def _check_num_classes(name, num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"{name}: num_classes must be a positive int; received "
                         f"num_classes={num_classes!r}")
    return int(num_classes)


class _IoUBase(Metric):
    """The confusion-matrix accumulator shared by the IoU metrics."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype or "int64")
        self.num_classes = _check_num_classes(self.name, num_classes)
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.total_cm = self._add_accumulator((self.num_classes, self.num_classes),
                                              name="total_confusion_matrix")

    def _labels(self, x, sparse, what):
        x = _np(x)
        if x.dtype.kind not in "biuf":
            raise ValueError(f"{self.name}: {what} must be numeric; received dtype {x.dtype}")
        if not sparse:
            if x.ndim == 0:
                raise ValueError(f"{self.name}: one-hot {what} needs a class axis; received a scalar")
            x = np.argmax(x, axis=self.axis)
        return x.astype(self.dtype).reshape(-1)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Add the (weighted) confusion matrix of this batch. y_true, y_pred: class ids of any
        (equal-size) shape, or scores / one-hot along ``axis`` when not sparse."""
        t = self._labels(y_true, self.sparse_y_true, "y_true")
        p = self._labels(y_pred, self.sparse_y_pred, "y_pred")
        if t.size != p.size:
            raise ValueError(f"{self.name}: y_true and y_pred must hold as many labels; received "
                             f"{t.size} and {p.size} (shapes {np.shape(_np(y_true))} and "
                             f"{np.shape(_np(y_pred))})")
        if sample_weight is None:
            sw = np.ones(t.shape, dtype=self.dtype)
        else:
            sw = _np(sample_weight)
            if sw.dtype.kind == "f" and np.dtype(self.dtype).kind in "iu":
                warnings.warn("You are passing weight as `float`, but dtype is `int`. This may result "
                              "in an incorrect weight due to type casting Consider using integer "
                              "weights.", stacklevel=2)
            sw = sw.astype(self.dtype).reshape(-1) if sw.ndim > 1 else sw.astype(self.dtype)
            try:
                sw = np.broadcast_to(sw, t.shape)
            except ValueError:
                raise ValueError(f"{self.name}: sample_weight of shape {np.shape(_np(sample_weight))} "
                                 f"does not broadcast to the {t.size} labels") from None
        n = self.num_classes
        valid = (t >= 0) & (t < n) & (p >= 0) & (p < n)
        if self.ignore_class is not None:
            valid &= t != self.ignore_class
        index = t[valid].astype(np.int64) * n + p[valid].astype(np.int64)
        counts = np.bincount(index, weights=sw[valid].astype(np.float64), minlength=n * n)
        self.total_cm.value[...] += counts.reshape(n, n)

    def _ious(self):
        cm = self.total_cm.value.astype(self.dtype).astype(np.float64)
        tp = np.diag(cm)
        return tp, cm.sum(axis=0) + cm.sum(axis=1) - tp


def _check_targets(name, target_class_ids, num_classes):
    try:
        ids = [int(i) for i in target_class_ids]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: target_class_ids must be a list of class ids; received "
                         f"{target_class_ids!r}") from None
    if not ids:
        raise ValueError(f"{name}: target_class_ids must not be empty")
    if max(ids) >= num_classes or min(ids) < 0:
        bad = max(ids) if max(ids) >= num_classes else min(ids)
        raise ValueError(f"Target class id {bad} is out of range, which is [0, {num_classes}).")
    return ids


@register(_KIND)
class IoU(_IoUBase):
    """The mean IoU over ``target_class_ids`` (classes with an empty union are not counted)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)
        self.target_class_ids = _check_targets(self.name, target_class_ids, self.num_classes)

    def result(self):
        tp, union = self._ious()
        ids = np.asarray(self.target_class_ids)
        tp, union = tp[ids].astype(np.float32), union[ids].astype(np.float32)
        valid = union > 1e-9
        iou = np.where(valid, tp / (union + np.float32(1e-7)), np.float32(0))
        return np.float32(iou.sum() / (valid.sum() + np.float32(1e-7)))

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


@register(_KIND)
class BinaryIoU(IoU):
    """IoU of two classes, the prediction being 1 where ``y_pred >= threshold``."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise ValueError(f"{self.name}: threshold must be a number; received threshold={threshold!r}")
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _np(y_pred)
        if p.dtype.kind not in "biuf":
            raise ValueError(f"{self.name}: y_pred must be numeric; received dtype {p.dtype}")
        return super().update_state(y_true, (p.astype(np.float32) >= self.threshold).astype(np.int64),
                                    sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}


@register(_KIND)
class MeanIoU(IoU):
    """The mean IoU over every class."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        num_classes = _check_num_classes(name or "mean_io_u", num_classes)
        super().__init__(num_classes, list(range(num_classes)), name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@register(_KIND)
class OneHotIoU(IoU):
    """IoU with one-hot labels (and, by default, scores) along ``axis``, argmaxed first."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False, sparse_y_pred=sparse_y_pred,
                         axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
                "name": self.name, "dtype": self.dtype, "ignore_class": self.ignore_class,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


@register(_KIND)
class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot labels (and, by default, scores) along ``axis``."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}
