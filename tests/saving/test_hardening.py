"""Hostile files that cost time or memory (issue 10): each is refused with a ValueError at once,
in bounded time and memory, before anything large is parsed or allocated. One test per row of the
issue's table, then a subprocess that loads them all and bounds its peak RSS."""
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from dlcore.saving import archive

pytestmark = pytest.mark.usefixtures("fresh_session")

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("load_worker.py")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def _rewrite(src, dst, replace=None):
    """``src`` with some members' bytes replaced, every member keeping its compression (arrays stored)."""
    replace = dict(replace or {})
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, replace.get(info.filename, zin.read(info)))
    return str(dst)


def _json(path, member):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(member))


def _edited_config(path, dst, edit):
    config = _json(path, "config.json")
    edit(config)
    return _rewrite(path, dst, {"config.json": json.dumps(config)})


def _nested(levels, leaf=0):
    """``leaf`` inside ``levels`` JSON containers (lists and objects alternating)."""
    for i in range(levels):
        leaf = [leaf] if i % 2 else {"a": leaf}
    return leaf


@pytest.fixture
def saved(tmp_path):
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(8, activation="relu", name="hidden"),
                           layers.Dense(1, activation="sigmoid", name="out")])
    model.compile("adam", "binary_crossentropy", metrics=[dl.metrics.AUC()])
    model.fit(np.ones((4, 4), "float32"), np.ones((4, 1), "float32"), verbose=0)
    path = tmp_path / "m.dlc"
    model.save(path)
    return str(path)


def _bombs(saved, tmp_path):
    """The crafted files of the issue's table, by row name."""
    files = {}
    files["dev_zero"] = str(tmp_path / "zero.dlc")
    os.symlink("/dev/zero", files["dev_zero"])
    files["json_over_cap"] = _edited_config(saved, tmp_path / "big.dlc",
                                            lambda c: c["config"].update(name="x" * (30 << 20)))
    files["json_containers"] = _edited_config(saved, tmp_path / "lists.dlc",
                                              lambda c: c["config"].update(name=[[]] * (1 << 20)))
    files["json_strings"] = _edited_config(saved, tmp_path / "strings.dlc",
                                           lambda c: c["config"].update(name=["ab"] * 1_200_000))
    files["dense_20000"] = _edited_config(
        saved, tmp_path / "dense.dlc",
        lambda c: (c["config"]["layers"][0]["config"].update(batch_shape=[None, 20000]),
                   c["config"]["layers"][1]["config"].update(units=20000)))
    files["auc_thresholds"] = _edited_config(
        saved, tmp_path / "auc.dlc",
        lambda c: c["compile_config"]["metrics"][0]["config"].update(num_thresholds=2 * 10**7))
    files["batch_shape"] = _edited_config(
        saved, tmp_path / "batch.dlc", lambda c: c["config"]["layers"][0]["config"].update(batch_shape=[None, 10**7]))
    many = [{"class_name": "Activation", "config": {"activation": "relu"}}] * 100_000
    files["many_layers"] = _edited_config(saved, tmp_path / "many.dlc",
                                          lambda c: c["config"]["layers"].__setitem__(slice(1, 1), many))
    files["deep_top"] = _edited_config(saved, tmp_path / "deep.dlc", lambda c: c.update(config=_nested(600)))
    files["deep_hyper"] = _edited_config(
        saved, tmp_path / "deep2.dlc",
        lambda c: c["config"]["layers"][1]["config"]["kernel_initializer"]["config"].update(seed=_nested(300)))
    return files


# ---- one test per row of the table ----------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_named_pipe_and_device_are_refused_at_once(saved, tmp_path):
    fifo = tmp_path / "pipe.dlc"
    os.mkfifo(fifo)  # (no writer: opening it for reading would block, reading it would hang)
    with pytest.raises(ValueError, match="named pipe, not a regular file"):
        dl.models.load_model(fifo)
    zero = tmp_path / "zero.dlc"
    os.symlink("/dev/zero", zero)
    with pytest.raises(ValueError, match="character device, not a regular file"):
        dl.models.load_model(zero)
    with pytest.raises(ValueError, match="directory"):
        dl.models.load_model(tmp_path)
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(8, name="hidden"), layers.Dense(1, name="out")])
    with pytest.raises(ValueError, match="character device"):
        model.load_weights(zero)


def test_json_members_inflating_to_tens_of_mb_are_refused(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    assert os.path.getsize(files["json_over_cap"]) < 100_000
    with pytest.raises(ValueError, match="config.json.*more than the .* allowed"):
        dl.models.load_model(files["json_over_cap"])
    with pytest.raises(ValueError, match="JSON objects and arrays"):
        dl.models.load_model(files["json_containers"])


def test_member_size_is_not_taken_from_the_zip_header(saved, tmp_path):
    """A deflated config.json whose headers claim 100 bytes: reading stops at 100 and fails the CRC."""
    data = bytearray(Path(_edited_config(saved, tmp_path / "pad.dlc",
                                         lambda c: c.update(padding="x" * (20 << 20)))).read_bytes())
    with zipfile.ZipFile(tmp_path / "pad.dlc") as zf:
        info = zf.getinfo("config.json")
    real = info.file_size.to_bytes(4, "little")
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, central directory
        start = data.find(signature + b"")
        while start >= 0:
            if data[start + offset:start + offset + 4] == real:
                data[start + offset:start + offset + 4] = (100).to_bytes(4, "little")
                break
            start = data.find(signature, start + 1)
    bad = tmp_path / "liar.dlc"
    bad.write_bytes(bytes(data))
    with zipfile.ZipFile(bad) as zf:
        assert zf.getinfo("config.json").file_size == 100
    with pytest.raises(ValueError, match="config.json"):
        dl.models.load_model(bad)


def test_a_huge_zip_directory_is_refused_before_it_is_parsed(tmp_path):
    """An end record declaring a 9 MiB directory (each of its entries would become an object)."""
    bad = tmp_path / "dir.dlc"
    bad.write_bytes(b"PK\x05\x06" + struct.pack("<4H2LH", 0, 0, 65535, 65535, 9 << 20, 0, 0))
    with pytest.raises(ValueError, match="zip directory of 9437184 bytes"):
        dl.models.load_model(bad)


def test_declared_shapes_are_checked_before_allocating(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    with pytest.raises(ValueError, match=r"hidden/kernel' of shape \(20000, 20000\).*before allocating"):
        dl.models.load_model(files["dense_20000"])
    with pytest.raises(ValueError, match="num_thresholds.*refused"):
        dl.models.load_model(files["auc_thresholds"])
    assert dl.models.load_model(files["auc_thresholds"], compile=False).weights  # only the metric was refused


def test_no_initializer_runs_for_weights_the_file_overwrites(tmp_path, monkeypatch):
    calls = []
    for cls in (dl.initializers.Orthogonal, dl.initializers.GlorotUniform):
        def counting(self, shape, dtype=None, _real=cls.__call__, **kwargs):
            calls.append(tuple(shape))
            return _real(self, shape, dtype=dtype, **kwargs)
        monkeypatch.setattr(cls, "__call__", counting)
    model = dl.Sequential([dl.Input(shape=(3, 4)), layers.LSTM(5)])  # glorot kernel, orthogonal recurrent
    model.save(tmp_path / "m.dlc")
    assert sorted(calls) == [(4, 20), (5, 20)]
    calls.clear()
    loaded = dl.models.load_model(tmp_path / "m.dlc")
    assert calls == []
    assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), model.get_weights()))
    dl.models.model_from_json(model.to_json())
    assert sorted(calls) == [(4, 20), (5, 20)]  # a model from JSON alone is initialized


def test_config_nested_600_levels_gives_the_documented_value_error(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        dl.models.load_model(files["deep_top"])
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        dl.models.model_from_json(json.dumps({"class_name": "Sequential", "config": _nested(600)}))


def test_nesting_inside_a_hyper_parameter_gives_a_value_error(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        dl.models.load_model(files["deep_hyper"])
    config = _json(saved, "config.json")
    config["config"]["layers"][1]["config"]["kernel_initializer"]["config"]["seed"] = _nested(300)
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        dl.models.model_from_json(json.dumps(config))
    config["config"]["layers"][1]["config"]["kernel_initializer"]["config"]["seed"] = _nested(45)
    with pytest.raises(ValueError, match="could not rebuild"):  # within the bound: the layer's own error
        dl.models.model_from_json(json.dumps(config))


def test_a_config_of_too_many_layers_is_refused(saved, tmp_path):
    many = [{"class_name": "Activation", "config": {"activation": "relu"}}] * 20_001
    bad = _edited_config(saved, tmp_path / "many.dlc", lambda c: c["config"]["layers"].__setitem__(slice(1, 1), many))
    assert os.path.getsize(bad) < 100_000
    with pytest.raises(ValueError, match="more than 20000 layers"):
        dl.models.load_model(bad)


def test_edited_batch_shape_is_refused_before_allocating(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    with pytest.raises(ValueError, match=r"hidden/kernel' of shape \(10000000, 8\)"):
        dl.models.load_model(files["batch_shape"])


def test_next_save_removes_temporaries_of_a_killed_save(saved, tmp_path):
    path = tmp_path / "m.dlc"
    original = path.read_bytes()
    script = textwrap.dedent(f"""
        import os, signal
        import dlcore as dl
        from dlcore.saving import dlc
        model = dl.models.load_model({str(path)!r})
        real = dlc._write_npy
        def die(f, array):
            real(f, array)
            os.kill(os.getpid(), signal.SIGKILL)
        dlc._write_npy = die
        model.save({str(path)!r})
    """)
    result = subprocess.run([sys.executable, "-c", script], env=_env(), capture_output=True, timeout=120)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()[-2000:]
    stale = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert len(stale) == 1 and stale[0].startswith(".m.dlc.")
    assert path.read_bytes() == original  # the previous file is intact
    live = tmp_path / f".m.dlc.{os.getpid()}.abcdefgh.tmp"  # a save in progress in a live process
    live.write_bytes(b"x")
    dl.models.load_model(path).save(path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.dlc", live.name])
    assert archive.remove_stale_temporaries(str(tmp_path), "m.dlc") == []


# ---- all of them in a subprocess: time and peak memory bounded --------------------------------
def test_hostile_files_load_in_bounded_time_and_memory(saved, tmp_path):
    files = _bombs(saved, tmp_path)
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps([saved] + list(files.values())))
    result = subprocess.run([sys.executable, str(WORKER), str(listing)], env=_env(), capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    reports = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(reports) == len(files)
    for name, report in zip(files, reports):
        assert report["outcome"] == "ValueError", (name, report)
        assert report["seconds"] < 10, (name, report)
    assert max(r["growth_mb"] for r in reports) < 300, reports


def test_load_model_dispatches_on_the_extension(saved, tmp_path):
    for name, message in (("m.keras", "unexpected member"), ("m.h5", "HDF5"), ("m.onnx", "not a valid ONNX model")):
        if name == "m.h5":
            pytest.importorskip("h5py")
        other = tmp_path / name
        other.write_bytes(Path(saved).read_bytes())
        with pytest.raises(ValueError, match=message):
            dl.models.load_model(other)
    assert dl.models.load_model(saved).weights and dl.saving.load_model(Path(saved)).weights
