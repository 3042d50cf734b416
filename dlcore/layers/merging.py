"""Merge layers: combine a list of tensors into one (Keras 3 names, arguments and shape rules).

``Merge`` is the base of the elementwise merges (Add, Subtract, Multiply, Average, Maximum,
Minimum). Their inputs must agree on the batch size; the other axes follow Keras's rule: aligned
from the right, each pair of sizes equal or one of them 1 (broadcast), and an input of lower rank
gets axes inserted after the batch axis. Concatenate needs equal shapes except on ``axis``; Dot
takes exactly two inputs and contracts one axis of each, per sample.
"""
import functools
import math

import numpy as np

from .. import ops
from ..registry import register
from .layer import Layer


def _shape_text(x):
    shape = getattr(x, "shape", None)
    return f"a tensor of shape {tuple(shape)}" if shape is not None else repr(x)


class Merge(Layer):
    """Base of the merge layers: checks a list of at least ``_min_inputs`` inputs, their shapes,
    then calls ``_merge_function(inputs)`` (inputs of lower rank expanded after the batch axis)."""

    _min_inputs = 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    # shape checks ------------------------------------------------------------------------------
    def _check_list(self, shapes):
        """Raise unless ``shapes`` (one per input) is a list of at least ``_min_inputs`` shapes."""
        if not isinstance(shapes, (list, tuple)) or (shapes and not isinstance(shapes[0], (list, tuple))):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): a merge layer should be called on "
                             f"a list of inputs. Received: input_shape={shapes} (not a list of shapes)")
        if len(shapes) < self._min_inputs:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): a merge layer should be called on "
                             f"a list of at least {self._min_inputs} inputs. Got {len(shapes)} inputs. Full "
                             f"input_shape received: {list(shapes)}")

    def _elementwise_shape(self, shape1, shape2):
        """Keras's broadcast of two non-batch shapes: right-aligned, equal sizes or a size 1."""
        if len(shape1) < len(shape2):
            shape1, shape2 = shape2, shape1
        if not shape2:
            return tuple(shape1)
        out = list(shape1[:len(shape1) - len(shape2)])
        for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
            if i is None or j is None:
                out.append(None)
            elif i == 1:
                out.append(j)
            elif j == 1 or i == j:
                out.append(i)
            else:
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): inputs have incompatible "
                                 f"shapes. Received shapes {tuple(shape1)} and {tuple(shape2)}")
        return tuple(out)

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        batch_sizes = {s[0] for s in input_shape if len(s)} - {None}
        if len(batch_sizes) > 1:
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): cannot merge tensors with different "
                             f"batch sizes. Got tensors with shapes {[tuple(s) for s in input_shape]}")
        out = tuple(input_shape[0][1:])
        for shape in input_shape[1:]:
            out = self._elementwise_shape(out, tuple(shape[1:]))
        batch = batch_sizes.pop() if batch_sizes else None
        return (batch,) + out

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    # computing ---------------------------------------------------------------------------------
    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): a merge layer should be called on a "
                             f"list of inputs. Received: inputs={_shape_text(inputs)} (not a list of tensors)")
        shapes = [tuple(x.shape) for x in inputs]
        if shapes.count(shapes[0]) == len(shapes):  # equal shapes merge as they are (batch-1 latency)
            self._check_list(shapes)
            return self._merge_function(list(inputs))
        self.compute_output_shape(shapes)
        ranks = [len(s) for s in shapes]
        if len(set(ranks)) > 1:
            top = max(ranks)
            inputs = [ops.reshape(x, s[:1] + (1,) * (top - len(s)) + s[1:]) if len(s) < top else x
                      for x, s in zip(inputs, shapes)]
        return self._merge_function(list(inputs))

    def compute_mask(self, inputs, mask=None):
        """Keras's rule: the OR of the inputs' masks, or None when any input has none."""
        masks = self._check_masks(inputs, mask)
        if masks is None or any(m is None for m in masks):
            return None
        return functools.reduce(np.logical_or, (np.asarray(m, dtype=bool) for m in masks))

    def _check_masks(self, inputs, mask):
        if mask is None:
            return None
        if not isinstance(mask, (list, tuple)) or not isinstance(inputs, (list, tuple)) or len(mask) != len(inputs):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): `inputs` and `mask` should be lists of "
                             f"the same length. Received {len(inputs) if isinstance(inputs, (list, tuple)) else 1} "
                             f"inputs and mask={mask!r}")
        return mask

    _fold = None  # the binary op an elementwise merge folds its inputs with

    def _merge_function(self, inputs):
        return functools.reduce(self._fold, inputs)


@register("layer")
class Add(Merge):
    """The elementwise sum of the inputs."""

    _fold = staticmethod(ops.add)


@register("layer")
class Subtract(Merge):
    """``inputs[0] - inputs[1]``: exactly two inputs."""

    def _check_list(self, shapes):
        super()._check_list(shapes)
        if len(shapes) != 2:
            raise ValueError(f"Layer '{self.name}': a `Subtract` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={list(shapes)}")

    def _merge_function(self, inputs):
        return ops.subtract(inputs[0], inputs[1])


@register("layer")
class Divide(Subtract):
    """``inputs[0] / inputs[1]``: exactly two inputs (broadcast as the other merges). Not in Keras
    (which writes ``keras.ops.divide``); the ONNX importer's Div of two computed tensors."""

    def _check_list(self, shapes):
        Merge._check_list(self, shapes)
        if len(shapes) != 2:
            raise ValueError(f"Layer '{self.name}': a `Divide` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={list(shapes)}")

    def _merge_function(self, inputs):
        return ops.divide(inputs[0], inputs[1])


@register("layer")
class Multiply(Merge):
    """The elementwise product of the inputs."""

    _fold = staticmethod(ops.multiply)


@register("layer")
class Average(Merge):
    """The elementwise mean of the inputs."""

    _fold = staticmethod(ops.add)

    def _merge_function(self, inputs):
        return ops.divide(super()._merge_function(inputs), len(inputs))


@register("layer")
class Maximum(Merge):
    """The elementwise maximum of the inputs."""

    _fold = staticmethod(ops.maximum)


@register("layer")
class Minimum(Merge):
    """The elementwise minimum of the inputs."""

    _fold = staticmethod(ops.minimum)


@register("layer")
class Concatenate(Merge):
    """Joins the inputs along ``axis``; every other axis must match (batch included)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
            raise ValueError(f"Concatenate: `axis` must be an integer. Received: axis={axis!r}")
        self.axis = int(axis)

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        error = (f"Layer '{self.name}': a `Concatenate` layer requires inputs with matching shapes except for "
                 f"the concatenation axis. Received: input_shape={shapes}")
        if any(len(s) != rank for s in shapes):
            raise ValueError(error)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Layer '{self.name}': concatenation axis {self.axis} is out of range for inputs of "
                             f"rank {rank}. Received: input_shape={shapes}")
        axis = self.axis % rank
        out = list(shapes[0])
        for i in range(rank):
            sizes = {s[i] for s in shapes} - {None}
            if i == axis:
                out[i] = None if any(s[i] is None for s in shapes) else sum(s[i] for s in shapes)
            elif len(sizes) > 1:
                raise ValueError(error)
            else:
                out[i] = sizes.pop() if sizes else None
        return tuple(out)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer '{self.name}': a `Concatenate` layer should be called on a list of inputs. "
                             f"Received: inputs={_shape_text(inputs)} (not a list of tensors)")
        self.compute_output_shape([tuple(x.shape) for x in inputs])
        return ops.concatenate(list(inputs), axis=self.axis)

    def compute_mask(self, inputs, mask=None):
        """Keras's rule: each input's mask (all True where it has none) broadcast to the input's
        shape, concatenated along ``axis``, then any() over the last axis."""
        masks = self._check_masks(inputs, mask)
        if masks is None or all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(inputs, masks):
            shape = tuple(x.shape)
            if m is None:
                full.append(np.ones(shape, dtype=bool))
            else:
                m = np.asarray(m, dtype=bool)
                full.append(np.broadcast_to(m[..., None], shape) if m.ndim < len(shape) else m)
        return np.any(np.concatenate(full, axis=self.axis), axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _l2_normalize(x, axis, epsilon=1e-12):
    """x / sqrt(max(sum(x**2, axis), epsilon)), as Keras's Dot(normalize=True)."""
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    return ops.divide(x, ops.sqrt(ops.maximum(square_sum, epsilon)))


def batch_dot(x1, x2, axes):
    """Per-sample dot product contracting axis ``axes[0]`` of x1 with axis ``axes[1]`` of x2.

    Output shape: x1's shape without axes[0], then x2's non-batch shape without axes[1]; a
    result of rank 1, (batch,), becomes (batch, 1), as in Keras.
    """
    s1, s2 = tuple(x1.shape), tuple(x2.shape)
    a1, a2 = axes
    rest1 = [i for i in range(1, len(s1)) if i != a1]
    rest2 = [i for i in range(1, len(s2)) if i != a2]
    batch, k = s1[0], s1[a1]
    out1 = tuple(s1[i] for i in rest1)
    out2 = tuple(s2[i] for i in rest2)
    x1 = ops.reshape(ops.transpose(x1, [0] + rest1 + [a1]), (batch, math.prod(out1), k))
    x2 = ops.reshape(ops.transpose(x2, [0, a2] + rest2), (batch, k, math.prod(out2)))
    y = ops.matmul(x1, x2)
    out = (batch,) + out1 + out2
    return ops.reshape(y, out if len(out) > 1 else (batch, 1))


@register("layer")
class Dot(Merge):
    """Per-sample dot product of two inputs over ``axes`` (an int for both, or a pair);
    ``normalize=True`` L2-normalizes both along those axes first (cosine proximity)."""

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot: invalid format for argument `axes`: it should contain two elements. "
                                 f"Received: axes={axes!r}")
            if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
                raise ValueError(f"Dot: invalid format for argument `axes`: list elements should be integers. "
                                 f"Received: axes={axes!r}")
            axes = [int(a) for a in axes]
        elif not isinstance(axes, (int, np.integer)) or isinstance(axes, bool):
            raise TypeError(f"Dot: invalid type for argument `axes`: it should be a list or an int. "
                            f"Received: axes={axes!r}")
        else:
            axes = int(axes)
        self.axes = axes
        self.normalize = bool(normalize)

    def _check_list(self, shapes):
        super()._check_list(shapes)
        if len(shapes) != 2:
            raise ValueError(f"Layer '{self.name}': a `Dot` layer should be called on a list of 2 inputs. "
                             f"Received: input_shape={list(shapes)}")

    def _resolved_axes(self, shape1, shape2):
        pair = [self.axes, self.axes] if isinstance(self.axes, int) else self.axes
        resolved = []
        for axis, shape in zip(pair, (shape1, shape2)):
            if not -len(shape) <= axis < len(shape) or axis % len(shape) == 0:
                raise ValueError(f"Layer '{self.name}': Dot axes {self.axes} must name a non-batch axis of each "
                                 f"input. Received input shapes {tuple(shape1)} and {tuple(shape2)}")
            resolved.append(axis % len(shape))
        return resolved

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        shape1, shape2 = (tuple(s) for s in input_shape)
        a1, a2 = self._resolved_axes(shape1, shape2)
        if shape1[a1] is not None and shape2[a2] is not None and shape1[a1] != shape2[a2]:
            raise ValueError(f"Layer '{self.name}': incompatible input shapes: axis values {shape1[a1]} (at axis "
                             f"{a1}) != {shape2[a2]} (at axis {a2}). Full input shapes: {shape1}, {shape2}")
        if shape1[0] is not None and shape2[0] is not None and shape1[0] != shape2[0]:
            raise ValueError(f"Layer '{self.name}': cannot merge tensors with different batch sizes. Got tensors "
                             f"with shapes {[shape1, shape2]}")
        out = [d for i, d in enumerate(shape1) if i != a1] + [d for i, d in enumerate(shape2) if i not in (0, a2)]
        return tuple(out) if len(out) > 1 else tuple(out) + (1,)

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer '{self.name}': a `Dot` layer should be called on a list of 2 inputs. "
                             f"Received: inputs={_shape_text(inputs)} (not a list of tensors)")
        shapes = [tuple(x.shape) for x in inputs]
        self.compute_output_shape(shapes)
        x1, x2 = inputs
        a1, a2 = self._resolved_axes(*shapes)
        if self.normalize:
            x1 = _l2_normalize(x1, a1)
            x2 = _l2_normalize(x2, a2)
        return batch_dot(x1, x2, (a1, a2))

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}



@register("layer")
class MatMul(Merge):
    """``inputs[0] @ inputs[1]`` batched over the leading axes (as ``numpy.matmul``): two inputs of
    one rank >= 3, (batch, ..., m, k) and (batch, ..., k, n) -> (batch, ..., m, n); the leading
    axes broadcast. Not in Keras (Dot contracts without batching the middle axes); the ONNX
    importer's MatMul of two computed tensors (attention heads as an extra axis)."""

    def _check_list(self, shapes):
        Merge._check_list(self, shapes)
        if len(shapes) != 2:
            raise ValueError(f"Layer '{self.name}': a `MatMul` layer should be called on exactly 2 inputs. "
                             f"Received: input_shape={list(shapes)}")

    def compute_output_shape(self, input_shape):
        self._check_list(input_shape)
        s1, s2 = (tuple(s) for s in input_shape)
        if len(s1) != len(s2) or len(s1) < 3:
            raise ValueError(f"Layer '{self.name}' (MatMul): expected two inputs of one rank >= 3. Received shapes "
                             f"{s1} and {s2}")
        if s1[-1] is not None and s2[-2] is not None and s1[-1] != s2[-2]:
            raise ValueError(f"Layer '{self.name}' (MatMul): the last axis of the first input ({s1[-1]}) must equal "
                             f"the second-to-last of the second ({s2[-2]}). Received shapes {s1} and {s2}")
        lead = [a if b in (1, None) and a is not None else b for a, b in zip(s1[:-2], s2[:-2])]
        for a, b in zip(s1[1:-2], s2[1:-2]):
            if a is not None and b is not None and a != b and 1 not in (a, b):
                raise ValueError(f"Layer '{self.name}' (MatMul): leading axes do not broadcast. Received shapes "
                                 f"{s1} and {s2}")
        return tuple(lead) + (s1[-2], s2[-1])

    def build(self, input_shape):
        self.compute_output_shape(input_shape)
        self.built = True

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"Layer '{self.name}': a `MatMul` layer should be called on a list of 2 inputs. "
                             f"Received: inputs={_shape_text(inputs)} (not a list of tensors)")
        self.compute_output_shape([tuple(x.shape) for x in inputs])
        return ops.matmul(inputs[0], inputs[1])

# functional interface, as keras.layers.add(...) etc. ----------------------------------------------
def add(inputs, **kwargs):
    """``Add(**kwargs)(inputs)``."""
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    """``Subtract(**kwargs)(inputs)``."""
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    """``Multiply(**kwargs)(inputs)``."""
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    """``Average(**kwargs)(inputs)``."""
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    """``Maximum(**kwargs)(inputs)``."""
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    """``Minimum(**kwargs)(inputs)``."""
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    """``Concatenate(axis=axis, **kwargs)(inputs)``."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, **kwargs):
    """``Dot(axes=axes, **kwargs)(inputs)``."""
    return Dot(axes=axes, **kwargs)(inputs)
