"""model.summary(): one row per layer with its output shape and parameter count, then totals.

As Keras 3: a functional model whose graph is not a simple chain (several inputs, merges,
shared layers) gets a "Connected to" column, each input written ``layer[node][tensor]``; the
output shape comes from the layer's last call in a graph. A subclassed model that has been
built or called shows its layers' real output shapes, found by running it once on zeros of its
build input shape (batch 1, no gradient, training=False, as dlcore's symbolic calls do).
"""
import numpy as np

from ..autograd import no_grad
from ..symbolic import KerasTensor, flatten, map_structure
from ..tensor import Tensor


def _format_shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _format_shapes(shapes):
    """One shape as Keras prints it, or a structure of them without quotes."""
    flat = flatten(shapes)
    if len(flat) == 1:
        return flat[0]
    return str(shapes).replace("'", "")


def _graph_shape(layer):
    nodes = getattr(layer, "_inbound_nodes", None)
    if not nodes:
        return None
    return _format_shapes(map_structure(lambda t: _format_shape(t.shape), nodes[-1].outputs))


def _leaves(spec, is_shape):
    if is_shape(spec):
        return [spec]
    items = spec.values() if isinstance(spec, dict) else spec
    return [leaf for item in items for leaf in _leaves(item, is_shape)]


def _zeros_like_spec(spec, is_shape, dtype):
    if is_shape(spec):
        return Tensor(np.zeros((1,) + tuple(spec[1:]), dtype=dtype))
    if isinstance(spec, dict):
        return {k: _zeros_like_spec(v, is_shape, dtype) for k, v in spec.items()}
    return [_zeros_like_spec(v, is_shape, dtype) for v in spec]


def _traced_shapes(model):
    """{id(layer): formatted output shape} for a built subclassed model's direct sublayers,
    from one inference run on zeros of its build input shape; {} when that shape is unknown."""
    from ..layers.layer import _is_shape

    spec = getattr(model, "_build_input_shape", None)
    if spec is None or not model.layers:
        return {}
    if any(d is None for shape in _leaves(spec, _is_shape) for d in list(shape)[1:]):
        return {}  # only the batch size may be unknown, or the shapes would be made up
    found = {}

    def hook(layer, call):
        def recording_call(*args, **kwargs):
            out = call(*args, **kwargs)
            found[id(layer)] = _format_shapes(map_structure(
                lambda t: _format_shape((None,) + tuple(np.shape(getattr(t, "value", t)))[1:]), out))
            return out
        return recording_call

    hooked = [layer for layer in model.layers if "call" not in layer.__dict__]
    for layer in hooked:
        layer.__dict__["call"] = hook(layer, layer.call)
    try:
        with no_grad():
            model(_zeros_like_spec(spec, _is_shape, model.dtype), training=False)
    except (ValueError, TypeError, IndexError):  # a model that cannot run on zeros keeps "?"
        return {}
    finally:
        for layer in hooked:
            layer.__dict__.pop("call", None)
    return found


def _is_subclassed(model):
    from ..models.functional import Functional
    from ..models.sequential import Sequential

    return not isinstance(model, (Functional, Sequential))


def _sequential_like(model, own):
    """Keras's test: a chain (one node per depth, each with one input, no shared layers)."""
    from ..models.functional import Functional

    if not isinstance(model, Functional):
        return True
    for layer in model.layers:
        nodes = [node for node in layer._inbound_nodes if id(node) in own]
        if len(nodes) > 1:
            return False
        if nodes and len([t for t in nodes[0].parents if isinstance(t, KerasTensor)]) > 1:
            return False
    inputs = [t for t in model.inputs]
    consumers = {}
    for node in model._nodes:
        for t in node.parents:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    return len(inputs) == 1 and all(count == 1 for count in consumers.values())


def _connections(layer, own):
    parts = []
    for node in layer._inbound_nodes:
        if id(node) not in own:
            continue
        for t in node.parents:
            source = t.node.layer
            parts.append(f"{source.name}[{source._inbound_nodes.index(t.node)}][{t.index}]")
    return ", ".join(parts) or "-"


def _own_nodes(model):
    nodes = {id(node) for node in getattr(model, "_nodes", ())}
    for t in getattr(model, "_flat_inputs", ()):
        if t.node is not None:
            nodes.add(id(t.node))
    return nodes


def _human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.2f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


def format_summary(model, show_trainable=False):
    """The summary text: a row per layer (name (type), output shape, params, and "Connected
    to" for non-chain functional models), then the parameter totals."""
    own = _own_nodes(model)
    connected = not _sequential_like(model, own)
    traced = _traced_shapes(model) if _is_subclassed(model) and model.built else {}
    header = ("Layer (type)", "Output Shape", "Param #") + (("Connected to",) if connected else ())
    rows = [header + (("Trainable",) if show_trainable else ())]
    for layer in model.layers:
        params = sum(v.size for v in layer.weights) if layer.built else 0
        shape = _graph_shape(layer) or traced.get(id(layer), "?")
        row = (f"{layer.name} ({type(layer).__name__})", shape,
               f"{params:,}" if layer.built else "0 (unbuilt)")
        if connected:
            row += (_connections(layer, own),)
        if show_trainable:
            row += (("Y" if layer.trainable else "N") if layer.weights else "-",)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(len(rows[0]))]
    rule = "━" * sum(widths)

    def fmt(row):
        return "".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()

    trainable = sum(v.size for v in model.trainable_weights)
    non_trainable = sum(v.size for v in model.non_trainable_weights)
    nbytes_t = sum(v.value.nbytes for v in model.trainable_weights)
    nbytes_n = sum(v.value.nbytes for v in model.non_trainable_weights)
    lines = [f'Model: "{model.name}"', rule, fmt(rows[0]), rule]
    lines += [fmt(r) for r in rows[1:]]
    lines += [rule,
              f" Total params: {trainable + non_trainable:,} ({_human_bytes(nbytes_t + nbytes_n)})",
              f" Trainable params: {trainable:,} ({_human_bytes(nbytes_t)})",
              f" Non-trainable params: {non_trainable:,} ({_human_bytes(nbytes_n)})"]
    if getattr(model, "float_layers", None):  # set by Model.quantize
        lines.append(f" Not quantized (left in float): {', '.join(model.float_layers)}")
    return "\n".join(lines)
