"""Pooling layers (Keras 3 names and semantics): MaxPooling1D/2D/3D, AveragePooling1D/2D/3D,
GlobalAveragePooling1D/2D/3D, GlobalMaxPooling1D/2D/3D.

Inputs are channels_last by default: (batch, steps, channels) for 1-D, (batch, height, width,
channels) for 2-D, (batch, depth, height, width, channels) for 3-D; ``data_format=
"channels_first"`` takes the channel axis second. "same"
padding is Keras's: output length ceil(size / stride), the extra padding at the end, and
padded cells never counted (average pooling divides by the real cells of each window).
"""
from .. import ops
from ..ops.conv import normalize_tuple, output_length
from ..ops.pooling import PADDINGS, global_pool
from ..registry import register
from ..symbolic import KerasTensor
from .layer import InputSpec, Layer, check_c_ints
from .reshaping import standardize_data_format


class BasePooling(Layer):
    """Max or average pooling over ``pool_dimensions`` spatial axes (Keras's BasePooling)."""

    def __init__(self, pool_size, strides, pool_dimensions, pool_mode="max", padding="valid",
                 data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        owner = type(self).__name__
        self.pool_size = normalize_tuple(pool_size, pool_dimensions, "pool_size", owner, minimum=1)
        strides = pool_size if strides is None else strides
        self.strides = normalize_tuple(strides, pool_dimensions, "strides", owner, minimum=1)
        check_c_ints(owner, pool_size=self.pool_size, strides=self.strides)
        padding = str(padding).lower() if isinstance(padding, str) else padding
        if padding not in PADDINGS:
            raise ValueError(f"{owner}: the `padding` argument must be one of {list(PADDINGS)}. "
                             f"Received: padding={padding!r}")
        self.padding = padding
        self.pool_mode = pool_mode
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=pool_dimensions + 2)
        self._fitting_shape = None

    def call(self, inputs):
        shape = inputs.shape
        if shape != self._fitting_shape:  # checked once per input shape
            self._check_fits(shape)
            self._fitting_shape = shape
        pool = ops.max_pool if self.pool_mode == "max" else ops.average_pool
        return pool(inputs, self.pool_size, self.strides, self.padding, self.data_format)

    def _spatial(self, shape):
        return tuple(shape[1:-1]) if self.data_format == "channels_last" else tuple(shape[2:])

    def _check_fits(self, shape):
        """The output spatial shape; a ValueError when the window does not fit."""
        out = tuple(output_length(s, p, st, 1, self.padding)
                    for s, p, st in zip(self._spatial(shape), self.pool_size, self.strides))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): the pool window {self.pool_size} with "
                             f"padding={self.padding!r} does not fit the input: expected spatial dimensions of "
                             f"at least {self.pool_size}, received input shape {tuple(shape)}")
        return out

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        out = self._check_fits(input_shape)
        if self.data_format == "channels_last":
            return (input_shape[0],) + out + (input_shape[-1],)
        return (input_shape[0], input_shape[1]) + out

    def compute_output_spec(self, inputs, *args, **kwargs):
        # From the formula, so unknown spatial sizes stay None (no weights to build).
        return KerasTensor(self.compute_output_shape(inputs.shape), self._float_dtype())

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


@register("layer")
class MaxPooling1D(BasePooling):
    """Max over windows of ``pool_size`` steps. Input (batch, steps, channels) ->
    (batch, pooled_steps, channels)."""

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 1, "max", padding, data_format, name=name, **kwargs)


@register("layer")
class MaxPooling2D(BasePooling):
    """Max over ``pool_size`` windows. Input (batch, height, width, channels) ->
    (batch, pooled_height, pooled_width, channels)."""

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 2, "max", padding, data_format, name=name, **kwargs)


@register("layer")
class MaxPooling3D(BasePooling):
    """Max over ``pool_size`` windows. Input (batch, depth, height, width, channels) ->
    (batch, pooled_depth, pooled_height, pooled_width, channels)."""

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 3, "max", padding, data_format, name=name, **kwargs)


@register("layer")
class AveragePooling1D(BasePooling):
    """Mean over windows of ``pool_size`` steps ("same" padding: mean of the real cells)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 1, "average", padding, data_format, name=name, **kwargs)


@register("layer")
class AveragePooling2D(BasePooling):
    """Mean over ``pool_size`` windows ("same" padding: mean of the real cells)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 2, "average", padding, data_format, name=name, **kwargs)


@register("layer")
class AveragePooling3D(BasePooling):
    """Mean over ``pool_size`` windows of (batch, depth, height, width, channels) ("same": of the real cells)."""

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, 3, "average", padding, data_format, name=name, **kwargs)


class BaseGlobalPooling(Layer):
    """Reduces every spatial axis by ``_mode`` ("max" or "average") over ``_rank`` spatial axes
    (both set by each subclass); ``keepdims`` keeps them with length 1.
    Input (batch, *spatial, channels) -> (batch, channels)."""

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=self._rank + 2)
        first = 1 if self.data_format == "channels_last" else 2
        self._axes = tuple(range(first, first + self._rank))

    def call(self, inputs):
        """The kernels for channels_last with at least one spatial cell; else NumPy's reductions."""
        if self.data_format == "channels_last" and all(inputs.shape[1:-1]):
            return global_pool(inputs, self._mode, self.keepdims)
        reduce = ops.max if self._mode == "max" else ops.mean
        return reduce(inputs, axis=self._axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.keepdims:
            return tuple(1 if i in self._axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in self._axes)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


@register("layer")
class GlobalAveragePooling1D(BaseGlobalPooling):
    """Mean over the steps: (batch, steps, features) -> (batch, features). With a mask (from
    Embedding(mask_zero=True) or Masking), the mean of the unmasked steps."""

    _mode, _rank = "average", 1

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(data_format=data_format, keepdims=keepdims, **kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        weights = mask.value if hasattr(mask, "value") else mask
        weights = weights.astype(inputs.dtype)[..., None] if self.data_format == "channels_last" \
            else weights.astype(inputs.dtype)[:, None, :]
        total = ops.sum(ops.multiply(inputs, weights), axis=self._axes, keepdims=self.keepdims)
        return ops.divide(total, weights.sum(axis=self._axes, keepdims=self.keepdims))

    def compute_mask(self, inputs, mask=None):
        return None


@register("layer")
class GlobalAveragePooling2D(BaseGlobalPooling):
    """Mean over height and width: (batch, height, width, channels) -> (batch, channels)."""

    _mode, _rank = "average", 2


@register("layer")
class GlobalAveragePooling3D(BaseGlobalPooling):
    """Mean over depth, height and width: (batch, depth, height, width, channels) -> (batch, channels)."""

    _mode, _rank = "average", 3


@register("layer")
class GlobalMaxPooling1D(BaseGlobalPooling):
    """Max over the steps: (batch, steps, features) -> (batch, features)."""

    _mode, _rank = "max", 1


@register("layer")
class GlobalMaxPooling2D(BaseGlobalPooling):
    """Max over height and width: (batch, height, width, channels) -> (batch, channels)."""

    _mode, _rank = "max", 2


@register("layer")
class GlobalMaxPooling3D(BaseGlobalPooling):
    """Max over depth, height and width: (batch, depth, height, width, channels) -> (batch, channels)."""

    _mode, _rank = "max", 3


# Keras's aliases.
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (GlobalAveragePooling1D, GlobalAveragePooling2D,
                                                     GlobalAveragePooling3D)
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
