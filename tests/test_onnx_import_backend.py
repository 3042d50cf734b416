"""ONNX's backend node test cases through the ONNX importer (tests/onnx_import_oracle.py): every
case of an operator ``dl.saving.load_onnx`` supports is imported and run; a case the importer
refuses with its ValueError is skipped with the reason (``pytest -rs``), a wrong result fails.
The table: ``python tests/onnx_import_oracle.py`` (summarized in docs/onnx.md)."""
import pytest

pytest.importorskip("onnx")

import onnx_import_oracle as oracle  # noqa: E402  (after the importorskip)

CASES = oracle.load_cases()


def test_cases_cover_the_importer():
    covered = {n.op_type for c in CASES for n in c.model.graph.node}
    # operators with no node case of their own in onnx's generators are folded in other cases
    assert set(oracle.supported_ops()) - covered <= {"Constant"}, set(oracle.supported_ops()) - covered
    assert len(CASES) >= 300


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_import_case(case, fresh_session):
    if case.name in oracle.KNOWN_GAPS:
        pytest.xfail(oracle.KNOWN_GAPS[case.name])
    try:
        oracle.check_case(case)
    except oracle.OutOfScope as exc:
        pytest.skip(str(exc))


def test_refusals_are_the_importers_own():
    """Out-of-scope cases are refused by the importer's own checks (naming the node), not by a
    NumPy error leaking out of a handler."""
    rows = oracle.run_all([c for c in CASES if c.name.startswith(("test_div", "test_slice", "test_neg", "test_sqrt",
                                                                   "test_training_dropout", "test_cast"))])
    by_status = {}
    for name, _, status, detail in rows:
        by_status.setdefault(status, []).append((name, detail))
    assert "FAILED" not in by_status, by_status["FAILED"]
    for name, detail in by_status.get("out of scope", []):
        assert "ONNX import" in detail or "scalar" in detail or "batch sizes" in detail, (name, detail)
    ran = {name for name, _ in by_status.get("ran", [])}
    assert {"test_neg", "test_neg_example", "test_cast_FLOAT_to_DOUBLE"} <= ran, ran


@pytest.mark.parametrize("shape, axis, index", [((2, 5, 3), 1, -1), ((2, 5, 3), 1, 2), ((2, 3, 5), 2, 0),
                                                ((2, 4, 3, 2), 2, -2)])
def test_gather_one_entry_of_a_computed_axis(tmp_path, shape, axis, index, fresh_session):
    """``out[:, -1]`` after an RNN (as torch.onnx.export writes it): a scalar Gather on a known axis."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    import dlcore as dl

    out_shape = [d for i, d in enumerate(shape) if i != axis]
    graph = helper.make_graph(
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=axis)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape[1:]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", *out_shape[1:]])],
        [numpy_helper.from_array(np.array(index, np.int64), "i")])
    path = tmp_path / "gather.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_operatorsetid("", 13)]), str(path))
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    got = np.asarray(dl.saving.load_onnx(str(path))(x, training=False))
    np.testing.assert_array_equal(got, np.take(x, index, axis=axis))


def test_non_tensor_inputs_are_refused():
    case = next(c for c in CASES if c.name == "test_identity_sequence")
    with pytest.raises(oracle.OutOfScope, match="not a tensor"):
        oracle.check_case(case)
