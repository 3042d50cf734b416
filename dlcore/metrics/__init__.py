"""dlcore.metrics: metrics, as ``keras.metrics`` (Keras 3 names, arguments, defaults and formulas).

A :class:`Metric` is stateful: ``update_state(y_true, y_pred, sample_weight=None)`` accumulates,
``result()`` returns the value (a NumPy float32 scalar, or an array for several thresholds),
``reset_state()`` starts over. Metrics are not differentiated: states are NumPy float64
accumulators, updated with vectorized NumPy (and, for the loss-based metrics, the Cython loss
kernels), so they are cheap to run on every batch. Sample weights follow Keras: a weighted mean
for the mean metrics, weighted counts for the confusion-matrix metrics.

The confusion-matrix metrics (Precision, Recall, AUC, TruePositives, ...) reproduce Keras's
``update_confusion_matrix_variables``: a prediction is positive when strictly greater than the
threshold; evenly spaced thresholds (AUC's default) use Keras's bucketing in float32, so the
counts, and AUC's interpolated areas, are Keras's.
"""
from .. import registry
from ..ops import losses as _losses
from ..registry import register
from .accuracy_metrics import (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy,
                               SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, accuracy,
                               binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                               sparse_top_k_categorical_accuracy, top_k_categorical_accuracy)
from .base import _KIND, Mean, MeanMetricWrapper, Metric, Sum
from .confusion_metrics import (AUC, FalseNegatives, FalsePositives, Precision, Recall, TrueNegatives,
                                TruePositives, confusion_counts,
                                is_evenly_distributed_thresholds)  # noqa: F401  (public, as before)
from .f_score_metrics import F1Score, FBetaScore
from .iou_metrics import BinaryIoU, IoU, MeanIoU, OneHotIoU, OneHotMeanIoU
from .regression_metrics import (BinaryCrossentropy, CategoricalCrossentropy, CategoricalHinge,
                                 CosineSimilarity, Hinge, KLDivergence, LogCoshError, MeanAbsoluteError,
                                 MeanAbsolutePercentageError, MeanSquaredError, MeanSquaredLogarithmicError,
                                 Poisson, R2Score, RootMeanSquaredError, SparseCategoricalCrossentropy,
                                 SquaredHinge, cosine_similarity)


# ---- functions, under their Keras names (get() wraps them in MeanMetricWrapper) -------------
mean_squared_error = _losses.mean_squared_error
mean_absolute_error = _losses.mean_absolute_error
mean_absolute_percentage_error = _losses.mean_absolute_percentage_error
mean_squared_logarithmic_error = _losses.mean_squared_logarithmic_error
binary_crossentropy = _losses.binary_crossentropy
categorical_crossentropy = _losses.categorical_crossentropy
sparse_categorical_crossentropy = _losses.sparse_categorical_crossentropy
hinge = _losses.hinge
squared_hinge = _losses.squared_hinge
categorical_hinge = _losses.categorical_hinge
kl_divergence = _losses.kl_divergence
poisson = _losses.poisson
log_cosh = _losses.log_cosh
huber = _losses.huber

for _function in (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                  top_k_categorical_accuracy, sparse_top_k_categorical_accuracy, cosine_similarity,
                  mean_squared_error, mean_absolute_error, mean_absolute_percentage_error,
                  mean_squared_logarithmic_error, binary_crossentropy, categorical_crossentropy,
                  sparse_categorical_crossentropy, hinge, squared_hinge, categorical_hinge,
                  kl_divergence, poisson, log_cosh, huber):
    register(_KIND)(_function)

# Keras's string aliases resolve to the classes
for _cls, _aliases in ((MeanSquaredError, ("mse", "MSE")), (MeanAbsoluteError, ("mae", "MAE")),
                       (MeanAbsolutePercentageError, ("mape", "MAPE")),
                       (MeanSquaredLogarithmicError, ("msle", "MSLE")),
                       (BinaryCrossentropy, ("bce", "BCE")), (KLDivergence, ("kld", "KLD")),
                       (AUC, ("auc",)), (Precision, ("precision",)), (Recall, ("recall",)),
                       (LogCoshError, ("logcosh",)), (RootMeanSquaredError, ("rmse",))):
    register(_KIND, *_aliases)(_cls)


# ---- lookup and (de)serialization --------------------------------------------------------------
def serialize(metric):
    """``{"class_name": ..., "config": ...}`` of a Metric, or a function's registered name."""
    return registry.serialize(_KIND, metric)


def deserialize(config_, custom_objects=None):
    """The metric (a Metric instance, or a function) described by ``config_``."""
    return registry.deserialize(_KIND, config_, custom_objects)


def get(identifier, custom_objects=None):
    """A Metric from a name, a config dict, a class, an instance (returned as is) or a function
    (wrapped in a MeanMetricWrapper named after it). Names give a fresh instance each call."""
    return registry.get(_KIND, identifier, custom_objects, accept=lambda obj: isinstance(obj, Metric),
                        wrap=lambda fn: MeanMetricWrapper(fn, name=getattr(fn, "__name__", None)))


__all__ = ["Metric", "Mean", "Sum", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
           "CategoricalAccuracy", "SparseCategoricalAccuracy", "TopKCategoricalAccuracy",
           "SparseTopKCategoricalAccuracy", "MeanSquaredError", "MeanAbsoluteError",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "RootMeanSquaredError",
           "LogCoshError", "CosineSimilarity", "Hinge", "SquaredHinge", "CategoricalHinge",
           "KLDivergence", "Poisson", "BinaryCrossentropy", "CategoricalCrossentropy",
           "SparseCategoricalCrossentropy", "TruePositives", "FalsePositives", "TrueNegatives",
           "FalseNegatives", "Precision", "Recall", "AUC", "FBetaScore", "F1Score",
           "IoU", "BinaryIoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU", "R2Score", "accuracy",
           "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
           "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "cosine_similarity",
           "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
           "mean_squared_logarithmic_error", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy", "hinge", "squared_hinge", "categorical_hinge",
           "kl_divergence", "poisson", "log_cosh", "huber", "confusion_counts", "get",
           "serialize", "deserialize"]
