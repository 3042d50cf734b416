"""Keras 3 ``.keras`` / ``.weights.h5`` and legacy ``.h5`` files: dlcore round trips, files written
by Keras (committed fixtures, and fresh ones from the installed Keras in a subprocess), files
dlcore writes loaded by Keras (subprocess: this process stays free of TensorFlow), optimizer
resume, ModelCheckpoint, Lambda safe mode, hostile files."""
import base64
import io
import json
import marshal
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers, registry

h5py = pytest.importorskip("h5py")

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")
WORKER = Path(__file__).with_name("keras_worker.py")
RNG = np.random.default_rng(0)


def _mlp():
    return dl.Sequential([dl.Input(shape=(6,)), layers.Dense(5, activation="relu", name="d1"),
                          layers.BatchNormalization(name="bn"), layers.Dense(3, name="d2")])


def _cnn():
    return dl.Sequential([dl.Input(shape=(8, 8, 2)), layers.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                          layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Flatten(),
                          layers.Dense(3, activation="softmax")])


def _rnn():
    inp = dl.Input(shape=(5,), dtype="int32", name="tokens")
    h = layers.Embedding(20, 4, mask_zero=True, name="emb")(inp)
    a = layers.Bidirectional(layers.LSTM(3, return_sequences=True), name="bi")(h)
    b = layers.GRU(3, name="gru")(a)
    c = layers.Dense(3, name="side")(layers.GlobalAveragePooling1D()(a))
    out = layers.Dense(2, name="head")(layers.Concatenate()([b, layers.Add()([b, c])]))
    return dl.Model(inp, out)


@registry.register("layer")
class KerasFileTestModel(dl.Model):
    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.encoder = layers.Dense(units, activation="tanh")
        self.head = layers.Dense(2)

    def call(self, x, training=None):
        return self.head(self.encoder(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def _data(kind, n=8):
    if kind == "rnn":
        x = RNG.integers(0, 20, (n, 5)).astype(np.int32)
        x[:, -2:] = 0
        return x, RNG.random((n, 2), dtype=np.float32)
    if kind == "cnn":
        return RNG.random((n, 8, 8, 2), dtype=np.float32), np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    if kind == "sub":
        return RNG.random((n, 6), dtype=np.float32), RNG.random((n, 2), dtype=np.float32)
    return RNG.random((n, 6), dtype=np.float32), RNG.random((n, 3), dtype=np.float32)


_BUILDERS = {"mlp": (_mlp, "adam", "mse"), "cnn": (_cnn, dl.optimizers.SGD(0.1, momentum=0.9),
                                                   "categorical_crossentropy"),
             "rnn": (_rnn, "rmsprop", "mse"), "sub": (lambda: KerasFileTestModel(4), "adam", "mse")}


def _trained(kind):
    build, optimizer, loss = _BUILDERS[kind]
    dl.utils.set_random_seed(1)
    model = build()
    model.compile(optimizer=dl.optimizers.get(optimizer) if isinstance(optimizer, str) else
                  type(optimizer).from_config(optimizer.get_config()), loss=loss)
    x, t = _data(kind)
    model.fit(x, t, epochs=1, batch_size=4, verbose=0, shuffle=False)
    return model, x, t


def _run_keras(*args):
    pytest.importorskip("keras")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(WORKER), *map(str, args)], capture_output=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]


# ---- dlcore round trips ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["mlp", "cnn", "rnn", "sub"])
def test_keras_round_trip_is_bit_identical_and_resumes(kind, tmp_path):
    model, x, t = _trained(kind)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = dl.models.load_model(path)
    assert type(loaded) is type(model)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    # a training step after loading equals the same step without save/load
    for m in (model, loaded):
        m.fit(x, t, epochs=1, batch_size=len(x), verbose=0, shuffle=False)
    assert loaded.optimizer.iterations == model.optimizer.iterations
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_keras_file_layout(tmp_path):
    model, _, _ = _trained("mlp")
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert sorted(zf.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
        weights = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    dense = config["config"]["layers"][1]
    assert dense["module"] == "keras.layers" and dense["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert config["compile_config"]["optimizer"]["class_name"] == "Adam"
    assert weights["layers/dense/vars"].attrs["name"] == "d1"
    assert weights["layers/dense_1/vars"].attrs["name"] == "d2"
    assert weights["layers/batch_normalization/vars/3"].shape == (5,)  # moving variance
    assert weights["optimizer/vars/0"].dtype == np.int64 and weights["optimizer/vars/1"].shape == ()
    assert len(weights["optimizer/vars"]) == 2 + 2 * 6  # iteration, lr, (m, v) per trainable variable


def test_weights_h5_round_trip_and_checks(tmp_path):
    model, x, _ = _trained("rnn")
    model.save_weights(tmp_path / "w.weights.h5")
    other = _rnn()
    other.load_weights(tmp_path / "w.weights.h5")
    assert np.array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    small = dl.Sequential([dl.Input((6,)), layers.Dense(2)])
    before = small.get_weights()
    with pytest.raises(ValueError, match="architectures differ|expects shape"):
        small.load_weights(tmp_path / "w.weights.h5")
    assert all(np.array_equal(a, b) for a, b in zip(before, small.get_weights()))
    with pytest.raises(ValueError, match="weights file"):
        dl.models.load_model(tmp_path / "w.weights.h5")


def test_model_checkpoint_keras(tmp_path):
    model, x, t = _trained("mlp")
    cb = dl.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="loss", save_best_only=True)
    wcb = dl.callbacks.ModelCheckpoint(str(tmp_path / "w.weights.h5"), save_weights_only=True)
    model.fit(x, t, epochs=2, batch_size=4, verbose=0, callbacks=[cb, wcb])
    loaded = dl.models.load_model(tmp_path / "best.keras")
    assert loaded.predict(x, verbose=0).shape == (8, 3)
    assert (tmp_path / "w.weights.h5").exists()


# ---- files written by Keras ------------------------------------------------------------------
def _fixture_predictions():
    return np.load(FIXTURES / "keras_predictions.npz")


def test_keras_written_fixture_model():
    expected = _fixture_predictions()
    model = dl.models.load_model(FIXTURES / "keras_rnn.keras")
    assert [type(layer).__name__ for layer in model.layers][:3] == ["InputLayer", "Embedding", "Bidirectional"]
    assert type(model.optimizer).__name__ == "RMSprop" and model.optimizer.iterations == 1
    np.testing.assert_allclose(model.predict(expected["rnn_x"], verbose=0), expected["rnn_y"], rtol=1e-6, atol=1e-6)


def test_keras_written_fixture_weights_and_legacy_h5():
    expected = _fixture_predictions()
    cnn = _cnn()
    cnn.load_weights(FIXTURES / "keras_cnn.weights.h5")
    np.testing.assert_allclose(cnn.predict(expected["cnn_x"], verbose=0), expected["cnn_y"], rtol=1e-6, atol=1e-6)
    with pytest.warns(UserWarning, match="optimizer state"):  # (legacy files: architecture + weights)
        mlp = dl.models.load_model(FIXTURES / "keras_mlp_legacy.h5")
    assert [type(layer).__name__ for layer in mlp.layers] == ["Dense", "BatchNormalization", "Dropout", "Dense"]
    np.testing.assert_allclose(mlp.predict(expected["mlp_x"], verbose=0), expected["mlp_y"], rtol=1e-6, atol=1e-6)
    assert mlp.loss == "mse"


@pytest.mark.slow
def test_keras_interoperates_both_ways(tmp_path):
    """One Keras process: it loads a .keras file dlcore wrote, and writes .keras, .weights.h5 and
    legacy .h5 files that dlcore loads; predictions agree."""
    model, x, _ = _trained("rnn")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "dl_x.npy", x)
    _run_keras("load", tmp_path / "m.keras", tmp_path / "dl_x.npy", tmp_path / "keras_y.npy", "--",
               "make", "rnn", tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "keras_y.npy"), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    x, y = np.load(tmp_path / "x.npy"), np.load(tmp_path / "y.npy")
    for name in ("rnn.keras", "rnn.h5"):
        loaded = dl.models.load_model(tmp_path / name, compile=False)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), y, rtol=1e-6, atol=1e-6)
    fresh = _rnn()
    fresh.load_weights(tmp_path / "rnn.weights.h5")
    np.testing.assert_allclose(fresh.predict(x, verbose=0), y, rtol=1e-6, atol=1e-6)


# ---- safety ------------------------------------------------------------------------------------
def _edit_config(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(name, data)


def _with_lambda(config):
    code = base64.b64encode(marshal.dumps((lambda t: t * 2).__code__)).decode()
    config["config"]["layers"].append({"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
                                       "config": {"name": "lam", "trainable": True, "dtype": "float32",
                                                  "function": {"class_name": "__lambda__",
                                                               "config": {"code": code, "defaults": None,
                                                                          "closure": None}},
                                                  "arguments": {}}})


def test_lambda_bytecode_needs_safe_mode_false(tmp_path):
    model, x, _ = _trained("mlp")
    model.save(tmp_path / "m.keras", include_optimizer=False)
    _edit_config(tmp_path / "m.keras", tmp_path / "lam.keras", _with_lambda)
    with pytest.raises(ValueError, match="safe_mode=False"):
        dl.models.load_model(tmp_path / "lam.keras")
    loaded = dl.models.load_model(tmp_path / "lam.keras", safe_mode=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), 2 * model.predict(x, verbose=0))


def test_unknown_or_custom_classes_are_refused(tmp_path):
    model, _, _ = _trained("mlp")
    model.save(tmp_path / "m.keras")

    def custom(config):
        config["config"]["layers"][1].update(class_name="Evil", module="os", registered_name="Custom>Evil")

    def unsupported_argument(config):
        config["config"]["layers"][1]["config"]["row_sparse"] = 4

    for edit, message in ((custom, "unknown class 'Evil'"), (unsupported_argument, "row_sparse=4")):
        _edit_config(tmp_path / "m.keras", tmp_path / "bad.keras", edit)
        with pytest.raises(ValueError, match=message):
            dl.models.load_model(tmp_path / "bad.keras")


def test_hdf5_links_into_other_files_are_refused(tmp_path):
    model, _, _ = _trained("mlp")
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros((6, 5), np.float32)
    with h5py.File(tmp_path / "w.weights.h5", "a") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "x")
    with pytest.raises(ValueError, match="ExternalLink refused"):
        model.load_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "ext.weights.h5", "w") as f:
        pass
    model.save_weights(tmp_path / "ext.weights.h5")
    with h5py.File(tmp_path / "ext.weights.h5", "a") as f:
        del f["layers/dense/vars/1"]
        (tmp_path / "raw.bin").write_bytes(np.zeros(5, np.float32).tobytes())
        f.create_dataset("layers/dense/vars/1", shape=(5,), dtype=np.float32, external=[(str(tmp_path / "raw.bin"), 0, 20)])
    with pytest.raises(ValueError, match="externally stored"):
        model.load_weights(tmp_path / "ext.weights.h5")


def test_mutated_keras_files_raise_value_error(tmp_path):
    """A few seeded mutants of a .keras file (byte flips, truncation, extra or oversized members,
    edited JSON): each loads or raises ValueError, and a failed load changes nothing."""
    model, _, _ = _trained("mlp")
    model.save(tmp_path / "m.keras")
    data = (tmp_path / "m.keras").read_bytes()
    rng = random.Random(20240601)
    mutants = [data[: len(data) // 2], data[:-30]]
    for _ in range(12):
        flipped = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        mutants.append(bytes(flipped))
    for extra in (("evil.py", b"import os"), ("assets/x", b"1"), ("config.json", b"{}")):
        buf = io.BytesIO(data)
        with zipfile.ZipFile(buf, "a") as zf:
            zf.writestr(*extra)
        mutants.append(buf.getvalue())
    for i, mutant in enumerate(mutants):
        path = tmp_path / f"mutant{i}.keras"
        path.write_bytes(mutant)
        try:
            dl.models.load_model(path)
        except ValueError:
            pass


def _edit_keras_config(src, dst, edit):
    """A copy of the .keras file ``src`` whose config.json was passed through ``edit``."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(info, data)
    return str(dst)


def _layer_config(config, name):
    return next(entry["config"] for entry in config["config"]["layers"] if entry["config"].get("name") == name)


def test_weight_shapes_are_checked_before_the_model_is_built(tmp_path):
    """A config declaring Dense(units=10**9) over small stored weights: refused from the HDF5
    shapes before the 16 GB kernel is allocated, quickly and within bounded memory."""
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, name="wide"), layers.Dense(2, name="out")])
    small = str(tmp_path / "small.keras")
    model.save(small)
    bomb = _edit_keras_config(small, tmp_path / "bomb.keras", lambda c: _layer_config(c, "wide").update(units=10**9))
    expected = (r"'wide/kernel' of shape \(4, 1000000000\) \(layer 'wide', Dense\).*refused before allocating.*"
                r"holds shapes \[\(4, 3\), \(3,\)\] for layer 'wide'")
    with pytest.raises(ValueError, match=expected):
        dl.models.load_model(bomb)
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps([small, bomb]))
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("load_worker.py")), str(listing)],
                            capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    report = json.loads(result.stdout.decode().splitlines()[-1])
    assert report["outcome"] == "ValueError" and "before allocating" in report["message"], report
    assert report["seconds"] < 10 and report["growth_mb"] < 100, report
    loaded = dl.models.load_model(small)  # the unedited file still loads, values equal
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))


def test_import_does_not_load_h5py_or_peers(tmp_path):
    code = ("import sys, numpy as np, dlcore as dl\n"
            "m = dl.Sequential([dl.Input((3,)), dl.layers.Dense(2)])\n"
            f"m.save({str(tmp_path / 'm.dlc')!r}); dl.models.load_model({str(tmp_path / 'm.dlc')!r})\n"
            "print(sorted(n for n in ('h5py', 'tensorflow', 'keras', 'torch') if n in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            timeout=120)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().strip().splitlines()[-1] == "[]"


# ---- int8 (quantize("int8")) in Keras's layout -------------------------------------------------
def test_keras_written_int8_fixture_loads_bit_exact():
    """keras_int8.keras: Keras 3.15 quantized Embedding -> EinsumDense -> Dense x2 (``model.quantize("int8")``,
    QuantizedDTypePolicy, Keras's Int8QuantizationConfig, h5 order kernel, bias, kernel_scale) and its
    predictions; dlcore reads the int8 weights as int8 and predicts bit-exactly."""
    expected = np.load(FIXTURES / "keras_int8.npz")
    model = dl.models.load_model(FIXTURES / "keras_int8.keras")
    quantized = [layer for layer in model.layers if getattr(layer, "quantization_mode", None) == "int8"]
    assert [layer.name for layer in quantized] == ["emb", "proj", "d1", "d2"]
    assert model.get_layer("d1").kernel.dtype == np.int8 and model.get_layer("d1").dtype_policy.name == "int8_from_float32"
    np.testing.assert_array_equal(model.predict(expected["x"], verbose=0), expected["y"])


def test_quantized_keras_file_layout_and_keras_loads_it(tmp_path):
    """dlcore writes Keras's layout for its int8 Dense/EinsumDense/Embedding (Keras loads it and predicts the
    same), and the same rule (int8 kernels, other weights, scales) for the int8 conv and LSTM, which
    Keras 3.15 cannot quantize: those files load in dlcore only."""
    inp = dl.Input((5,), dtype="int32")
    h = layers.Embedding(20, 6, name="emb")(inp)
    h = layers.EinsumDense("abc,cd->abd", output_shape=(5, 8), bias_axes="d", activation="relu", name="proj")(h)
    out = layers.Dense(3, name="d2")(layers.Dense(7, activation="relu", name="d1")(layers.Flatten()(h)))
    model = dl.Model(inp, out)
    conv = dl.Sequential([dl.Input((6, 6, 4)), layers.Conv2D(3, 3, name="c"), layers.Flatten(), layers.Dense(2)])
    rnn = dl.Sequential([dl.Input((4, 3)), layers.LSTM(5, name="l"), layers.Dense(2)])
    x = RNG.integers(0, 20, (6, 5)).astype(np.int32)
    for m in (model, conv, rnn):
        m.quantize("int8")
    y = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    for m, name in ((conv, "conv"), (rnn, "rnn")):
        m.save(tmp_path / f"{name}.keras")
        xs = RNG.random((2,) + m.inputs[0].shape[1:], dtype=np.float32)
        np.testing.assert_array_equal(dl.models.load_model(tmp_path / f"{name}.keras").predict(xs, verbose=0),
                                      m.predict(xs, verbose=0))
    with zipfile.ZipFile(tmp_path / "m.keras") as z, zipfile.ZipFile(tmp_path / "conv.keras") as zc:
        config = {e["config"]["name"]: e["config"] for e in json.loads(z.read("config.json"))["config"]["layers"]}
        z.extract("model.weights.h5", tmp_path)
        zc.extract("model.weights.h5", tmp_path / "conv")
    assert config["d1"]["dtype"] == {"module": "keras.dtype_policies", "class_name": "QuantizedDTypePolicy",
                                     "config": {"mode": "int8", "source_name": "float32"}, "registered_name": None}
    with h5py.File(tmp_path / "model.weights.h5") as f:
        assert [f[f"layers/dense/vars/{i}"].dtype for i in range(3)] == [np.int8, np.float32, np.float32]
        assert f["layers/dense/vars/0"].shape == (40, 7) and f["layers/embedding/vars/0"].dtype == np.int8
    with h5py.File(tmp_path / "conv/model.weights.h5") as f:
        assert [f[f"layers/conv2d/vars/{i}"].shape for i in range(4)] == [(3, 3, 4, 3), (3,), (3,), ()]
    np.save(tmp_path / "x.npy", x)
    _run_keras("load", tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "y.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), y)


def test_keras_quantization_configs_dlcore_cannot_run_are_refused(tmp_path):
    """int4 policies and a non-default Int8QuantizationConfig are refused by name, not silently run as int8."""
    with zipfile.ZipFile(FIXTURES / "keras_int8.keras") as z:
        members = {name: z.read(name) for name in z.namelist()}
    for edit, match in ((lambda c: c["dtype"]["config"].update(mode="int4"), "int4"),
                        (lambda c: c["quantization_config"]["config"]["activation_quantizer"]["config"].update(
                            value_range=[-100, 100]), "quantization_config")):
        config = json.loads(members["config.json"])
        edit(next(e["config"] for e in config["config"]["layers"] if e["config"]["name"] == "d1"))
        path = tmp_path / "bad.keras"
        with zipfile.ZipFile(path, "w") as z:
            for name, data in members.items():
                z.writestr(name, json.dumps(config) if name == "config.json" else data)
        with pytest.raises(ValueError, match=match):
            dl.models.load_model(path)
