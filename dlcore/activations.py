"""Activation functions, as ``keras.activations`` (Keras 3 names, arguments, defaults, formulas).

Each is built on dlcore.ops, so it is differentiable and runs the compiled activation kernels.
Note ``gelu`` defaults to ``approximate=False`` here (as keras.activations.gelu), while
``dlcore.ops.gelu`` defaults to ``approximate=True`` (as keras.ops.gelu).

:func:`kernel_activation` maps an activation to the fused-kernel activation that
``dlcore.ops.dense(..., activation=name, alpha=alpha)`` runs, so layers can fuse it.
"""
import functools

import numpy as np

from . import ops
from . import registry
from .registry import register
from .tensor import Tensor

_KIND = "activation"


@register(_KIND)
def relu(x, negative_slope=0.0, max_value=None, threshold=0.0):
    """max(x, 0) by default. ``threshold``: values at or below it become 0 (x for x > threshold);
    ``max_value``: saturate at it; ``negative_slope``: below the threshold the output is
    negative_slope * (x - threshold) instead of 0. Exactly keras.activations.relu."""
    if negative_slope == 0.0 and max_value is None and threshold == 0.0:
        return ops.relu(x)
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return ops.leaky_relu(x, negative_slope=negative_slope)
        if threshold != 0:
            negative_part = ops.relu(ops.subtract(threshold, x))
        else:
            negative_part = ops.relu(ops.negative(x))
    clip_max = max_value is not None
    if threshold != 0:
        xv = x.value if isinstance(x, Tensor) else np.asarray(x)
        dtype = xv.dtype if xv.dtype.kind == "f" else np.dtype(np.float32)
        x = ops.multiply(x, (xv > threshold).astype(dtype))
    elif max_value == 6:
        x = ops.relu6(x)
        clip_max = False
    else:
        x = ops.relu(x)
    if clip_max:
        x = ops.clip(x, 0.0, max_value)
    if negative_slope != 0.0:
        x = ops.subtract(x, ops.multiply(negative_slope, negative_part))
    return x


@register(_KIND)
def leaky_relu(x, negative_slope=0.2):
    """x for x >= 0, negative_slope * x below."""
    return ops.leaky_relu(x, negative_slope=negative_slope)


@register(_KIND)
def relu6(x):
    """min(max(x, 0), 6)."""
    return ops.relu6(x)


@register(_KIND)
def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    return ops.softmax(x, axis=axis)


@register(_KIND)
def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) below."""
    return ops.elu(x, alpha=alpha)


@register(_KIND)
def selu(x):
    """scale * elu(x, alpha), alpha=1.67326324, scale=1.05070098."""
    return ops.selu(x)


@register(_KIND)
def softplus(x):
    """log(exp(x) + 1)."""
    return ops.softplus(x)


@register(_KIND)
def softsign(x):
    """x / (|x| + 1)."""
    return ops.softsign(x)


@register(_KIND, "swish")
def silu(x):
    """x * sigmoid(x) (also registered, and exported, as ``swish``)."""
    return ops.silu(x)


swish = silu


@register(_KIND)
def gelu(x, approximate=False):
    """0.5 x (1 + erf(x / sqrt 2)); ``approximate=True``: the tanh approximation."""
    return ops.gelu(x, approximate=approximate)


@register(_KIND)
def tanh(x):
    """Hyperbolic tangent."""
    return ops.tanh(x)


@register(_KIND)
def sigmoid(x):
    """1 / (1 + exp(-x))."""
    return ops.sigmoid(x)


@register(_KIND)
def exponential(x):
    """exp(x)."""
    return ops.exp(x)


@register(_KIND)
def hard_sigmoid(x):
    """0 for x <= -3, 1 for x >= 3, x/6 + 0.5 between."""
    return ops.hard_sigmoid(x)


@register(_KIND, "hard_swish")
def hard_silu(x):
    """x * hard_sigmoid(x) (also registered, and exported, as ``hard_swish``)."""
    return ops.multiply(x, ops.hard_sigmoid(x))


hard_swish = hard_silu


@register(_KIND)
def linear(x):
    """The identity: returns ``x`` unchanged."""
    return x


@register(_KIND)
def mish(x):
    """x * tanh(softplus(x))."""
    return ops.multiply(x, ops.tanh(ops.softplus(x)))


@register(_KIND)
def log_softmax(x, axis=-1):
    """x - logsumexp(x) along ``axis``."""
    return ops.log_softmax(x, axis=axis)


# ---- fused-kernel mapping ----------------------------------------------------------------------
# This module's functions, called with their default arguments, and the kernel activation
# (name in kernels.elementwise.ACTIVATIONS, alpha) that computes them.
_KERNEL = {
    linear: ("linear", 0.0),
    relu: ("relu", 0.0),
    sigmoid: ("sigmoid", 0.0),
    tanh: ("tanh", 0.0),
    softmax: ("softmax", 0.0),
    elu: ("elu", 1.0),
    selu: ("selu", 0.0),
    gelu: ("gelu", 0.0),
    silu: ("silu", 0.0),
    softplus: ("softplus", 0.0),
    softsign: ("softsign", 0.0),
    hard_sigmoid: ("hard_sigmoid", 0.0),
    relu6: ("relu6", 0.0),
    exponential: ("exponential", 0.0),
    leaky_relu: ("leaky_relu", 0.2),
}


def _partial_kernel(fn):
    """Kernel of a functools.partial of leaky_relu / elu / gelu / relu / softmax with keyword
    arguments that a kernel still covers (e.g. ``partial(leaky_relu, negative_slope=0.1)``)."""
    if fn.args:
        return None
    kw = dict(fn.keywords)
    if fn.func is leaky_relu and set(kw) <= {"negative_slope"}:
        return ("leaky_relu", float(kw.get("negative_slope", 0.2)))
    if fn.func is elu and set(kw) <= {"alpha"}:
        return ("elu", float(kw.get("alpha", 1.0)))
    if fn.func is gelu and set(kw) <= {"approximate"}:
        return ("gelu_tanh" if kw.get("approximate", False) else "gelu", 0.0)
    if fn.func is softmax and set(kw) <= {"axis"} and kw.get("axis", -1) == -1:
        return ("softmax", 0.0)
    if fn.func is relu and set(kw) <= {"negative_slope", "max_value", "threshold"}:
        slope, max_value = kw.get("negative_slope", 0.0), kw.get("max_value")
        if kw.get("threshold", 0.0) != 0.0:
            return None
        if max_value is None:
            return ("relu", 0.0) if slope == 0.0 else ("leaky_relu", float(slope))
        if max_value == 6 and slope == 0.0:
            return ("relu6", 0.0)
    return None


def kernel_activation(fn):
    """``(name, alpha)`` of the fused kernel activation computing ``fn``, or None.

    ``fn``: one of this module's functions (or its name, or None for linear), meaning that
    function with its default arguments; a ``functools.partial`` of leaky_relu, elu, gelu, relu or
    softmax with keyword arguments a kernel covers is mapped too. Anything else (mish, a custom
    function, softmax over another axis, ...) gives None, and the caller applies it unfused.
    """
    if fn is None:
        return ("linear", 0.0)
    if isinstance(fn, str):
        try:
            fn = get(fn)
        except ValueError:
            return None
    if isinstance(fn, functools.partial):
        return _partial_kernel(fn)
    try:
        return _KERNEL.get(fn)
    except TypeError:  # unhashable callable
        return None


def kernel_name(fn):
    """The fused kernel activation name of ``fn`` (see :func:`kernel_activation`), or None."""
    pair = kernel_activation(fn)
    return None if pair is None else pair[0]


# ---- lookup and (de)serialization --------------------------------------------------------------
def get(identifier, custom_objects=None):
    """An activation function: None -> linear; a name -> the function; a dict -> deserialized;
    a callable -> itself."""
    return registry.get(_KIND, identifier, custom_objects, default=linear, instantiate_classes=False,
                        what="activation function")


def serialize(activation):
    """The name of an activation function (this module's canonical name: ``swish`` -> "silu");
    an object with ``get_config`` (e.g. an activation layer) gives its config dict."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return get(activation).__name__
    for name, fn in _BY_NAME.items():
        if fn is activation:
            return name
    return registry.serialize(_KIND, activation)


def deserialize(config, custom_objects=None):
    """The activation named by ``config`` (a name, or a dict ``{"class_name": name, ...}``;
    a Keras function config ``{"class_name": "function", "config": name}`` is accepted too)."""
    return registry.deserialize(_KIND, config, custom_objects, instantiate_names=False)


_BY_NAME = {fn.__name__: fn for fn in (relu, leaky_relu, relu6, softmax, elu, selu, softplus, softsign,
                                        silu, gelu, tanh, sigmoid, exponential, hard_sigmoid, hard_silu,
                                        linear, mish, log_softmax)}

__all__ = ["relu", "leaky_relu", "relu6", "softmax", "elu", "selu", "softplus", "softsign", "silu",
           "swish", "gelu", "tanh", "sigmoid", "exponential", "hard_sigmoid", "hard_silu", "hard_swish",
           "linear", "mish", "log_softmax", "get", "serialize", "deserialize", "kernel_activation",
           "kernel_name"]
