"""ONNX export: ``model.export(path, format="onnx")`` / ``dl.saving.export_onnx(model, path)``.

Walks a Sequential or functional model's graph and writes one ONNX node group per layer with
``onnx.helper`` (onnx is the optional ``onnx`` extra, imported only when exporting). A model used
as a layer inside another (Sequential or functional) is inlined: its graph is walked with its
inputs bound to the outer call's. The graph takes and returns tensors in Keras's layout (channels
last); convolutions, pooling and resizing run in ONNX's channels-first layout, and a Transpose is
inserted only where a tensor changes layout (``onnx_emit``). The emitters are by family:
``onnx_emit_layers`` (core, reshaping, spatial, convolutions, pooling, normalization, merging,
embedding) and ``onnx_emit_sequence`` (recurrent, Bidirectional, EinsumDense, attention).
"""
import os

import numpy as np

from .._tree import flatten
from . import onnx_emit_layers, onnx_emit_sequence
from .onnx_emit import KERAS, OPSET, Graph, Value, activation_name, activation_supported

_EMITTERS = {**onnx_emit_layers.EMITTERS, **onnx_emit_sequence.EMITTERS}


def _unsupported_reason(layer):
    """Why ``layer`` cannot be exported, or None."""
    kind = type(layer).__name__
    if kind == "TimeDistributed":
        reason = type(layer.layer).__name__ if _is_model(layer.layer) else _unsupported_reason(layer.layer)
        return None if reason is None else f"TimeDistributed({reason})"
    if kind not in _EMITTERS:
        return kind
    if kind == "Bidirectional" and type(layer.forward_layer).__name__ not in onnx_emit_sequence.RECURRENT:
        return f"Bidirectional({type(layer.forward_layer).__name__})"
    fn = getattr(layer, "activation", None)
    if kind not in onnx_emit_sequence.RECURRENT and fn is not None and not activation_supported(fn):
        return f"{kind} (activation {activation_name(fn)!r})"
    return None


def _graph_of(model):
    """(inputs, outputs, call nodes in order) of a Sequential or functional ``model``."""
    from ..models.functional import _graph_nodes

    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError) as exc:
        raise ValueError(f"export_onnx: model '{model.name}' has no symbolic graph (build it with an input "
                         f"shape first): {exc}") from None
    return inputs, outputs, _graph_nodes(inputs, outputs)


def _is_model(layer):
    from ..models.model import Model

    return isinstance(layer, Model)


def _unsupported(model):
    """The reasons of every layer of ``model`` and of the models nested in it that do not export."""
    from ..layers.core import InputLayer

    reasons = set()
    for node in _graph_of(model)[2]:
        if _is_model(node.layer):
            reasons |= _unsupported(node.layer)
        elif not isinstance(node.layer, InputLayer):
            reasons.add(_unsupported_reason(node.layer))
    return reasons - {None}


def _emit_model(g, model, in_values):
    """Emit ``model``'s graph with its inputs bound to ``in_values``; returns its output Values."""
    inputs, outputs, nodes = _graph_of(model)
    values = {id(t): v for t, v in zip(inputs, in_values)}
    for node in nodes:
        ins = [values[id(t)] for t in node.parents]
        if _is_model(node.layer):
            if len(ins) != len(node.layer.inputs):
                raise ValueError(f"export_onnx: nested model '{node.layer.name}' takes {len(node.layer.inputs)} "
                                 f"inputs, called on {len(ins)}")
            outs = _emit_model(g, node.layer, ins)
        else:
            outs = _carry_mask(node.layer, ins, _EMITTERS[type(node.layer).__name__](g, node.layer, ins, node))
        for t, v in zip(flatten(node.outputs), outs):
            values[id(t)] = v
    return [values[id(t)] for t in outputs]


_MASK_READERS = onnx_emit_sequence.RECURRENT + ("Bidirectional",)


def _carry_mask(layer, ins, outs):
    """``outs`` with the mask dlcore's layer would pass on, or a refusal of a mask the export
    cannot follow: the recurrent layers read it (their sequence output keeps it); a layer that only
    passes masks on (``supports_masking``, Layer's compute_mask) passes it; one that does not
    support masking drops it; any other layer reading or changing a mask is refused."""
    from ..layers.layer import Layer

    mask = next((v.mask for v in ins if v.mask is not None), None)
    if mask is None:
        return outs
    kind = type(layer).__name__
    if kind in _MASK_READERS:
        return [Value(outs[0].name, outs[0].layout, outs[0].rank, mask if layer.return_sequences else None)] + \
            [Value(v.name, v.layout, v.rank) for v in outs[1:]]
    if len(ins) > 1 or getattr(layer, "_call_has_mask", False) or (
            layer.supports_masking and type(layer).compute_mask is not Layer.compute_mask):
        raise ValueError(f"export_onnx: {kind} '{layer.name}' reads or combines the mask of its input (from "
                         "Masking or Embedding(mask_zero=True)); the export carries masks only into LSTM, GRU, "
                         "SimpleRNN and Bidirectional, through layers that pass them on")
    return [Value(v.name, v.layout, v.rank, mask if layer.supports_masking else None) for v in outs]


def _time_distributed(g, layer, ins, node):
    """TimeDistributed(layer): (batch, time, ...) reshaped to (batch * time, ...), the layer's
    nodes, and back, with the shapes read at run time."""
    from ..symbolic import CallNode, KerasTensor

    v, inner = ins[0], layer.layer
    shape = tuple(node.parents[0].shape)
    x = g.keras(v)
    flat = g.node("Reshape", [x, g.node("Concat", [g.ints([-1]), g.node("Shape", [x], start=2)], axis=0)])
    child_in = KerasTensor((None,) + shape[2:], node.parents[0].dtype)
    child_out = KerasTensor(inner.compute_output_shape((None,) + shape[2:]), node.parents[0].dtype)
    out = _EMITTERS[type(inner).__name__](g, inner, [Value(flat, KERAS, len(shape) - 1)],
                                          CallNode(inner, (child_in,), {}, child_out))[0]
    y = g.keras(out)
    back = g.node("Concat", [g.node("Shape", [x], start=0, end=2), g.node("Shape", [y], start=1)], axis=0)
    return [Value(g.node("Reshape", [y, back]), KERAS, out.rank + 1)]


_EMITTERS["TimeDistributed"] = _time_distributed


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

    quantized = [layer.name for layer in model._flatten_layers() if getattr(layer, "quantization_mode", None)]
    if quantized:
        raise ValueError(f"export_onnx: model '{model.name}' has int8-quantized layers ({', '.join(quantized)}), "
                         "which the ONNX export does not write yet; export the float model before quantize()")
    unsupported = sorted(_unsupported(model))
    if unsupported:
        raise ValueError(f"export_onnx: model '{model.name}' has layers ONNX export does not support: "
                         f"{', '.join(unsupported)}")
    g = Graph()
    inputs, outputs, _ = _graph_of(model)
    names = [t.name or f"input_{i}" for i, t in enumerate(inputs)]
    graph_inputs = [_value_info(name, t.dtype, t.shape) for name, t in zip(names, inputs)]
    out_values = _emit_model(g, model, [Value(name, KERAS, len(t.shape)) for name, t in zip(names, inputs)])
    graph_outputs = []
    for i, (t, v) in enumerate(zip(outputs, out_values)):
        name = f"output_{i}"
        g.nodes.append(helper.make_node("Identity", [g.keras(v)], [name]))
        graph_outputs.append(_value_info(name, t.dtype, t.shape))
    graph = helper.make_graph(g.nodes, model.name or "dlcore_model", graph_inputs, graph_outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="dlcore")
    proto.ir_version = min(proto.ir_version, 9)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, filepath, opset=OPSET):
    """Write ``model`` to ``filepath`` as an ONNX file (opset 17); returns the path."""
    import onnx

    proto = to_onnx(model, opset=opset)
    path = os.fspath(filepath)
    onnx.save_model(proto, path)
    return path
