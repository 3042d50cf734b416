"""ONNX import: ``dl.saving.load_onnx(path)`` / ``dl.models.load_model("m.onnx")``.

Rebuilds an ONNX graph (as ``torch.onnx.export`` writes MLPs, CNNs and RNNs) as a dlcore
functional model of dlcore layers, trainable and savable. Every ONNX value is either a constant
(folded with NumPy: initializers, Constant nodes and shape arithmetic on static shapes) or a
symbolic tensor held batch-first in some axis order: ``perm[i]`` is the ONNX axis that held axis
``i`` stands for. Transposes only relabel ``perm``; a layer that needs a given order (a
convolution wants channels last) gets one Permute, cached, so an NCHW CNN is converted once at
its input. The model takes ONNX's layout (NCHW) by default, or channels-last images with
``channels_last=True``; outputs keep ONNX's layout. The batch axis must stay axis 0.

The file is read through the bounded regular-file reader of ``dlcore.saving.archive``; external
tensor data must lie inside the model's directory; nothing in the file runs code.
"""
import os

import numpy as np

from .archive import open_regular_file

MAX_ONNX_BYTES = 2 * 1024 ** 3 - 1   # protobuf's own limit for one message
_RNN_OPS = ("LSTM", "GRU", "RNN")
BATCH = 2 ** 31 - 1  # the batch size in folded shape arithmetic (a prime; see onnx_layout)
# the operators that take a value whose batch axis is merged with others (onnx_layout's _Merged)
_MERGED_OK = ("Reshape", "Transpose", "Shape", "Gemm", "MatMul", "Identity")


class _Sym:
    """A symbolic ONNX value: the KerasTensor held and the ONNX axis of each held axis."""

    __slots__ = ("t", "perm")

    def __init__(self, t, perm):
        self.t, self.perm = t, list(perm)

    @property
    def rank(self):
        return len(self.perm)

    def onnx_shape(self):
        shape = [None] * self.rank
        for i, a in enumerate(self.perm):
            shape[a] = self.t.shape[i]
        return shape


class _Merged:
    """A symbolic ONNX value some of whose axes merge several held axes, the batch among them:
    ``groups[j]`` lists the held axes of ONNX axis j, outermost first (see ``onnx_layout``)."""

    __slots__ = ("t", "groups")

    def __init__(self, t, groups):
        self.t, self.groups = t, [tuple(g) for g in groups]

    @property
    def rank(self):
        return len(self.groups)


def _unsupported(node, why):
    return ValueError(f"ONNX import: {node.op_type} node {node.name!r}: {why}")


def _to_last(rank):
    return [0] + list(range(2, rank)) + [1]


def _identity(rank):
    return list(range(rank))


# ---- reading -------------------------------------------------------------------------------------
def read_model(filepath):
    """The ONNX ModelProto in ``filepath``, read with bounded size; external data checked."""
    import onnx
    from onnx import external_data_helper

    path = os.fspath(filepath)
    f, size = open_regular_file(path)
    with f:
        if size > MAX_ONNX_BYTES:
            raise ValueError(f"{path!r}: {size} bytes, more than the {MAX_ONNX_BYTES} an ONNX file may hold; refused")
        data = f.read(size + 1)
    if len(data) > size:
        raise ValueError(f"{path!r}: the file grew while being read; refused")
    try:
        proto = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ValueError(f"{path!r}: not a valid ONNX model ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ValueError(f"{path!r}: not a valid ONNX model (no graph)")
    base = os.path.dirname(os.path.realpath(path))
    external = [t for t in external_data_helper._get_all_tensors(proto)
                if external_data_helper.uses_external_data(t)]
    for tensor in external:
        info = external_data_helper.ExternalDataInfo(tensor)
        target = os.path.realpath(os.path.join(base, info.location))
        if os.path.isabs(info.location) or os.path.commonpath([base, target]) != base:
            raise ValueError(f"{path!r}: tensor {tensor.name!r} names external data {info.location!r} outside the "
                             "model's directory; refused")
        ef, esize = open_regular_file(target)
        ef.close()
        if esize > MAX_ONNX_BYTES:
            raise ValueError(f"{path!r}: external data {info.location!r} is {esize} bytes; refused")
    if external:
        external_data_helper.load_external_data_for_model(proto, base)
    return proto


# ---- the builder ---------------------------------------------------------------------------------
class _Builder:
    def __init__(self, proto, channels_last, fold_batch_norm=True):
        import dlcore as dl
        from onnx import numpy_helper

        self.dl, self.L, self.proto = dl, dl.layers, proto
        self.channels_last, self.fold_batch_norm = channels_last, fold_batch_norm
        self.values = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        self.inputs = []
        self._permuted = {}
        self.outputs = {o.name for o in proto.graph.output}
        self.skip = set()
        self.nodes = _without_passthroughs(list(proto.graph.node), self.outputs, self.skip)
        self.consumers = {}
        for node in self.nodes:
            if id(node) not in self.skip:
                for name in node.input:
                    self.consumers.setdefault(name, []).append(node)
        self.row_order = {}  # flattened value -> ONNX feature index of each held feature (see onnx_ops._flatten)
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)

    # value access ----------------------------------------------------------------------------------
    def const(self, name, node):
        value = self.values.get(name)
        if not isinstance(value, np.ndarray):
            raise ValueError(f"ONNX import: {node.op_type} node {node.name!r} needs input {name!r} to be a constant")
        return value

    def sym(self, name, node, merged=False):
        value = self.values.get(name)
        if not isinstance(value, (_Sym, _Merged) if merged else _Sym):
            raise ValueError(f"ONNX import: {node.op_type} node {node.name!r} needs input {name!r} to be a tensor "
                             "computed from the model's inputs")
        return value

    def held(self, value, perm):
        """``value``'s KerasTensor rearranged so held axis i is ONNX axis ``perm[i]`` (one Permute, cached)."""
        if value.perm == list(perm):
            return value.t
        key = (id(value.t), tuple(perm))
        if key not in self._permuted:
            if perm[0] != value.perm[0]:
                raise ValueError("ONNX import: the batch axis must stay axis 0")
            dims = [value.perm.index(a) for a in perm[1:]]
            self._permuted[key] = self.L.Permute(tuple(dims))(value.t)
        return self._permuted[key]

    def set(self, node, *outs):
        for name, value in zip(node.output, outs):
            if name:
                self.values[name] = value

    def only_consumer(self, name, op_type=None):
        """The one node reading ``name`` (of ``op_type`` when given), unless ``name`` is also a graph output."""
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.outputs or (op_type is not None and users[0].op_type != op_type):
            return None
        return users[0]


def _without_passthroughs(nodes, graph_outputs, skip):
    """``nodes`` with Identity and inference Dropout nodes bypassed (their readers read the input
    instead; the nodes go in ``skip``), so that patterns across them fold. One whose output is a
    graph output stays, and so does a Dropout with a training_mode input or a mask output (its
    handler decides)."""
    alias = {}
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        plain = node.op_type == "Identity" or (node.op_type == "Dropout" and len(node.input) < 3
                                               and (len(node.output) < 2 or not node.output[1]))
        if plain and node.domain in ("", "ai.onnx") and node.input and node.output[0] not in graph_outputs:
            alias[node.output[0]] = node.input[0]
            skip.add(id(node))
    return nodes


def _attrs(node):
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [s.decode() for s in v]
        out[a.name] = v
    return out


def _build_layer(layer, tensor, weights):
    out = layer(tensor)
    if weights is not None:
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in weights])
    return out


def load_onnx(filepath, channels_last=False, fold_batch_norm=True):
    """A dlcore functional model equivalent to the ONNX model in ``filepath``.

    ``channels_last``: image inputs (rank >= 3) are taken channels-last (NHWC) instead of ONNX's
    NCHW. ``fold_batch_norm``: a BatchNormalization right after a Conv or Gemm/MatMul is folded
    into that layer's kernel and bias (exact at inference; pass False to keep BatchNormalization
    layers, e.g. to fine-tune with batch statistics). Activations after Dense/Conv become their
    ``activation``. Raises ValueError listing every unsupported operator type (with the opset)."""
    from . import onnx_ops

    if not isinstance(fold_batch_norm, bool):
        raise TypeError(f"load_onnx: fold_batch_norm must be a bool; received {fold_batch_norm!r}")
    proto = read_model(filepath)
    b = _Builder(proto, channels_last, fold_batch_norm)
    unsupported = sorted({n.op_type for n in proto.graph.node if n.domain not in ("", "ai.onnx")
                          or n.op_type not in onnx_ops.HANDLERS})
    if unsupported:
        raise ValueError(f"ONNX import of {os.fspath(filepath)!r}: unsupported operators {', '.join(unsupported)} "
                         f"(opset {b.opset})")
    from onnx import TensorProto, helper

    initial = set(b.values)
    for inp in proto.graph.input:
        if inp.name in initial:
            continue
        if inp.type.WhichOneof("value") != "tensor_type":
            raise ValueError(f"ONNX import: input {inp.name!r} is a {inp.type.WhichOneof('value')}, not a tensor; "
                             "only tensor inputs are imported")
        ttype = inp.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in ttype.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(ttype.elem_type) if ttype.elem_type != TensorProto.UNDEFINED \
            else np.float32
        if np.dtype(dtype).type.__module__ != "numpy" or np.dtype(dtype).kind not in "biuf":
            raise ValueError(f"ONNX import: input {inp.name!r} has element type "
                             f"{TensorProto.DataType.Name(ttype.elem_type)}; supported: bool, integer and "
                             "float16/32/64 inputs")
        rank = len(dims)
        perm = _to_last(rank) if channels_last and rank >= 3 else _identity(rank)
        named = [i for i, d in enumerate(ttype.shape.dim) if "batch" in d.dim_param.lower()]
        if dims and dims[0] is not None and len(named) == 1:  # a time-first input: axis 0 fixed, "batch" later
            perm = named + [a for a in range(rank) if a != named[0]]
        users = b.consumers.get(inp.name, [])
        rnns = [u for u in users if u.op_type in _RNN_OPS and u.input[0] == inp.name and not _attrs(u).get("layout", 0)]
        if rank == 3 and rnns and all(u in rnns or u.op_type == "Shape" for u in users):
            perm = [1, 0, 2]  # an RNN's time-first X: the model takes it batch first
        held_shape = [dims[a] for a in perm]
        t = b.dl.Input(shape=tuple(held_shape[1:]), batch_size=None, dtype=dtype, name=_layer_name(inp.name))
        b.inputs.append(t)
        b.values[inp.name] = _Sym(t, perm)
    for node in b.nodes:  # constants first: the folding patterns look ahead at them
        if node.op_type == "Constant" and not node.input and node.domain in ("", "ai.onnx"):
            onnx_ops.HANDLERS["Constant"](b, node, _attrs(node))
            b.skip.add(id(node))
    for node in b.nodes:
        if id(node) in b.skip:
            continue
        if node.op_type not in _MERGED_OK and any(isinstance(b.values.get(n), _Merged) for n in node.input):
            raise _unsupported(node, "an input whose batch axis is merged with other axes (as x.view(batch * heads, "
                                     f"...)); only {', '.join(_MERGED_OK)} take one")
        try:
            onnx_ops.HANDLERS[node.op_type](b, node, _attrs(node))
        except (KeyError, IndexError) as exc:
            raise ValueError(f"ONNX import: {node.op_type} node {node.name!r}: malformed ({exc})") from None
    outputs, output_axes = [], []
    for out in proto.graph.output:
        value = b.values.get(out.name)
        if isinstance(value, _Merged):
            raise ValueError(f"ONNX import: output {out.name!r} merges the batch axis with other axes")
        if not isinstance(value, _Sym):
            raise ValueError(f"ONNX import: output {out.name!r} is a constant or missing, not computed from inputs")
        order = [value.perm[0]] + [a for a in range(value.rank) if a != value.perm[0]]  # batch first
        outputs.append(b.held(value, order))
        output_axes.append(order)
    name = _layer_name(proto.graph.name or "onnx_model")
    chain = _chain(b.inputs, outputs)
    if chain is not None:  # a Sequential model: the plan Keras's own Sequential models run
        model = b.dl.models.Sequential([b.inputs[0]] + chain, name=name)
    else:
        model = b.dl.Model(b.inputs if len(b.inputs) > 1 else b.inputs[0],
                           outputs if len(outputs) > 1 else outputs[0], name=name)
    # axis i of each model input / output is ONNX axis axes[i] (identity unless channels_last or
    # a batch axis that is not ONNX's axis 0, as an RNN's time-first input)
    model.onnx_input_axes = [b.values[i.name].perm for i in proto.graph.input if i.name not in initial]
    model.onnx_output_axes = output_axes
    return model


def _chain(inputs, outputs):
    """The layers from the one input to the one output when each takes the previous one's single
    output as its only input (a plain chain, each layer once), else None."""
    if len(inputs) != 1 or len(outputs) != 1:
        return None
    layers, t = [], outputs[0]
    while t is not inputs[0]:
        node = t.node
        if node is None or len(node.parents) != 1 or node.outputs is not t or any(
                layer is node.layer for layer in layers):
            return None
        layers.append(node.layer)
        t = node.parents[0]
    return layers[::-1] or None


def _layer_name(name):
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in str(name))
    return cleaned or "input"
