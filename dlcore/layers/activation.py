"""Activation layers: ReLU, LeakyReLU, Softmax, ELU, PReLU (Keras 3 names, arguments, defaults).

Each is an elementwise (or, for Softmax, per-axis) function of its input, so the output shape is
the input shape. PReLU is the one with a weight: ``alpha``, of the input's non-batch shape with
``shared_axes`` set to 1.
"""
import numbers
import warnings

import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..registry import register
from .layer import InputSpec, Layer


def _check_number(layer, name, value, minimum=None, allow_none=False):
    """``value`` as a float, or a ValueError naming the layer, what was expected and what came."""
    if value is None and allow_none:
        return None
    expected = "a number" if minimum is None else f"a number >= {minimum}"
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise ValueError(f"{layer}: `{name}` must be {expected}"
                         f"{' or None' if allow_none else ''}. Received: {name}={value!r}")
    return float(value)


class _Elementwise(Layer):
    """A layer whose output has the input's shape."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@register("layer")
class ReLU(_Elementwise):
    """Rectified linear unit, as ``keras.activations.relu``:

    ``max_value`` if x >= max_value; x if threshold < x < max_value;
    ``negative_slope * (x - threshold)`` otherwise.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.max_value = _check_number("ReLU", "max_value", max_value, minimum=0.0, allow_none=True)
        self.negative_slope = _check_number("ReLU", "negative_slope", negative_slope, minimum=0.0)
        self.threshold = _check_number("ReLU", "threshold", threshold)

    def call(self, inputs):
        return activations.relu(inputs, negative_slope=self.negative_slope, max_value=self.max_value,
                                threshold=self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register("layer")
class LeakyReLU(_Elementwise):
    """x for x >= 0, ``negative_slope * x`` below (Keras 3 layer default 0.3; the legacy
    ``alpha`` keyword is accepted with a deprecation warning, as Keras does)."""

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("LeakyReLU: argument `alpha` is deprecated. Use `negative_slope` instead.",
                          DeprecationWarning, stacklevel=2)
        super().__init__(**kwargs)
        self.negative_slope = _check_number("LeakyReLU", "negative_slope", negative_slope, minimum=0.0)

    def call(self, inputs):
        return ops.leaky_relu(inputs, negative_slope=self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


def _large_negative(dtype):
    """What Keras adds to masked logits before a softmax."""
    return -3e4 if np.dtype(dtype) == np.float16 else -1e9


@register("layer")
class Softmax(_Elementwise):
    """Softmax over ``axis`` (an int, or a tuple of ints for a joint softmax over several axes).

    ``call(inputs, mask=None)``: where ``mask`` is False (0) the logit gets -1e9 added, so the
    position receives (almost) no probability, and the output there is set to 0, as in Keras.
    """

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            if not axis or not all(isinstance(a, (int, np.integer)) for a in axis):
                raise ValueError(f"Softmax: `axis` must be an integer or a non-empty tuple of integers. "
                                 f"Received: axis={axis!r}")
            axis = tuple(int(a) for a in axis)
        elif not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"Softmax: `axis` must be an integer or a tuple of integers. Received: axis={axis!r}")
        else:
            axis = int(axis)
        self.axis = axis

    def call(self, inputs, mask=None):
        mask_array = None
        if mask is not None:
            mask_array = np.asarray(ops.convert_to_numpy(mask)).astype(inputs.dtype)
            inputs = ops.add(inputs, (1.0 - mask_array) * _large_negative(inputs.dtype))
        if isinstance(self.axis, tuple) and len(self.axis) > 1:
            outputs = ops.exp(ops.subtract(inputs, ops.logsumexp(inputs, axis=self.axis, keepdims=True)))
        else:
            axis = self.axis[0] if isinstance(self.axis, tuple) else self.axis
            outputs = ops.softmax(inputs, axis=axis)
        if mask_array is not None:
            outputs = ops.multiply(outputs, mask_array)
        return outputs

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register("layer")
class ELU(_Elementwise):
    """x for x > 0, ``alpha * (exp(x) - 1)`` below."""

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = _check_number("ELU", "alpha", alpha)

    def call(self, inputs):
        return ops.elu(inputs, alpha=self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register("layer")
class PReLU(_Elementwise):
    """Parametric ReLU: ``relu(x) - alpha * relu(-x)`` with a learned ``alpha``.

    Weights: alpha, of the input's shape without the batch axis, with each axis in
    ``shared_axes`` (1-based, as Keras counts them: 1 is the first axis after the batch) set to 1.
    """

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None,
                 shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        self.alpha_constraint = constraints.get(alpha_constraint)
        if shared_axes is None:
            self.shared_axes = None
        else:
            axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) else [shared_axes]
            if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a >= 1 for a in axes):
                raise ValueError(f"PReLU: `shared_axes` must be positive integers (axis 0 is the batch). "
                                 f"Received: shared_axes={shared_axes!r}")
            self.shared_axes = [int(a) for a in axes]

    def build(self, input_shape):
        rank = len(input_shape)
        param_shape = list(input_shape[1:])
        for axis in self.shared_axes or ():
            if axis >= rank:
                raise ValueError(f"PReLU '{self.name}': shared axis {axis} is out of range for inputs of rank "
                                 f"{rank}. Full input shape received: {tuple(input_shape)}")
            param_shape[axis - 1] = 1
        if any(d is None for d in param_shape):
            raise ValueError(f"PReLU '{self.name}': every non-batch, non-shared axis must be known to build "
                             f"alpha. Received input shape {tuple(input_shape)}")
        self.alpha = self.add_weight(shape=param_shape, name="alpha", initializer=self.alpha_initializer,
                                     regularizer=self.alpha_regularizer, constraint=self.alpha_constraint)
        axes = {i: input_shape[i] for i in range(1, rank) if i not in (self.shared_axes or ())}
        self.input_spec = InputSpec(ndim=rank, axes=axes)
        self.built = True

    def call(self, inputs):
        negative = ops.multiply(self.alpha, ops.relu(ops.negative(inputs)))
        return ops.subtract(ops.relu(inputs), negative)

    def get_config(self):
        return {
            **super().get_config(),
            "alpha_initializer": initializers.serialize(self.alpha_initializer),
            "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
            "alpha_constraint": constraints.serialize(self.alpha_constraint),
            "shared_axes": self.shared_axes,
        }
