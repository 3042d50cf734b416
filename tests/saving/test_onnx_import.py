"""ONNX import: PyTorch-exported MLP/CNN/ResNet block/LSTM/GRU rebuilt as dlcore models whose
outputs match ONNX Runtime's (PyTorch's without it); round trip; unsupported ops; safety."""
import warnings

import numpy as np
import pytest

import dlcore as dl

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
nn = torch.nn


class _Res(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.skip, self.fc = nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.Conv2d(3, 8, 1), nn.Linear(8, 4)

    def forward(self, x):
        y = self.c2(torch.relu(self.bn(self.c1(x)))) + self.skip(x)
        return self.fc(nn.functional.adaptive_avg_pool2d(torch.relu(y), 1).flatten(1))


class _Recurrent(nn.Module):
    def __init__(self, cls):
        super().__init__()
        self.rnn, self.fc = cls(4, 6, batch_first=True), nn.Linear(6, 3)

    def forward(self, x):
        out, h = self.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(out) + self.fc(h[-1])[:, None, :]


def _models():
    torch.manual_seed(0)
    return {
        "mlp": (nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 4), nn.Softmax(-1)), (3, 8)),
        "cnn": (nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1, stride=2),
                              nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 5)), (2, 1, 12, 12)),
        "resnet_block": (_Res(), (2, 3, 8, 8)),
        "lstm": (_Recurrent(nn.LSTM), (2, 5, 4)),
        "gru": (_Recurrent(nn.GRU), (2, 5, 4)),
    }


def _export(module, shape, path):
    module.eval()
    x = torch.randn(*shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    with torch.no_grad():
        expected = module(x).numpy()
    try:
        import onnxruntime as ort
        expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x.numpy()})[0]
    except ImportError:
        pass
    return x.numpy(), expected


@pytest.mark.parametrize("name", ["mlp", "cnn", "resnet_block", "lstm", "gru"])
def test_pytorch_models_match(tmp_path, name):
    module, shape = _models()[name]
    path = tmp_path / f"{name}.onnx"
    x, expected = _export(module, shape, path)
    model = dl.models.load_model(str(path))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    if name in ("cnn", "resnet_block"):  # NCHW converted once at the input; Flatten permutes the Gemm's rows
        assert sum(type(layer).__name__ == "Permute" for layer in model.layers) == 1
    # trainable and savable
    assert model.trainable_weights
    model.save(str(tmp_path / "m.dlc"))
    again = dl.models.load_model(str(tmp_path / "m.dlc"))
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    # round trip: export -> import -> export
    out = tmp_path / "round.onnx"
    model.export(str(out), format="onnx")
    back = dl.saving.load_onnx(str(out))
    np.testing.assert_allclose(back.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    back.export(str(tmp_path / "round2.onnx"), format="onnx")


def test_channels_last_flag(tmp_path):
    module, shape = _models()["cnn"]
    path = tmp_path / "cnn.onnx"
    x, expected = _export(module, shape, path)
    model = dl.saving.load_onnx(str(path), channels_last=True)
    np.testing.assert_allclose(model.predict(np.moveaxis(x, 1, -1), verbose=0), expected, rtol=1e-4, atol=1e-5)


def test_imported_model_trains(tmp_path):
    module, shape = _models()["mlp"]
    path = tmp_path / "mlp.onnx"
    x, _ = _export(module, shape, path)
    model = dl.saving.load_onnx(str(path))
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile("sgd", "categorical_crossentropy")
    model.fit(x, np.eye(4, dtype="float32")[[0, 1, 2]], epochs=1, verbose=0)
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))


def _graph(nodes, inputs, outputs, initializers=(), opset=17):
    from onnx import helper

    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_unsupported_operators_are_all_listed(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])
    nodes = [helper.make_node("Sin", ["x"], ["a"]), helper.make_node("Cos", ["a"], ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    path = tmp_path / "u.onnx"
    onnx.save_model(_graph(nodes, [x], [y]), str(path))
    with pytest.raises(ValueError, match=r"Cos, Sin \(opset 17\)"):
        dl.saving.load_onnx(str(path))


def test_refuses_external_data_outside_directory_and_garbage(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = numpy_helper.from_array(np.eye(2, dtype=np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../etc/passwd"
    path = tmp_path / "e.onnx"
    path.write_bytes(_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [x], [y], [w]).SerializeToString())
    with pytest.raises(ValueError, match="outside the model's directory"):
        dl.saving.load_onnx(str(path))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\x00not a protobuf" * 10)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        dl.models.load_model(str(bad))
