"""ONNX LSTM, GRU and RNN nodes as dlcore LSTM, GRU and SimpleRNN layers (``onnx_import``).

The gate blocks are reordered to Keras's (ONNX LSTM i, o, f, c -> i, f, c, o; GRU z, r, h as
Keras) and transposed to (input, gates * units). ``direction="reverse"`` is ``go_backwards``
(wrapped in Bidirectional when the output sequence is read, which flips it back to time order),
``"bidirectional"`` is Bidirectional with the two directions' weights. Both layouts are taken
(layout 0: X (time, batch, features), Y (time, directions, batch, units); layout 1: batch first).
When Y is read only as its last step (``out[:, -1]`` after the Squeeze and Transpose PyTorch
writes), the layer is built with ``return_sequences=False``, as a native model would be.
"""
import numpy as np

from .onnx_import import _attrs, _build_layer, _Sym, _unsupported

_ACTS = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Relu": "relu"}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [0, 1, 2], "RNN": [0]}  # ONNX gate blocks in Keras's order
_DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
_STATES = {"LSTM": 2, "GRU": 1, "RNN": 1}


def _used(b, name):
    return bool(name) and (name in b.outputs or bool(b.consumers.get(name)))


def _check_optional_inputs(b, node, steps):
    """sequence_lens must be absent or all ``steps``; initial states and peepholes absent or zero."""
    for i in range(4, len(node.input)):
        name = node.input[i]
        if not name:
            continue
        value = b.values.get(name)
        if i == 4:
            if not (isinstance(value, np.ndarray) and steps is not None and np.all(value == steps)):
                raise _unsupported(node, f"sequence_lens {name!r} other than the full length of every sequence")
        elif not (isinstance(value, np.ndarray) and not value.any()):
            what = "peepholes P" if i == 7 else "an initial state"
            raise _unsupported(node, f"{what} ({name!r}) that is not absent or zero")


def _keras_weights(kind, units, w, r, bias, reset_after):
    """One direction's ONNX W (gates*units, in), R (gates*units, units), B (2*gates*units) as the
    Keras layer's [kernel, recurrent_kernel, bias]."""
    gates, order = _GATES[kind], _ORDER[kind]

    def keras(matrix):  # (gates*units, n) -> (n, gates*units) in Keras's gate order
        blocks = [matrix[i * units:(i + 1) * units] for i in range(gates)]
        return np.concatenate([blocks[i] for i in order], axis=0).T

    reorder = lambda vec: keras(vec[:, None]).reshape(-1)
    wb, rb = bias[:gates * units], bias[gates * units:]
    if kind == "GRU" and reset_after:
        return [keras(w), keras(r), np.stack([reorder(wb), reorder(rb)])]
    return [keras(w), keras(r), reorder(wb + rb)]


def _last_step_use(b, y_name, layout, steps):
    """When ONNX value Y (``y_name``) is read only through Squeeze (of the direction axis),
    Transpose and a Gather or Slice of its last time step: ``(labels, out_name, nodes)``, the axes
    of the last node's output ("b", "h", and "d"/"t" of size 1), its name and the nodes it
    replaces; else None."""
    labels = ["t", "d", "b", "h"] if layout == 0 else ["b", "t", "d", "h"]
    name, nodes = y_name, []
    while True:
        node = b.only_consumer(name)
        if node is None or node.input[0] != name or len(node.output) != 1:
            return None
        attrs = _attrs(node)
        nodes.append(node)
        if node.op_type == "Squeeze":
            axes = attrs.get("axes")
            if axes is None and len(node.input) > 1 and isinstance(b.values.get(node.input[1]), np.ndarray):
                axes = b.values[node.input[1]].tolist()
            if axes is None or any(labels[int(a) % len(labels)] != "d" for a in axes):
                return None
            labels = [x for x in labels if x != "d"]
        elif node.op_type == "Transpose":
            perm = attrs.get("perm", list(reversed(range(len(labels)))))
            labels = [labels[p] for p in perm]
        elif node.op_type == "Gather":
            index = b.values.get(node.input[1])
            axis = int(attrs.get("axis", 0)) % len(labels)
            if not (isinstance(index, np.ndarray) and index.ndim == 0 and labels[axis] == "t"
                    and (int(index) == -1 or (steps is not None and int(index) == steps - 1))):
                return None
            return labels[:axis] + labels[axis + 1:], node.output[0], nodes
        elif node.op_type == "Slice" and _slices_last_step(b, node, labels.index("t"), steps):
            return labels, node.output[0], nodes
        else:
            return None
        name = node.output[0]


def _slices_last_step(b, node, t_axis, steps):
    args = [b.values.get(n) if n else None for n in node.input[1:5]] + [None] * 4
    starts, ends, axes, step = args[:4]
    if not all(isinstance(a, np.ndarray) for a in (starts, ends)) or starts.size != 1:
        return False
    axes = [0] if axes is None else axes.reshape(-1).tolist()
    step = 1 if step is None else int(step.reshape(-1)[0])
    start, end = int(starts.reshape(-1)[0]), int(ends.reshape(-1)[0])
    big = end >= (steps if steps is not None else 2 ** 31 - 1)
    return (len(axes) == 1 and axes[0] % 4 == t_axis and step == 1 and big
            and (start == -1 or (steps is not None and start == steps - 1)))


def _as_labels(b, held, held_labels, labels, units):
    """``held`` (batch, units) or (batch, time, directions * units) rearranged as a _Sym whose
    ONNX axes are ``labels`` ("t" and "d" of size 1 unless ``held_labels`` holds them)."""
    order = ["b"] + [x for x in labels if x != "b"]
    sizes = {"h": units, "t": held.shape[1] if "t" in held_labels else 1,
             "d": 1 if "d" not in held_labels else (held.shape[-1] // units)}
    shape = tuple(sizes[x] for x in order[1:])
    if tuple(held.shape[1:]) != shape:
        held = b.L.Reshape(shape)(held)
    return _Sym(held, [labels.index(x) for x in order])


def recurrent(b, node, attrs):
    kind = node.op_type
    v = b.sym(node.input[0], node)
    direction = attrs.get("direction", "forward")
    layout = int(attrs.get("layout", 0))
    if direction not in ("forward", "reverse", "bidirectional") or layout not in (0, 1) or v.rank != 3:
        raise _unsupported(node, f"direction {direction!r}, layout {layout} on a rank-{v.rank} input")
    if attrs.get("clip") is not None or attrs.get("input_forget"):
        raise _unsupported(node, "clip or input_forget (Keras's cells have neither)")
    x = b.held(v, [1, 0, 2] if layout == 0 else [0, 1, 2])  # (batch, time, features)
    steps = x.shape[1]
    _check_optional_inputs(b, node, steps)
    dirs = 2 if direction == "bidirectional" else 1
    w, r = b.const(node.input[1], node), b.const(node.input[2], node)
    units = int(attrs.get("hidden_size", r.shape[-1]))
    gates = _GATES[kind]
    if w.shape[0] != dirs or r.shape != (dirs, gates * units, units) or w.shape[1] != gates * units:
        raise _unsupported(node, f"W {w.shape} / R {r.shape} for {dirs} direction(s) of {units} units")
    bias = b.const(node.input[3], node) if len(node.input) > 3 and node.input[3] \
        else np.zeros((dirs, 2 * gates * units))
    default = _DEFAULT_ACTS[kind]
    acts = list(attrs.get("activations", default * dirs))
    per_dir = [acts[i * len(default):(i + 1) * len(default)] for i in range(dirs)]
    if (len(acts) != len(default) * dirs or any(a not in _ACTS for a in acts) or per_dir[0] != per_dir[-1]
            or (kind == "LSTM" and acts[1] != acts[2])):
        raise _unsupported(node, f"activations {acts} (Keras's cells take one activation and one recurrent "
                                 "activation, the same in both directions)")
    reset_after = bool(attrs.get("linear_before_reset", 0))
    weights = [np.asarray(m, np.float32) for d in range(dirs)
               for m in _keras_weights(kind, units, w[d].astype(np.float32), r[d].astype(np.float32),
                                       bias[d].astype(np.float32), reset_after)]

    outs = (list(node.output) + ["", "", ""])[:3]
    last = _last_step_use(b, outs[0], layout, steps) if direction == "forward" and _used(b, outs[0]) else None
    want_seq = _used(b, outs[0]) and last is None
    want_states = [_used(b, n) for n in outs[1:1 + _STATES[kind]]]
    common = dict(return_sequences=want_seq, return_state=any(want_states),
                  go_backwards=direction == "reverse" and not want_seq)
    if kind == "RNN":
        layer = b.L.SimpleRNN(units, activation=_ACTS[acts[0]], **common)
    else:
        cls = b.L.LSTM if kind == "LSTM" else b.L.GRU
        extra = dict(unit_forget_bias=False) if kind == "LSTM" else dict(reset_after=reset_after)
        layer = cls(units, activation=_ACTS[acts[1]], recurrent_activation=_ACTS[acts[0]], **common, **extra)
    if direction == "forward" or (direction == "reverse" and not want_seq):
        got = _build_layer(layer, x, weights)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        seq, states = got[0], [got[1:]]
    else:
        # Bidirectional flips the backward sequence back to time order; a reverse-only node
        # keeps its backward half (the forward half gets the same weights and is not read)
        merge = "concat" if direction == "bidirectional" else None
        wrapper = b.L.Bidirectional(layer, merge_mode=merge)
        got = _build_layer(wrapper, x, weights * (1 if dirs == 2 else 2))
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        n_seq = 1 if merge else 2
        n = _STATES[kind] if any(want_states) else 0
        seq = got[0] if merge else got[1]
        fwd, bwd = got[n_seq:n_seq + n], got[n_seq + n:]
        states = [fwd, bwd] if dirs == 2 else [bwd]

    results = [None] * 3
    if want_seq:
        results[0] = _as_labels(b, seq, ["b", "t", "d", "h"], ["t", "d", "b", "h"] if layout == 0
                                else ["b", "t", "d", "h"], units)
    for i, wanted in enumerate(want_states):
        if wanted:
            per_direction = [s[i] for s in states]
            h = per_direction[0] if dirs == 1 else b.L.Concatenate(axis=-1)(per_direction)
            results[1 + i] = _as_labels(b, h, ["b", "d", "h"] if dirs == 2 else ["b", "h"],
                                        ["d", "b", "h"] if layout == 0 else ["b", "d", "h"], units)
    b.set(node, *results)
    if last is not None:
        labels, out_name, nodes = last
        b.skip.update(id(n) for n in nodes)
        b.values[out_name] = _as_labels(b, seq, ["b", "h"], labels, units)


HANDLERS = {"LSTM": recurrent, "GRU": recurrent, "RNN": recurrent}
