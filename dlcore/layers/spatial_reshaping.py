"""Spatial reshaping layers of 1 to 3 spatial axes: ZeroPadding1D/2D/3D, Cropping1D/2D/3D,
UpSampling1D/2D/3D (Keras 3 names and semantics) and ReflectionPadding2D (a dlcore extension).

Inputs are (batch, *spatial, channels), or (batch, channels, *spatial) with
``data_format="channels_first"`` (the 1-D Cropping and UpSampling are channels_last only, as in
Keras). None has weights; each composes differentiable ops (pad, slicing, broadcasting, matmul),
so their gradients come from those ops. One class per family takes the rank from its subclass.
"""
import numpy as np

from .. import ops
from ..ops.conv import normalize_tuple
from ..registry import register
from ..symbolic import KerasTensor
from .layer import InputSpec, Layer, check_c_ints
from .reshaping import standardize_data_format


def _pairs(value, rank, name, owner):
    """Keras's padding/cropping argument as ``rank`` (before, after) pairs: an int, ``rank`` ints
    (symmetric) or ``rank`` pairs; for rank 1 an int or one (before, after) pair."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    def is_pair(p):
        return isinstance(p, (list, tuple)) and len(p) == 2 and all(is_int(v) for v in p)

    seq = isinstance(value, (list, tuple))
    if is_int(value):
        pairs = ((value, value),) * rank
    elif rank == 1 and is_pair(value):
        pairs = (tuple(value),)
    elif rank > 1 and seq and len(value) == rank and all(is_int(v) for v in value):
        pairs = tuple((v, v) for v in value)
    elif rank > 1 and seq and len(value) == rank and all(is_pair(p) for p in value):
        pairs = tuple(tuple(p) for p in value)
    else:
        forms = "a tuple of 2 ints (before, after)" if rank == 1 else \
            f"a tuple of {rank} ints (symmetric) or a tuple of {rank} tuples of 2 ints (before, after)"
        raise ValueError(f"{owner}: `{name}` should be an int or {forms}. Received: {name}={value!r}")
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"{owner}: `{name}` values must be non-negative. Received: {name}={value!r}")
    check_c_ints(owner, **{name: pairs})
    return pairs


class _Spatial(Layer):
    """Shared by the spatial layers: ``rank`` (a class attribute), data_format, the input spec
    and the spatial axes."""

    rank = 2

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self.rank + 2)
        first = 1 if self.data_format == "channels_last" else 2
        self._axes = tuple(range(first, first + self.rank))

    def compute_output_spec(self, inputs, *args, **kwargs):
        # From the formula, so unknown spatial sizes stay None (no weights to build).
        return KerasTensor(self.compute_output_shape(inputs.shape), self.dtype)

    def _with_spatial(self, input_shape, fn):
        shape = list(input_shape)
        for i, axis in enumerate(self._axes):
            shape[axis] = None if shape[axis] is None else fn(i, shape[axis])
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _Padding(_Spatial):
    """Pads each spatial axis by ``padding``: an int (all sides), ``rank`` ints (symmetric) or
    ``rank`` (before, after) pairs (rank 1: an int or one pair). Each axis grows by before + after."""

    mode = "constant"

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._widths = _pairs(padding, self.rank, "padding", type(self).__name__)
        self.padding = self._widths[0] if self.rank == 1 else self._widths

    def call(self, inputs):
        width = [(0, 0)] * (self.rank + 2)
        for axis, pair in zip(self._axes, self._widths):
            width[axis] = pair
        return ops.pad(inputs, width, mode=self.mode)

    def compute_output_shape(self, input_shape):
        return self._with_spatial(input_shape, lambda i, n: n + sum(self._widths[i]))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@register("layer")
class ZeroPadding1D(_Padding):
    """Zeros before and after the steps: (batch, steps, C) -> (batch, steps + before + after, C)."""

    rank = 1


@register("layer")
class ZeroPadding2D(_Padding):
    """Rows and columns of zeros around each image: (batch, H, W, C) -> (batch, H + top + bottom,
    W + left + right, C); ``padding`` also takes ((top, bottom), (left, right))."""


@register("layer")
class ZeroPadding3D(_Padding):
    """Zeros around each volume: (batch, D, H, W, C) -> (batch, D + pads, H + pads, W + pads, C)."""

    rank = 3


@register("layer")
class ReflectionPadding2D(_Padding):
    """Pads each image with its mirror image (a dlcore extension; Keras has no such layer).

    NumPy's ``mode="reflect"``: the edge row/column is the mirror axis and is not repeated, so
    padding [a, b, c] by 2 gives [c, b, a, b, c, b, a], as ``tf.pad(mode="REFLECT")`` and
    ``torch.nn.ReflectionPad2d``. Each pad must be smaller than the padded dimension.
    ``padding`` takes the same forms as ZeroPadding2D's.
    """

    mode = "reflect"

    def call(self, inputs):
        for pair, axis in zip(self._widths, self._axes):
            if max(pair) >= inputs.shape[axis]:
                raise ValueError(f"Layer '{self.name}' (ReflectionPadding2D): each reflection pad must be smaller "
                                 f"than the padded dimension: expected padding {pair} < "
                                 f"{inputs.shape[axis]} along axis {axis}, received input shape "
                                 f"{tuple(inputs.shape)}")
        return super().call(inputs)


class _Cropping(_Spatial):
    """Removes ``cropping`` cells from the edges of each spatial axis (the forms of ``padding``)."""

    def __init__(self, cropping, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self._widths = _pairs(cropping, self.rank, "cropping", type(self).__name__)
        self.cropping = self._widths[0] if self.rank == 1 else self._widths

    def _check(self, input_shape):
        for pair, axis in zip(self._widths, self._axes):
            n = input_shape[axis]
            if n is not None and sum(pair) >= n:
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): the cropping {self.cropping} leaves "
                                 f"nothing of axis {axis}: expected a total crop smaller than {n}, received input "
                                 f"shape {tuple(input_shape)}")

    def call(self, inputs):
        self._check(inputs.shape)
        key = [slice(None)] * (self.rank + 2)
        for (lo, hi), axis in zip(self._widths, self._axes):
            key[axis] = slice(lo, inputs.shape[axis] - hi)
        return ops.getitem(inputs, tuple(key))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return self._with_spatial(input_shape, lambda i, n: n - sum(self._widths[i]))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping}


@register("layer")
class Cropping1D(_Cropping):
    """Removes steps from both ends: (batch, steps, C) -> (batch, steps - before - after, C)."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(cropping, "channels_last", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "data_format"}


@register("layer")
class Cropping2D(_Cropping):
    """Removes rows and columns: (batch, H, W, C) -> (batch, H - top - bottom, W - left - right, C);
    ``cropping``: an int, (h, w) or ((top, bottom), (left, right))."""

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


@register("layer")
class Cropping3D(_Cropping):
    """Removes cells from the edges of each volume: (batch, D, H, W, C) -> (batch, D - crops, ...)."""

    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


def _bilinear_matrix(n_in, factor, dtype):
    """(n_in * factor, n_in) weights of half-pixel bilinear upsampling (TensorFlow's
    ``tf.image.resize(method="bilinear")``, PyTorch's align_corners=False): output i samples the
    input at (i + 0.5) / factor - 0.5, clamped to [0, n_in - 1]."""
    n_out = n_in * factor
    src = np.clip((np.arange(n_out) + 0.5) / factor - 0.5, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    t = src - lo
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), lo), 1.0 - t)
    np.add.at(m, (np.arange(n_out), hi), t)
    return m.astype(dtype)


class _UpSampling(_Spatial):
    """Repeats each spatial cell ``size`` times along each axis ("nearest"); UpSampling2D also
    interpolates ("bilinear", half-pixel centers as Keras's TensorFlow backend).
    Input (batch, *spatial, C) -> (batch, *(spatial * size), C)."""

    def __init__(self, size=2, data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        owner = type(self).__name__
        self._size = normalize_tuple(size, self.rank, "size", owner)
        if min(self._size) < 1:
            raise ValueError(f"{owner}: `size` must be positive integers. Received: size={size!r}")
        check_c_ints(owner, size=self._size)
        self.size = self._size[0] if self.rank == 1 else self._size
        if interpolation not in ("nearest",) + (("bilinear",) if self.rank == 2 else ()):
            raise ValueError(f"{owner}: `interpolation` must be 'nearest'{' or bilinear' * (self.rank == 2)} "
                             f"in dlcore. Received: interpolation={interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        x, last = inputs, self.data_format == "channels_last"
        if not last:
            x = ops.transpose(x, (0,) + tuple(range(2, self.rank + 2)) + (1,))
        n, spatial, c = x.shape[0], tuple(x.shape[1:-1]), x.shape[-1]
        if self.interpolation == "nearest":
            # (N, D1, 1, D2, 1, ..., C) + zeros (1, 1, s1, 1, s2, ..., 1): one copy; the add's
            # backward sums each block of repeats.
            x = ops.reshape(x, (n,) + sum(((d, 1) for d in spatial), ()) + (c,))
            x = ops.add(x, np.zeros((1,) + sum(((1, s) for s in self._size), ()) + (1,), dtype=x.dtype))
        else:
            (h, w), (sh, sw) = spatial, self._size
            x = ops.matmul(_bilinear_matrix(h, sh, x.dtype), ops.reshape(x, (n, h, w * c)))  # (N, H*sh, W*C)
            x = ops.matmul(_bilinear_matrix(w, sw, x.dtype), ops.reshape(x, (n * h * sh, w, c)))  # (N*H*sh, W*sw, C)
        x = ops.reshape(x, (n,) + tuple(d * s for d, s in zip(spatial, self._size)) + (c,))
        return x if last else ops.transpose(x, (0, self.rank + 1) + tuple(range(1, self.rank + 1)))

    def compute_output_shape(self, input_shape):
        return self._with_spatial(input_shape, lambda i, n: n * self._size[i])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@register("layer")
class UpSampling1D(_UpSampling):
    """Repeats each step ``size`` times: (batch, steps, C) -> (batch, steps * size, C)."""

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, "channels_last", **kwargs)

    def get_config(self):
        return {k: v for k, v in super().get_config().items() if k != "data_format"}


@register("layer")
class UpSampling2D(_UpSampling):
    """Repeats rows ``size[0]`` and columns ``size[1]`` times ("nearest"), or interpolates them
    ("bilinear"): (batch, H, W, C) -> (batch, H * size[0], W * size[1], C)."""

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format, interpolation, **kwargs)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


@register("layer")
class UpSampling3D(_UpSampling):
    """Repeats each cell of a volume: (batch, D, H, W, C) -> (batch, D * s0, H * s1, W * s2, C)."""

    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format, **kwargs)
