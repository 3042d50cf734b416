"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector (Keras 3 names and semantics).

All keep the batch axis (axis 0) and rearrange the others; none has weights.
"""
import math

import numpy as np

from .. import config as dl_config
from .. import ops
from ..registry import register
from .layer import InputSpec, Layer


def standardize_data_format(data_format):
    """None -> the configured image data format ("channels_last" unless set); else validated."""
    if data_format is None:
        data_format = getattr(dl_config, "image_data_format", lambda: "channels_last")()
    data_format = str(data_format).lower()
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError("The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
                         f"Received: data_format={data_format!r}")
    return data_format


def _is_dim(d):
    return isinstance(d, (int, np.integer)) and not isinstance(d, bool)


@register("layer")
class Flatten(Layer):
    """Flattens every axis after the batch: (batch, d1, d2, ...) -> (batch, d1 * d2 * ...).

    A (batch,) input becomes (batch, 1). With ``data_format="channels_first"`` the channel axis is
    moved last first, so the order matches a channels_last model's.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        shape = tuple(inputs.shape)
        if self.data_format == "channels_first" and len(shape) > 2:
            inputs = ops.transpose(inputs, (0,) + tuple(range(2, len(shape))) + (1,))
        return ops.reshape(inputs, (shape[0], math.prod(shape[1:])))

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape[1:])
        return (input_shape[0], None if None in rest else math.prod(rest))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


def compute_reshape_output_shape(layer, input_shape, target_shape):
    """``target_shape`` with its -1 resolved against ``input_shape`` (both without the batch)."""
    if None in input_shape:
        return tuple(None if d == -1 else d for d in target_shape)
    size = math.prod(input_shape)
    known = math.prod(d for d in target_shape if d != -1)
    if -1 not in target_shape:
        if size != known:
            raise ValueError(f"Layer '{layer.name}' (Reshape): the total size of the tensor must be unchanged. "
                             f"Received: input_shape={tuple(input_shape)} ({size} values per sample), "
                             f"target_shape={tuple(target_shape)} ({known} values)")
        return tuple(target_shape)
    if known == 0 or size % known:
        raise ValueError(f"Layer '{layer.name}' (Reshape): the total size of the tensor must be unchanged, but "
                         f"the input size {size} cannot be divided by the specified dimensions. Received: "
                         f"input_shape={tuple(input_shape)}, target_shape={tuple(target_shape)}")
    return tuple(size // known if d == -1 else d for d in target_shape)


@register("layer")
class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (without the batch; one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(target_shape, (int, np.integer)):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (list, tuple)) or not all(_is_dim(d) and (d > 0 or d == -1)
                                                                 for d in target_shape):
            raise ValueError(f"Reshape: `target_shape` must be a tuple of positive integers (and at most one -1). "
                             f"Received: target_shape={target_shape!r}")
        if list(target_shape).count(-1) > 1:
            raise ValueError(f"Reshape: there must be at most one unknown dimension (-1) in target_shape. "
                             f"Received: target_shape={tuple(target_shape)}")
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, inputs):
        shape = tuple(inputs.shape)
        return ops.reshape(inputs, (shape[0],) + compute_reshape_output_shape(self, shape[1:], self.target_shape))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + compute_reshape_output_shape(self, tuple(input_shape[1:]), self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


@register("layer")
class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` is a permutation of 1..rank-1 (1-based, batch fixed)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(dims, (list, tuple)) or not all(_is_dim(d) for d in dims) or \
                sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError("Permute: invalid permutation argument `dims`. The set of indices in `dims` must be "
                             f"consecutive and start from 1. Received: dims={dims!r}")
        self.dims = tuple(int(d) for d in dims)
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return ops.transpose(inputs, (0,) + self.dims)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def get_config(self):
        return {**super().get_config(), "dims": self.dims}


@register("layer")
class RepeatVector(Layer):
    """Repeats a (batch, features) input ``n`` times: (batch, features) -> (batch, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not _is_dim(n):
            raise TypeError(f"RepeatVector: expected an integer value for `n`, got {type(n).__name__}: n={n!r}")
        if n < 0:
            raise ValueError(f"RepeatVector: `n` must be non-negative. Received: n={n}")
        self.n = int(n)
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        batch, features = inputs.shape
        expanded = ops.reshape(inputs, (batch, 1, features))
        # Broadcasting against zeros copies each row n times; the gradient sums the n copies.
        return ops.add(expanded, np.zeros((1, self.n, 1), dtype=inputs.dtype))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


def _int_list(layer, name, values):
    if not isinstance(values, (list, tuple)) or not all(_is_dim(v) for v in values):
        raise ValueError(f"{layer}: `{name}` must be a list of integers. Received: {name}={values!r}")
    return tuple(int(v) for v in values)


@register("layer")
class Slice(Layer):
    """``x[..., starts[i]:ends[i]:steps[i], ...]`` on the non-batch ``axes`` (Python slicing:
    negative starts/ends count from the end, out-of-range ones clamp, a negative step reverses).
    Not in Keras (``keras.ops.slice`` has no steps); the ONNX importer's Slice of a computed tensor.
    (batch, ..., n_axis, ...) -> (batch, ..., len(range(n_axis)[start:end:step]), ...)."""

    def __init__(self, axes, starts, ends, steps=None, **kwargs):
        super().__init__(**kwargs)
        self.axes = _int_list("Slice", "axes", axes)
        self.starts = _int_list("Slice", "starts", starts)
        self.ends = _int_list("Slice", "ends", ends)
        self.steps = _int_list("Slice", "steps", [1] * len(self.axes) if steps is None else steps)
        if not len(self.axes) == len(self.starts) == len(self.ends) == len(self.steps):
            raise ValueError(f"Slice: `axes`, `starts`, `ends` and `steps` must have one entry each per axis. "
                             f"Received lengths {len(self.axes)}, {len(self.starts)}, {len(self.ends)}, "
                             f"{len(self.steps)}")
        if any(a < 1 for a in self.axes) or len(set(self.axes)) != len(self.axes):
            raise ValueError(f"Slice: `axes` must be distinct non-batch axes (>= 1). Received: axes={self.axes}")
        if 0 in self.steps:
            raise ValueError(f"Slice: `steps` must be nonzero. Received: steps={self.steps}")

    def _key(self, rank):
        if max(self.axes) >= rank:
            raise ValueError(f"Layer '{self.name}' (Slice): axes {self.axes} need an input of rank > {max(self.axes)}; "
                             f"received rank {rank}")
        key = [slice(None)] * rank
        for a, s, e, st in zip(self.axes, self.starts, self.ends, self.steps):
            key[a] = slice(s, e, st)
        return tuple(key)

    def call(self, inputs):
        return ops.getitem(inputs, self._key(len(inputs.shape)))

    def compute_output_shape(self, input_shape):
        key = self._key(len(input_shape))
        return tuple(d if k == slice(None) or d is None else len(range(*k.indices(d)))
                     for d, k in zip(input_shape, key))

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "starts": list(self.starts),
                "ends": list(self.ends), "steps": list(self.steps)}


@register("layer")
class Gather(Layer):
    """The entries ``indices`` (constant integers of any shape; negative count from the end) of
    the non-batch ``axis``, as ``numpy.take``: (batch, ..., n, ...) -> (batch, ..., *indices.shape,
    ...). Not in Keras (``keras.ops.take`` is an op); the ONNX importer's Gather of a computed tensor."""

    def __init__(self, indices, axis, **kwargs):
        super().__init__(**kwargs)
        array = np.asarray(indices)
        if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
            raise TypeError(f"Gather: `indices` must be integers. Received: indices={indices!r}")
        if not _is_dim(axis) or axis < 1:
            raise ValueError(f"Gather: `axis` must be a non-batch axis (an integer >= 1). Received: axis={axis!r}")
        self.indices = array.astype(np.int64)
        self.axis = int(axis)

    def _check(self, input_shape):
        if self.axis >= len(input_shape):
            raise ValueError(f"Layer '{self.name}' (Gather): axis {self.axis} needs an input of rank > {self.axis}; "
                             f"received shape {tuple(input_shape)}")
        n = input_shape[self.axis]
        if n is not None and self.indices.size and (self.indices.min() < -n or self.indices.max() >= n):
            raise ValueError(f"Layer '{self.name}' (Gather): indices must lie in [-{n}, {n}) for axis {self.axis} of "
                             f"size {n}; received values in [{self.indices.min()}, {self.indices.max()}]")

    def call(self, inputs):
        self._check(tuple(inputs.shape))
        return ops.take(inputs, self.indices, axis=self.axis)

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return tuple(input_shape[:self.axis]) + self.indices.shape + tuple(input_shape[self.axis + 1:])

    def get_config(self):
        return {**super().get_config(), "indices": self.indices.tolist(), "axis": self.axis}
