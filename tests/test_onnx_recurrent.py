"""ONNX's backend node test cases for LSTM, GRU and RNN as an external oracle.

The cases come from the ``onnx`` package itself (``onnx.backend.test.case.node.{lstm,gru,rnn}``):
each export function builds a node, its inputs and its expected outputs (computed by ONNX's own
NumPy reference). ONNX weights map onto Keras layouts: W (dirs, gates*H, input) -> kernel
(input, gates*H) with the gates reordered (ONNX LSTM i, o, f, c -> Keras i, f, c, o; GRU z, r, h
in both); B = [Wb, Rb] -> one bias Wb + Rb, or GRU's (2, 3H) pair when linear_before_reset=1
(Keras's reset_after=True). direction "reverse" is go_backwards (ONNX reports Y in input order),
"bidirectional" is Bidirectional(merge_mode=None). Cases whose attributes do not map (peepholes)
are skipped with the reason.
"""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
helper = onnx.helper

import dlcore as dl  # noqa: E402

GATE_ORDER = {"LSTM": [0, 2, 3, 1], "GRU": [0, 1, 2], "RNN": [0]}  # Keras gate i <- ONNX block
LAYERS = {"LSTM": dl.layers.LSTM, "GRU": dl.layers.GRU, "RNN": dl.layers.SimpleRNN}


def _collect():
    """(name, node, inputs, outputs) for every LSTM/GRU/RNN export of the installed onnx."""
    import onnx.backend.test.case.node as node_cases  # noqa: F401 (the package the modules expect)
    from onnx.backend.test.case.node import gru, lstm, rnn

    cases = []

    def record(node, inputs, outputs, name, **kwargs):
        cases.append((name, node, list(inputs), list(outputs)))

    for module, cls_name in ((lstm, "LSTM"), (gru, "GRU"), (rnn, "RNN")):
        cls = getattr(module, cls_name)
        original = module.expect
        module.expect = record
        try:
            for attr in sorted(dir(cls)):
                if attr.startswith("export"):
                    np.random.seed(0)  # as onnx's exporter seeds each export
                    getattr(cls, attr)()
        finally:
            module.expect = original
    return cases


CASES = _collect()


def _reorder(mat, op, hidden):
    """ONNX (gates*H, n) -> Keras (n, gates*H) in Keras gate order."""
    blocks = [mat[g * hidden:(g + 1) * hidden] for g in range(len(GATE_ORDER[op]))]
    return np.concatenate([blocks[g].T for g in GATE_ORDER[op]], axis=1)


def _reorder_vec(vec, op, hidden):
    blocks = [vec[g * hidden:(g + 1) * hidden] for g in range(len(GATE_ORDER[op]))]
    return np.concatenate([blocks[g] for g in GATE_ORDER[op]])


def _keras_weights(op, w, r, b, hidden, reset_after):
    kernel = _reorder(w, op, hidden)
    recurrent = _reorder(r, op, hidden)
    n_gates = len(GATE_ORDER[op])
    wb, rb = (b[:n_gates * hidden], b[n_gates * hidden:]) if b is not None else (None, None)
    if b is None:
        bias = np.zeros((2, 3 * hidden)) if reset_after else np.zeros(n_gates * hidden)
    elif reset_after:
        bias = np.stack([_reorder_vec(wb, op, hidden), _reorder_vec(rb, op, hidden)])
    else:
        bias = _reorder_vec(wb + rb, op, hidden)
    return [kernel.astype(np.float32), recurrent.astype(np.float32), bias.astype(np.float32)]


def _unsupported(op, node, inputs):
    names = [n for n in node.input]
    given = {n: a for n, a in zip([n for n in names if n], inputs)}
    if "P" in given and np.any(given["P"] != 0):
        return "peephole connections (P) have no Keras equivalent"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    for key in ("activations", "activation_alpha", "activation_beta", "clip", "input_forget"):
        if key in attrs:
            return f"attribute {key} has no Keras equivalent"
    if "sequence_lens" in given:
        return "sequence_lens is covered by masks elsewhere"
    return None


@pytest.mark.parametrize("name,node,inputs,outputs", CASES, ids=[c[0] for c in CASES])
def test_onnx_node_case(name, node, inputs, outputs):
    op = node.op_type
    reason = _unsupported(op, node, inputs)
    if reason:
        pytest.skip(reason)
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    hidden = attrs["hidden_size"]
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    layout = attrs.get("layout", 0)
    reset_after = bool(attrs.get("linear_before_reset", 0))
    given = dict(zip([n for n in node.input if n], inputs))
    x = given["X"].astype(np.float32)
    if layout == 0:
        x = np.swapaxes(x, 0, 1)  # (seq, batch, input) -> (batch, seq, input)
    h0 = given.get("initial_h")
    if h0 is not None and layout == 1:
        h0 = np.swapaxes(h0, 0, 1)
    n_dirs = given["W"].shape[0]
    weights = []
    for d in range(n_dirs):
        b = given["B"][d] if "B" in given else None
        weights += _keras_weights(op, given["W"][d], given["R"][d], b, hidden, reset_after)

    kwargs = dict(return_sequences=True, return_state=True)
    if op == "GRU":
        kwargs["reset_after"] = reset_after
    layer = LAYERS[op](hidden, go_backwards=(direction == "reverse"), **kwargs)
    if direction == "bidirectional":
        layer = dl.layers.Bidirectional(LAYERS[op](hidden, **kwargs), merge_mode=None)
    layer(x)
    layer.set_weights(weights)
    states = None
    if h0 is not None:
        states = [h0[d] for d in range(n_dirs)]
    result = layer(x, initial_state=states) if states is not None else layer(x)
    result = [np.asarray(t.value) for t in result]

    if direction == "bidirectional":
        seqs = result[:2]
        per_dir_states = [result[2:2 + len(result[2:]) // 2], result[2 + len(result[2:]) // 2:]]
    else:
        seqs = [result[0][:, ::-1] if direction == "reverse" else result[0]]  # ONNX Y is in input order
        per_dir_states = [result[1:]]
    y = np.stack(seqs, axis=1 if layout == 0 else 2)          # (batch, dirs, seq, H) or (batch, seq, dirs, H)
    y_h = np.stack([s[0] for s in per_dir_states])           # (dirs, batch, H)
    y_c = np.stack([s[1] for s in per_dir_states]) if op == "LSTM" else None
    if layout == 0:
        y = np.transpose(y, (2, 1, 0, 3))                    # (seq, dirs, batch, H)
    else:
        y_h = np.swapaxes(y_h, 0, 1)                         # (batch, dirs, H)
        y_c = None if y_c is None else np.swapaxes(y_c, 0, 1)

    produced = {"Y": y, "Y_h": y_h, "Y_c": y_c}
    present = [o for o in node.output if o]
    assert len(present) == len(outputs)
    for out_name, expected in zip(present, outputs):
        np.testing.assert_allclose(produced[out_name], expected, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{name}: output {out_name}")


def test_cases_were_collected():
    ops = {node.op_type for _, node, _, _ in CASES}
    assert ops == {"LSTM", "GRU", "RNN"}
    assert len(CASES) >= 12
