"""ONNX's backend node test cases as an external oracle for the pooling, normalization, padding,
convolution and upsampling layers, and for LayerNormalization, gelu, einsum and tril/triu
(tests/onnx_oracle.py maps each case onto Keras-style layers or ops).

Every case whose attributes the layers support runs and must match ONNX's expected outputs; the
others are skipped with the reason (``pytest -rs`` lists them). The table of all cases (ran / out
of scope / why) is printed at the end of the module with ``-s`` or ``-v``, and by
``python tests/onnx_oracle.py``; the counts are always printed.
"""
import pytest

pytest.importorskip("onnx")

import onnx_oracle  # noqa: E402  (after the importorskip)

CASES = onnx_oracle.load_cases()
_ROWS = {}


@pytest.fixture(scope="module", autouse=True)
def onnx_table(request):
    yield
    rows = [_ROWS[c.name] for c in CASES if c.name in _ROWS]
    if not rows:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    full = request.config.getoption("capture") == "no" or request.config.getoption("verbose") > 0
    text = onnx_oracle.table(rows)
    text = text if full else text.splitlines()[-1] + " (the table: pytest -s, or python tests/onnx_oracle.py)"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            reporter.write_line("")
            for line in text.splitlines():
                reporter.write_line(line)


def test_cases_were_found():
    ops = {c.op_type for c in CASES}
    assert {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Pad", "Conv",
            "ConvTranspose", "Resize", "LayerNormalization", "Gelu", "Einsum", "Trilu"} <= ops, ops
    assert len(CASES) >= 80


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_case(case, fresh_session):
    try:
        detail = onnx_oracle.run(case)
    except onnx_oracle.OutOfScope as exc:
        _ROWS[case.name] = (case.name, case.op_type, "out of scope", str(exc))
        pytest.skip(f"out of scope: {exc}")
    except AssertionError as exc:
        _ROWS[case.name] = (case.name, case.op_type, "FAILED", str(exc).splitlines()[0])
        raise
    _ROWS[case.name] = (case.name, case.op_type, "ran", detail)
    assert detail, "onnx_oracle.run compares outputs and returns what it checked"


def test_data_dir_loader(tmp_path):
    """The loader for onnx's on-disk node data (used when the installed onnx ships it)."""
    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper
    import numpy as np

    case = next(c for c in CASES if c.name == "test_maxpool_2d_precomputed_strides")
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])
    graph = helper.make_graph([node], case.name, [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    folder = tmp_path / case.name / "test_data_set_0"
    folder.mkdir(parents=True)
    onnx.save(helper.make_model(graph), str(tmp_path / case.name / "model.onnx"))
    (folder / "input_0.pb").write_bytes(numpy_helper.from_array(case.inputs[0]).SerializeToString())
    (folder / "output_0.pb").write_bytes(numpy_helper.from_array(case.outputs[0]).SerializeToString())
    (loaded,) = onnx_oracle.load_cases(str(tmp_path))
    assert loaded.source == "onnx data dir" and loaded.attrs == {"kernel_shape": [2, 2], "strides": [2, 2]}
    np.testing.assert_array_equal(loaded.inputs[0], case.inputs[0])
    onnx_oracle.run(loaded)
