"""ONNX export: the file passes onnx.checker and ONNX Runtime reproduces dlcore's predictions."""
import numpy as np
import pytest

import dlcore as dl

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
L = dl.layers


def _run_onnx(path, xs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})


def _check(model, x, tmp_path, name="m"):
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx")
    onnx.checker.check_model(onnx.load(str(path)))
    got = _run_onnx(path, [x])[0]
    np.testing.assert_allclose(got, np.asarray(model.predict(x, verbose=0)), rtol=1e-4, atol=1e-5)
    return path


def _randomize(model, rng):
    for w in model.weights:
        w.assign((rng.normal(size=w.shape) * 0.5).astype("float32"))


def test_mlp_softmax(tmp_path):
    rng = np.random.default_rng(0)
    m = dl.Sequential([dl.Input((8,)), L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(4, activation="gelu"),
                       L.Activation("softmax")])
    _check(m, rng.normal(size=(3, 8)).astype("float32"), tmp_path)


def test_cnn_one_transpose_each_way(tmp_path):
    rng = np.random.default_rng(1)
    m = dl.Sequential([dl.Input((24, 24, 3)), L.Conv2D(8, 3, padding="same", activation="relu"),
                       L.BatchNormalization(), L.MaxPooling2D(2),
                       L.Conv2D(8, 3, strides=2, padding="same", groups=2), L.AveragePooling2D(2, padding="same"),
                       L.Conv2D(4, 2, dilation_rate=2, activation="silu"), L.Flatten(), L.Dense(5)])
    m.layers[1].moving_mean.assign(rng.normal(size=8).astype("float32"))
    m.layers[1].moving_variance.assign(rng.uniform(0.5, 2, size=8).astype("float32"))
    path = _check(m, rng.normal(size=(2, 24, 24, 3)).astype("float32"), tmp_path)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("Transpose") == 2 and "BatchNormalization" in ops


def test_conv1d_causal_and_global_pooling(tmp_path):
    rng = np.random.default_rng(2)
    m = dl.Sequential([dl.Input((10, 4)), L.Conv1D(6, 3, padding="causal", dilation_rate=2),
                       L.Conv1D(6, 3, padding="same"), L.GlobalAveragePooling1D()])
    _check(m, rng.normal(size=(2, 10, 4)).astype("float32"), tmp_path)


@pytest.mark.parametrize("cls,kwargs", [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}),
                                        ("SimpleRNN", {}), ("LSTM", {"return_sequences": True, "go_backwards": True})])
def test_recurrent_gate_orders(tmp_path, cls, kwargs):
    rng = np.random.default_rng(3)
    m = dl.Sequential([dl.Input((5, 3)), getattr(L, cls)(7, **kwargs)])
    _randomize(m, rng)
    _check(m, rng.normal(size=(2, 5, 3)).astype("float32"), tmp_path)


def test_embedding_and_functional_merges(tmp_path):
    rng = np.random.default_rng(4)
    m = dl.Sequential([dl.Input((6,), dtype="int32"), L.Embedding(20, 4), L.LSTM(5), L.Dense(2)])
    _check(m, rng.integers(0, 20, size=(3, 6)).astype("int32"), tmp_path, "emb")
    a = dl.Input((8, 8, 3))
    b = L.Conv2D(4, 3, padding="same")(a)
    c = L.Conv2D(4, 1)(a)
    d = L.Concatenate()([L.Add()([b, c]), c])
    e = L.LayerNormalization()(L.Multiply()([d, d]))
    model = dl.Model(a, L.GlobalMaxPooling2D()(e))
    path = tmp_path / "f.onnx"
    dl.saving.export_onnx(model, str(path))
    x = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(_run_onnx(path, [x])[0], model.predict(x, verbose=0), rtol=1e-4, atol=1e-5)
    assert "LayerNormalization" in [n.op_type for n in onnx.load(str(path)).graph.node]


def test_unsupported_layers_are_all_listed(tmp_path):
    m = dl.Sequential([dl.Input((4, 4, 2)), L.UpSampling2D(), L.Conv2DTranspose(2, 2), L.Flatten(), L.Dense(1)])
    with pytest.raises(ValueError, match="Conv2DTranspose.*UpSampling2D"):
        m.export(str(tmp_path / "x.onnx"), format="onnx")
    with pytest.raises(ValueError, match="format"):
        m.export(str(tmp_path / "x.tf"), format="tf_saved_model")
