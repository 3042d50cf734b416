"""Layers that start a mask: Embedding (token ids -> vectors, ``mask_zero``) and Masking.

Embedding runs a compiled gather forward and a deterministic scatter-add backward
(``dlcore.ops.embedding_lookup``); ids outside [0, input_dim) are an error naming the layer. With
``mask_zero=True`` the output carries the mask ``ids != 0``, which the recurrent layers use to skip
padded steps. Masking marks the time steps whose features all equal ``mask_value`` as masked and
zeroes them.
"""
import numpy as np

from .. import constraints, initializers, ops, quantizers, regularizers
from ..ops import quantized as quantized_ops
from ..registry import register
from ..tensor import Tensor
from .layer import Layer


def _value(x):
    return x.value if isinstance(x, Tensor) else x


@register("layer")
class Embedding(Layer):
    """Turns non-negative integer ids into dense vectors: ``embeddings[ids]``.

    Input shape: (batch, ...) integer ids in [0, input_dim). Output shape: (batch, ...,
    output_dim). Weights: embeddings (input_dim, output_dim), "uniform" U[-0.05, 0.05] by default.
    """

    _runs_on_gpu = True  # ops.embedding_lookup dispatches on where the table lives

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, lora_alpha=None,
                 **kwargs):
        kwargs.pop("input_length", None)  # deprecated in Keras 3, ignored
        for arg, v in (("input_dim", input_dim), ("output_dim", output_dim)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"Embedding: `{arg}` must be a positive integer. Received: {arg}={v!r} "
                                 f"(of type {type(v).__name__}).")
        if lora_rank is not None:
            raise ValueError("Embedding: LoRA (`lora_rank`) is not supported by dlcore.")
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        if weights is not None:
            self.build()
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def _casts_integer_inputs(self):
        return False  # ids stay integers

    def build(self, input_shape=None):
        if self.built:
            return
        if self.quantization_mode is not None:
            self._int8_build()
            self.built = True
            return
        self.embeddings = self.add_weight(shape=(self.input_dim, self.output_dim),
                                          initializer=self.embeddings_initializer, name="embeddings",
                                          regularizer=self.embeddings_regularizer,
                                          constraint=self.embeddings_constraint)
        self.built = True

    def call(self, inputs):
        if self.quantization_mode is not None:
            return self._int8_call(inputs)
        return ops.embedding_lookup(self.embeddings, inputs, _who=f"Embedding '{self.name}'")

    # int8 quantization (Keras 3 names: embeddings int8 (input_dim, output_dim), embeddings_scale
    # (input_dim,), one scale per row) ----------------------------------------------------------------
    def quantize(self, mode, type_check=True, config=None):
        """Replace the float table by an int8 one with a float32 scale per row (Keras's abs-max
        rule); the layer then runs inference only."""
        quantizers.check_quantizable(self, mode, type_check, Embedding)
        values, scale = quantizers.abs_max_quantize(self.embeddings.value, axis=-1)
        quantizers.untrack(self, self.embeddings)
        self.quantization_mode = mode
        self._int8_build()
        self.embeddings.assign(values)
        self.embeddings_scale.assign(scale[:, 0])

    def _int8_build(self):
        self.embeddings = quantizers.add_int8_weight(self, "embeddings", (self.input_dim, self.output_dim))
        self.embeddings_scale = quantizers.add_scale_weight(self, "embeddings_scale", (self.input_dim,))

    def _int8_call(self, inputs):
        quantizers.refuse_recording(self)
        return quantized_ops.int8_embedding_lookup(self.embeddings, self.embeddings_scale, inputs,
                                                   _who=f"Embedding '{self.name}'")

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return np.asarray(_value(inputs)) != 0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "activity_regularizer": None,
            "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
            "mask_zero": self.mask_zero,
            **quantizers.dtype_config(self),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.pop("activity_regularizer", None)
        return cls(**config)


@register("layer")
class Masking(Layer):
    """Masks the time steps whose features all equal ``mask_value``: those steps become zeros and
    the output carries the mask (batch, timesteps), so downstream layers skip them."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def _keep(self, inputs):
        return np.any(np.asarray(_value(inputs)) != self.mask_value, axis=-1)

    def call(self, inputs):
        keep = self._keep(inputs)[..., None]
        return ops.where(keep, inputs, ops.zeros_like(inputs))

    def compute_mask(self, inputs, mask=None):
        return self._keep(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
