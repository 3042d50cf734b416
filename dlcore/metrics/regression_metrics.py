"""Regression and probabilistic metrics: the loss functions, averaged over the samples seen."""
import numpy as np

from ..autograd import no_grad
from ..ops import losses as _losses
from ..registry import register
from .accuracy_metrics import _same_shape
from .base import _KIND, Mean, _float, _np, _Wrapper


def cosine_similarity(y_true, y_pred, axis=-1):
    """sum(l2_normalize(y_true) * l2_normalize(y_pred), axis) (the metric's sign: 1 = aligned)."""
    with no_grad():
        return -_np(_losses.cosine_similarity(y_true, y_pred, axis=axis))


def _loss_metric(class_name, function, default_name, doc, extra=()):
    """A _Wrapper subclass around a per-sample loss function; ``extra``: (arg, default) pairs."""

    def __init__(self, name=default_name, dtype=None, **kwargs):
        unknown = set(kwargs) - {k for k, _ in extra}
        if unknown:
            raise TypeError(f"{class_name}() got unexpected arguments {sorted(unknown)}")
        args = {k: kwargs.get(k, default) for k, default in extra}
        _Wrapper.__init__(self, name=name, dtype=dtype, **args)

    cls = type(class_name, (_Wrapper,), {"_function": staticmethod(function), "__init__": __init__,
                                         "__doc__": doc, "__module__": __name__})
    return register(_KIND)(cls)


MeanSquaredError = _loss_metric("MeanSquaredError", _losses.mean_squared_error,
                                "mean_squared_error", "The mean of (y_true - y_pred)**2.")
MeanAbsoluteError = _loss_metric("MeanAbsoluteError", _losses.mean_absolute_error,
                                 "mean_absolute_error", "The mean of |y_true - y_pred|.")
MeanAbsolutePercentageError = _loss_metric(
    "MeanAbsolutePercentageError", _losses.mean_absolute_percentage_error,
    "mean_absolute_percentage_error", "100 * mean(|(y_true - y_pred) / y_true|).")
MeanSquaredLogarithmicError = _loss_metric(
    "MeanSquaredLogarithmicError", _losses.mean_squared_logarithmic_error,
    "mean_squared_logarithmic_error", "mean((log(y_true + 1) - log(y_pred + 1))**2).")
LogCoshError = _loss_metric("LogCoshError", _losses.log_cosh, "logcosh",
                            "mean(log(cosh(y_pred - y_true))).")
Hinge = _loss_metric("Hinge", _losses.hinge, "hinge", "mean(max(1 - y_true * y_pred, 0)).")
SquaredHinge = _loss_metric("SquaredHinge", _losses.squared_hinge, "squared_hinge",
                            "mean(max(1 - y_true * y_pred, 0)**2).")
CategoricalHinge = _loss_metric("CategoricalHinge", _losses.categorical_hinge, "categorical_hinge",
                                "max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0).")
KLDivergence = _loss_metric("KLDivergence", _losses.kl_divergence, "kl_divergence",
                            "sum(y_true * log(y_true / y_pred)).")
Poisson = _loss_metric("Poisson", _losses.poisson, "poisson",
                       "mean(y_pred - y_true * log(y_pred + eps)).")
CosineSimilarity = _loss_metric("CosineSimilarity", cosine_similarity, "cosine_similarity",
                                "The mean cosine similarity of y_true and y_pred along ``axis``.",
                                extra=(("axis", -1),))
BinaryCrossentropy = _loss_metric(
    "BinaryCrossentropy", _losses.binary_crossentropy, "binary_crossentropy",
    "The mean binary cross-entropy.", extra=(("from_logits", False), ("label_smoothing", 0)))
CategoricalCrossentropy = _loss_metric(
    "CategoricalCrossentropy", _losses.categorical_crossentropy, "categorical_crossentropy",
    "The mean categorical cross-entropy.",
    extra=(("from_logits", False), ("label_smoothing", 0), ("axis", -1)))
SparseCategoricalCrossentropy = _loss_metric(
    "SparseCategoricalCrossentropy", _losses.sparse_categorical_crossentropy,
    "sparse_categorical_crossentropy", "The mean sparse categorical cross-entropy.",
    extra=(("from_logits", False), ("axis", -1)))


@register(_KIND)
class RootMeanSquaredError(Mean):
    """sqrt of the (weighted) mean of (y_pred - y_true)**2."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _float(y_pred)
        t = _np(y_true).astype(p.dtype, copy=False)
        t, p = _same_shape(self.name, t, p)
        return super().update_state(np.square(p - t), sample_weight=sample_weight)

    def result(self):
        return self._out(np.sqrt(float(super().result())))
