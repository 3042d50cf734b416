"""The ONNX backend node test cases run through the ONNX importer (``dl.saving.load_onnx``).

tests/onnx_oracle.py maps node cases onto dlcore *layers and ops*; this module runs the cases of
every operator the importer supports (``dlcore.saving.onnx_ops.HANDLERS``) through the importer
itself: each case's one-node model is written as an exporter would write it (the first input
stays a graph input; the others become graph inputs too when the importer takes two computed
tensors, else initializers, as weights, shapes and axes are in exported files), loaded with
``load_onnx``, run, and compared with ONNX's expected outputs.

Status of a case:
    ran           the imported model matches ONNX's expected outputs
    out of scope  the importer refuses the case with a clear ValueError (the reason), or the case
                  cannot be an imported model (a scalar or batch-less input, no computed output)
    FAILED        a wrong result, or an exception other than the importer's ValueError
    known gap     a FAILED case listed in KNOWN_GAPS with the reason (tests xfail them strictly)

    python tests/onnx_import_oracle.py      # prints the table: case, operator, status, detail
"""
import importlib
import re
import os
import tempfile
import warnings

import numpy as np

import onnx_oracle  # tests/ is on sys.path under pytest and when run as a script

RTOL, ATOL = onnx_oracle.RTOL, onnx_oracle.ATOL
# onnx.backend.test.case.node module per importer operator ("" when the module is the lowercase name)
CASE_MODULE = {"BatchNormalization": "batch_normalization", "LeakyRelu": "leakyrelu", "ConstantOfShape": "constantofshape"}
# operators whose importer handler takes several computed tensors (the others want constants but input 0)
MULTI_TENSOR = {"Add", "Sub", "Mul", "Div", "Sum", "Concat", "MatMul"}
# FAILED cases understood but not fixed: name -> reason (the test xfails them, strict)
KNOWN_GAPS = {}

OutOfScope = onnx_oracle.OutOfScope


def supported_ops():
    from dlcore.saving import onnx_ops

    return sorted(onnx_ops.HANDLERS)


def load_cases(ops=None):
    """The node test cases (onnx TestCase objects) whose node is one of ``ops`` (default: all the
    importer supports), sorted by name; built in memory by onnx's case generators."""
    import onnx.backend.test.case.node as node_pkg

    ops = set(ops or supported_ops())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for op in sorted(ops):
            module = CASE_MODULE.get(op, op.lower())
            try:
                importlib.import_module(f"{node_pkg.__name__}.{module}")
            except ImportError:
                pass
    seen, cases = set(), []
    for tc in node_pkg._NodeTestCases:
        node_ops = {n.op_type for n in tc.model.graph.node}
        if tc.name in seen or not (node_ops & ops):
            continue
        seen.add(tc.name)
        cases.append(tc)
    return sorted(cases, key=lambda c: c.name)


def op_type(case):
    nodes = case.model.graph.node
    return nodes[0].op_type if len(nodes) == 1 else f"{nodes[0].op_type}+{len(nodes) - 1} (expanded)"


def _array(value):
    """A case's input or expected output as a NumPy array (some cases store TensorProtos)."""
    from onnx import TensorProto, numpy_helper

    return numpy_helper.to_array(value) if isinstance(value, TensorProto) else np.asarray(value)


def _as_model(case, constant_inputs):
    """The case's model with the graph inputs at ``constant_inputs`` positions made initializers."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, _ = case.data_sets[0]
    graph_inputs = list(model.graph.input)
    keep = []
    for i, (vi, value) in enumerate(zip(graph_inputs, inputs)):
        if i in constant_inputs:
            model.graph.initializer.append(numpy_helper.from_array(_array(value), vi.name))
        else:
            keep.append(vi)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model


def _import_and_run(case, constant_inputs):
    import onnx

    import dlcore as dl

    model = _as_model(case, constant_inputs)
    inputs, _ = case.data_sets[0]
    feeds = [_array(v) for i, v in enumerate(inputs) if i not in constant_inputs]
    if not feeds:
        raise OutOfScope("every input is a constant: nothing is computed from a model input")
    for f in feeds:
        if f.ndim == 0:
            raise OutOfScope("a scalar model input (the importer's inputs have a batch axis)")
    if len({f.shape[0] for f in feeds}) > 1:
        raise OutOfScope("model inputs with different batch sizes")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        dl.utils.clear_session()
        imported = dl.saving.load_onnx(path)
    # the imported model takes and gives the batch axis first (an RNN's time-first X and Y move it)
    feeds = [np.transpose(f, axes) for f, axes in zip(feeds, imported.onnx_input_axes)]
    outs = imported(feeds if len(feeds) > 1 else feeds[0], training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [np.transpose(np.asarray(o), np.argsort(axes)) for o, axes in zip(outs, imported.onnx_output_axes)]


def check_case(case):
    """Import and run ``case``; compare with its expected outputs. Returns the description, raises
    OutOfScope (with the importer's reason) or AssertionError."""
    inputs, expected = case.data_sets[0]
    multi = all(n.op_type in MULTI_TENSOR for n in case.model.graph.node)
    attempts = ([set()] if multi else []) + [set(range(1, len(inputs)))]
    refusal = None
    for constant_inputs in attempts:
        try:
            got = _import_and_run(case, constant_inputs)
        except OutOfScope as exc:
            refusal = str(exc)
            continue
        except ValueError as exc:
            refusal = "refused: " + re.sub(r" of '[^']*model\.onnx'", "", str(exc).split("\n")[0])  # no temp path
            continue
        desc = "inputs 1.. as initializers" if constant_inputs else "every input a model input"
        assert len(got) == len(expected), f"{len(got)} outputs, expected {len(expected)}"
        for i, (g, want) in enumerate(zip(got, expected)):
            want = _array(want)
            assert g.shape == want.shape, f"output {i}: shape {g.shape}, expected {want.shape} ({desc})"
            np.testing.assert_allclose(g.astype(np.float64), want.astype(np.float64), rtol=RTOL, atol=ATOL,
                                       err_msg=f"{case.name} output {i} ({desc})")
        return desc
    raise OutOfScope(refusal)


def run_all(cases=None):
    rows = []
    for case in cases if cases is not None else load_cases():
        name, op = case.name, op_type(case)
        try:
            rows.append((name, op, "ran", check_case(case)))
        except OutOfScope as exc:
            rows.append((name, op, "out of scope", str(exc)))
        except Exception as exc:  # noqa: BLE001  (a wrong result or a crash: reported, not raised)
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if name in KNOWN_GAPS:
                rows.append((name, op, "known gap", KNOWN_GAPS[name]))
            else:
                rows.append((name, op, "FAILED", f"{type(exc).__name__}: {line}"[:160]))
    return rows


def table(rows):
    return onnx_oracle.table(rows)


if __name__ == "__main__":
    print(table(run_all()))
