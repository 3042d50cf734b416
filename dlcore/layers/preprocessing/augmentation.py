"""Random image augmentation: RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
RandomContrast, RandomBrightness, RandomCrop.

Active only with ``training=True`` (as ``fit`` passes); at inference they return the inputs
(RandomCrop: a centered crop to its size, as Keras). Draws come from the layer's own generator
when ``seed`` is given (a rerun or ``from_config`` copy repeats the sequence), else from dlcore's
global generator, which ``dl.utils.set_random_seed`` reseeds. The transforms are Keras's
(factor conventions, the inverse affine maps, fill modes); Keras's own random streams differ, so
parity is on the transforms (tests), not on the draws.
"""
import math
import numbers

import numpy as np

from ...registry import register
from ...utils.random import generator
from ..layer import positive_int
from .image import INTERPOLATIONS, FILL_MODES, ImageLayer, affine_transform, center_crop
from ._common import check_choice, check_seed, seeded_generator


def _factor_range(layer, name, factor, bound=None, symmetric=True):
    """``factor`` as (lower, upper): a number f gives (-f, f) (``symmetric``) or (f, f)."""
    if isinstance(factor, numbers.Real) and not isinstance(factor, bool):
        lower, upper = (-float(factor), float(factor)) if symmetric else (float(factor), float(factor))
    elif isinstance(factor, (list, tuple)) and len(factor) == 2 and all(
            isinstance(f, numbers.Real) and not isinstance(f, bool) for f in factor):
        lower, upper = float(factor[0]), float(factor[1])
    else:
        raise ValueError(f"{layer}: `{name}` must be a number or a tuple of two numbers, received {name}={factor!r}")
    if lower > upper or (bound is not None and (abs(lower) > bound or abs(upper) > bound)):
        raise ValueError(f"{layer}: `{name}` must be (lower, upper) with lower <= upper"
                         + (f" and values in [-{bound}, {bound}]" if bound is not None else "")
                         + f", received {name}={factor!r}")
    return lower, upper


class RandomImageLayer(ImageLayer):
    """Base of the augmentation layers: the seed and generator, identity at inference."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.seed = check_seed(type(self).__name__, seed)
        self._rng = seeded_generator(self.seed)

    def _generator(self):
        return self._rng if self._rng is not None else generator()

    def _images(self, x, training):
        return self._augment(x, self._generator()) if training else x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class _AffineLayer(RandomImageLayer):
    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        name = type(self).__name__
        self.fill_mode = check_choice(name, "fill_mode", fill_mode, set(FILL_MODES))
        self.interpolation = check_choice(name, "interpolation", interpolation, INTERPOLATIONS)
        self.fill_value = float(fill_value)

    def _augment(self, x, rng):
        transforms = self._transforms(x.shape[0], x.shape[1], x.shape[2], rng)
        return affine_transform(x, transforms, self.interpolation, self.fill_mode, self.fill_value)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


def rotation_transforms(angles, height, width):
    """(N, 8) inverse maps rotating (N,) ``angles`` (radians, counter-clockwise) about the image center."""
    cos, sin = np.cos(angles), np.sin(angles)
    x_offset = ((width - 1) - (cos * (width - 1) - sin * (height - 1))) / 2.0
    y_offset = ((height - 1) - (sin * (width - 1) + cos * (height - 1))) / 2.0
    zeros = np.zeros_like(angles)
    return np.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1)


@register("layer")
class RandomFlip(RandomImageLayer):
    """Flips each image with probability 1/2 along the chosen axes: ``mode`` "horizontal",
    "vertical" or "horizontal_and_vertical" (each axis drawn independently)."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.mode = check_choice("RandomFlip", "mode", mode, {"horizontal", "vertical", "horizontal_and_vertical"})

    def _augment(self, x, rng):
        out = x.copy()
        n = x.shape[0]
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            flip = rng.random(n) < 0.5
            out[flip] = out[flip, :, ::-1]
        if self.mode in ("vertical", "horizontal_and_vertical"):
            flip = rng.random(n) < 0.5
            out[flip] = out[flip, ::-1]
        return out

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@register("layer")
class RandomRotation(_AffineLayer):
    """Rotates each image by a random fraction of 2 pi drawn from ``factor`` ((-f, f) for a number)."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = factor
        self._range = _factor_range("RandomRotation", "factor", factor)

    def _transforms(self, n, h, w, rng):
        angles = rng.uniform(self._range[0], self._range[1], n) * 2.0 * math.pi
        return rotation_transforms(angles, h, w)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@register("layer")
class RandomTranslation(_AffineLayer):
    """Shifts each image by random fractions of its height and width (``height_factor``,
    ``width_factor``: a number f gives (-f, f))."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _factor_range("RandomTranslation", "height_factor", height_factor, bound=1.0)
        self._w = _factor_range("RandomTranslation", "width_factor", width_factor, bound=1.0)

    def _transforms(self, n, h, w, rng):
        dy = rng.uniform(self._h[0], self._h[1], n) * h
        dx = rng.uniform(self._w[0], self._w[1], n) * w
        ones, zeros = np.ones(n), np.zeros(n)
        return np.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


@register("layer")
class RandomZoom(_AffineLayer):
    """Zooms each image about its center: zoom ``1 + f`` with f drawn from ``height_factor`` (positive
    zooms out, negative in); ``width_factor`` None keeps the aspect ratio."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _factor_range("RandomZoom", "height_factor", height_factor)
        self._w = None if width_factor is None else _factor_range("RandomZoom", "width_factor", width_factor)
        if self._h[0] < -1 or (self._w is not None and self._w[0] < -1):
            raise ValueError(f"RandomZoom: factors must be >= -1, received height_factor={height_factor!r}, "
                             f"width_factor={width_factor!r}")

    def _transforms(self, n, h, w, rng):
        zoom_y = 1.0 + rng.uniform(self._h[0], self._h[1], n)
        zoom_x = zoom_y if self._w is None else 1.0 + rng.uniform(self._w[0], self._w[1], n)
        zeros = np.zeros(n)
        x_offset = ((w - 1.0) / 2.0) * (1.0 - zoom_x)
        y_offset = ((h - 1.0) / 2.0) * (1.0 - zoom_y)
        return np.stack([zoom_x, zeros, x_offset, zeros, zoom_y, y_offset, zeros, zeros], axis=1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


def _value_range(layer, value_range):
    if not (isinstance(value_range, (list, tuple)) and len(value_range) == 2 and value_range[0] < value_range[1]):
        raise ValueError(f"{layer}: `value_range` must be (low, high) with low < high, received {value_range!r}")
    return tuple(float(v) for v in value_range)


@register("layer")
class RandomContrast(RandomImageLayer):
    """Scales each image's deviation from its per-channel mean by a factor drawn from
    [1 - lower, 1 + upper] (``factor`` f gives lower = upper = f), clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor
        lower, upper = _factor_range("RandomContrast", "factor", factor, symmetric=False)
        if lower < 0 or upper < 0 or lower > 1:
            raise ValueError(f"RandomContrast: `factor` must be non-negative (lower <= 1), received factor={factor!r}")
        self._range = (1.0 - lower, 1.0 + upper)
        self.value_range = _value_range("RandomContrast", value_range)

    def _augment(self, x, rng):
        f = rng.uniform(self._range[0], self._range[1], x.shape[0]).astype(x.dtype)[:, None, None, None]
        mean = x.mean(axis=(1, 2), keepdims=True)
        return np.clip((x - mean) * f + mean, *self.value_range).astype(x.dtype)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": list(self.value_range)}


@register("layer")
class RandomBrightness(RandomImageLayer):
    """Adds to each image a delta drawn from ``factor`` ((-f, f) for a number, values in [-1, 1])
    times the width of ``value_range``, clipped to ``value_range``."""

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = factor
        self._range = _factor_range("RandomBrightness", "factor", factor, bound=1.0)
        self.value_range = _value_range("RandomBrightness", value_range)

    def _augment(self, x, rng):
        low, high = self.value_range
        delta = rng.uniform(self._range[0], self._range[1], x.shape[0]) * (high - low)
        return np.clip(x + delta.astype(x.dtype)[:, None, None, None], low, high).astype(x.dtype)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor, "value_range": list(self.value_range)}


@register("layer")
class RandomCrop(RandomImageLayer):
    """In training, a random (height, width) window of each image (images smaller than it are
    resized up after an aspect-ratio crop); at inference, the centered window."""

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height = positive_int("RandomCrop", "height", height)
        self.width = positive_int("RandomCrop", "width", width)

    def _images(self, x, training):
        h, w = x.shape[1:3]
        if not training or h < self.height or w < self.width:
            return center_crop(x, self.height, self.width)
        rng = self._generator()
        tops = rng.integers(0, h - self.height + 1, x.shape[0])
        lefts = rng.integers(0, w - self.width + 1, x.shape[0])
        rows = tops[:, None] + np.arange(self.height)
        cols = lefts[:, None] + np.arange(self.width)
        return x[np.arange(x.shape[0])[:, None, None], rows[:, :, None], cols[:, None, :]]

    def compute_output_shape(self, input_shape):
        return self._target_shape(input_shape, self.height, self.width)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}
