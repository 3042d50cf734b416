"""Convolution layers, as Keras 3: a ``rank``-parameterized ``BaseConv`` (Conv1D, Conv2D, Conv3D), its
depthwise / separable variants and ``BaseConvTranspose`` (Conv1DTranspose, Conv2DTranspose).

Keras's arguments, defaults and weight layouts: channels_last inputs; kernels
``kernel_size + (in_channels // groups, filters)``, depthwise kernels
``kernel_size + (in_channels, depth_multiplier)``, transposed kernels
``kernel_size + (filters, in_channels)``. dlcore adds ``padding="reflect"`` to Conv1D / Conv2D /
Conv3D / DepthwiseConv2D / SeparableConv2D: NumPy "reflect" mirror padding of the amounts "same" would
pad, so the output size is that of "same".

int8 (a dlcore extension: Keras 3.15 quantizes no convolution): ``quantize("int8")`` on Conv1D,
Conv2D, DepthwiseConv1D and DepthwiseConv2D follows Dense's scheme: an int8 ``kernel`` (Keras's
layout) with a float32 ``kernel_scale`` per output channel (Keras's abs-max rule), and a float32
``input_scale``: 0 quantizes each input sample dynamically (abs-max over the sample), a positive value
(set by ``model.quantize("int8", calibration_data=x)``) is a static per-tensor scale. In a calibrated
Sequential model the inference plan chains such convolutions in int8 (see dlcore/models/inference.py).
``model.quantize`` keeps a convolution whose GEMM depth (kernel height x width x input channels) is under
32 in float32 (e.g. a 3x3 conv on 1-3 channel images), where int8 measured slower (dlcore/quantizers);
``layer.quantize("int8")`` quantizes any of them.
"""
from .. import activations, constraints, initializers, ops, quantizers, regularizers
from ..ops import quantized as quantized_ops
from ..ops.conv import (axis_pads, check_data_format, normalize_padding, normalize_tuple,
                        output_length, transpose_output_length)
from ..registry import register
from ..symbolic import KerasTensor
from .layer import C_INT_MAX, InputSpec, Layer, check_c_ints, positive_int


class _ConvBase(Layer):
    """What every convolution layer shares: argument checks, output size, activation fusing. Each
    concrete class sets ``rank`` (the number of spatial axes) and takes its base's arguments."""

    _runs_on_gpu = True  # 1-D, 2-D and 3-D convolutions dispatch on where the kernel lives (ops.conv2d_bias_act)

    rank = None

    _paddings = ("valid", "same", "reflect")
    _paddings_1d = ("valid", "same", "causal", "reflect")

    def _init_common(self, kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias, bias_initializer, bias_regularizer, activity_regularizer, bias_constraint):
        self._who = who = f"{type(self).__name__} '{self.name}'"
        rank = self.rank
        self.kernel_size = normalize_tuple(kernel_size, rank, "kernel_size", who, minimum=1)
        self.strides = normalize_tuple(strides, rank, "strides", who, minimum=1)
        self.dilation_rate = normalize_tuple(dilation_rate, rank, "dilation_rate", who, minimum=1)
        self.padding = normalize_padding(padding, who, self._paddings_1d if rank == 1 else self._paddings)
        self.data_format = check_data_format(data_format, who)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{who}: `strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                             f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}")
        check_c_ints(who, kernel_size=self.kernel_size, strides=self.strides, dilation_rate=self.dilation_rate,
                     **{name: getattr(self, name) for name in ("filters", "groups", "depth_multiplier")
                        if hasattr(self, name)})
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.bias_constraint = constraints.get(bias_constraint)
        self.input_spec = InputSpec(ndim=rank + 2)
        self._fused = activations.kernel_activation(self.activation)
        self._kernel_activation = self._fused or ("linear", 0.0)  # what the conv kernel applies

    def _input_channels(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"{type(self).__name__} '{self.name}': the channel dimension (last axis) of the "
                             f"inputs must be known, received input shape {tuple(input_shape)}")
        return int(channels)

    def _output_spatial(self, input_shape):
        spatial = tuple(input_shape[1:-1])
        out = tuple(output_length(n, k, s, d, self.padding)
                    for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate))
        if any(o is not None and o <= 0 for o in out):
            minimum = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
            raise ValueError(
                f"{type(self).__name__} '{self.name}': the kernel (kernel_size={self.kernel_size}, "
                f"dilation_rate={self.dilation_rate}) is larger than the input with padding={self.padding!r}: "
                f"expected spatial dimensions of at least {minimum}, received input shape {tuple(input_shape)}, "
                f"which gives the output spatial shape {out}")
        if self.padding == "reflect":
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate):
                pads = axis_pads(n, k, s, d, "same")
                if pads is not None and max(pads) >= n:
                    raise ValueError(f"{type(self).__name__} '{self.name}': padding='reflect' needs each "
                                     f"padding {pads} smaller than the input: received input shape "
                                     f"{tuple(input_shape)}")
        return out

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._output_spatial(input_shape) + (self.filters,)

    def compute_output_spec(self, inputs, *args, **kwargs):
        # From the formula, so unknown spatial sizes (fully convolutional inputs) stay None.
        if not self.built:
            self._build_from(inputs)
        return KerasTensor(self.compute_output_shape(inputs.shape), self._float_dtype())

    def _finish_build(self, bias_units, channels):
        """The bias (when use_bias) of ``bias_units`` outputs, the input spec; built."""
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(bias_units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={-1: channels})
        self.built = True

    def _finish(self, y, activation_fused):
        if not activation_fused:
            y = self.activation(y)
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(y))
        return y

    # int8 quantization (see the module docstring) ----------------------------------------------------
    def quantize(self, mode, type_check=True, config=None):
        """Replace the float kernel by an int8 one with a float32 scale per output channel; the layer
        then runs the int8 kernels (inputs quantized per sample until calibrated), for inference only."""
        cls = next((c for c in type(self).__mro__ if c.__module__ == __name__ and c.__name__ in _INT8_CONVS), None)
        if cls is None:
            raise quantizers.NotQuantizable(f"{self._who}: no int8 kernel for {type(self).__name__} (int8 covers "
                                            f"{', '.join(_INT8_CONVS)}); left in float")
        quantizers.check_quantizable(self, mode, type_check, cls)
        if getattr(self, "groups", 1) != 1:
            raise quantizers.NotQuantizable(f"{self._who}: no int8 kernel for grouped convolutions "
                                            f"(groups={self.groups}); left in float")
        depthwise = isinstance(self, BaseDepthwiseConv)
        kernel = self.kernel.value
        values, scale = quantizers.abs_max_quantize(kernel, axis=tuple(range(self.rank + (not depthwise))))
        quantizers.untrack(self, self.kernel)
        self.quantization_mode = mode
        self._int8_build(kernel.shape)
        self.kernel.assign(values)
        self.kernel_scale.assign(scale.reshape(-1))

    def _int8_depth(self):
        """The depth K of this convolution's int8 GEMM (kernel height x width x input channels), or None
        where no GEMM runs (depthwise kernels); ``model.quantize`` keeps convolutions with K under
        ``quantizers.CONV_MIN_DEPTH`` in float32."""
        kernel = getattr(self, "kernel", None)
        if isinstance(self, BaseDepthwiseConv) or kernel is None:
            return None
        shape = kernel.shape
        depth = 1
        for d in shape[:-1]:
            depth *= int(d)
        return depth

    def _int8_build(self, kernel_shape):
        self._int8_shape = tuple(kernel_shape)
        depthwise = isinstance(self, BaseDepthwiseConv)  # its kernel reads the Keras layout: not packed
        self.kernel = quantizers.add_int8_weight(self, "kernel", self._int8_shape, contract=self.rank + 1,
                                                 packed=not depthwise)
        outputs = kernel_shape[-1] * (kernel_shape[-2] if isinstance(self, BaseDepthwiseConv) else 1)
        self.kernel_scale = quantizers.add_scale_weight(self, "kernel_scale", (outputs,))
        self.input_scale = quantizers.add_scale_weight(self, "input_scale", ())
        self.input_scale.assign(0.0)

    def _int8_call(self, inputs, out_scale=None, relu=False):
        """The int8 forward: float32 outputs, or with ``out_scale`` int8 outputs requantized with it (the
        inference plan's int8 conv stacks; ``relu`` applies a ReLU folded from a following layer)."""
        quantizers.refuse_recording(self)
        depthwise = isinstance(self, BaseDepthwiseConv)
        name, alpha = ("relu", 0.0) if relu else self._kernel_activation
        scale = float(self.input_scale.value)
        weights = self.kernel.value if depthwise else self.kernel.packed()
        y = quantized_ops.int8_conv(inputs, weights, self._int8_shape, self.kernel_scale, self.bias, self.strides,
                                    self.padding, self.dilation_rate, input_scale=scale if scale > 0 else None,
                                    activation=name, alpha=alpha, out_scale=out_scale, depthwise=depthwise,
                                    _who=self._who)
        return y if out_scale is not None else self._finish(y, self._fused is not None)

    def _common_config(self):
        return {
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
            "bias_constraint": constraints.serialize(self.bias_constraint),
        }


class BaseConv(_ConvBase):
    """Keras's BaseConv: ``rank``-D convolution (``rank`` from the subclass) of channels_last inputs.

    Input shape: (batch, *spatial, in_channels). Output shape: (batch, *new_spatial, filters).
    Weights: kernel ``kernel_size + (in_channels // groups, filters)``, bias (filters,).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
        who = f"{type(self).__name__} '{self.name}'"
        self.filters, self.groups = positive_int(who, "filters", filters), positive_int(who, "groups", groups)
        if filters % groups != 0:
            raise ValueError(f"{who}: the number of filters must be evenly divisible by the number of groups, "
                             f"received groups={groups}, filters={filters}")
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          bias_initializer, bias_regularizer, activity_regularizer, bias_constraint)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups != 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the number of input channels must be evenly "
                             f"divisible by the number of groups, received groups={self.groups} and input shape "
                             f"{tuple(input_shape)}")
        shape = self.kernel_size + (channels // self.groups, self.filters)
        if self.quantization_mode is not None:
            self._int8_build(shape)
        else:
            self.kernel = self.add_weight(shape=shape, initializer=self.kernel_initializer,
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                          name="kernel")
        self._finish_build(self.filters, channels)

    def call(self, inputs):
        if self.quantization_mode is not None:
            return self._int8_call(inputs)
        y = ops.conv2d_bias_act(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                                self.groups, *self._kernel_activation, _who=self._who)
        if self._fused is not None and self.activity_regularizer is None:
            return y
        return self._finish(y, self._fused is not None)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            **self._common_config(),
            "groups": self.groups,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            **quantizers.dtype_config(self),
        }


@register("layer")
class Conv1D(BaseConv):
    """1-D convolution (temporal), Keras's Conv1D; ``padding`` also takes "causal" (left zeros only,
    so output t sees inputs <= t) and dlcore's "reflect".

    Input shape: (batch, steps, channels). Output shape: (batch, new_steps, filters).
    """

    rank = 1


@register("layer")
class Conv2D(BaseConv):
    """2-D convolution, Keras's Conv2D (plus dlcore's ``padding="reflect"``).

    Input shape: (batch, height, width, channels). Output shape: (batch, new_height, new_width,
    filters). Weights: kernel (kh, kw, channels // groups, filters), bias (filters,).
    """

    rank = 2


@register("layer")
class Conv3D(BaseConv):
    """3-D convolution (volumes, video), Keras's Conv3D (plus dlcore's ``padding="reflect"``).

    Input shape: (batch, depth, height, width, channels). Output shape: (batch, new_depth,
    new_height, new_width, filters). Weights: kernel (kd, kh, kw, channels // groups, filters), bias.
    """

    rank = 3


class BaseDepthwiseConv(_ConvBase):
    """Keras's BaseDepthwiseConv: each input channel convolved with its own ``depth_multiplier``
    filters. Weights: kernel ``kernel_size + (in_channels, depth_multiplier)``, bias
    (in_channels * depth_multiplier,). Output channel c * depth_multiplier + m sees channel c."""

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, **kwargs):
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
        self.depth_multiplier = positive_int(f"{type(self).__name__} '{self.name}'", "depth_multiplier",
                                              depth_multiplier)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          bias_initializer, bias_regularizer, activity_regularizer, bias_constraint)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        shape = self.kernel_size + (channels, self.depth_multiplier)
        if self.quantization_mode is not None:
            self._int8_build(shape)
        else:
            self.kernel = self.add_weight(shape=shape, initializer=self.depthwise_initializer,
                                          regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint,
                                          name="kernel")
        self._finish_build(channels * self.depth_multiplier, channels)

    def call(self, inputs):
        if self.quantization_mode is not None:
            return self._int8_call(inputs)
        y = ops.conv2d_bias_act(inputs, self.kernel, self.bias, self.strides, self.padding, self.dilation_rate,
                                None, *self._kernel_activation, depthwise=True, _who=self._who)
        return self._finish(y, self._fused is not None)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1]
        return ((input_shape[0],) + self._output_spatial(input_shape)
                + (None if channels is None else channels * self.depth_multiplier,))

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            **self._common_config(),
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
            **quantizers.dtype_config(self),
        }


@register("layer")
class DepthwiseConv1D(BaseDepthwiseConv):
    """1-D depthwise convolution, Keras's DepthwiseConv1D."""

    rank = 1


@register("layer")
class DepthwiseConv2D(BaseDepthwiseConv):
    """2-D depthwise convolution, Keras's DepthwiseConv2D.

    Input shape: (batch, height, width, channels). Output shape: (batch, new_height, new_width,
    channels * depth_multiplier). Weights: kernel (kh, kw, channels, depth_multiplier), bias.
    """

    rank = 2


class BaseSeparableConv(_ConvBase):
    """Keras's BaseSeparableConv: a depthwise convolution, then a pointwise (1x1) one.

    Weights: depthwise_kernel ``kernel_size + (in_channels, depth_multiplier)``, pointwise_kernel
    ``(1,) * rank + (in_channels * depth_multiplier, filters)``, bias (filters,).
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.depth_multiplier = positive_int(who, "depth_multiplier", depth_multiplier)
        self.filters = positive_int(who, "filters", filters)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          bias_initializer, bias_regularizer, activity_regularizer, bias_constraint)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.depthwise_kernel = self.add_weight(
            shape=self.kernel_size + (channels, self.depth_multiplier), initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer, constraint=self.depthwise_constraint, name="depthwise_kernel")
        self.pointwise_kernel = self.add_weight(
            shape=(1,) * self.rank + (channels * self.depth_multiplier, self.filters),
            initializer=self.pointwise_initializer, regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint, name="pointwise_kernel")
        self._finish_build(self.filters, channels)

    def call(self, inputs):
        y = ops.conv2d_bias_act(inputs, self.depthwise_kernel, None, self.strides, self.padding, self.dilation_rate,
                                None, depthwise=True, _who=self._who)
        y = ops.conv2d_bias_act(y, self.pointwise_kernel, self.bias, 1, "valid", 1, 1, *self._kernel_activation,
                                _who=self._who)
        return self._finish(y, self._fused is not None)

    def get_config(self):
        return {
            **super().get_config(),
            "depth_multiplier": self.depth_multiplier,
            "filters": self.filters,
            **self._common_config(),
            "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
            "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
            "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
            "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
            "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
            "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
        }


@register("layer")
class SeparableConv1D(BaseSeparableConv):
    """1-D separable convolution, Keras's SeparableConv1D."""

    rank = 1


@register("layer")
class SeparableConv2D(BaseSeparableConv):
    """2-D separable convolution, Keras's SeparableConv2D: DepthwiseConv2D (no bias), then a 1x1
    Conv2D with the bias and the activation."""

    rank = 2


class BaseConvTranspose(_ConvBase):
    """Keras's BaseConvTranspose: the transposed convolution (the gradient of a convolution with
    respect to its input). Weights: kernel ``kernel_size + (filters, in_channels)``, bias (filters,).
    Output length per axis: (L - 1) * stride + kernel_eff - 2 * pad + output_padding, with
    pad = kernel_eff // 2 for "same" and 0 for "valid" (without output_padding: L * stride for
    "same", L * stride + max(kernel_eff - stride, 0) for "valid")."""

    _runs_on_gpu = True  # ops.conv_transpose_bias dispatches on where the kernel lives

    _paddings = _paddings_1d = ("valid", "same")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(**kwargs)
        who = f"{type(self).__name__} '{self.name}'"
        self.filters = positive_int(who, "filters", filters)
        self._init_common(kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          bias_initializer, bias_regularizer, activity_regularizer, bias_constraint)
        self.output_padding = (None if output_padding is None
                               else normalize_tuple(output_padding, self.rank, "output_padding", who))
        if self.output_padding is not None:
            for op, s in zip(self.output_padding, self.strides):
                if op < 0 or op >= s:
                    raise ValueError(f"{who}: strides {self.strides} must be greater than output padding "
                                     f"{self.output_padding} (and the padding non-negative)")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.kernel = self.add_weight(shape=self.kernel_size + (self.filters, channels),
                                      initializer=self.kernel_initializer, regularizer=self.kernel_regularizer,
                                      constraint=self.kernel_constraint, name="kernel")
        self._finish_build(self.filters, channels)

    def _transpose_spatial(self, input_shape):
        pads = self.output_padding or (None,) * self.rank
        out = tuple(transpose_output_length(n, k, s, d, self.padding, op)
                    for n, k, s, d, op in zip(input_shape[1:-1], self.kernel_size, self.strides, self.dilation_rate,
                                              pads))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"{type(self).__name__} '{self.name}': non-positive output spatial shape {out} for "
                             f"input shape {tuple(input_shape)}")
        if any(o is not None and o > C_INT_MAX for o in out):
            raise ValueError(f"{type(self).__name__} '{self.name}': the output spatial shape {out} for input shape "
                             f"{tuple(input_shape)} and strides={self.strides} has a dimension over {C_INT_MAX}, "
                             "the largest the compiled kernels take")
        return out

    def call(self, inputs):
        self._transpose_spatial(inputs.shape)
        y = ops.conv_transpose_bias(inputs, self.kernel, self.bias, self.strides, self.padding, self.output_padding,
                                    dilation_rate=self.dilation_rate)
        return self._finish(y, False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._transpose_spatial(input_shape) + (self.filters,)

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters, **self._common_config(),
                  "output_padding": self.output_padding,
                  "kernel_initializer": initializers.serialize(self.kernel_initializer),
                  "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                  "kernel_constraint": constraints.serialize(self.kernel_constraint)}
        return config


@register("layer")
class Conv1DTranspose(BaseConvTranspose):
    """1-D transposed convolution, Keras's Conv1DTranspose."""

    rank = 1


@register("layer")
class Conv2DTranspose(BaseConvTranspose):
    """2-D transposed convolution ("deconvolution"), Keras's Conv2DTranspose.

    Input shape: (batch, height, width, channels). Output shape: (batch, new_height, new_width,
    filters). Weights: kernel (kh, kw, filters, channels), bias (filters,).
    """

    rank = 2


_INT8_CONVS = ("Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D")

# Keras's aliases.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution1DTranspose, Convolution2DTranspose = Conv1DTranspose, Conv2DTranspose
SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D

__all__ = ["BaseConv", "Conv1D", "Conv2D", "Conv3D", "BaseDepthwiseConv", "DepthwiseConv1D", "DepthwiseConv2D",
           "BaseSeparableConv", "SeparableConv1D", "SeparableConv2D", "BaseConvTranspose", "Conv1DTranspose",
           "Conv2DTranspose"]
