"""The metric bases: Metric, Sum, Mean, MeanMetricWrapper.

A :class:`Metric` is stateful: ``update_state(y_true, y_pred, sample_weight=None)`` accumulates,
``result()`` returns the value (a NumPy float32 scalar, or an array for several thresholds),
``reset_state()`` starts over. States are non-trainable :class:`Variable` s (the built-ins'
are float64 accumulators) made by ``add_variable`` / ``add_weight`` and zeroed by
``reset_state``, so Keras 3 custom metrics (``self.v.assign(self.v + ...)``) run unchanged.
"""
import re

import numpy as np

from .. import config, registry
from ..autograd import no_grad
from ..ops.losses import squeeze_or_expand_to_same_rank
from ..registry import lookup, register
from ..tensor import Tensor, Variable

_KIND = "metric"


def _snake(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _np(x, dtype=None):
    x = x.value if isinstance(x, Tensor) else x
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def _float(x):
    a = _np(x)
    return a if a.dtype.kind == "f" else a.astype(config.floatx())


# ---- base classes ----------------------------------------------------------------------------
@register(_KIND)
class Metric:
    """Base class: subclasses implement ``update_state`` and ``result`` and create their states
    with ``add_variable`` (zeroed again by ``reset_state``)."""

    def __init__(self, name=None, dtype=None):
        self.name = name or _snake(type(self).__name__)
        self._dtype = np.dtype(dtype or config.floatx()).name
        self._states = {}

    @property
    def dtype(self):
        return self._dtype

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum", name=None):
        """A non-trainable state Variable of ``shape`` (in ``dtype``, default the metric's dtype),
        registered for ``reset_state`` (which zeroes it, as Keras does). ``initializer``: an
        initializer name or object, or a number."""
        if aggregation not in ("none", "mean", "sum", "only_first_replica"):
            raise ValueError(f"{self.name}: add_variable expects aggregation in ('none', 'mean', 'sum', "
                             f"'only_first_replica'), received {aggregation!r}")
        try:
            shape = tuple(int(d) for d in (shape if isinstance(shape, (tuple, list)) else (shape,)))
        except (TypeError, ValueError):
            raise TypeError(f"{self.name}: add_variable expects a shape (a tuple of ints), received "
                            f"{shape!r}") from None
        dtype = np.dtype(dtype or self.dtype)
        if initializer is None or (isinstance(initializer, (int, float)) and not isinstance(initializer, bool)):
            value = np.full(shape, 0 if initializer is None else initializer, dtype=dtype)
        else:
            from .. import initializers

            value = np.asarray(_np(initializers.get(initializer)(shape, dtype=dtype.name)), dtype=dtype)
        name = name or f"state_{len(self._states)}"
        state = Variable(value, trainable=False, name=name, dtype=dtype)
        state.path = f"{self.name}/{name}"
        self._states[name if name not in self._states else f"{name}_{len(self._states)}"] = state
        return state

    def _add_accumulator(self, shape, name):
        """The built-in metrics' states: float64 zeros, so long runs do not lose counts."""
        return self.add_variable(shape, initializer="zeros", dtype="float64", name=name)

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        """Keras's older spelling of ``add_variable`` (initializer None: zeros)."""
        return self.add_variable(shape, initializer=initializer, dtype=dtype, name=name)

    @property
    def variables(self):
        """The state Variables, in creation order."""
        return list(self._states.values())

    def reset_state(self):
        for state in self._states.values():
            state.value[...] = 0

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement update_state")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result")

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def _out(self, x):
        """A result in the metric's dtype: a NumPy scalar, or an array."""
        x = np.asarray(x, dtype=self._dtype)
        return x[()] if x.ndim == 0 else x

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _samplewise(values, sample_weight, reduce_fn, name):
    """Keras's ``reduce_to_samplewise_values``: per-sample values (and weights) for Mean/Sum."""
    values = _np(values, np.float64)
    if sample_weight is not None:
        sw = _np(sample_weight, np.float64)
        values, sw = squeeze_or_expand_to_same_rank(values, sw)
        w_ndim, v_ndim = sw.ndim, values.ndim
        if v_ndim > w_ndim:
            values = reduce_fn(values, axis=tuple(range(w_ndim, v_ndim)))
        try:
            sw = np.broadcast_to(sw, values.shape)
        except ValueError:
            raise ValueError(f"{name}: sample_weight of shape {np.shape(_np(sample_weight))} does not "
                             f"match the values of shape {np.shape(_np(values))}: expected the batch "
                             f"shape or a shape broadcastable to it") from None
        values = values * sw
        if w_ndim > 1:
            sw = reduce_fn(sw, axis=tuple(range(1, w_ndim)))
    else:
        sw = None
    if values.ndim > 1:
        values = reduce_fn(values, axis=tuple(range(1, values.ndim)))
    return values, sw


@register(_KIND)
class Sum(Metric):
    """The (weighted) sum of the values seen."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self._add_accumulator((), name="total")

    def update_state(self, values, sample_weight=None):
        values, _ = _samplewise(values, sample_weight, np.sum, self.name)
        self.total.value[...] += values.sum()

    def result(self):
        return self._out(self.total.value)


@register(_KIND)
class Mean(Metric):
    """The (weighted) mean of the values seen: sum(w * v) / sum(w) over samples."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self._add_accumulator((), name="total")
        self.count = self._add_accumulator((), name="count")

    def update_state(self, values, sample_weight=None):
        if type(values) is float and (sample_weight is None or type(sample_weight) in (int, float)):
            # a Python number (the training loop's loss tracker): the general path's float64
            # arithmetic without its arrays
            w = np.float64(1.0 if sample_weight is None else sample_weight)
            self.total.value[...] += np.float64(values) * w
            self.count.value[...] += w
            return
        values, sw = _samplewise(values, sample_weight, np.mean, self.name)
        self.total.value[...] += values.sum()
        if sw is not None:
            self.count.value[...] += sw.sum()
        else:
            self.count.value[...] += values.shape[0] if values.ndim >= 1 else 1

    def result(self):
        count = float(self.count.value)
        return self._out(float(self.total.value) / count if count else 0.0)


@register(_KIND)
class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred, **kwargs)`` over every sample seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if isinstance(fn, str):
            fn = lookup(_KIND, fn)
        super().__init__(name=name or getattr(fn, "__name__", None) or "mean_metric_wrapper",
                         dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def update_state(self, y_true, y_pred, sample_weight=None):
        with no_grad():
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        return super().update_state(_np(values), sample_weight=sample_weight)

    def get_config(self):
        config_ = {"name": self.name, "dtype": self.dtype, "fn": registry.serialize(_KIND, self._fn)}
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        config_ = dict(config_)
        if "fn" in config_:
            config_["fn"] = registry.deserialize(_KIND, config_["fn"])
        return cls(**config_)


class _Wrapper(MeanMetricWrapper):
    """A built-in MeanMetricWrapper: its config holds its own arguments, not ``fn``."""

    _function = None

    def __init__(self, name=None, dtype=None, **kwargs):
        super().__init__(type(self)._function, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        config_ = {"name": self.name, "dtype": self.dtype}
        config_.update(self._fn_kwargs)
        return config_

    @classmethod
    def from_config(cls, config_):
        return cls(**config_)

