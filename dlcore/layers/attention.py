"""Attention layers (Keras 3): EinsumDense, MultiHeadAttention, Attention, AdditiveAttention.

MultiHeadAttention projects with EinsumDense sublayers (query, key, value, attention_output:
weights in that order) to (B, T, N, H) (self-attention, query is value is key: the three
projections as one op, reading the same weights) and runs the fused ``ops.dot_product_attention``
(dropout inside the kernel); with ``return_attention_scores`` the scores are materialized instead, as Keras
does. Attention ("dot") uses the fused op as well; its "concat" mode and AdditiveAttention
materialize the (B, Tq, Tv) scores, which their formulas need.
"""
import copy
import math
import re

import numpy as np

from .. import activations, constraints, initializers, ops, quantizers, regularizers
from ..initializers import VarianceScaling
from ..ops import quantized as quantized_ops
from ..ops.attention import einsum_product, self_attention_qkv
from ..registry import register
from ..tensor import Tensor
from .core import kernel_bias_config
from .layer import InputSpec, Layer

NEG = -1e9  # the score Keras gives a masked position


# ---- EinsumDense -------------------------------------------------------------------------------
def analyze_einsum(equation, bias_axes, input_shape, output_shape):
    """(kernel_shape, bias_shape, full_output_shape, input_axes, output_axes) of an EinsumDense,
    as Keras's ``_analyze_einsum_string``."""
    dotted = re.sub(r"\.\.\.", "0", equation)
    for pattern, left in (("([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$", False),
                          ("0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$", True),
                          ("([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$", False)):
        match = re.match(pattern, dotted)
        if match:
            return _analyze_split(match.group(1), match.group(2), match.group(3), bias_axes, input_shape,
                                  output_shape, left)
    raise ValueError(f"Invalid einsum equation '{equation}'. Equations must be in the form "
                     "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]....")


def _analyze_split(input_spec, weight_spec, output_spec, bias_axes, input_shape, output_shape, left_elided):
    input_shape = list(input_shape)
    elided = len(input_shape) - len(input_spec)
    output_shape = [output_shape] if isinstance(output_shape, int) else list(output_shape)
    output_shape.insert(0, input_shape[0])
    if elided > 0 and left_elided:
        for i in range(1, elided):
            output_shape.insert(1, input_shape[i])
    elif elided > 0:
        output_shape.extend(input_shape[len(input_shape) - elided:])
    if left_elided:
        input_map = {d: i + elided - len(input_shape) for i, d in enumerate(input_spec)}
        output_map = {d: i + elided for i, d in enumerate(output_spec)}
    else:
        input_map = {d: i for i, d in enumerate(input_spec)}
        output_map = {d: i for i, d in enumerate(output_spec)}
    for d in input_spec:
        if d in output_map:
            out_dim = output_shape[output_map[d]]
            if out_dim is not None and out_dim != input_shape[input_map[d]]:
                raise ValueError(f"Input shape and output shape do not match at shared dimension '{d}'. Input "
                                 f"shape is {input_shape[input_map[d]]}, and output shape is {out_dim}.")
            output_shape[output_map[d]] = input_shape[input_map[d]]  # a free axis: the input's size
    for d in output_spec:
        if d not in input_spec and d not in weight_spec:
            raise ValueError(f"Dimension '{d}' was specified in the output '{output_spec}' but has no "
                             f"corresponding dim in the input spec '{input_spec}' or weight spec "
                             f"'{weight_spec}'")
    kernel_shape, input_axes, output_axes = [], [], []
    for i, d in enumerate(weight_spec):
        if d in output_map:
            kernel_shape.append(output_shape[output_map[d]])
            output_axes.append(i)
        elif d in input_map:
            kernel_shape.append(input_shape[input_map[d]])
            input_axes.append(i)
        else:
            raise ValueError(f"Weight dimension '{d}' did not have a match in either the input spec "
                             f"'{input_spec}' or the output spec '{output_spec}'. For this layer, the weight "
                             "must be fully specified.")
    bias_shape = None
    if bias_axes is not None:
        offset = elided if left_elided else 0
        sizes = {d: output_shape[i + offset] for i, d in enumerate(output_spec)}
        for d in bias_axes:
            if d not in output_spec:
                raise ValueError(f"Bias dimension '{d}' was requested, but is not part of the output spec "
                                 f"'{output_spec}'")
        first = min(output_spec.find(d) for d in bias_axes)
        bias_shape = [sizes[d] if d in bias_axes else 1 for d in output_spec[first:]]
        if not left_elided:
            bias_shape.extend([1] * elided)
    return kernel_shape, bias_shape, output_shape, input_axes, output_axes


def _dense_split(equation):
    """(contracted, new) letter counts when ``equation`` is a 2-D GEMM in disguise: input =
    free + contracted letters, kernel = contracted + new, output = free + new (MHA's
    projections); else None."""
    match = re.match(r"^((?:\.\.\.)?[a-zA-Z]*),([a-zA-Z]+)->((?:\.\.\.)?[a-zA-Z]*)$", equation)
    if not match:
        return None
    x, w, y = match.groups()
    for c in range(1, len(w)):
        contracted, new = w[:c], w[c:]
        if (x.endswith(contracted) and y.endswith(new) and x[:-len(contracted)] == y[:-len(new)]
                and len(set(w)) == len(w) and not set(new) & set(x)):
            return len(contracted), len(new)
    return None


@register("layer")
class EinsumDense(Layer):
    """``activation(einsum(equation, inputs, kernel) + bias)`` (Keras 3).

    Weights: kernel of the shape the equation gives (e.g. "abc,cde->abde" with output_shape
    (None, N, H): (c, N, H)), bias of the ``bias_axes`` part of the output (or none). Equations
    that are a matrix product after reshaping (MHA's) run the fused dense kernel; others go
    through NumPy einsum forward and backward.
    """

    _runs_on_gpu = True  # the matrix-product equations run ops.dense, which dispatches on the kernel's device

    def __init__(self, equation, output_shape, activation=None, bias_axes=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, lora_rank=None, lora_alpha=None, **kwargs):
        kwargs.pop("gptq_unpacked_column_size", None)
        if kwargs.pop("quantization_config", None) is not None:
            raise ValueError("EinsumDense: quantization_config is not supported by dlcore")
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
        if not isinstance(equation, str):
            raise TypeError(f"EinsumDense: equation must be a string, received {equation!r}")
        if lora_rank is not None:
            raise ValueError(f"EinsumDense '{self.name}': LoRA is not supported (received lora_rank={lora_rank})")
        self.equation = equation
        if isinstance(output_shape, (int, np.integer)):
            self.partial_output_shape = (int(output_shape),)
        else:
            try:
                self.partial_output_shape = tuple(None if d is None else int(d) for d in output_shape)
            except TypeError:
                raise TypeError(f"EinsumDense: output_shape must be an int or a tuple, received "
                                f"{output_shape!r}") from None
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self._gemm = _dense_split(equation)
        self._fused = activations.kernel_activation(self.activation)
        self.supports_masking = True

    def build(self, input_shape):
        kernel_shape, bias_shape, _, input_axes, output_axes = analyze_einsum(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape)
        if any(d is None for d in kernel_shape):
            raise ValueError(f"EinsumDense '{self.name}': the kernel dimensions must be known, received input "
                             f"shape {tuple(input_shape)} for equation '{self.equation}'")
        self.input_spec = InputSpec(ndim=len(input_shape))
        if self.quantization_mode is not None:
            self._int8_build(tuple(kernel_shape), len(input_shape))
        init = self.kernel_initializer
        if isinstance(init, VarianceScaling) and (init.input_axes is None or init.output_axes is None):
            init = copy.copy(init)
            init.input_axes, init.output_axes = list(input_axes), list(output_axes)
        if self.quantization_mode is None:
            self.kernel = self.add_weight(shape=tuple(kernel_shape), initializer=init,
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                          name="kernel")
        self.bias = None
        if bias_shape is not None:
            self.bias = self.add_weight(shape=tuple(bias_shape), initializer=self.bias_initializer,
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def call(self, inputs):
        if self.quantization_mode is not None:
            return self._int8_call(inputs)
        kernel = self.kernel
        if self._gemm is not None:
            n_contract, n_new = self._gemm
            k_shape = kernel.shape
            lead = tuple(inputs.shape[:inputs.ndim - n_contract])
            k_in = math.prod(k_shape[:n_contract])
            new_shape = tuple(k_shape[n_contract:])
            x2 = ops.reshape(inputs, lead + (k_in,)) if n_contract != 1 else inputs
            w2 = ops.reshape(kernel, (k_in, math.prod(new_shape))) if len(k_shape) != 2 else kernel
            bias = self.bias
            fused_bias = bias is not None and tuple(bias.shape) == new_shape
            b2 = (ops.reshape(bias, (-1,)) if len(new_shape) != 1 else bias) if fused_bias else None
            name, alpha = self._fused if self._fused is not None else ("linear", 0.0)
            fuse_act = self._fused is not None and (bias is None or fused_bias)
            y = ops.dense(x2, w2, b2, activation=name if fuse_act else "linear", alpha=alpha)
            if n_new != 1:
                y = ops.reshape(y, lead + new_shape)
            if bias is not None and not fused_bias:
                y = ops.add(y, bias)
            if not fuse_act and self.activation is not None:
                y = self.activation(y)
        else:
            y = einsum_product(self.equation, inputs, kernel)
            if self.bias is not None:
                y = ops.add(y, self.bias)
            if self.activation is not None:
                y = self.activation(y)
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(y))
        return y

    def compute_output_shape(self, input_shape):
        return tuple(analyze_einsum(self.equation, self.bias_axes, input_shape, self.partial_output_shape)[2])

    def get_config(self):
        return {
            **super().get_config(),
            "output_shape": self.partial_output_shape,
            "equation": self.equation,
            "activation": activations.serialize(self.activation),
            "bias_axes": self.bias_axes,
            **kernel_bias_config(self),
            **quantizers.dtype_config(self),
        }

    # int8 quantization (Keras 3 names: kernel int8 (kernel shape), kernel_scale (1, ..., 1, new dims)) -------
    def quantize(self, mode, type_check=True, config=None):
        """Replace the float kernel by an int8 one with a float32 scale per output channel (Keras's
        abs-max rule over the contracted axes); dense-product equations only (``abc,cde->abde``...);
        the layer then runs inference only."""
        quantizers.check_quantizable(self, mode, type_check, EinsumDense)
        self._check_int8_equation()
        n_contract = self._gemm[0]
        kernel = self.kernel.value
        values, scale = quantizers.abs_max_quantize(kernel, axis=tuple(range(n_contract)))
        quantizers.untrack(self, self.kernel)
        self.quantization_mode = mode
        self._int8_build(kernel.shape, self.input_spec.ndim)
        self.kernel.assign(values)
        self.kernel_scale.assign(scale.reshape(self.kernel_scale.shape))

    def _check_int8_equation(self):
        if self._gemm is None:
            raise quantizers.NotQuantizable(
                f"EinsumDense '{self.name}': int8 quantization needs a dense-product equation (the input's last "
                f"axes contracted with the kernel's first ones), received '{self.equation}'")

    def _int8_build(self, kernel_shape, input_ndim):
        self._check_int8_equation()
        n_contract = self._gemm[0]
        self.kernel = quantizers.add_int8_weight(self, "kernel", tuple(kernel_shape), contract=n_contract)
        self.kernel_scale = quantizers.add_scale_weight(
            self, "kernel_scale", (1,) * (input_ndim - n_contract) + tuple(kernel_shape[n_contract:]))

    def _int8_call(self, inputs):
        quantizers.refuse_recording(self)
        n_contract, n_new = self._gemm
        k_shape = self.kernel.shape
        x = inputs.value if isinstance(inputs, Tensor) else np.asarray(inputs)
        lead = tuple(x.shape[:x.ndim - n_contract])
        new_shape = tuple(k_shape[n_contract:])
        x2 = x.reshape(lead + (math.prod(k_shape[:n_contract]),))
        bias = self.bias
        fused_bias = bias is not None and tuple(bias.shape) == new_shape
        b2 = bias.value.reshape(-1) if fused_bias else None
        name, alpha = self._fused if self._fused is not None else ("linear", 0.0)
        fuse_act = self._fused is not None and (bias is None or fused_bias)
        y = quantized_ops.int8_dense(x2, self.kernel.packed(), self.kernel_scale.value.reshape(-1), b2,
                                     name if fuse_act else "linear", alpha)
        y = ops.reshape(y, lead + new_shape)
        if bias is not None and not fused_bias:
            y = ops.add(y, bias)
        if not fuse_act and self.activation is not None:
            y = self.activation(y)
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(y))
        return y


# ---- shared attention helpers ------------------------------------------------------------------
def _positive_int(layer, name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{layer}: received an invalid value for argument `{name}`, expected a positive "
                         f"integer. Received: {name}={value!r}")
    return int(value)


def _rate(layer, value):
    if not isinstance(value, (int, float, np.floating)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"{layer}: `dropout` must be a float in [0, 1), received dropout={value!r}")
    return float(value)


def _bool_mask(mask):
    return None if mask is None else np.asarray(mask.value if isinstance(mask, Tensor) else mask).astype(bool)


def _causal(T, S):
    return np.tril(np.ones((T, S), dtype=bool))


def _materialized(q, k, v, mask, scale, rate, training, seed):
    """(out (B, T, N, Hv), probs (B, N, T, S)) by explicit scores, as Keras's non-fused path:
    masked scores -> -1e9, softmax, masked probabilities -> 0 (Keras's Softmax layer), dropout."""
    qh = ops.transpose(ops.multiply(q, scale), (0, 2, 1, 3))
    s = ops.matmul(qh, ops.transpose(k, (0, 2, 3, 1)))
    if mask is not None:
        s = ops.where(mask, s, NEG)
    p = ops.softmax(s, axis=-1)
    if mask is not None:
        p = ops.where(mask, p, 0.0)
    pd = ops.dropout(p, rate, seed=seed) if training and rate > 0 else p
    out = ops.matmul(pd, ops.transpose(v, (0, 2, 1, 3)))
    return ops.transpose(out, (0, 2, 1, 3)), p


def _dropout_seed(seed_gen):
    return None if seed_gen is None else int(seed_gen.integers(0, 2**63))


# ---- MultiHeadAttention ------------------------------------------------------------------------
@register("layer")
class MultiHeadAttention(Layer):
    """Multi-head attention (Keras 3): query/key/value EinsumDense projections to (B, T, N, H),
    softmax(q k^T / sqrt(key_dim), masked) [dropout] @ v on the fused kernel, and the
    attention_output EinsumDense back to the query's last dimension (or ``output_shape``).

    Call: (query (B, T, dq), value (B, S, dv), key=None (B, S, dk), attention_mask=None (B, T, S),
    return_attention_scores=False, training=None, use_causal_mask=False). Keras masks on
    query/value/key combine with attention_mask (query mask x value mask x key mask). A query
    row left with no key is, as in Keras, uniform over every key when dropout is 0 (Keras's
    fused path) and zero otherwise or with the scores returned (its masked Softmax). Weights:
    query kernel (dq, N, H) + bias (N, H), key (dk, N, H) + (N, H), value (dv, N, Hv) + (N, Hv),
    attention_output kernel (N, Hv, d_out) + bias (d_out,).
    """

    _INPUT_KWARGS = ("value",)

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 attention_axes=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, sliding_window=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = _positive_int("MultiHeadAttention", "num_heads", num_heads)
        self.key_dim = _positive_int("MultiHeadAttention", "key_dim", key_dim)
        self.value_dim = _positive_int("MultiHeadAttention", "value_dim", value_dim, allow_none=True) or self.key_dim
        self.dropout = _rate("MultiHeadAttention", dropout)
        self.use_bias = bool(use_bias)
        if output_shape:
            if isinstance(output_shape, (int, np.integer)):
                output_shape = (int(output_shape),)
            try:
                output_shape = tuple(int(d) for d in output_shape)
            except TypeError:
                raise ValueError(f"Invalid `output_shape`: {output_shape}. When specified, the `output_shape` "
                                 "should be of type tuple, list, or int.") from None
        self._output_shape = output_shape or None
        if isinstance(attention_axes, (int, np.integer)):
            attention_axes = (int(attention_axes),)
        elif attention_axes is not None and not isinstance(attention_axes, (list, tuple)):
            raise ValueError("`attention_axes` must be an int, list, or tuple. "
                             f"Received: attention_axes={attention_axes}")
        self.attention_axes = None if attention_axes is None else tuple(int(a) for a in attention_axes)
        self.sliding_window = _positive_int("MultiHeadAttention", "sliding_window", sliding_window, allow_none=True)
        self.flash_attention = flash_attention
        self.use_gate = bool(use_gate)
        self.seed = seed
        self._seed_gen = None if seed is None else np.random.default_rng(seed)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self._scale = 1.0 / math.sqrt(float(self.key_dim))
        self.supports_masking = True
        self._sublayers_built = False
        self._fuses_qkv = False

    def _sub(self, equation, output_shape, bias_axes, name, activation=None):
        return EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes if self.use_bias else None,
                           activation=activation, name=name, dtype=self._dtype,
                           kernel_initializer=copy.deepcopy(self.kernel_initializer),
                           bias_initializer=copy.deepcopy(self.bias_initializer),
                           kernel_regularizer=self.kernel_regularizer, bias_regularizer=self.bias_regularizer,
                           activity_regularizer=self.activity_regularizer, kernel_constraint=self.kernel_constraint,
                           bias_constraint=self.bias_constraint)

    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None:  # built on the first call, which knows the value's shape
            return
        key_shape = value_shape if key_shape is None else key_shape
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError("All dimensions of `value` and `key`, except the last one, must be equal. Received: "
                             f"value_shape={tuple(value_shape)} and key_shape={tuple(key_shape)}")
        rank = len(query_shape)
        if rank < 3 or len(value_shape) != rank or len(key_shape) != rank:
            raise ValueError(f"MultiHeadAttention '{self.name}': query, value and key must have one rank of at "
                             f"least 3; received query {tuple(query_shape)}, value {tuple(value_shape)}, key "
                             f"{tuple(key_shape)}")
        N, H, Hv = self.num_heads, self.key_dim, self.value_dim
        eq, bias_axes = _proj_equation(rank - 1, 1, 2)
        lead = [None] * (rank - 2)
        self._query_dense = self._sub(eq, lead + [N, H], bias_axes, "query")
        self._query_dense.build(tuple(query_shape))
        self._key_dense = self._sub(eq, lead + [N, H], bias_axes, "key")
        self._key_dense.build(tuple(key_shape))
        if self.use_gate:
            self._gate_dense = self._sub(eq, lead + [N, Hv], bias_axes, "gate", activation="sigmoid")
            self._gate_dense.build(tuple(query_shape))
        self._value_dense = self._sub(eq, lead + [N, Hv], bias_axes, "value")
        self._value_dense.build(tuple(value_shape))
        out_dims = list(self._output_shape or [query_shape[-1]])
        eq, bias_axes = _proj_equation(rank - 1, 2, len(out_dims))
        self._output_dense = self._sub(eq, lead + out_dims, bias_axes, "attention_output")
        self._output_dense.build(tuple(query_shape[:-1]) + (N, Hv))
        # self-attention projects q, k, v in one op (ops.attention.self_attention_qkv) when the
        # sublayers are plain (B, T, D) products with no activity regularizer
        self._fuses_qkv = rank == 3 and self.activity_regularizer is None and tuple(query_shape) == tuple(
            key_shape) == tuple(value_shape)
        axes = self.attention_axes
        self._attn_axes = tuple(range(1, rank - 1)) if axes is None else tuple(
            a if a >= 0 else rank + a for a in axes)  # axes of the projected (rank + 1) tensors
        if any(not 1 <= a < rank for a in self._attn_axes):
            raise ValueError(f"MultiHeadAttention '{self.name}': attention_axes must index the query's "
                             f"non-batch, non-feature axes; received {axes}")
        self._sublayers_built = True
        self.built = True

    @property
    def query_dense(self):
        return self._query_dense

    @property
    def key_dense(self):
        return self._key_dense

    @property
    def value_dense(self):
        return self._value_dense

    @property
    def output_dense(self):
        return self._output_dense

    def _convert_other(self, x):
        if x is None or isinstance(x, Tensor) and x.value.dtype == self._float_dtype():
            return x
        return ops.cast(ops.convert_to_tensor(x), self._float_dtype())

    def call(self, query, value, key=None, query_mask=None, value_mask=None, key_mask=None, attention_mask=None,
             return_attention_scores=False, training=None, use_causal_mask=False):
        value_in, key_in = value, key
        value, key = self._convert_other(value), self._convert_other(key)
        if key is None:
            key = value
        if not self._sublayers_built:
            self.build(tuple(query.shape), tuple(value.shape), tuple(key.shape))
        q_mask = _bool_mask(query_mask if query_mask is not None else getattr(query, "mask", None))
        v_mask = _bool_mask(value_mask if value_mask is not None else getattr(value_in, "mask", None))
        k_mask = _bool_mask(key_mask if key_mask is not None else
                            (getattr(key_in, "mask", None) if key_in is not None and key_in is not value_in else None))
        mask = self._attention_mask(query, value, q_mask, v_mask, k_mask, attention_mask, use_causal_mask)
        gate = self._gate_dense(query) if self.use_gate else None
        qd, kd, vd = self._query_dense, self._key_dense, self._value_dense
        if (self._fuses_qkv and query is value and key is value
                and query.dtype == qd.kernel.dtype == kd.kernel.dtype == vd.kernel.dtype):
            # (a quantized or otherwise retyped sublayer fails the dtype test and runs its own call)
            q, k, v = self_attention_qkv(query, qd.kernel, kd.kernel, vd.kernel, qd.bias, kd.bias, vd.bias)
        else:
            q = self._query_dense(query)
            k = self._key_dense(key)
            v = self._value_dense(value)
        out, scores = self._attend(q, k, v, mask, bool(training), return_attention_scores, bool(use_causal_mask))
        if gate is not None:
            out = ops.multiply(out, gate)
        out = self._output_dense(out)
        return (out, scores) if return_attention_scores else out

    def _attention_mask(self, query, value, q_mask, v_mask, k_mask, attention_mask, use_causal_mask):
        """The (B, T, S) boolean mask Keras builds (None for no mask or causal alone)."""
        T, S = query.shape[1], value.shape[1]
        auto = None
        if q_mask is not None:
            auto = q_mask[:, :, None]
        for m in (v_mask, k_mask):
            if m is not None:
                auto = m[:, None, :] if auto is None else auto & m[:, None, :]
        explicit = _bool_mask(attention_mask)
        if auto is None and explicit is None and self.sliding_window is None:
            return None  # causal alone runs as is_causal (tile skipping)
        if use_causal_mask:
            auto = _causal(T, S)[None] if auto is None else auto & _causal(T, S)[None]
        if self.sliding_window is not None:
            band = np.abs(np.arange(T)[:, None] - np.arange(S)[None, :]) < self.sliding_window
            auto = band[None] if auto is None else auto & band[None]
        if explicit is not None:
            auto = explicit if auto is None else explicit & auto
        return auto

    def _attend(self, q, k, v, mask, training, return_scores, causal):
        """q (B, *dims, N, H), k (B, *dims_s, N, H), v (B, *dims_s, N, Hv) -> (out, scores or None)."""
        rate = self.dropout if training else 0.0
        seed = _dropout_seed(self._seed_gen)
        default_axes = self._attn_axes == tuple(range(1, q.ndim - 2))
        if q.ndim == 4 and default_axes:
            m4 = None if mask is None else np.expand_dims(mask, 1) if mask.ndim == 3 else mask
            if return_scores:
                if causal and m4 is None:
                    m4 = _causal(q.shape[1], k.shape[1])[None, None]
                return _materialized(q, k, v, m4, self._scale, rate, training, seed)
            out = ops.dot_product_attention(q, k, v, mask=m4, scale=self._scale, is_causal=causal,
                                            dropout_rate=rate, seed=seed)
            if self.dropout > 0 and m4 is not None:
                # with dropout Keras takes its non-fused path, whose masked softmax zeroes rows with no key
                out = ops.multiply(out, np.any(m4, axis=-1).transpose(0, 2, 1)[..., None].astype(q.dtype))
            return out, None
        if mask is not None or causal or return_scores:  # (mask already holds the causal part)
            raise ValueError(f"MultiHeadAttention '{self.name}': masks, use_causal_mask and "
                             "return_attention_scores need the default attention_axes in dlcore; received "
                             f"attention_axes={self.attention_axes} for inputs of rank {q.ndim - 1}")
        return self._attend_axes(q, k, v, rate, seed), None

    def _attend_axes(self, q, k, v, rate, seed):
        """Attention over ``attention_axes``: the other axes join the batch, the attention axes
        flatten into one sequence axis, and the fused op runs on (B', T', N, H)."""
        rank = q.ndim
        attn = self._attn_axes
        batch = tuple(a for a in range(rank - 2) if a not in attn)
        perm = batch + attn + (rank - 2, rank - 1)

        def fold(x):
            xt = ops.transpose(x, perm)
            shape = xt.shape
            return ops.reshape(xt, (math.prod(shape[:len(batch)]), math.prod(shape[len(batch):rank - 2]),
                                    shape[-2], shape[-1])), shape

        (q4, qshape), (k4, _), (v4, _) = fold(q), fold(k), fold(v)
        out = ops.dot_product_attention(q4, k4, v4, scale=self._scale, dropout_rate=rate, seed=seed)
        out = ops.reshape(out, qshape[:-1] + (v.shape[-1],))
        return ops.transpose(out, tuple(np.argsort(perm)))

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        return query_shape[:-1] + self._output_shape if self._output_shape else query_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "dropout": self.dropout,
            "use_bias": self.use_bias,
            "use_gate": self.use_gate,
            "output_shape": self._output_shape,
            "attention_axes": self.attention_axes,
            "sliding_window": self.sliding_window,
            **kernel_bias_config(self),
            "seed": self.seed,
        }


def _proj_equation(free_dims, bound_dims, output_dims):
    """Keras's _build_proj_equation: (equation, bias_axes)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    free = letters[:free_dims]
    bound = letters[free_dims:free_dims + bound_dims]
    out = letters[free_dims + bound_dims:free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{out}->{free}{out}", out



# ---- Attention (Luong) and AdditiveAttention (Bahdanau) ----------------------------------------
@register("layer")
class Attention(Layer):
    """Dot-product (Luong) attention (Keras 3) on ``[query (B, Tq, dim), value (B, Tv, dim),
    key=value]``: scores q.k (``score_mode="dot"``, times a learned scalar ``scale`` when
    ``use_scale``) or ``concat_score_weight * sum(tanh(scale * (q + k)))`` ("concat"); softmax over
    Tv with the value mask (and causal mask), dropout when training, @ value; rows where the query
    mask is False are zero. Weights: scale () if use_scale, concat_score_weight () for "concat".
    The "dot" mode runs the fused attention op unless the scores are returned.
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        if score_mode not in ("dot", "concat"):
            raise ValueError("Invalid value for argument score_mode. Expected one of {'dot', 'concat'}. "
                             f"Received: score_mode={score_mode}")
        self.score_mode = score_mode
        self.dropout = _rate(type(self).__name__, dropout)
        self.seed = seed
        self._seed_gen = None if seed is None else np.random.default_rng(seed)
        self.supports_masking = True

    def _validate(self, inputs, mask=None):
        name = type(self).__name__
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(f"{name} layer must be called on a list of inputs, namely [query, value] or "
                             f"[query, value, key]. Received: inputs={type(inputs).__name__}.")
        if not 2 <= len(inputs) <= 3:
            raise ValueError(f"{name} layer accepts inputs list of length 2 or 3, namely [query, value] or "
                             f"[query, value, key]. Received length: {len(inputs)}.")
        if mask is not None:
            if not isinstance(mask, (list, tuple)):
                raise ValueError(f"{name} layer mask must be a list, namely [query_mask, value_mask]. "
                                 f"Received: mask={type(mask).__name__}.")
            if not 2 <= len(mask) <= 3:
                raise ValueError(f"{name} layer accepts mask list of length 2 or 3. Received length {len(mask)}.")

    def build(self, input_shape):
        self._validate(input_shape)
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(shape=(), initializer="ones", name="scale")
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(shape=(), initializer="ones", name="concat_score_weight")
        self.built = True

    def _calculate_scores(self, query, key):
        if self.score_mode == "dot":
            scores = ops.matmul(query, ops.transpose(key, _swap_last(key.ndim)))
            return ops.multiply(scores, self.scale) if self.scale is not None else scores
        q = ops.expand_dims(query, -2)
        k = ops.expand_dims(key, -3)
        summed = ops.add(q, k)
        if self.scale is not None:
            summed = ops.multiply(self.scale, summed)
        return ops.multiply(self.concat_score_weight, ops.sum(ops.tanh(summed), axis=-1))

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        self._validate(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        q_mask = _bool_mask(mask[0]) if mask else None
        v_mask = _bool_mask(mask[1]) if mask else None
        rate = self.dropout if training else 0.0
        seed = _dropout_seed(self._seed_gen)
        Tq, Tv = q.shape[-2], v.shape[-2]
        if self.score_mode == "dot" and not return_attention_scores and type(self) is Attention:
            lead = tuple(q.shape[:-2])
            b = math.prod(lead)
            q4 = ops.reshape(q if self.scale is None else ops.multiply(q, self.scale), (b, Tq, 1, q.shape[-1]))
            k4 = ops.reshape(k, (b, Tv, 1, k.shape[-1]))
            v4 = ops.reshape(v, (b, Tv, 1, v.shape[-1]))
            m4 = None if v_mask is None else np.broadcast_to(v_mask, lead + (Tv,)).reshape(b, 1, 1, Tv)
            out = ops.dot_product_attention(q4, k4, v4, mask=m4, scale=1.0, is_causal=bool(use_causal_mask),
                                            dropout_rate=rate, seed=seed)
            out, weights = ops.reshape(out, lead + (Tq, v.shape[-1])), None
        else:
            scores = self._calculate_scores(q, k)
            score_mask = None if v_mask is None else np.expand_dims(v_mask, -2)
            if use_causal_mask:
                causal = _causal(Tq, Tv)[None]
                score_mask = causal if score_mask is None else score_mask & causal
            if score_mask is not None:  # Keras: scores - 1e9 where masked
                scores = ops.where(score_mask, scores, ops.subtract(scores, 1e9))
            weights = ops.softmax(scores, axis=-1)
            dropped = ops.dropout(weights, rate, seed=seed) if rate > 0 else weights
            out = ops.matmul(dropped, v)
        if q_mask is not None:
            out = ops.where(np.expand_dims(q_mask, -1), out, 0.0)
        return (out, weights) if return_attention_scores else out

    def compute_mask(self, inputs, mask=None):
        if mask is None or mask[0] is None:
            return None
        return np.asarray(mask[0].value if isinstance(mask[0], Tensor) else mask[0])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "score_mode": self.score_mode,
                "dropout": self.dropout, "seed": self.seed}


@register("layer")
class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention (Keras 3): scores ``sum(scale * tanh(q + k), -1)`` with a
    learned ``scale`` of shape (dim,) (when ``use_scale``, the default), then as Attention."""

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def build(self, input_shape):
        self._validate(input_shape)
        self.scale = None
        if self.use_scale:
            self.scale = self.add_weight(shape=(input_shape[0][-1],), initializer="glorot_uniform", name="scale")
        self.built = True

    def _calculate_scores(self, query, key):
        summed = ops.tanh(ops.add(ops.expand_dims(query, -2), ops.expand_dims(key, -3)))
        if self.scale is not None:
            summed = ops.multiply(self.scale, summed)
        return ops.sum(summed, axis=-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config


def _swap_last(ndim):
    return tuple(range(ndim - 2)) + (ndim - 1, ndim - 2)
