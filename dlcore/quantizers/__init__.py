"""int8 quantization (Keras 3 ``quantize("int8")``): the abs-max weight quantizer, the quantized
dtype-policy names, and the variable that keeps an int8 kernel packed for the int8 GEMM.

Keras's rule, kept exactly (``keras.quantizers.abs_max_quantize``): along ``axis``,
``scale = 127 / (max |w| + 1e-7)`` (float32) and ``w_q = clip(round_half_even(w * scale), -127, 127)``
as int8; the float weight is ``w_q / scale``. Dense quantizes its kernel per output column
(axis 0), Embedding its table per row (axis -1); inputs are quantized per row at call time by the
kernels with the same rule. Convolutions (dlcore's extension, dlcore/layers/conv.py) quantize their
kernel per output channel and their inputs per sample, or with static scales from
``model.quantize("int8", calibration_data=x)`` (calibration.py). LSTM and GRU cells (also a dlcore
extension) quantize ``kernel`` and ``recurrent_kernel`` per output column (``kernel_scale``,
``recurrent_kernel_scale``) and their hidden state per row at each step (dlcore/layers/recurrent/cells.py).

Saving: ``.dlc`` and ``.keras`` both hold the int8 kernels as int8 arrays. A ``.keras`` file uses Keras's
layout: the layer's dtype is Keras's ``QuantizedDTypePolicy`` (mode "int8", source "float32") and its
weights are stored int8 kernels first, then the other weights, then the scales (Keras's
``variable_serialization_spec``: Dense/EinsumDense ``kernel, bias, kernel_scale``, Embedding
``embeddings, embeddings_scale``), so Keras 3 loads dlcore's int8 Dense/EinsumDense/Embedding and dlcore
loads Keras's (its default ``Int8QuantizationConfig`` is accepted, any other refused). Keras 3.15
quantizes no convolution and no RNN: dlcore's int8 convs are saved ``kernel, bias, kernel_scale,
input_scale`` and LSTM/GRU cells ``kernel, recurrent_kernel, bias, kernel_scale, recurrent_kernel_scale``
under the same policy; such files load in dlcore only (Keras refuses them: "expected 2 variables").

Training: a quantized layer runs inference only; calling it while a GradientTape records (fit,
train_on_batch, a user's tape) raises a ValueError naming the layer. Keras allows int8 fine-tuning
only through LoRA on top of the frozen int8 kernel; dlcore does not offer that for int8 yet.
"""
import numpy as np

from ..autograd import is_recording
from ..tensor import Variable

MODES = ("int8",)
EPSILON = 1e-7
# model.quantize keeps a convolution in float32 when its int8 GEMM depth K = kh * kw * in_channels is below
# this. Measured (Zen 4, 1 thread, conv(C->32, 3x3) + pool + conv(32->64) + pool + Dense, calibrated, batch
# 64 / 1, time with the first conv int8 / float32): C=1 1.32 / 1.26, C=3 1.08 / 1.16, C=4 0.96 / ~1, C=8
# 0.74 / 0.93; the runner's CNN (1 channel): 1.16x faster at batch 256, 1.37x at batch 1 with it float.
# Few products per output pixel do not pay for im2col, the per-pixel epilogue and requantization.
CONV_MIN_DEPTH = 32


class NotQuantizable(ValueError):
    """A layer of a quantizable class whose configuration has no int8 kernel (e.g. an EinsumDense
    equation that is not a dense product); Model.quantize leaves it in float."""


def check_mode(owner, mode):
    """``mode`` if dlcore can quantize to it, else a ValueError naming ``owner``."""
    if mode not in MODES:
        raise ValueError(f"{owner}: invalid quantization mode. Expected one of {list(MODES)}. "
                         f"Received: mode={mode!r}")
    return mode


def abs_max_quantize(x, axis):
    """(int8 values, float32 scale with ``axis`` kept) of float ``x``, Keras's abs-max rule."""
    x = np.asarray(x, dtype=np.float32)
    scale = np.float32(127.0) / (np.max(np.abs(x), axis=axis, keepdims=True) + np.float32(EPSILON))
    scale = scale.astype(np.float32)
    q = np.clip(np.round(x * scale), -127, 127).astype(np.int8)
    return q, scale


def policy_name(mode, source_dtype):
    """Keras's quantized dtype-policy name, e.g. ``"int8_from_float32"``."""
    return f"{mode}_from_{np.dtype(source_dtype).name}"


def parse_dtype(dtype):
    """(quantization mode or None, the float dtype to pass on) of a layer's ``dtype`` argument: a
    dtype, a quantized policy name (``"int8_from_float32"``) or Keras's serialized policy dict."""
    if isinstance(dtype, dict):  # {"class_name": "QuantizedDTypePolicy", "config": {"mode", "source_name"}}
        config = dtype.get("config", {})
        if isinstance(config, dict) and "mode" in config:
            return check_mode(f"dtype policy {dtype!r}", config["mode"]), config.get("source_name", "float32")
        dtype = config.get("name", dtype) if isinstance(config, dict) else dtype
    if isinstance(dtype, str) and "_from_" in dtype:
        mode, _, source = dtype.partition("_from_")
        check_mode(f"dtype policy {dtype!r}", mode)
        return mode, source
    return None, dtype


def take_mode(kwargs):
    """The quantization mode named by a layer's ``dtype`` keyword (``"int8_from_float32"``, Keras's
    policy dict), or None; ``kwargs["dtype"]`` becomes the source float dtype."""
    if kwargs.get("dtype") is None:
        return None
    mode, kwargs["dtype"] = parse_dtype(kwargs["dtype"])
    return mode


def dtype_config(layer):
    """``{"dtype": "int8_from_float32"}`` for a quantized layer's config (overriding the float
    dtype), else nothing."""
    mode = getattr(layer, "quantization_mode", None)
    return {"dtype": policy_name(mode, layer.dtype)} if mode is not None else {}


def check_quantizable(layer, mode, type_check, cls):
    """ValueError/TypeError unless ``layer`` (a ``cls``) can be quantized to ``mode`` now."""
    owner = f"{type(layer).__name__} '{layer.name}'"
    check_mode(owner, mode)
    if type_check and type(layer) is not cls:
        raise TypeError(f"{owner}: quantize() is defined for {cls.__name__} itself, not for its subclass "
                        f"{type(layer).__name__} (as in Keras); pass type_check=False to quantize it anyway")
    if not layer.built:
        raise ValueError(f"{owner}: cannot quantize a layer that isn't yet built; build or call it first")
    if layer.quantization_mode is not None:
        raise ValueError(f"{owner} is already quantized (mode {layer.quantization_mode!r})")


class DTypePolicy:
    """Keras's ``layer.dtype_policy`` as far as dlcore has one: ``name`` ("float32" or
    "int8_from_float32"), ``source_name``, ``quantization_mode``, ``compute_dtype``, ``variable_dtype``."""

    __slots__ = ("name", "source_name", "quantization_mode")

    def __init__(self, source_name, quantization_mode=None):
        self.source_name = source_name
        self.quantization_mode = quantization_mode
        self.name = source_name if quantization_mode is None else policy_name(quantization_mode, source_name)

    compute_dtype = variable_dtype = property(lambda self: self.source_name)

    @classmethod
    def of(cls, layer):
        """The layer's int8 policy when it is quantized, else its float dtype policy."""
        mode = getattr(layer, "quantization_mode", None)
        if mode is None:
            from ..mixed_precision import DTypePolicy as FloatPolicy

            return getattr(layer, "_policy", None) or FloatPolicy()
        return cls(layer.dtype, mode)

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'


def quantize_model(model, mode, config=None, filters=None, type_check=True, conv_min_depth=CONV_MIN_DEPTH):
    """Keras's ``Model.quantize``: quantize every leaf layer that has ``quantize`` and passes
    ``filters`` (a regex string, a list of them, or a callable on the layer), except convolutions whose
    GEMM depth is under ``conv_min_depth`` (0: none kept); returns the names of the layers with weights
    left in float, which the model keeps in ``model.float_layers``."""
    import re
    import warnings

    owner = f"{type(model).__name__} '{model.name}'.quantize"
    check_mode(owner, mode)
    if config is not None:
        raise ValueError(f"{owner}: a custom quantization config is not supported by dlcore (only the default "
                         f"int8 scheme); received config={config!r}")
    if filters is not None and not isinstance(filters, (str, list, tuple)) and not callable(filters):
        raise ValueError(f"{owner}: the `filters` argument must be a regex string, a list of regex strings, or a "
                         f"callable. Received: {type(filters)}")
    if not model.built:
        raise ValueError(f"{owner}: the model must be built first (call it or build() it)")
    if isinstance(conv_min_depth, bool) or not isinstance(conv_min_depth, (int, np.integer)) or conv_min_depth < 0:
        raise ValueError(f"{owner}: conv_min_depth must be an integer >= 0. Received: conv_min_depth={conv_min_depth!r}")
    left, shallow = [], []
    for layer in model._flatten_layers():
        if layer is model or layer._layers:
            continue
        if isinstance(filters, str) and not re.search(filters, layer.name):
            continue
        if isinstance(filters, (list, tuple)) and not any(re.search(f, layer.name) for f in filters):
            continue
        if callable(filters) and not filters(layer):
            continue
        depth = layer._int8_depth() if callable(getattr(layer, "_int8_depth", None)) else None
        if depth is not None and depth < conv_min_depth and getattr(layer, "quantization_mode", None) is None:
            shallow.append(layer.name)
            left.append(layer.name)
            continue
        if callable(getattr(layer, "quantize", None)) and getattr(layer, "quantization_mode", None) is None:
            try:
                layer.quantize(mode, type_check=type_check)
                continue
            except (TypeError, NotQuantizable) as exc:  # a subclass, or no int8 kernel for this configuration
                warnings.warn(str(exc), stacklevel=3)
        if layer.weights and getattr(layer, "quantization_mode", None) is None:
            left.append(layer.name)
    model.float_layers = left
    if len(left) > len(shallow):
        warnings.warn(f"{owner}: layers left in float32 (no {mode} kernels): "
                      f"{', '.join(n for n in left if n not in shallow)}", stacklevel=3)
    if shallow:
        warnings.warn(f"{owner}: convolutions kept in float32, where {mode} is slower (GEMM depth kernel height x "
                      f"width x input channels < conv_min_depth={conv_min_depth}): {', '.join(shallow)}", stacklevel=3)
    return left


def refuse_recording(layer):
    """A ValueError when a tape records through the int8 layer ``layer`` (inference only)."""
    if is_recording():
        raise ValueError(f"{type(layer).__name__} '{layer.name}' is quantized ({layer.quantization_mode}) and runs "
                         "inference only: it cannot be trained or differentiated. Train the float model, "
                         "then call quantize().")


class PackedInt8Variable(Variable):
    """An int8 kernel held once, in the packed form the int8 GEMM reads (:meth:`packed`).

    Its Keras-layout value (what get_weights, saving and ``.value`` see) is produced on demand from the
    packed panels (a new read-only array: write through ``assign``); a value set from outside (assign,
    set_weights, loading) is held as it is until the next call packs it and drops it. So one copy lives
    at a time: the Keras layout until the first call, the packed panels after. ``contract``: the leading
    axes that form the GEMM's K (EinsumDense, conv kernels); ``splits``: column offsets where the kernel
    is packed as separate blocks (GRU's recurrent kernel: the z, r columns and the h columns).
    """

    __slots__ = ("_keras", "_packs", "_shape", "contract", "splits")

    @property
    def value(self):
        keras = self._keras
        if keras is not None:
            return keras
        from ..ops.quantized import unpack_int8

        blocks = [unpack_int8(p) for p in self._packs]
        array = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        array = array.reshape(self._shape)
        array.flags.writeable = False
        return array

    @value.setter
    def value(self, array):
        array = np.ascontiguousarray(array, dtype=np.int8)
        self._keras, self._packs, self._shape = array, None, array.shape

    shape = property(lambda self: self._shape)
    dtype = property(lambda self: np.dtype(np.int8))
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: int(np.prod(self._shape)))

    def assign(self, value):
        array = np.asarray(getattr(value, "value", value))
        if array.shape != self._shape:
            raise ValueError(f"Variable {self.path!r}: cannot assign a value of shape {array.shape} to a variable "
                             f"of shape {self._shape}")
        self.value = np.array(array, dtype=np.int8, copy=True)
        return self

    def assign_add(self, delta):
        return self.assign(self.value + np.asarray(getattr(delta, "value", delta), dtype=np.int8))

    def assign_sub(self, delta):
        return self.assign(self.value - np.asarray(getattr(delta, "value", delta), dtype=np.int8))

    def packed(self):
        """The :class:`dlcore.ops.quantized.PackedInt8` of the current kernel as a (prod(shape[:contract]),
        rest) matrix, or with ``splits`` the list of its column blocks' PackedInt8."""
        packs = self._packs
        if packs is None:
            from ..ops.quantized import pack_int8

            kernel = self._keras
            matrix = kernel.reshape(int(np.prod(kernel.shape[:self.contract])), -1)
            edges = (0,) + tuple(self.splits) + (matrix.shape[1],)
            packs = self._packs = [pack_int8(matrix[:, a:b]) for a, b in zip(edges[:-1], edges[1:])]
            self._keras = None
        return packs if self.splits else packs[0]


def add_int8_weight(layer, name, shape, contract=1, splits=(), packed=True):
    """An int8 kernel weight of ``layer`` (non-trainable, zeros): packed for the int8 GEMM as a
    (prod(shape[:contract]), rest) matrix (in column blocks at ``splits``), or with ``packed=False`` a
    plain int8 array (kernels that read the Keras layout, e.g. depthwise convolutions)."""
    if not packed:
        return _track(layer, Variable(np.zeros(shape, dtype=np.int8), trainable=False, name=name, dtype=np.int8))
    variable = PackedInt8Variable(np.zeros(shape, dtype=np.int8), trainable=False, name=name, dtype=np.int8)
    variable.contract, variable.splits = contract, tuple(splits)
    return _track(layer, variable)


def add_scale_weight(layer, name, shape):
    """A float32 scale weight of ``layer`` (non-trainable, ones)."""
    return _track(layer, Variable(np.ones(shape, dtype=np.float32), trainable=False, name=name, dtype=np.float32))


def _track(layer, variable):
    from ..layers.layer import WEIGHT_FROM_FILE

    from_file = WEIGHT_FROM_FILE.get()
    if from_file is not None:
        variable.assign(from_file(layer, variable.name, variable.value.shape, variable.value.dtype))
    variable.path = f"{layer.name}/{variable.name}"
    layer._non_trainable_variables.append(variable)
    return variable


def untrack(layer, variable):
    """Remove ``variable`` from ``layer``'s weights (the float weight a quantized one replaces)."""
    for store in (layer._trainable_variables, layer._non_trainable_variables):
        store[:] = [v for v in store if v is not variable]


__all__ = ["NotQuantizable", "MODES", "check_mode", "take_mode", "dtype_config", "check_quantizable", "DTypePolicy", "abs_max_quantize", "policy_name", "parse_dtype", "refuse_recording",
           "quantize_model", "PackedInt8Variable", "add_int8_weight", "add_scale_weight", "untrack"]
