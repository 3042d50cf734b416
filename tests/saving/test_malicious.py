"""Hostile files: loading never unpickles, never imports, never executes. Each attack is refused
with a ValueError and its side effect (a marker file) never happens."""
import io
import json
import pathlib
import pickle
import zipfile

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


class Payload:
    """Unpickling this creates ``marker`` (pathlib.Path.touch): a stand-in for arbitrary code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _pickled_object_npy(marker):
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker), 1.0], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _rewrite(src, dst, replace=None, add=None):
    replace, add = dict(replace or {}), dict(add or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = replace.pop(info.filename, None)
            zout.writestr(info.filename, zin.read(info) if data is None else data)
        for name, data in add.items():
            zout.writestr(name, data)
    return dst


@pytest.fixture
def saved(tmp_path):
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, name="d")])
    model.compile("adam", "mse")
    model.fit(np.ones((4, 4), "float32"), np.ones((4, 3), "float32"), verbose=0)
    path = tmp_path / "m.dlc"
    model.save(path)
    return model, path


def test_the_payload_is_live(tmp_path):
    """Sanity check of the attack itself: unpickling the member does create the marker."""
    marker = tmp_path / "proof"
    np.load(io.BytesIO(_pickled_object_npy(marker)), allow_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("manifest_dtype", [None, "object", "|O", "O"])
@pytest.mark.parametrize("member", ["weights/00000.npy", "optimizer/00001.npy"])
def test_pickled_object_array_is_refused(saved, tmp_path, member, manifest_dtype):
    model, path = saved
    marker = tmp_path / "pwned"
    replace = {member: _pickled_object_npy(marker)}
    if manifest_dtype is not None and member.startswith("weights"):
        manifest = json.loads(zipfile.ZipFile(path).read("weights.json"))
        manifest["weights"][0].update(dtype=manifest_dtype, shape=[2])
        replace["weights.json"] = json.dumps(manifest)
    bad = _rewrite(path, tmp_path / "bad.dlc", replace=replace)
    before = model.get_weights()
    with pytest.raises(ValueError):
        dl.models.load_model(bad)
    if member.startswith("weights"):
        with pytest.raises(ValueError):
            model.load_weights(bad)
    assert not marker.exists()
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_a_pickle_disguised_as_a_model_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "m.dlc"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError):
        dl.models.load_model(path)
    with pytest.raises(ValueError):
        dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3)]).load_weights(path)
    assert not marker.exists()


def _with_layer_entry(path, tmp_path, **entry):
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["config"]["layers"][1].update(entry)
    return _rewrite(path, tmp_path / "bad.dlc", replace={"config.json": json.dumps(config)})


@pytest.mark.parametrize("entry,match", [
    ({"class_name": "os.system"}, "module paths are not accepted"),
    ({"class_name": "builtins.eval"}, "module paths are not accepted"),
    ({"class_name": "subprocess.Popen"}, "module paths are not accepted"),
    ({"class_name": "system", "module": "os"}, "module path"),
    ({"class_name": "Dense", "module": "evil.module"}, "module path"),
    ({"class_name": "Popen"}, "unknown class 'Popen'"),
    ({"class_name": "__import__"}, "unknown class"),
    ({"class_name": ["Dense"]}, "must be a string"),
])
def test_unregistered_classes_and_module_paths_are_refused(saved, tmp_path, entry, match):
    _, path = saved
    bad = _with_layer_entry(path, tmp_path, **entry)
    with pytest.raises(ValueError, match=match):
        dl.models.load_model(bad)


def test_nested_names_are_checked_too(saved, tmp_path):
    _, path = saved
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    layer_cfg = config["config"]["layers"][1]["config"]
    layer_cfg["kernel_initializer"] = {"class_name": "posix.system", "config": {"command": "touch pwned"}}
    bad = _rewrite(path, tmp_path / "bad.dlc", replace={"config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="posix.system"):
        dl.models.load_model(bad)
    layer_cfg["kernel_initializer"] = "glorot_uniform"
    layer_cfg["activation"] = "os.system"
    bad = _rewrite(path, tmp_path / "bad2.dlc", replace={"config.json": json.dumps(config)})
    with pytest.raises(ValueError):
        dl.models.load_model(bad)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["compile_config"]["optimizer"] = {"class_name": "os.system", "config": {}}
    bad = _rewrite(path, tmp_path / "bad3.dlc", replace={"config.json": json.dumps(config)})
    with pytest.raises(ValueError):
        dl.models.load_model(bad)


def test_lambda_function_names_are_never_resolved_from_builtins(saved, tmp_path):
    _, path = saved
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["config"]["layers"].insert(1, {"class_name": "Lambda",
                                          "config": {"name": "evil", "function": "eval", "arguments": {}}})
    bad = _rewrite(path, tmp_path / "bad.dlc", replace={"config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="custom_objects"):
        dl.models.load_model(bad)


@pytest.mark.parametrize("name", ["../../evil.npy", "/etc/evil.npy", "weights/../../x.npy", "weights/0.npy.exe"])
def test_unexpected_member_paths_are_refused(saved, tmp_path, name):
    _, path = saved
    bad = _rewrite(path, tmp_path / "bad.dlc", add={name: b"x"})
    with pytest.raises(ValueError, match="unexpected member"):
        dl.models.load_model(bad)
    assert not (tmp_path.parent / "evil.npy").exists()


def test_oversized_member_declarations_are_refused(saved, tmp_path):
    """A manifest that claims a huge array, or an npy member far larger than its manifest entry."""
    model, path = saved
    manifest = json.loads(zipfile.ZipFile(path).read("weights.json"))
    manifest["weights"][0]["shape"] = [10**6, 10**6]
    bad = _rewrite(path, tmp_path / "bad.dlc", replace={"weights.json": json.dumps(manifest)})
    with pytest.raises(ValueError):
        dl.models.load_model(bad)
    big = io.BytesIO()
    np.save(big, np.zeros((4, 3), "float32"))
    padded = big.getvalue() + b"\0" * 100000
    bad = _rewrite(path, tmp_path / "bad2.dlc", replace={"weights/00000.npy": padded})
    with pytest.raises(ValueError, match="bytes"):
        dl.models.load_model(bad)


def test_tampered_random_state_is_refused(saved, tmp_path):
    _, path = saved
    state = json.loads(zipfile.ZipFile(path).read("training_state.json"))
    state["rng"] = {"bit_generator": "os.system", "state": {}}
    bad = _rewrite(path, tmp_path / "bad.dlc", replace={"training_state.json": json.dumps(state)})
    before = dl.utils.random.generator().bit_generator.state
    with pytest.raises(ValueError, match="random state"):
        dl.models.load_model(bad)
    assert dl.utils.random.generator().bit_generator.state == before


def test_custom_objects_must_be_a_dict(saved):
    _, path = saved
    with pytest.raises(TypeError):
        dl.models.load_model(path, custom_objects=["Dense"])
