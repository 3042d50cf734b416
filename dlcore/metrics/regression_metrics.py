"""Regression and probabilistic metrics: the loss functions, averaged over the samples seen,
and R2Score."""
import warnings

import numpy as np

from ..autograd import no_grad
from ..ops import losses as _losses
from ..ops.losses import squeeze_or_expand_to_same_rank
from ..registry import register
from .accuracy_metrics import _same_shape
from .base import _KIND, Mean, Metric, _float, _np, _Wrapper


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


@register(_KIND)
class R2Score(Metric):
    """The coefficient of determination 1 - SS_res / SS_tot per output column, aggregated by
    ``class_aggregation`` ("uniform_average", "variance_weighted_average", or None for one per
    column); with ``num_regressors`` p > 0, the adjusted R2, 1 - (1 - R2)(n - 1) / (n - p - 1),
    n counting every element seen (as Keras does). Inputs: (batch, outputs)."""

    AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        super().__init__(name=name, dtype=dtype)
        if class_aggregation not in self.AGGREGATIONS:
            raise ValueError(f"Invalid value for argument `class_aggregation`. Expected one of "
                             f"{self.AGGREGATIONS}. Received: class_aggregation={class_aggregation}")
        if (isinstance(num_regressors, bool) or not isinstance(num_regressors, (int, np.integer))
                or num_regressors < 0):
            raise ValueError(f"Invalid value for argument `num_regressors`. Expected an int >= 0. "
                             f"Received: num_regressors={num_regressors!r}")
        self.class_aggregation = class_aggregation
        self.num_regressors = int(num_regressors)
        self.num_samples = self._add_accumulator((), name="num_samples")
        self._columns = None

    def _build(self, outputs):
        self.squared_sum = self._add_accumulator((outputs,), name="squared_sum")
        self.sum = self._add_accumulator((outputs,), name="sum")
        self.total_mse = self._add_accumulator((outputs,), name="residual")
        self.count = self._add_accumulator((outputs,), name="count")
        self._columns = outputs

    def update_state(self, y_true, y_pred, sample_weight=None):
        p = _np(y_pred, np.float64)
        t = _np(y_true, np.float64)
        t, p = squeeze_or_expand_to_same_rank(t, p)
        if t.ndim != 2 or p.ndim != 2 or t.shape != p.shape:
            raise ValueError(f"R2Score expects 2D inputs with shape (batch_size, output_dim). Received "
                             f"input shapes: y_pred.shape={np.shape(_np(y_pred))} and "
                             f"y_true.shape={np.shape(_np(y_true))}.")
        if self._columns is None:
            self._build(p.shape[-1])
        elif p.shape[-1] != self._columns:
            raise ValueError(f"{self.name}: expected {self._columns} output columns (as in the first "
                             f"batch); received y_pred.shape={p.shape}")
        sw = np.ones(()) if sample_weight is None else _np(sample_weight, np.float64)
        if sw.ndim == 1:
            sw = sw[:, None]
        try:
            sw = np.broadcast_to(sw, t.shape)
        except ValueError:
            raise ValueError(f"{self.name}: sample_weight of shape {np.shape(_np(sample_weight))} does "
                             f"not broadcast to y_true of shape {t.shape}") from None
        self.sum.value[...] += np.sum(t * sw, axis=0)
        self.squared_sum.value[...] += np.sum(t * t * sw, axis=0)
        self.total_mse.value[...] += np.sum((t - p) ** 2 * sw, axis=0)
        self.count.value[...] += np.sum(sw, axis=0)
        self.num_samples.value[...] += t.size

    def result(self):
        if self._columns is None:
            return self._out(np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.sum.value / self.count.value
            total = self.squared_sum.value - self.sum.value * mean
            raw = 1.0 - self.total_mse.value / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = np.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            score = np.sum(total * raw) / np.sum(total)
        else:
            score = raw
        n, p = float(self.num_samples.value), self.num_regressors
        if p:
            if p > n - 1:
                warnings.warn("More independent predictors than datapoints in adjusted R2 score. "
                              "Falling back to standard R2 score.", stacklevel=2)
            elif p == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 "
                              "score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return self._out(score)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
