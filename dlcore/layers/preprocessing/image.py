"""Image preprocessing: Rescaling, Resizing, CenterCrop, and the resampling helpers they share
with the augmentation layers.

Resampling is vectorized NumPy (integer gathers along H then W, the separable form of bilinear
and nearest), and affine warps are ``scipy.ndimage.map_coordinates`` on each image: no Python
loop runs over pixels. Conventions follow Keras's TensorFlow backend: ``resize`` uses half-pixel
centers (``tf.image.resize``), ``affine_transform`` maps each output pixel (x, y) to the input
point (a0 x + a1 y + a2, b0 x + b1 y + b2) with fill modes constant / nearest / wrap / reflect. Images are channels_last (N, H, W, C) or unbatched (H, W, C); ``data_format=
"channels_first"`` layers transpose in and out.
"""
import numpy as np

from ... import ops
from ...registry import register
from ...tensor import Tensor
from ..layer import Layer, positive_int
from ..reshaping import standardize_data_format
from ._common import as_array, check_choice

INTERPOLATIONS = ("bilinear", "nearest")
# Keras fill modes -> scipy.ndimage modes; "wrap" follows TensorFlow's own mapping (_tf_wrap).
FILL_MODES = {"constant": "grid-constant", "nearest": "nearest", "wrap": "grid-constant", "reflect": "reflect"}


def _tf_wrap(coord, size):
    """TensorFlow's FILL_WRAP coordinate mapping (period ``size``, counted in ``size - 1`` steps,
    then clamped), which differs from scipy's grid-wrap at the borders."""
    if size <= 1:
        return np.zeros_like(coord)
    span = size - 1
    low = coord < 0
    high = coord > span
    coord = np.where(low, coord + size * (np.trunc(-coord / span) + 1), coord)
    coord = np.where(high, coord - size * np.trunc(coord / span), coord)
    return np.clip(coord, 0, span)


def _tf_reflect(coord, size):
    """TensorFlow's FILL_REFLECT mapping (d c b a | a b c d | d c b a), clamped."""
    if size <= 1:
        return np.zeros_like(coord)
    period = 2 * size
    low = coord < 0
    c = np.where(low & (coord < -period), period * np.trunc(-coord / period) + coord, coord)
    c = np.where(low, np.where(c < -size, c + period, -c - 1), c)
    high = coord > size - 1
    h = coord - period * np.trunc(coord / period)
    h = np.where(h >= size, period - h - 1, h)
    return np.clip(np.where(high, h, c), 0, size - 1)


_TF_MAPS = {"wrap": _tf_wrap, "reflect": _tf_reflect, "nearest": lambda c, size: np.clip(c, 0, size - 1)}


def _nearest_sample(image_hwc, y, x, fill_mode, fill_value):
    """TensorFlow's nearest sampling: coordinates mapped by the fill mode, rounded half away from
    zero, out-of-image points (constant mode) filled."""
    h, w = image_hwc.shape[:2]
    if fill_mode != "constant":
        y, x = _TF_MAPS[fill_mode](y, h), _TF_MAPS[fill_mode](x, w)
    yi = (np.sign(y) * np.floor(np.abs(y) + 0.5)).astype(np.intp)
    xi = (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.intp)
    inside = (yi >= 0) & (yi < h) & (xi >= 0) & (xi < w)
    out = image_hwc[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)]
    out[~inside] = fill_value
    return out


def _source_positions(out_size, in_size, nearest):
    """Half-pixel source coordinates (float64) of ``out_size`` output samples."""
    scale = in_size / out_size
    if nearest:
        return np.minimum(np.floor((np.arange(out_size) + 0.5) * scale), in_size - 1).astype(np.intp)
    return (np.arange(out_size) + 0.5) * scale - 0.5


def _resample_axis(x, axis, out_size, nearest):
    in_size = x.shape[axis]
    src = _source_positions(out_size, in_size, nearest)
    if nearest:
        return np.take(x, src, axis=axis)
    low_f = np.floor(src)
    low = np.maximum(low_f, 0).astype(np.intp)
    high = np.minimum(np.ceil(src), in_size - 1).astype(np.intp)
    shape = [1] * x.ndim
    shape[axis] = out_size
    lerp = (src - low_f).astype(x.dtype).reshape(shape)
    lo = np.take(x, low, axis=axis)
    return lo + (np.take(x, high, axis=axis) - lo) * lerp


def resize_images(x_nhwc, height, width, interpolation="bilinear", crop_to_aspect_ratio=False):
    """(N, H, W, C) float -> (N, height, width, C), as ``tf.image.resize`` (half-pixel centers);
    ``crop_to_aspect_ratio`` first takes the largest centered crop of the target aspect ratio."""
    h, w = x_nhwc.shape[1:3]
    if crop_to_aspect_ratio:
        crop_h = max(min(h, int(float(w * height) / width)), 1)
        crop_w = max(min(w, int(float(h * width) / height)), 1)
        top, left = int(float(h - crop_h) / 2), int(float(w - crop_w) / 2)
        x_nhwc = x_nhwc[:, top:top + crop_h, left:left + crop_w]
    nearest = interpolation == "nearest"
    if x_nhwc.shape[1] != height:
        x_nhwc = _resample_axis(x_nhwc, 1, height, nearest)
    if x_nhwc.shape[2] != width:
        x_nhwc = _resample_axis(x_nhwc, 2, width, nearest)
    return np.ascontiguousarray(x_nhwc)


def affine_transform(x_nhwc, transforms, interpolation="bilinear", fill_mode="constant", fill_value=0.0):
    """Warp each image of (N, H, W, C) by its row of ``transforms`` (N, 8) [a0 a1 a2 b0 b1 b2 c0 c1]
    (c0 = c1 = 0 here: affine), as keras.ops.image.affine_transform."""
    from scipy import ndimage

    n, h, w, c = x_nhwc.shape
    rows, cols, chans = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    out = np.empty_like(x_nhwc)
    for i in range(n):  # one vectorized resampling per image
        a0, a1, a2, b0, b1, b2 = (float(v) for v in transforms[i, :6])
        if interpolation == "nearest":  # float32 coordinates, so that ties round as TensorFlow's do
            a0, a1, a2, b0, b1, b2 = np.asarray(transforms[i, :6], dtype=np.float32)
            yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
            out[i] = _nearest_sample(x_nhwc[i], b0 * xx + b1 * yy + b2, a0 * xx + a1 * yy + a2, fill_mode,
                                     fill_value)
            continue
        y, x = b0 * cols + b1 * rows + b2, a0 * cols + a1 * rows + a2
        if fill_mode == "wrap":
            y, x = _tf_wrap(y, h), _tf_wrap(x, w)
        coords = np.stack([y, x, chans]).astype(np.float64)
        out[i] = ndimage.map_coordinates(x_nhwc[i], coords, order=1, mode=FILL_MODES[fill_mode],
                                         cval=fill_value)
    return out


class ImageLayer(Layer):
    """Base of the image layers: (N, H, W, C) or (H, W, C) inputs in, channels_first handled by
    transposing; subclasses implement ``_images(x_nhwc, training)`` on float arrays."""

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.supports_masking = False

    def call(self, inputs, training=None):
        x = as_array(inputs)
        if x.ndim not in (3, 4):
            raise ValueError(f"{type(self).__name__} '{self.name}': expected images of rank 3 (H, W, C) or 4 "
                             f"(N, H, W, C), received shape {x.shape}")
        x = x.astype(self.dtype, copy=False)
        batched = x.ndim == 4
        if not batched:
            x = x[None]
        if self.data_format == "channels_first":
            x = x.transpose(0, 2, 3, 1)
        y = self._images(x, training)
        if self.data_format == "channels_first":
            y = y.transpose(0, 3, 1, 2)
        return Tensor(np.ascontiguousarray(y if batched else y[0]))

    def _target_shape(self, input_shape, height, width):
        shape = list(input_shape)
        h_axis = len(shape) - (2 if self.data_format == "channels_first" else 3)
        shape[h_axis], shape[h_axis + 1] = height, width
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


@register("layer")
class Rescaling(Layer):
    """``inputs * scale + offset`` (e.g. scale=1/255 maps [0, 255] to [0, 1]); any input shape."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("scale", scale), ("offset", offset)):
            try:
                np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise TypeError(f"Rescaling: `{name}` must be a number or an array of numbers, received "
                                f"{name}={value!r}") from None
        self.scale = scale
        self.offset = offset
        self.supports_masking = True

    def call(self, inputs):
        if inputs.dtype != np.dtype(self.dtype):
            inputs = ops.cast(inputs, self.dtype)
        scale = np.asarray(self.scale, dtype=self.dtype)
        offset = np.asarray(self.offset, dtype=self.dtype)
        return ops.add(ops.multiply(inputs, scale), offset)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        listed = lambda v: np.asarray(v).tolist() if isinstance(v, (np.ndarray, list, tuple)) else float(v)
        return {**super().get_config(), "scale": listed(self.scale), "offset": listed(self.offset)}


@register("layer")
class Resizing(ImageLayer):
    """Resize images to (height, width): bilinear or nearest with half-pixel centers, optionally
    cropping the largest centered window of the target aspect ratio first (``crop_to_aspect_ratio``)."""

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False, data_format=None,
                 **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = positive_int("Resizing", "height", height)
        self.width = positive_int("Resizing", "width", width)
        self.interpolation = check_choice("Resizing", "interpolation", interpolation, INTERPOLATIONS)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)

    def _images(self, x, training):
        return resize_images(x, self.height, self.width, self.interpolation, self.crop_to_aspect_ratio)

    def compute_output_shape(self, input_shape):
        return self._target_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation, "crop_to_aspect_ratio": self.crop_to_aspect_ratio}


def center_crop(x, height, width):
    """The centered (height, width) window of (N, H, W, C); smaller images are resized up to it
    (after an aspect-ratio crop), as Keras's CenterCrop."""
    h, w = x.shape[1:3]
    if h < height or w < width:
        return resize_images(x, height, width, "bilinear", crop_to_aspect_ratio=True)
    top, left = (h - height) // 2, (w - width) // 2
    return x[:, top:top + height, left:left + width]


@register("layer")
class CenterCrop(ImageLayer):
    """The centered (height, width) crop of each image."""

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height = positive_int("CenterCrop", "height", height)
        self.width = positive_int("CenterCrop", "width", width)

    def _images(self, x, training):
        return center_crop(x, self.height, self.width)

    def compute_output_shape(self, input_shape):
        return self._target_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
