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


# ---- folding (imported models as fast as native ones) and the recurrent/pooling/Div gaps ------------
class _ConvBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.bn = nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4)
        self.pool, self.fc = nn.MaxPool2d(2, ceil_mode=True), nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        y = self.pool(torch.relu(self.bn(self.c(x))))
        return torch.softmax(self.fc(y.view(y.size(0), -1)), -1)


class _LastStep(nn.Module):
    def __init__(self, cls, **kwargs):
        super().__init__()
        self.rnn, self.fc = cls(4, 6, **kwargs), nn.Linear(12 if kwargs.get("bidirectional") else 6, 3)
        self.batch_first = kwargs.get("batch_first", False)

    def forward(self, x):
        out = self.rnn(x)[0]
        return self.fc(out[:, -1] if self.batch_first else out[-1])


class _Seq(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.rnn = nn.LSTM(4, 5, batch_first=True, **kwargs)

    def forward(self, x):
        out, (h, c) = self.rnn(x)
        return out, h, c


def _bn_stats(module):
    for m in module.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2), m.weight.data.uniform_(0.5, 2)
    return module


def _layer_names(model):
    return [type(layer).__name__ for layer in model.layers]


def test_activations_batch_norm_and_flatten_fold(tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "convbn.onnx"
    x, expected = _export(_bn_stats(_ConvBn()), (2, 2, 11, 11), path)  # 9x9 -> ceil 5x5
    model = dl.saving.load_onnx(str(path))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-6)
    assert isinstance(model, dl.models.Sequential)  # a plain chain of layers
    assert _layer_names(model) == ["Permute", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert model.layers[1].get_config()["activation"] == "relu"
    assert model.layers[-1].get_config()["activation"] == "softmax"
    with pytest.raises(TypeError, match="fold_batch_norm"):
        dl.saving.load_onnx(str(path), fold_batch_norm="yes")


def test_batch_norm_folds_into_conv_and_gemm(tmp_path):
    """PyTorch's exporter folds BatchNorm itself; other exporters (tf2onnx, training-mode
    exports) leave Conv -> BatchNormalization -> Relu and Gemm -> BatchNormalization."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    f = lambda *shape: rng.uniform(0.5, 1.5, shape).astype(np.float32)
    inits = {"w": f(4, 2, 3, 3) - 1, "cb": f(4) - 1, "g": f(4), "b": f(4) - 1, "m": f(4) - 1, "v": f(4),
             "fw": f(3, 36) - 1, "g2": f(3), "b2": f(3), "m2": f(3) - 1, "v2": f(3)}
    nodes = [helper.make_node("Conv", ["x", "w", "cb"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("Relu", ["n"], ["r"]), helper.make_node("Flatten", ["r"], ["fl"]),
             helper.make_node("Gemm", ["fl", "fw"], ["d"], transB=1),
             helper.make_node("BatchNormalization", ["d", "g2", "b2", "m2", "v2"], ["n2"]),
             helper.make_node("Sigmoid", ["n2"], ["y"])]
    graph = _graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 5, 5])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                   [numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = tmp_path / "bn.onnx"
    onnx.save(graph, str(path))
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    kept = dl.saving.load_onnx(str(path), fold_batch_norm=False)
    assert _layer_names(kept).count("BatchNormalization") == 2
    expected = kept.predict(x, verbose=0)
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(expected, sess.run(None, {"x": x})[0], rtol=1e-4, atol=1e-6)
    except ImportError:
        pass
    folded = dl.saving.load_onnx(str(path))
    assert _layer_names(folded) == ["Permute", "Conv2D", "Flatten", "Dense"]
    assert [folded.layers[i].get_config()["activation"] for i in (1, 3)] == ["relu", "sigmoid"]
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("batch_first", [True, False])
def test_rnn_last_step_returns_no_sequence(tmp_path, cls, batch_first):
    """out[:, -1] (batch first) and out[-1] (time first, the model taking batch-first input)."""
    torch.manual_seed(2)
    path = tmp_path / "last.onnx"
    shape = (3, 5, 4) if batch_first else (5, 3, 4)
    x, expected = _export(_LastStep(cls, batch_first=batch_first), shape, path)
    model = dl.saving.load_onnx(str(path))
    layer = model.layers[0]
    assert _layer_names(model)[1:] == ["Dense"] and layer.return_sequences is False
    assert model.onnx_input_axes == [[0, 1, 2] if batch_first else [1, 0, 2]]
    feed = x if batch_first else np.transpose(x, (1, 0, 2))
    np.testing.assert_allclose(model.predict(feed, verbose=0), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU])
def test_bidirectional_rnn_matches(tmp_path, cls):
    torch.manual_seed(3)
    path = tmp_path / "bi.onnx"
    x, expected = _export(_LastStep(cls, batch_first=True, bidirectional=True), (2, 6, 4), path)
    model = dl.saving.load_onnx(str(path))
    assert "Bidirectional" in _layer_names(model)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"bidirectional": True}])
def test_rnn_sequence_and_states(tmp_path, kwargs):
    """Y, Y_h and Y_c all read: the sequence and the (per-direction) final states."""
    torch.manual_seed(4)
    module = _Seq(**kwargs).eval()
    x = torch.randn(2, 6, 4)
    path = tmp_path / "seq.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (x,), str(path), input_names=["x"], output_names=["y", "h", "c"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    with torch.no_grad():
        expected = [t.numpy() for t in module(x)]
    model = dl.saving.load_onnx(str(path))
    got = model.predict(x.numpy(), verbose=0)
    assert model.onnx_output_axes[1:] == [[1, 0, 2], [1, 0, 2]]  # h, c: (directions, batch, units) in ONNX
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-5)
    for g, want in zip(got[1:], expected[1:]):
        np.testing.assert_allclose(np.transpose(g, (1, 0, 2)), want, rtol=1e-4, atol=1e-5)


class _Div(nn.Module):
    def forward(self, x):
        return x / (torch.sigmoid(x) + 0.5) - x * torch.tanh(x)


def test_div_of_two_tensors(tmp_path):
    path = tmp_path / "div.onnx"
    x, expected = _export(_Div(), (3, 5), path)
    model = dl.saving.load_onnx(str(path))
    assert "Divide" in _layer_names(model)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


# ---- Slice, Gather, ConvTranspose, transformer encoder ------------------------------------------------------------
class _SliceGather(nn.Module):
    def forward(self, x):  # x: (batch, 6, 5)
        a = x[:, 1:6:2, -3:]                      # steps, negative starts
        b = torch.flip(x, dims=[1])[:, :3, :3]    # negative steps
        c = x[:, [0, 2, 2]][:, :, [4, 1, 0]]      # vector indices (Gather)
        d = torch.index_select(x, 2, torch.tensor([3, 0, 1]))[:, [5, 4, 3]]
        return torch.cat([a, b, c, d], dim=1) * x[:, -1:, :3]


def test_slice_and_gather_of_computed_tensors(tmp_path):
    path = tmp_path / "sg.onnx"
    x, expected = _export(_SliceGather(), (2, 6, 5), path)
    model = dl.saving.load_onnx(str(path))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
    names = _layer_names(model)
    assert "Slice" in names and "Gather" in names
    model.save(str(tmp_path / "sg.dlc"))  # the layers serialize
    np.testing.assert_allclose(dl.models.load_model(str(tmp_path / "sg.dlc")).predict(x, verbose=0), expected,
                               rtol=1e-6)


def _one_output_model(tmp_path, nodes, inputs, initializers=()):
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(i[0], i[2] if len(i) > 2 else TensorProto.FLOAT,
                                                                        i[1]) for i in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, n) for n, v in initializers])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def test_gather_and_slice_refusals(tmp_path):
    from onnx import helper
    idx = ("i", np.array([0, 1], np.int64))
    path = _one_output_model(tmp_path, [helper.make_node("Gather", ["x", "i"], ["y"], axis=0)], [("x", ["N", 3])], [idx])
    with pytest.raises(ValueError, match="Gather along the batch axis"):
        dl.saving.load_onnx(path)
    path = _one_output_model(tmp_path, [helper.make_node("Gather", ["x", "k"], ["y"], axis=1)],
                  [("x", ["N", 3]), ("k", ["N", 2], onnx.TensorProto.INT64)])
    with pytest.raises(ValueError, match="two batch axes"):
        dl.saving.load_onnx(path)
    s, e = ("s", np.array([1], np.int64)), ("e", np.array([2], np.int64))
    path = _one_output_model(tmp_path, [helper.make_node("Slice", ["x", "s", "e"], ["y"])], [("x", ["N", 3])], [s, e])
    with pytest.raises(ValueError, match="slicing the batch axis"):
        dl.saving.load_onnx(path)


@pytest.mark.parametrize("module,shape", [
    (lambda: nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 5, 6)),
    (lambda: nn.ConvTranspose2d(3, 2, (2, 3), padding=(0, 2), dilation=2), (2, 3, 4, 5)),
    (lambda: nn.ConvTranspose2d(3, 2, (2, 3), stride=(1, 3), padding=(1, 0)), (2, 3, 4, 5)),
    (lambda: nn.Sequential(nn.ConvTranspose1d(3, 4, 4, stride=3, padding=1, bias=False), nn.ReLU()), (2, 3, 7)),
])
def test_conv_transpose_matches(tmp_path, module, shape):
    torch.manual_seed(3)
    path = tmp_path / "ct.onnx"
    x, expected = _export(module(), shape, path)
    model = dl.saving.load_onnx(str(path))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    assert any(type(layer).__name__.endswith("DTranspose") for layer in model.layers)


def test_conv_transpose_groups_refused(tmp_path):
    with pytest.raises(ValueError, match="group=2"):
        _export(nn.ConvTranspose2d(4, 4, 3, groups=2), (1, 4, 5, 5), tmp_path / "g.onnx")
        dl.saving.load_onnx(str(tmp_path / "g.onnx"))


class _Encoder(nn.Module):
    def __init__(self, batch_first=True, **kwargs):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=batch_first,
                                                **kwargs)

    def forward(self, x):
        return self.layer(x)


@pytest.mark.parametrize("kwargs", [{}, {"norm_first": True, "activation": "gelu"}])
def test_transformer_encoder_layer_matches(tmp_path, kwargs):
    """PyTorch's attention merges the batch and heads axes (x.view(T, batch * heads, d)) and runs
    4-D MatMuls: imported with the batch symbolic (any batch size), matching ONNX Runtime."""
    torch.manual_seed(4)
    path = tmp_path / "enc.onnx"
    module = _Encoder(**kwargs).eval()
    _export(module, (2, 5, 16), path)
    model = dl.saving.load_onnx(str(path))
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 5, 16)).astype(np.float32)
        try:
            import onnxruntime as ort
            expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        except ImportError:
            with torch.no_grad():
                expected = module(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    assert "MatMul" in _layer_names(model) and "LayerNormalization" in _layer_names(model)


def test_time_first_transformer_takes_batch_first_input(tmp_path):
    """batch_first=False: the input's axis 0 is fixed and axis 1 is named "batch"; the model takes
    (batch, time, features) as for a time-first RNN (``onnx_input_axes``) and matches."""
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(5)
    module = _Encoder(batch_first=False).eval()
    path = tmp_path / "tf.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(5, 2, 16),), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {1: "batch"}}, opset_version=17, dynamo=False)
    model = dl.saving.load_onnx(str(path))
    assert model.onnx_input_axes == [[1, 0, 2]]
    x = np.random.default_rng(0).standard_normal((5, 3, 16)).astype(np.float32)
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = model.predict(np.transpose(x, (1, 0, 2)), verbose=0)
    np.testing.assert_allclose(got, np.transpose(expected, (1, 0, 2)), rtol=1e-4, atol=1e-5)
