"""Core layers: InputLayer / Input, Dense, Activation, Lambda, Identity."""
import numpy as np

from .. import activations, constraints, initializers, ops, quantizers, regularizers
from ..ops import quantized as quantized_ops
from ..registry import register
from ..symbolic import KerasTensor
from .layer import InputSpec, Layer, positive_int


@register("layer")
class InputLayer(Layer):
    """The entry point of a functional graph; ``dl.Input`` creates one and returns its output."""

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None,
                 input_tensor=None, name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        if "batch_input_shape" in kwargs and batch_shape is None:
            batch_shape = kwargs.pop("batch_input_shape")
        if dtype in ("string", "str", str):
            dtype = "object"  # Keras's dtype="string": NumPy str / object arrays, for StringLookup and Hashing
        super().__init__(name=name, **kwargs)
        # an input's dtype is its data's (int32, string, ...), not a dtype policy (Keras's Input)
        self._policy = self._precision = None
        self._dtype = None if dtype is None else np.dtype(dtype).name
        self._np_dtype = None if dtype is None else np.dtype(dtype)
        if batch_shape is None:
            if shape is None:
                raise ValueError("InputLayer: give `shape` (without the batch size) or `batch_shape`.")
            if isinstance(shape, (int, np.integer)):
                shape = (shape,)
            batch_shape = (batch_size,) + tuple(shape)
        batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        if any(d is not None and d < 0 for d in batch_shape):
            raise ValueError(f"InputLayer '{self.name}': shape dimensions must be non-negative, "
                             f"received {batch_shape}")
        self.batch_shape = batch_shape
        self._input_dtype = self._dtype or self._float_dtype().name
        self.built = True
        self.output_tensor = KerasTensor(batch_shape, self._input_dtype, name=self.name)
        from ..symbolic import CallNode

        node = CallNode(self, (), {}, self.output_tensor)
        self.output_tensor.node = node
        self._inbound_nodes.append(node)

    @property
    def output(self):
        return self.output_tensor

    @property
    def dtype(self):
        return self._input_dtype

    def call(self, inputs):
        return inputs

    def get_config(self):
        return {"batch_shape": self.batch_shape, "dtype": self._input_dtype, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, sparse=None, batch_shape=None, name=None, tensor=None):
    """A symbolic input of ``shape`` (without the batch dimension), to start a functional model."""
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name)
    return layer.output


def kernel_bias_config(layer):
    """The kernel/bias initializer, regularizer and constraint entries (and the activity
    regularizer) of a Keras get_config, serialized: Dense, EinsumDense and MultiHeadAttention."""
    return {
        "kernel_initializer": initializers.serialize(layer.kernel_initializer),
        "bias_initializer": initializers.serialize(layer.bias_initializer),
        "kernel_regularizer": regularizers.serialize(layer.kernel_regularizer),
        "bias_regularizer": regularizers.serialize(layer.bias_regularizer),
        "activity_regularizer": regularizers.serialize(layer.activity_regularizer),
        "kernel_constraint": constraints.serialize(layer.kernel_constraint),
        "bias_constraint": constraints.serialize(layer.bias_constraint),
    }

@register("layer")
class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis.

    Input shape: (batch, ..., input_dim). Output shape: (batch, ..., units).
    Weights: kernel (input_dim, units), bias (units,); with LoRA (``lora_rank`` or
    ``enable_lora``) also lora_kernel_a (input_dim, rank) and lora_kernel_b (rank, units), the
    kernel frozen and the effective kernel ``kernel + (lora_alpha / lora_rank) * a @ b``.
    """

    _runs_on_gpu = True  # ops.dense dispatches on where the kernel lives

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, **kwargs):
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
        if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"Dense: received an invalid value for `units`, expected a positive integer. "
                             f"Received: units={units!r}")
        self.units = int(units)
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.lora_rank = None if lora_rank is None else positive_int("Dense", "lora_rank", lora_rank)
        self.lora_alpha = lora_alpha if lora_alpha is not None else self.lora_rank
        self.lora_enabled = False
        self.input_spec = InputSpec(min_ndim=2)
        self._fused = activations.kernel_activation(self.activation)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Dense '{self.name}': the last dimension of the inputs must be known, "
                             f"received input shape {input_shape}")
        if self.quantization_mode is not None:
            self._int8_build(input_dim)
        else:
            self.kernel = self.add_weight(shape=(input_dim, self.units), initializer=self.kernel_initializer,
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                          name="kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.units,), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        self.built = True
        if self.lora_rank:
            # Keras 3.15 passes only the rank here, so a constructor lora_alpha is lost; the
            # documented meaning (scale by lora_alpha / lora_rank) is kept instead.
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        """Freeze the kernel and train a rank-``rank`` update ``a @ b`` scaled by
        ``lora_alpha / rank`` (``lora_alpha`` defaults to ``rank``), as Keras 3: a (input_dim,
        rank) starts He-uniform, b (rank, units) at zeros, so the output is unchanged at first."""
        rank = positive_int(f"Dense '{self.name}'", "rank", rank)
        if self.kernel_constraint:
            raise ValueError("Lora is incompatible with kernel constraints. In order to enable lora on this "
                             "layer, remove the `kernel_constraint` argument.")
        if not self.built:
            raise ValueError("Cannot enable lora on a layer that isn't yet built.")
        if self.lora_enabled:
            raise ValueError("lora is already enabled. This can only be done once per layer.")
        # float32 at least, as Keras keeps LoRA weights in float32 under lower-precision policies
        dtype = np.promote_types(self.kernel.dtype, np.float32)
        input_dim, units = self.kernel.shape
        self.lora_kernel_a = self.add_weight(shape=(input_dim, rank), initializer=initializers.get(a_initializer),
                                             dtype=dtype, regularizer=self.kernel_regularizer, name="lora_kernel_a")
        self.lora_kernel_b = self.add_weight(shape=(rank, units), initializer=initializers.get(b_initializer),
                                             dtype=dtype, regularizer=self.kernel_regularizer, name="lora_kernel_b")
        self.kernel.trainable = False
        self.lora_enabled = True
        self.lora_rank = rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else rank

    def _effective_kernel(self):
        """The kernel the layer applies: ``kernel``, or with LoRA ``kernel + (alpha / rank) a @ b``
        (a Tensor on the tape, so a and b get gradients and the frozen kernel none)."""
        if not self.lora_enabled:
            return self.kernel
        delta = ops.multiply(ops.matmul(self.lora_kernel_a, self.lora_kernel_b), self.lora_alpha / self.lora_rank)
        return ops.add(self.kernel, ops.cast(delta, self.kernel.dtype))

    def call(self, inputs):
        if self.quantization_mode is not None:
            return self._int8_call(inputs)
        kernel = self._effective_kernel() if self.lora_enabled else self.kernel
        if self._fused is not None:
            name, alpha = self._fused
            y = ops.dense(inputs, kernel, self.bias, activation=name, alpha=alpha)
        else:
            y = self.activation(ops.dense(inputs, kernel, self.bias))
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(y))
        return y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **kernel_bias_config(self),
            **({"lora_rank": self.lora_rank, "lora_alpha": self.lora_alpha} if self.lora_rank else {}),
            **quantizers.dtype_config(self),
        }

    # int8 quantization (Keras 3 names: kernel int8 (input_dim, units), kernel_scale (units,)) ---------------
    def quantize(self, mode, type_check=True, config=None):
        """Replace the float kernel by an int8 one with a float32 scale per output column (Keras's
        abs-max rule); the layer then runs the int8 kernels, for inference only."""
        quantizers.check_quantizable(self, mode, type_check, Dense)
        if self.lora_enabled:
            raise ValueError(f"Dense '{self.name}': quantizing a layer with LoRA enabled is not supported; "
                             "merge or drop the LoRA weights first")
        values, scale = quantizers.abs_max_quantize(self.kernel.value, axis=0)
        quantizers.untrack(self, self.kernel)
        self.quantization_mode = mode
        self._int8_build(values.shape[0])
        self.kernel.assign(values)
        self.kernel_scale.assign(scale[0])

    def _int8_build(self, input_dim):
        self.kernel = quantizers.add_int8_weight(self, "kernel", (input_dim, self.units))
        self.kernel_scale = quantizers.add_scale_weight(self, "kernel_scale", (self.units,))

    def _int8_call(self, inputs):
        quantizers.refuse_recording(self)
        name, alpha = self._fused if self._fused is not None else ("linear", 0.0)
        y = quantized_ops.int8_dense(inputs, self.kernel.packed(), self.kernel_scale, self.bias, name, alpha)
        if self._fused is None:
            y = self.activation(y)
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(y))
        return y


@register("layer")
class Activation(Layer):
    """Applies ``activation`` (a name or a function) elementwise."""

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)
        self.supports_masking = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register("layer")
class Identity(Layer):
    """Returns its input unchanged."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


@register("layer")
class Lambda(Layer):
    """Wraps a Python function of tensors as a layer. Not serializable to a file: saving a model
    with a Lambda layer needs the function passed again through ``custom_objects``."""

    def __init__(self, function, output_shape=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda: `function` must be callable, received {type(function).__name__}")
        self.function = function
        self.arguments = arguments or {}
        self._output_shape = output_shape

    def call(self, inputs):
        return self.function(inputs, **self.arguments)

    def get_config(self):
        return {**super().get_config(), "function": getattr(self.function, "__name__", "lambda"),
                "arguments": self.arguments}
