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
            outs = _EMITTERS[type(node.layer).__name__](g, node.layer, ins, node)
        for t, v in zip(flatten(node.outputs), outs):
            values[id(t)] = v
    return [values[id(t)] for t in outputs]


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
