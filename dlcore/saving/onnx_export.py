"""ONNX export: ``model.export(path, format="onnx")`` / ``dl.saving.export_onnx(model, path)``.

Walks a Sequential or functional model's graph and writes one ONNX node group per layer with
``onnx.helper`` (onnx is the optional ``onnx`` extra, imported here only). The graph takes and
returns tensors in Keras's layout (channels last); convolutions and pooling run in ONNX's
channels-first layout, and a Transpose is inserted only where a tensor changes layout, so a CNN
has one transpose in and one out. Recurrent weights are reordered to ONNX's gate orders (LSTM
Keras i,f,c,o -> ONNX i,o,f,c; GRU z,r,h with ``linear_before_reset=1`` for ``reset_after``).
"""
import os

import numpy as np

from .. import activations

OPSET = 17
_KERAS, _FIRST = "keras", "channels_first"  # a tensor's layout: as dlcore holds it, or channels moved to axis 1


def _perm_to_first(rank):
    return [0, rank - 1] + list(range(1, rank - 1))


def _perm_to_last(rank):
    return [0] + list(range(2, rank)) + [1]


class _Value:
    """An ONNX tensor standing for a Keras tensor: its name, layout and rank."""

    __slots__ = ("name", "layout", "rank")

    def __init__(self, name, layout, rank):
        self.name, self.layout, self.rank = name, layout, rank


class _Graph:
    """Collects nodes and initializers, naming every tensor uniquely."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0
        self._transposed = {}

    def fresh(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint):
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def node(self, op, inputs, hint=None, outputs=1, **attrs):
        names = [self.fresh(hint or op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), names, name=self.fresh(f"n_{op}"), **attrs))
        return names[0] if outputs == 1 else names

    def layout(self, value, layout):
        """``value`` in ``layout``, through one cached Transpose when it is held in the other."""
        if value.layout == layout or value.rank < 3:
            return value.name
        key = (value.name, layout)
        if key not in self._transposed:
            perm = _perm_to_first(value.rank) if layout == _FIRST else _perm_to_last(value.rank)
            self._transposed[key] = self.node("Transpose", [value.name], "transpose", perm=perm)
        return self._transposed[key]


# ---- activations -----------------------------------------------------------------------------------
_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "softsign": "Softsign",
           "exponential": "Exp", "selu": "Selu"}
_SEQUENCE_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def _activation_name(fn):
    try:
        return activations.serialize(fn)
    except (TypeError, ValueError):
        return None


def _activation_supported(fn):
    return _activation_name(fn) in _ACTIVATIONS


def _apply_activation(g, fn, value):
    """``fn`` applied to ``value`` (a _Value); returns a _Value."""
    name = _activation_name(fn)
    return _ACTIVATIONS[name](g, value)


def _elementwise(op, **attrs):
    return lambda g, v: _Value(g.node(op, [v.name], **attrs), v.layout, v.rank)


def _last_axis(op):
    def emit(g, v):
        return _Value(g.node(op, [g.layout(v, _KERAS)], axis=-1), _KERAS, v.rank)
    return emit


def _times(inner):
    def emit(g, v):
        return _Value(g.node("Mul", [v.name, inner(g, v.name)]), v.layout, v.rank)
    return emit


def _gelu(g, v):
    half = g.const(np.float32(0.5), "half")
    one = g.const(np.float32(1.0), "one")
    scaled = g.node("Div", [v.name, g.const(np.float32(np.sqrt(2.0)), "sqrt2")])
    erf1 = g.node("Add", [g.node("Erf", [scaled]), one])
    return _Value(g.node("Mul", [g.node("Mul", [v.name, half]), erf1]), v.layout, v.rank)


_ACTIVATIONS = {
    "linear": lambda g, v: v,
    **{k: _elementwise(op) for k, op in _SIMPLE.items()},
    "elu": _elementwise("Elu", alpha=1.0),
    "leaky_relu": _elementwise("LeakyRelu", alpha=0.2),
    "hard_sigmoid": _elementwise("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "softmax": _last_axis("Softmax"),
    "log_softmax": _last_axis("LogSoftmax"),
    "silu": _times(lambda g, x: g.node("Sigmoid", [x])),
    "mish": _times(lambda g, x: g.node("Tanh", [g.node("Softplus", [x])])),
    "gelu": _gelu,
}


def _relu6(g, v):
    lo, hi = g.const(np.float32(0.0), "zero"), g.const(np.float32(6.0), "six")
    return _Value(g.node("Clip", [v.name, lo, hi]), v.layout, v.rank)


_ACTIVATIONS["relu6"] = _relu6


# ---- layers ----------------------------------------------------------------------------------------
def _arr(variable):
    return np.asarray(variable.value, dtype=np.float32)


def _dense(g, layer, ins):
    v = ins[0]
    x = g.layout(v, _KERAS)
    kernel = g.const(_arr(layer.kernel), "kernel")
    if v.rank == 2 and layer.bias is not None:
        y = g.node("Gemm", [x, kernel, g.const(_arr(layer.bias), "bias")])
    else:
        y = g.node("MatMul", [x, kernel])
        if layer.bias is not None:
            y = g.node("Add", [y, g.const(_arr(layer.bias), "bias")])
    return [_apply_activation(g, layer.activation, _Value(y, _KERAS, v.rank))]


def _static_same_pads(spatial, kernel, strides, dilations):
    """Keras's "same" pads [begins..., ends...] for known spatial sizes, or None."""
    if any(n is None for n in spatial):
        return None
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        eff = (k - 1) * d + 1
        total = max((-(-n // s) - 1) * s + eff - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _pad_attrs(layer, spatial, kernel, strides, dilations):
    if layer.padding == "valid":
        return {"pads": [0] * (2 * len(kernel))}
    if layer.padding == "causal":
        return {"pads": [(kernel[0] - 1) * dilations[0], 0]}
    pads = _static_same_pads(spatial, kernel, strides, dilations)
    return {"pads": pads} if pads is not None else {"auto_pad": "SAME_UPPER"}


def _channels_first_layer(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def _spatial_of(layer, shape):
    return list(shape[2:]) if _channels_first_layer(layer) else list(shape[1:-1])


def _conv(g, layer, ins, in_shape):
    v = ins[0]
    layout = _KERAS if _channels_first_layer(layer) else _FIRST
    x = g.layout(v, layout)
    rank = layer.rank
    kernel = _arr(layer.kernel)  # (*kernel_size, in // groups, filters) -> (filters, in // groups, *kernel_size)
    w = g.const(np.transpose(kernel, (rank + 1, rank) + tuple(range(rank))), "kernel")
    inputs = [x, w] + ([g.const(_arr(layer.bias), "bias")] if layer.bias is not None else [])
    attrs = _pad_attrs(layer, _spatial_of(layer, in_shape), layer.kernel_size, layer.strides, layer.dilation_rate)
    y = g.node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
               dilations=list(layer.dilation_rate), group=int(layer.groups), **attrs)
    out_layout = _KERAS if layout == _KERAS else _FIRST
    return [_apply_activation(g, layer.activation, _Value(y, out_layout, v.rank))]


def _pool(g, layer, ins, in_shape):
    v = ins[0]
    layout = _KERAS if _channels_first_layer(layer) else _FIRST
    op = "MaxPool" if layer.pool_mode == "max" else "AveragePool"
    size, strides = list(layer.pool_size), list(layer.strides)
    attrs = _pad_attrs(layer, _spatial_of(layer, in_shape), size, strides, [1] * len(size))
    y = g.node(op, [g.layout(v, layout)], kernel_shape=size, strides=strides, **attrs)
    return [_Value(y, layout, v.rank)]


def _global_pool(g, layer, ins):
    v = ins[0]
    is_max = "Max" in type(layer).__name__
    if _channels_first_layer(layer):
        x = g.layout(v, _KERAS)
        axes = list(range(2, v.rank))
    else:
        x = g.layout(v, _KERAS)
        axes = list(range(1, v.rank - 1))
    y = g.node("ReduceMax" if is_max else "ReduceMean", [x], axes=axes, keepdims=int(layer.keepdims))
    return [_Value(y, _KERAS, v.rank if layer.keepdims else 2)]


def _flatten(g, layer, ins):
    v = ins[0]
    if _channels_first_layer(layer):
        raise ValueError("Flatten(data_format='channels_first') is not exported")
    return [_Value(g.node("Flatten", [g.layout(v, _KERAS)], axis=1), _KERAS, 2)]


def _reshape(g, layer, ins):
    v = ins[0]
    shape = g.ints([0] + list(layer.target_shape))
    return [_Value(g.node("Reshape", [g.layout(v, _KERAS), shape]), _KERAS, len(layer.target_shape) + 1)]


def _permute(g, layer, ins):
    v = ins[0]
    perm = [0] + list(layer.dims)
    return [_Value(g.node("Transpose", [g.layout(v, _KERAS)], perm=perm), _KERAS, v.rank)]


def _identity(g, layer, ins):
    return [ins[0]]


def _activation_layer(g, layer, ins):
    return [_apply_activation(g, layer.activation, ins[0])]


def _batch_norm(g, layer, ins):
    v = ins[0]
    axis = layer.axis % v.rank
    mean, var = _arr(layer.moving_mean), _arr(layer.moving_variance)
    gamma = _arr(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = _arr(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    if v.layout == _FIRST and axis == v.rank - 1:
        y = g.node("BatchNormalization", [v.name, g.const(gamma, "gamma"), g.const(beta, "beta"),
                                          g.const(mean, "mean"), g.const(var, "var")], epsilon=layer.epsilon)
        return [_Value(y, _FIRST, v.rank)]
    scale = (gamma / np.sqrt(var + np.float32(layer.epsilon))).astype(np.float32)
    shift = (beta - mean * scale).astype(np.float32)
    shape = [1] * v.rank
    shape[axis] = -1
    x = g.layout(v, _KERAS)
    y = g.node("Add", [g.node("Mul", [x, g.const(scale.reshape(shape), "scale")]), g.const(shift.reshape(shape),
                                                                                            "shift")])
    return [_Value(y, _KERAS, v.rank)]


def _layer_norm(g, layer, ins):
    v = ins[0]
    axes = sorted(a % v.rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]))
    if axes != list(range(axes[0], v.rank)) or layer.rms_scaling:
        raise ValueError(f"LayerNormalization '{layer.name}': only trailing axes without rms_scaling export "
                         f"(received axis={layer.axis}, rms_scaling={layer.rms_scaling})")
    x = g.layout(v, _KERAS)
    norm_shape = None
    inputs = [x]
    gamma = _arr(layer.gamma) if layer.scale else None
    beta = _arr(layer.beta) if layer.center else None
    norm_shape = (gamma if gamma is not None else beta).shape if (gamma is not None or beta is not None) else None
    if gamma is None:
        gamma = np.ones(norm_shape or _norm_shape_of(layer, axes), np.float32)
    inputs.append(g.const(gamma, "gamma"))
    if beta is not None:
        inputs.append(g.const(beta, "beta"))
    y = g.node("LayerNormalization", inputs, axis=axes[0], epsilon=layer.epsilon)
    return [_Value(y, _KERAS, v.rank)]


def _norm_shape_of(layer, axes):
    shape = layer._build_input_shape if hasattr(layer, "_build_input_shape") else None
    if shape is None:
        raise ValueError(f"LayerNormalization '{layer.name}': unknown normalized shape")
    return tuple(shape[a] for a in axes)


def _merge(op):
    def emit(g, layer, ins):
        layout = ins[0].layout
        names = [g.layout(v, layout) for v in ins]
        if op == "Sub":
            y = g.node("Sub", names)
        else:
            y = g.node(op, names)
        return [_Value(y, layout if all(v.rank == ins[0].rank for v in ins) else _KERAS, ins[0].rank)]
    return emit


def _concatenate(g, layer, ins):
    rank = ins[0].rank
    axis = layer.axis % rank
    if all(v.layout == _FIRST for v in ins) and rank >= 3:
        onnx_axis = 1 if axis == rank - 1 else (axis + 1 if axis >= 1 else 0)
        return [_Value(g.node("Concat", [v.name for v in ins], axis=onnx_axis), _FIRST, rank)]
    return [_Value(g.node("Concat", [g.layout(v, _KERAS) for v in ins], axis=axis), _KERAS, rank)]


def _embedding(g, layer, ins):
    v = ins[0]
    if layer.mask_zero:
        raise ValueError(f"Embedding '{layer.name}': mask_zero=True is not exported (ONNX has no masks)")
    idx = g.node("Cast", [v.name], to=7)  # int64
    y = g.node("Gather", [g.const(_arr(layer.embeddings), "embeddings"), idx], axis=0)
    return [_Value(y, _KERAS, v.rank + 1)]


def _gate_blocks(matrix, order, units):
    """Rows of ONNX weight (gates*units, n) from a Keras (n, gates*units) matrix, gates reordered."""
    blocks = [matrix[..., i * units:(i + 1) * units] for i in range(matrix.shape[-1] // units)]
    return np.concatenate([blocks[i] for i in order], axis=-1)


def _recurrent(g, layer, ins):
    v = ins[0]
    kind = type(layer).__name__
    cell = layer.cell
    units = cell.units
    if layer.stateful:
        raise ValueError(f"{kind} '{layer.name}': stateful=True is not exported")
    order = {"LSTM": [0, 3, 1, 2], "GRU": [0, 1, 2], "SimpleRNN": [0]}[kind]
    acts = [cell.activation] if kind == "SimpleRNN" else [cell.recurrent_activation, cell.activation]
    act_names = [_SEQUENCE_ACTIVATIONS.get(_activation_name(a)) for a in acts]
    if None in act_names:
        raise ValueError(f"{kind} '{layer.name}': activations {[_activation_name(a) for a in acts]} do not export "
                         f"(ONNX recurrent ops take {sorted(_SEQUENCE_ACTIVATIONS)})")
    gates = len(order)
    w = _gate_blocks(_arr(cell.kernel), order, units).T[None]
    r = _gate_blocks(_arr(cell.recurrent_kernel), order, units).T[None]
    attrs = {"hidden_size": units}
    if kind == "LSTM":
        attrs["activations"] = [act_names[0], act_names[1], act_names[1]]
    elif kind == "GRU":
        attrs["activations"] = [act_names[0], act_names[1]]
        attrs["linear_before_reset"] = int(cell.reset_after)
    else:
        attrs["activations"] = act_names
    bias = np.zeros((2, gates * units), np.float32)
    if cell.bias is not None:
        b = _arr(cell.bias)
        if b.ndim == 2:  # GRU reset_after: (input bias, recurrent bias)
            bias[0], bias[1] = _gate_blocks(b[0], order, units), _gate_blocks(b[1], order, units)
        else:
            bias[0] = _gate_blocks(b, order, units)
    x = g.layout(v, _KERAS)
    if layer.go_backwards:
        x = g.node("Slice", [x, g.ints([-1]), g.ints([np.iinfo(np.int64).min]), g.ints([1]), g.ints([-1])])
    x = g.node("Transpose", [x], perm=[1, 0, 2])  # (time, batch, features)
    inputs = [x, g.const(w, "W"), g.const(r, "R"), g.const(bias.reshape(1, -1), "B")]
    outs = g.node(kind if kind != "SimpleRNN" else "RNN", inputs, outputs=3 if kind == "LSTM" else 2, **attrs)
    if layer.return_sequences:
        seq = g.node("Squeeze", [outs[0], g.ints([1])])
        first = _Value(g.node("Transpose", [seq], perm=[1, 0, 2]), _KERAS, 3)
    else:
        first = _Value(g.node("Squeeze", [outs[1], g.ints([0])]), _KERAS, 2)
    result = [first]
    if layer.return_state:
        result += [_Value(g.node("Squeeze", [o, g.ints([0])]), _KERAS, 2) for o in outs[1:]]
    return result


def _rescaling(g, layer, ins):
    v = ins[0]
    x = g.layout(v, _KERAS)
    y = g.node("Mul", [x, g.const(np.asarray(layer.scale, np.float32), "scale")])
    y = g.node("Add", [y, g.const(np.asarray(layer.offset, np.float32), "offset")])
    return [_Value(y, _KERAS, v.rank)]


_EMITTERS = {
    "Rescaling": _rescaling,
    "Dense": _dense, "Activation": _activation_layer, "Flatten": _flatten, "Reshape": _reshape,
    "Permute": _permute, "Dropout": _identity, "GaussianNoise": _identity, "GaussianDropout": _identity,
    "SpatialDropout1D": _identity, "SpatialDropout2D": _identity, "Identity": _identity,
    "ActivityRegularization": _identity, "BatchNormalization": _batch_norm, "LayerNormalization": _layer_norm,
    "Add": _merge("Sum"), "Subtract": _merge("Sub"), "Multiply": _merge("Mul"), "Average": _merge("Mean"),
    "Maximum": _merge("Max"), "Minimum": _merge("Min"), "Concatenate": _concatenate, "Embedding": _embedding,
    "LSTM": _recurrent, "GRU": _recurrent, "SimpleRNN": _recurrent,
    "GlobalAveragePooling1D": _global_pool, "GlobalAveragePooling2D": _global_pool,
    "GlobalMaxPooling1D": _global_pool, "GlobalMaxPooling2D": _global_pool,
}
_SHAPED = {"Conv1D": _conv, "Conv2D": _conv, "MaxPooling1D": _pool, "MaxPooling2D": _pool,
           "AveragePooling1D": _pool, "AveragePooling2D": _pool}
_ACTIVATION_LAYERS = {"ReLU": "relu", "Softmax": "softmax", "ELU": "elu", "LeakyReLU": "leaky_relu"}


def _unsupported_reason(layer):
    """Why ``layer`` cannot be exported, or None."""
    kind = type(layer).__name__
    if kind not in _EMITTERS and kind not in _SHAPED and kind not in _ACTIVATION_LAYERS:
        return kind
    fns = [getattr(layer, "activation", None)]
    if kind in ("LSTM", "GRU", "SimpleRNN"):
        fns = []
    for fn in fns:
        if fn is not None and not _activation_supported(fn):
            return f"{kind} (activation {_activation_name(fn)!r})"
    return None


def _onnx_dtype(dtype):
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def _value_info(name, dtype, shape):
    from onnx import helper

    dims = ["batch" if i == 0 else d for i, d in enumerate(shape)]
    return helper.make_tensor_value_info(name, _onnx_dtype(dtype), dims)


def to_onnx(model, opset=OPSET):
    """The ONNX ModelProto of ``model`` (Sequential or functional, built)."""
    import onnx
    from onnx import helper

    from ..layers.core import InputLayer
    from ..models.functional import _graph_nodes

    quantized = [layer.name for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)]
    if quantized:
        raise ValueError(f"export_onnx: model '{model.name}' has int8-quantized layers ({', '.join(quantized)}), "
                         "which the ONNX export does not write yet; export the float model before quantize()")
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ValueError(f"export_onnx: model '{model.name}' has no symbolic graph (build it with an input "
                         f"shape first): {exc}") from None
    nodes = _graph_nodes(inputs, outputs)
    unsupported = sorted({r for r in (_unsupported_reason(n.layer) for n in nodes
                                      if not isinstance(n.layer, InputLayer)) if r})
    if unsupported:
        raise ValueError(f"export_onnx: model '{model.name}' has layers ONNX export does not support: "
                         f"{', '.join(unsupported)}")
    g = _Graph()
    values, graph_inputs = {}, []
    for i, t in enumerate(inputs):
        name = t.name or f"input_{i}"
        values[id(t)] = _Value(name, _KERAS, len(t.shape))
        graph_inputs.append(_value_info(name, t.dtype, t.shape))
    for node in nodes:
        layer = node.layer
        ins = [values[id(t)] for t in node.parents]
        kind = type(layer).__name__
        if kind in _SHAPED:
            outs = _SHAPED[kind](g, layer, ins, node.parents[0].shape)
        elif kind in _ACTIVATION_LAYERS:
            outs = _ACTIVATION_LAYERS_EMIT(g, layer, ins)
        else:
            outs = _EMITTERS[kind](g, layer, ins)
        for t, v in zip(node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs], outs):
            values[id(t)] = v
    graph_outputs = []
    for i, t in enumerate(outputs):
        name = f"output_{i}"
        g.nodes.append(helper.make_node("Identity", [g.layout(values[id(t)], _KERAS)], [name]))
        graph_outputs.append(_value_info(name, t.dtype, t.shape))
    graph = helper.make_graph(g.nodes, model.name or "dlcore_model", graph_inputs, graph_outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dlcore")
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto)
    return proto


def _ACTIVATION_LAYERS_EMIT(g, layer, ins):
    kind = type(layer).__name__
    v = ins[0]
    if kind == "ReLU":
        if layer.max_value is None and not layer.negative_slope and not layer.threshold:
            return [_ACTIVATIONS["relu"](g, v)]
        raise ValueError(f"ReLU '{layer.name}': max_value/negative_slope/threshold do not export")
    if kind == "LeakyReLU":
        return [_elementwise("LeakyRelu", alpha=float(layer.negative_slope))(g, v)]
    if kind == "ELU":
        return [_elementwise("Elu", alpha=float(layer.alpha))(g, v)]
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[-1]
    if axis % v.rank != v.rank - 1:
        raise ValueError(f"Softmax '{layer.name}': only the last axis exports (received axis={layer.axis})")
    return [_ACTIVATIONS["softmax"](g, v)]


def export_onnx(model, filepath, opset=OPSET):
    """Write ``model`` to ``filepath`` as an ONNX file (opset 17); returns the path."""
    import onnx

    proto = to_onnx(model, opset=opset)
    path = os.fspath(filepath)
    onnx.save_model(proto, path)
    return path
