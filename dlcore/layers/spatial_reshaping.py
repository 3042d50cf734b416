"""2-D reshaping layers for images: ZeroPadding2D, Cropping2D, UpSampling2D (Keras 3 names and
semantics) and ReflectionPadding2D (a dlcore extension).

Inputs are (batch, height, width, channels), or (batch, channels, height, width) with
``data_format="channels_first"``. None has weights; each composes differentiable ops (pad,
slicing, broadcasting, matmul), so their gradients come from those ops.
"""
import numpy as np

from .. import ops
from ..registry import register
from ..symbolic import KerasTensor
from .layer import InputSpec, Layer, check_c_ints
from .reshaping import standardize_data_format


def _pairs(value, name, owner):
    """Keras's 2-D padding/cropping argument: an int, (h, w) or ((top, bottom), (left, right))."""
    def is_int(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if is_int(value):
        pairs = ((value, value), (value, value))
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(is_int(v) for v in value):
        pairs = ((value[0], value[0]), (value[1], value[1]))
    elif (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(p, (list, tuple)) and len(p) == 2 and all(is_int(v) for v in p) for p in value)):
        pairs = tuple(tuple(p) for p in value)
    else:
        raise ValueError(f"{owner}: `{name}` should be an int, a tuple of 2 ints (symmetric_height_{name}, "
                         f"symmetric_width_{name}) or a tuple of 2 tuples of 2 ints ((top_{name}, bottom_{name}), "
                         f"(left_{name}, right_{name})). Received: {name}={value!r}")
    pairs = tuple((int(a), int(b)) for a, b in pairs)
    if any(v < 0 for p in pairs for v in p):
        raise ValueError(f"{owner}: `{name}` values must be non-negative. Received: {name}={value!r}")
    check_c_ints(owner, **{name: pairs})
    return pairs


class _Spatial2D(Layer):
    """Shared by the 2-D layers: data_format, the 4-D input spec and the spatial axes."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=4)
        self._h, self._w = (1, 2) if self.data_format == "channels_last" else (2, 3)

    def compute_output_spec(self, inputs, *args, **kwargs):
        # From the formula, so unknown spatial sizes stay None (no weights to build).
        return KerasTensor(self.compute_output_shape(inputs.shape), self.dtype)

    def _with_spatial(self, input_shape, fn):
        shape = list(input_shape)
        for i, axis in enumerate((self._h, self._w)):
            shape[axis] = None if shape[axis] is None else fn(i, shape[axis])
        return tuple(shape)


class _Padding2D(_Spatial2D):
    mode = "constant"

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.padding = _pairs(padding, "padding", type(self).__name__)

    def _pad_width(self):
        width = [(0, 0)] * 4
        width[self._h], width[self._w] = self.padding
        return width

    def call(self, inputs):
        return ops.pad(inputs, self._pad_width(), mode=self.mode)

    def compute_output_shape(self, input_shape):
        return self._with_spatial(input_shape, lambda i, n: n + sum(self.padding[i]))

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@register("layer")
class ZeroPadding2D(_Padding2D):
    """Adds rows and columns of zeros around each image.

    ``padding``: an int (all sides), (h, w) (symmetric) or ((top, bottom), (left, right)).
    Input (batch, H, W, C) -> (batch, H + top + bottom, W + left + right, C).
    """


@register("layer")
class ReflectionPadding2D(_Padding2D):
    """Pads each image with its mirror image (a dlcore extension; Keras has no such layer).

    NumPy's ``mode="reflect"``: the edge row/column is the mirror axis and is not repeated, so
    padding [a, b, c] by 2 gives [c, b, a, b, c, b, a], as ``tf.pad(mode="REFLECT")`` and
    ``torch.nn.ReflectionPad2d``. Each pad must be smaller than the padded dimension.
    ``padding`` takes the same forms as ZeroPadding2D's.
    """

    mode = "reflect"

    def call(self, inputs):
        for i, axis in enumerate((self._h, self._w)):
            if max(self.padding[i]) >= inputs.shape[axis]:
                raise ValueError(f"Layer '{self.name}' (ReflectionPadding2D): each reflection pad must be smaller "
                                 f"than the padded dimension: expected padding {self.padding[i]} < "
                                 f"{inputs.shape[axis]} along axis {axis}, received input shape "
                                 f"{tuple(inputs.shape)}")
        return super().call(inputs)


@register("layer")
class Cropping2D(_Spatial2D):
    """Removes rows and columns from the edges of each image.

    ``cropping``: an int, (h, w) or ((top, bottom), (left, right)).
    Input (batch, H, W, C) -> (batch, H - top - bottom, W - left - right, C).
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.cropping = _pairs(cropping, "cropping", "Cropping2D")

    def _check(self, input_shape):
        for i, axis in enumerate((self._h, self._w)):
            n = input_shape[axis]
            if n is not None and sum(self.cropping[i]) >= n:
                raise ValueError(f"Layer '{self.name}' (Cropping2D): the cropping {self.cropping} leaves nothing of "
                                 f"axis {axis}: expected a total crop smaller than {n}, received input shape "
                                 f"{tuple(input_shape)}")

    def call(self, inputs):
        self._check(inputs.shape)
        key = [slice(None)] * 4
        for i, axis in enumerate((self._h, self._w)):
            lo, hi = self.cropping[i]
            key[axis] = slice(lo, inputs.shape[axis] - hi)
        return ops.getitem(inputs, tuple(key))

    def compute_output_shape(self, input_shape):
        self._check(input_shape)
        return self._with_spatial(input_shape, lambda i, n: n - sum(self.cropping[i]))

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}


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


@register("layer")
class UpSampling2D(_Spatial2D):
    """Repeats rows ``size[0]`` times and columns ``size[1]`` times ("nearest"), or interpolates
    them ("bilinear", half-pixel centers as Keras's TensorFlow backend).

    Input (batch, H, W, C) -> (batch, H * size[0], W * size[1], C).
    """

    INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        from ..ops.pool import normalize_tuple

        self.size = normalize_tuple(size, 2, "size", owner="UpSampling2D")
        check_c_ints("UpSampling2D", size=self.size)
        if interpolation not in self.INTERPOLATIONS:
            raise ValueError(f"UpSampling2D: `interpolation` must be one of {list(self.INTERPOLATIONS)} in dlcore. "
                             f"Received: interpolation={interpolation!r}")
        self.interpolation = interpolation

    def call(self, inputs):
        x = inputs
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 2, 3, 1))
        n, h, w, c = x.shape
        sh, sw = self.size
        if self.interpolation == "nearest":
            # (N, H, 1, W, 1, C) + zeros (1, 1, sh, 1, sw, 1): one copy; the add's backward sums
            # each block of repeats.
            x = ops.add(ops.reshape(x, (n, h, 1, w, 1, c)), np.zeros((1, 1, sh, 1, sw, 1), dtype=x.dtype))
            x = ops.reshape(x, (n, h * sh, w * sw, c))
        else:
            rows = _bilinear_matrix(h, sh, x.dtype)  # (H*sh, H)
            cols = _bilinear_matrix(w, sw, x.dtype)  # (W*sw, W)
            x = ops.matmul(rows, ops.reshape(x, (n, h, w * c)))  # (N, H*sh, W*C)
            x = ops.matmul(cols, ops.reshape(x, (n * h * sh, w, c)))  # (N*H*sh, W*sw, C)
            x = ops.reshape(x, (n, h * sh, w * sw, c))
        if self.data_format == "channels_first":
            x = ops.transpose(x, (0, 3, 1, 2))
        return x

    def compute_output_shape(self, input_shape):
        return self._with_spatial(input_shape, lambda i, n: n * self.size[i])

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}
