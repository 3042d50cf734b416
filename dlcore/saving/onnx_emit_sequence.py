"""ONNX emitters of the sequence layers (``dlcore.saving.onnx_export``): LSTM/GRU/SimpleRNN (gate
orders converted: LSTM Keras i,f,c,o -> ONNX i,o,f,c; GRU z,r,h with ``linear_before_reset`` for
``reset_after``), Bidirectional (two directions, merged as Keras does), EinsumDense (Einsum),
MultiHeadAttention, Attention and AdditiveAttention (their score formulas in MatMul/Softmax).
Emitters are ``emit(g, layer, ins, node) -> [Value]`` as in ``onnx_emit_layers``.
"""
import numpy as np

from .onnx_emit import (INT64_MAX, KERAS, NEG, SEQUENCE_ACTIVATIONS, Value, activation_name, apply_activation,
                        arr)

RECURRENT = ("LSTM", "GRU", "SimpleRNN")


def _call_arguments(node, names):
    """The call's arguments by name (positional ones matched to ``names``)."""
    return {**dict(zip(names, node.args)), **node.kwargs}


def _refuse_tensors(layer, bound, names):
    given = [n for n in names if bound.get(n) is not None]
    if given:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': the call arguments {given} are not exported "
                         "(ONNX export takes the layer's tensors only, without masks or initial states)")


def _flip_time(g, name):
    return g.node("Slice", [name, g.ints([-1]), g.ints([-INT64_MAX]), g.ints([1]), g.ints([-1])])


# ---- recurrent ---------------------------------------------------------------------------------------
def _gate_blocks(matrix, order, units):
    """Keras (n, gates*units) matrix with its gate blocks reordered as ``order``."""
    blocks = [matrix[..., i * units:(i + 1) * units] for i in range(matrix.shape[-1] // units)]
    return np.concatenate([blocks[i] for i in order], axis=-1)


def _compacted(g, x, mask):
    """``x`` (batch, time, features) with each sample's unmasked steps moved first, in order, and
    their count (int32 (batch,), ONNX's sequence_lens): a recurrence over them with
    sequence_lens is Keras's over the masked sequence (masked steps carry the state on)."""
    count = g.node("Shape", [x], start=1, end=2)
    steps = g.node("Range", [g.int_scalar(0), g.node("Squeeze", [count, g.ints([0])]), g.int_scalar(1)])
    key = g.node("Cast", [g.node("Sub", [g.node("Mul", [mask, count]), steps])], to=1)  # unmasked: T - t > 0 >= -t
    order = g.node("TopK", [key, count], outputs=2, axis=1, largest=1, sorted=1)[1]
    return _along_time(g, x, order), g.node("Cast", [g.node("ReduceSum", [mask, g.ints([1])], keepdims=0)], to=6)


def _along_time(g, x, index):
    """x[b, index[b, t], :] for (batch, time) ``index``."""
    spread = g.node("Expand", [g.node("Unsqueeze", [index, g.ints([2])]), g.node("Shape", [x])])
    return g.node("GatherElements", [x, spread], axis=1)


def _uncompacted(g, y, mask, zero_masked):
    """The (batch, time, units) outputs of a compacted recurrence back at the masked sequence's
    steps: each step's output is the one after the unmasked steps up to it (a masked step
    repeats the last output, zeros before the first; zeros with ``zero_masked``), as Keras."""
    seen = g.node("CumSum", [mask, g.int_scalar(1)])
    y = _along_time(g, y, g.node("Max", [g.node("Sub", [seen, g.ints(1)]), g.ints(0)]))
    keep = g.node("Greater", [mask if zero_masked else seen, g.ints(0)])
    return g.node("Where", [g.node("Unsqueeze", [keep, g.ints([2])]), y, g.scalar(0.0, "zero")])


def _recurrent_layer(g, layer, x, mask=None):
    """The LSTM/GRU/RNN node of ``layer`` on ``x`` (batch, time, features), Keras-layout; returns
    [output, *states] as Values (output (batch, units), or (batch, time, units) with
    return_sequences, in the processing order: reversed for go_backwards, as Keras). ``mask``:
    the (batch, time) int64 mask it carries, exported as compaction + sequence_lens."""
    kind, cell = type(layer).__name__, layer.cell
    units = cell.units
    if layer.stateful:
        raise ValueError(f"{kind} '{layer.name}': stateful=True is not exported")
    order = {"LSTM": [0, 3, 1, 2], "GRU": [0, 1, 2], "SimpleRNN": [0]}[kind]
    acts = [cell.activation] if kind == "SimpleRNN" else [cell.recurrent_activation, cell.activation]
    act_names = [SEQUENCE_ACTIVATIONS.get(activation_name(a)) for a in acts]
    if None in act_names:
        raise ValueError(f"{kind} '{layer.name}': activations {[activation_name(a) for a in acts]} do not export "
                         f"(ONNX recurrent ops take {sorted(SEQUENCE_ACTIVATIONS)})")
    w = _gate_blocks(arr(cell.kernel), order, units).T[None]
    r = _gate_blocks(arr(cell.recurrent_kernel), order, units).T[None]
    attrs = {"hidden_size": units}
    if kind == "LSTM":
        attrs["activations"] = [act_names[0], act_names[1], act_names[1]]
    elif kind == "GRU":
        attrs["activations"] = [act_names[0], act_names[1]]
        attrs["linear_before_reset"] = int(cell.reset_after)
    else:
        attrs["activations"] = act_names
    bias = np.zeros((2, len(order) * units), np.float32)
    if cell.bias is not None:
        b = arr(cell.bias)
        if b.ndim == 2:  # GRU reset_after: (input bias, recurrent bias)
            bias[0], bias[1] = _gate_blocks(b[0], order, units), _gate_blocks(b[1], order, units)
        else:
            bias[0] = _gate_blocks(b, order, units)
    if layer.go_backwards:
        x = _flip_time(g, x)
        mask = None if mask is None else _flip_time(g, mask)
    lengths = []
    if mask is not None:
        x, length = _compacted(g, x, mask)
        lengths = [length]
    x = g.node("Transpose", [x], perm=[1, 0, 2])  # (time, batch, features)
    inputs = [x, g.const(w, "W"), g.const(r, "R"), g.const(bias.reshape(1, -1), "B")] + lengths
    outs = g.node(kind if kind != "SimpleRNN" else "RNN", inputs, outputs=3 if kind == "LSTM" else 2, **attrs)
    if layer.return_sequences:
        seq = g.node("Transpose", [g.node("Squeeze", [outs[0], g.ints([1])])], perm=[1, 0, 2])
        result = [Value(seq if mask is None else _uncompacted(g, seq, mask, layer.zero_output_for_mask), KERAS, 3)]
    else:
        result = [Value(g.node("Squeeze", [outs[1], g.ints([0])]), KERAS, 2)]
    if layer.return_state:
        result += [Value(g.node("Squeeze", [o, g.ints([0])]), KERAS, 2) for o in outs[1:]]
    return result


def recurrent(g, layer, ins, node):
    _refuse_tensors(layer, _call_arguments(node, ("sequences", "initial_state", "mask")), ("initial_state", "mask"))
    return _recurrent_layer(g, layer, g.keras(ins[0]), ins[0].mask)


def bidirectional(g, layer, ins, node):
    """Bidirectional: the forward and backward layers, the backward sequence flipped back to
    input order, merged by ``merge_mode`` (None: both outputs); states forward then backward."""
    _refuse_tensors(layer, _call_arguments(node, ("sequences", "initial_state", "mask")), ("initial_state", "mask"))
    x = g.keras(ins[0])
    forward = _recurrent_layer(g, layer.forward_layer, x, ins[0].mask)
    backward = _recurrent_layer(g, layer.backward_layer, x, ins[0].mask)
    y, y_rev = forward[0], backward[0]
    if layer.return_sequences:
        y_rev = Value(_flip_time(g, y_rev.name), KERAS, y_rev.rank)
    mode, rank = layer.merge_mode, y.rank
    if mode == "concat":
        outputs = [Value(g.node("Concat", [y.name, y_rev.name], axis=rank - 1), KERAS, rank)]
    elif mode in ("sum", "ave"):
        total = g.node("Add", [y.name, y_rev.name])
        outputs = [Value(total if mode == "sum" else g.node("Mul", [total, g.scalar(0.5, "half")]), KERAS, rank)]
    elif mode == "mul":
        outputs = [Value(g.node("Mul", [y.name, y_rev.name]), KERAS, rank)]
    else:
        outputs = [y, y_rev]
    return outputs + forward[1:] + backward[1:]


# ---- EinsumDense -------------------------------------------------------------------------------------
def _einsum_dense(g, layer, x, out_rank):
    """``activation(einsum(equation, x, kernel) + bias)`` of an EinsumDense on the name ``x``."""
    y = g.node("Einsum", [x, g.const(arr(layer.kernel), "kernel")], equation=layer.equation)
    if layer.bias is not None:
        y = g.node("Add", [y, g.const(arr(layer.bias), "bias")])
    return apply_activation(g, layer.activation, Value(y, KERAS, out_rank))


def einsum_dense(g, layer, ins, node):
    out_rank = len(layer.compute_output_shape(tuple(node.parents[0].shape)))
    return [_einsum_dense(g, layer, g.keras(ins[0]), out_rank)]


# ---- attention ---------------------------------------------------------------------------------------
def _static_mask(layer, shape_q, shape_v, causal, window=None):
    """The (T, S) boolean mask of ``causal`` and a sliding ``window``, or None when nothing is masked."""
    if not causal and window is None:
        return None
    T, S = shape_q[-2], shape_v[-2]
    if T is None or S is None:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': a causal or sliding-window mask exports only "
                         f"with known sequence lengths, received query {shape_q} and value {shape_v}")
    mask = np.ones((T, S), dtype=bool)
    if causal:
        mask &= np.tril(mask)
    if window is not None:
        mask &= np.abs(np.arange(T)[:, None] - np.arange(S)[None, :]) < window
    return None if mask.all() else mask


def multi_head_attention(g, layer, ins, node):
    """MultiHeadAttention (rank-3 inputs, default attention axes): the query/key/value EinsumDense
    projections, softmax(q k^T / sqrt(key_dim) [masked]) v per head, the optional gate, then the
    output projection; with return_attention_scores the (B, N, T, S) probabilities as well."""
    names = ("query", "value", "key", "query_mask", "value_mask", "key_mask", "attention_mask",
             "return_attention_scores", "training", "use_causal_mask")
    bound = _call_arguments(node, names)
    _refuse_tensors(layer, bound, ("query_mask", "value_mask", "key_mask", "attention_mask"))
    held = dict(zip(map(id, node.parents), ins))
    query, value = bound["query"], bound["value"]
    key = value if bound.get("key") is None else bound["key"]
    if len(query.shape) != 3 or layer._attn_axes != (1,):
        raise ValueError(f"MultiHeadAttention '{layer.name}': only rank-3 inputs with the default attention_axes "
                         f"export, received query shape {tuple(query.shape)} and attention_axes="
                         f"{layer.attention_axes}")
    q = _einsum_dense(g, layer._query_dense, g.keras(held[id(query)]), 4).name
    k = _einsum_dense(g, layer._key_dense, g.keras(held[id(key)]), 4).name
    v = _einsum_dense(g, layer._value_dense, g.keras(held[id(value)]), 4).name
    qh = g.node("Mul", [g.node("Transpose", [q], perm=[0, 2, 1, 3]), g.scalar(layer._scale, "scale")])
    scores = g.node("MatMul", [qh, g.node("Transpose", [k], perm=[0, 2, 3, 1])])  # (B, N, T, S)
    mask = _static_mask(layer, tuple(query.shape), tuple(value.shape), bool(bound.get("use_causal_mask")),
                        layer.sliding_window)
    if mask is not None:
        scores = g.node("Where", [g.const(mask, "mask"), scores, g.scalar(NEG, "neg")])
    probs = g.node("Softmax", [scores], axis=-1)
    out = g.node("MatMul", [probs, g.node("Transpose", [v], perm=[0, 2, 1, 3])])
    out = g.node("Transpose", [out], perm=[0, 2, 1, 3])  # (B, T, N, Hv)
    if layer.use_gate:
        out = g.node("Mul", [out, _einsum_dense(g, layer._gate_dense, g.keras(held[id(query)]), 4).name])
    out_rank = 2 + len(layer._output_shape or (1,))
    result = [_einsum_dense(g, layer._output_dense, out, out_rank)]
    if bound.get("return_attention_scores"):
        result.append(Value(probs, KERAS, 4))
    return result


def attention(g, layer, ins, node):
    """Attention ("dot" or "concat" scores) and AdditiveAttention on [query, value, key=value]:
    scores, ``scores - 1e9`` where the causal mask hides a key (Keras's rule), softmax, @ value."""
    bound = _call_arguments(node, ("inputs", "mask", "training", "return_attention_scores", "use_causal_mask"))
    _refuse_tensors(layer, bound, ("mask",))
    held = dict(zip(map(id, node.parents), ins))
    tensors = list(bound["inputs"])
    q, v = (g.keras(held[id(t)]) for t in tensors[:2])
    k = g.keras(held[id(tensors[2])]) if len(tensors) > 2 else v
    rank = len(tensors[0].shape)
    if type(layer).__name__ == "AdditiveAttention" or layer.score_mode == "concat":
        summed = g.node("Add", [g.node("Unsqueeze", [q, g.ints([-2])]), g.node("Unsqueeze", [k, g.ints([-3])])])
        if type(layer).__name__ == "AdditiveAttention":
            summed = g.node("Tanh", [summed])
            if layer.scale is not None:
                summed = g.node("Mul", [g.const(arr(layer.scale), "scale"), summed])
            scores = g.node("ReduceSum", [summed, g.ints([-1])], keepdims=0)
        else:
            if layer.scale is not None:
                summed = g.node("Mul", [g.const(arr(layer.scale), "scale"), summed])
            scores = g.node("ReduceSum", [g.node("Tanh", [summed]), g.ints([-1])], keepdims=0)
            scores = g.node("Mul", [g.const(arr(layer.concat_score_weight), "concat_score_weight"), scores])
    else:
        scores = g.node("MatMul", [q, g.swap_last(k, rank)])
        if layer.scale is not None:
            scores = g.node("Mul", [scores, g.const(arr(layer.scale), "scale")])
    mask = _static_mask(layer, tuple(tensors[0].shape), tuple(tensors[1].shape), bool(bound.get("use_causal_mask")))
    if mask is not None:
        scores = g.node("Where", [g.const(mask, "mask"), scores, g.node("Sub", [scores, g.scalar(-NEG, "big")])])
    weights = g.node("Softmax", [scores], axis=-1)
    result = [Value(g.node("MatMul", [weights, v]), KERAS, rank)]
    if bound.get("return_attention_scores"):
        result.append(Value(weights, KERAS, rank))
    return result


EMITTERS = {
    **{kind: recurrent for kind in RECURRENT}, "Bidirectional": bidirectional, "EinsumDense": einsum_dense,
    "MultiHeadAttention": multi_head_attention, "Attention": attention, "AdditiveAttention": attention,
}
