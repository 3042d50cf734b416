"""F-scores: FBetaScore and F1Score."""
import numpy as np

from .. import config
from ..registry import register
from .base import _KIND, Metric, _np


@register(_KIND)
class FBetaScore(Metric):
    """F-beta score per class (or averaged: "micro", "macro", "weighted"), as Keras: y_pred is
    binarized by ``threshold`` (None: the row maximum)."""

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError("Invalid `average` argument value. Expected one of: {None, 'micro', "
                             f"'macro', 'weighted'}}. Received: average={average}")
        if not isinstance(beta, (int, float, np.floating)) or isinstance(beta, bool) or beta <= 0.0:
            raise ValueError("Invalid `beta` argument value. It should be a Python float > 0. "
                             f"Received: beta={beta}")
        if threshold is not None and (not isinstance(threshold, (float, np.floating))
                                      or not 0.0 < threshold <= 1.0):
            raise ValueError("Invalid `threshold` argument value. It should be a Python float in "
                             f"the range ]0, 1]. Received: threshold={threshold}")
        self.average = average
        self.beta = float(beta)
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self._built = False

    def _build(self, t_shape, p_shape):
        if len(p_shape) != 2 or len(t_shape) != 2:
            raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). "
                             f"Received input shapes: y_pred.shape={p_shape} and y_true.shape={t_shape}.")
        shape = () if self.average == "micro" else (p_shape[-1],)
        self.true_positives = self._add_accumulator(shape, name="true_positives")
        self.false_positives = self._add_accumulator(shape, name="false_positives")
        self.false_negatives = self._add_accumulator(shape, name="false_negatives")
        self.intermediate_weights = self._add_accumulator(shape, name="intermediate_weights")
        self._built = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        t = _np(y_true, np.float64)
        p = _np(y_pred, np.float64)
        if not self._built:
            self._build(t.shape, p.shape)
        if self.threshold is None:
            p = (p >= p.max(axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            p = p > self.threshold
        p = p.astype(np.float64)
        sw = None if sample_weight is None else _np(sample_weight, np.float64).reshape(-1, 1)

        def weighted_sum(v):
            if sw is not None:
                v = v * sw
            return np.sum(v, axis=self.axis)

        self.true_positives.assign_add(weighted_sum(p * t))
        self.false_positives.assign_add(weighted_sum(p * (1 - t)))
        self.false_negatives.assign_add(weighted_sum((1 - p) * t))
        self.intermediate_weights.assign_add(weighted_sum(t))

    def result(self):
        if not self._built:
            return self._out(0.0)
        eps = config.epsilon()
        tp, fp, fn = self.true_positives.value, self.false_positives.value, self.false_negatives.value
        precision = tp / (tp + fp + eps)
        recall = tp / (tp + fn + eps)
        b2 = self.beta ** 2
        f = precision * recall / (b2 * precision + recall + eps) * (1 + b2)
        if self.average == "weighted":
            weights = self.intermediate_weights.value / (np.sum(self.intermediate_weights.value) + eps)
            f = np.sum(f * weights)
        elif self.average is not None:
            f = np.mean(f)
        return self._out(f)

    def reset_state(self):
        super().reset_state()

    def get_config(self):
        return {**super().get_config(), "average": self.average, "beta": self.beta,
                "threshold": self.threshold}


@register(_KIND)
class F1Score(FBetaScore):
    """F1 score (FBetaScore with beta = 1)."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config_ = super().get_config()
        del config_["beta"]
        return config_
