"""A seeded mutation fuzzer for the loader: mutants of a few saved models (MLP, CNN, LSTM,
functional with merges), made by byte flips, edited JSON values and nesting, edited ``.npy``
headers, truncated, duplicated, dropped or recompressed members and truncated files, are loaded
in a subprocess per model. Each must load or raise ValueError, quickly, with no crash, no hang and
no memory blow-up."""
import io
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("load_worker.py")
# (more, or other seeds, for a longer local run: DLCORE_FUZZ_MUTANTS=2000 DLCORE_FUZZ_SEED=7)
MUTANTS_PER_MODEL = int(os.environ.get("DLCORE_FUZZ_MUTANTS", 125))
SEED = int(os.environ.get("DLCORE_FUZZ_SEED", 20240601))


def _mlp():
    return dl.Sequential([dl.Input(shape=(6,)), layers.Dense(8, activation="relu"), layers.BatchNormalization(),
                          layers.Dropout(0.2, seed=1), layers.Dense(3, activation="softmax")])


def _cnn():
    return dl.Sequential([dl.Input(shape=(8, 8, 2)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                          layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")])


def _lstm():
    return dl.Sequential([dl.Input(shape=(5,), dtype="int32"), layers.Embedding(10, 4), layers.LSTM(6),
                          layers.Dense(3, activation="softmax")])


def _functional():
    a, b = dl.Input(shape=(6,), name="a"), dl.Input(shape=(6,), name="b")
    shared = layers.Dense(5, activation="tanh")
    merged = layers.Concatenate()([layers.Add()([shared(a), shared(b)]), layers.Multiply()([a, b])])
    return dl.Model([a, b], layers.Dense(3, activation="softmax")(merged))


def _inputs(name, rng):
    if name == "cnn":
        return rng.normal(size=(4, 8, 8, 2)).astype("float32")
    if name == "lstm":
        return rng.integers(0, 10, size=(4, 5)).astype("int32")
    if name == "functional":
        return [rng.normal(size=(4, 6)).astype("float32"), rng.normal(size=(4, 6)).astype("float32")]
    return rng.normal(size=(4, 6)).astype("float32")


def _save(name, build, path):
    rng = np.random.default_rng(0)
    model = build()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy", dl.metrics.AUC(num_thresholds=20)])
    model.fit(_inputs(name, rng), np.eye(3, dtype="float32")[rng.integers(0, 3, size=4)], verbose=0)
    model.save(path)


# ---- mutations ---------------------------------------------------------------------------------
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def _paths(value, prefix=()):
    """Every location in a JSON value, as a key path."""
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield from _paths(child, prefix + (key,))


def _nest(value, levels):
    for i in range(levels):
        value = [value] if i % 2 else {"v": value}
    return value


_REPLACEMENTS = [10**9, 2**31, 2**63, -1, 0, 1, 10**7, 3.5, -0.0, 1e308, float("nan"), True, None, "", "x" * 300,
                 "__import__", "os.system", "Dense", "float64", [], {}, [10**6, 10**6], [None], [-5, 3],
                 {"class_name": "Dense"}, {"class_name": "function", "config": "eval"}, "weights/00000.npy",
                 [[[[0]]]]]


def _leaf(value, path):
    for key in path:
        value = value[key]
    return value


_BIG_INTS = [0, -1, 10**4, 10**5, 10**6, 10**9, 2**62]


def _edit_json(members, rng):
    """Edit one JSON member: an integer made huge (or 0, or -1), a value nested 20 to 600 levels
    deep, replaced by something else, or deleted."""
    candidates = [i for i, (info, _) in enumerate(members) if info.filename.endswith(".json")]
    if rng.random() < 0.5:  # config.json, where the architecture is
        candidates = [i for i in candidates if members[i][0].filename == "config.json"] or candidates
    index = candidates[rng.integers(len(candidates))]
    info, data = members[index]
    value = json.loads(data)
    paths = list(_paths(value))
    ints = [p for p in paths if p and type(_leaf(value, p)) is int]
    strategy = rng.choice(["int", "nest", "replace", "delete"], p=[0.35, 0.15, 0.4, 0.1])
    if strategy == "int" and ints:
        path = ints[rng.integers(len(ints))]
        new = _BIG_INTS[rng.integers(len(_BIG_INTS))]
    else:
        path = paths[rng.integers(len(paths))]
        if strategy == "nest":
            new = _nest(_leaf(value, path), int(rng.choice([20, 99, 101, 150, 600])))
        else:
            choice = rng.integers(len(_REPLACEMENTS) + 1)
            new = [0] * int(rng.choice([1000, 10**5])) if choice == len(_REPLACEMENTS) else _REPLACEMENTS[choice]
    if not path:
        value = new
    else:
        parent = _leaf(value, path[:-1])
        if strategy == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = new
    members[index] = (info, json.dumps(value).encode())
    return f"json {info.filename} {path} {strategy} {str(new)[:40]}"


_HEADER_EDITS = [("'shape': (", "'shape': (1000000000, "), ("'shape': (", "'shape': (-1, "),
                 ("'shape': (", "'shape': ((1,), "), ("'descr': '<f4'", "'descr': '|O'"),
                 ("'descr': '<f4'", "'descr': '<f8'"), ("'descr': '<f4'", "'descr': '>f4'"),
                 ("'descr': '<f4'", "'descr': '<c8'"), ("'descr': '<f4'", "'descr': [('a', '<f4')]"),
                 ("'fortran_order': False", "'fortran_order': True"), ("{", "{'evil': __import__('os'), "),
                 ("'shape': (", "'shape': (2**40, ")]


def _edit_npy(members, rng):
    arrays = [i for i, (info, _) in enumerate(members) if info.filename.endswith(".npy")]
    index = arrays[rng.integers(len(arrays))]
    info, data = members[index]
    old, new = _HEADER_EDITS[rng.integers(len(_HEADER_EDITS))]
    header_len = 10 + int.from_bytes(data[8:10], "little")
    header = data[10:header_len].decode("latin1").replace(old, new, 1)
    header = header.rstrip().ljust(header_len - 11) + "\n"
    members[index] = (info, data[:8] + len(header).to_bytes(2, "little") + header.encode("latin1") + data[header_len:])
    return f"npy {info.filename} {new}"


def _mutate(members, raw, rng):
    """One mutant: (bytes of the file, what was done)."""
    members = list(members)
    kind = int(rng.integers(8))
    if kind == 0:
        data = bytearray(raw)
        for _ in range(int(rng.integers(1, 9))):
            data[rng.integers(len(data))] ^= 1 << int(rng.integers(8))
        return bytes(data), "byte flips"
    if kind == 1:
        return raw[:int(rng.integers(len(raw)))], "truncated file"
    if kind in (2, 3):
        what = _edit_json(members, rng)
    elif kind == 4:
        what = _edit_npy(members, rng)
    else:
        index = int(rng.integers(len(members)))
        info, data = members[index]
        if kind == 5:
            members[index] = (info, data[:int(rng.integers(len(data) + 1))])
            what = f"truncated member {info.filename}"
        elif kind == 6:
            members.insert(int(rng.integers(len(members) + 1)), (info, data))
            what = f"duplicated member {info.filename}"
        elif rng.random() < 0.5:
            del members[index]
            what = f"dropped member {info.filename}"
        else:
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            stored = info.compress_type == zipfile.ZIP_STORED
            copy.compress_type = zipfile.ZIP_DEFLATED if stored else zipfile.ZIP_STORED
            members[index] = (copy, data)
            what = f"recompressed member {info.filename}"
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (zipfile warns of the duplicated name)
        with zipfile.ZipFile(buf, "w") as zf:
            for info, data in members:
                zf.writestr(info, data)
    return buf.getvalue(), what


@pytest.mark.parametrize("name,build", [("mlp", _mlp), ("cnn", _cnn), ("lstm", _lstm), ("functional", _functional)])
def test_mutants_load_or_raise_value_error(name, build, tmp_path):
    original = tmp_path / "original.dlc"
    _save(name, build, original)
    members, raw = _members(original), original.read_bytes()
    rng = np.random.default_rng([SEED, len(name)])
    paths, what = [str(original)], {}
    for i in range(MUTANTS_PER_MODEL):
        data, description = _mutate(members, raw, rng)
        path = tmp_path / f"mutant{i:03d}.dlc"
        path.write_bytes(data)
        paths.append(str(path))
        what[str(path)] = description
    listing = tmp_path / "files.json"
    listing.write_text(json.dumps(paths))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    result = subprocess.run([sys.executable, str(WORKER), str(listing)], env=env, capture_output=True,
                            timeout=60 + MUTANTS_PER_MODEL)
    assert result.returncode == 0, (result.returncode, result.stderr.decode()[-3000:])
    reports = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(reports) == MUTANTS_PER_MODEL
    bad = [(what[r["path"]], r["outcome"], r["message"][:3000])
           for r in reports if r["outcome"] not in ("ok", "ValueError")]
    assert not bad, bad
    slow = [(what[r["path"]], r["seconds"]) for r in reports if r["seconds"] > 5]
    assert not slow, slow
    assert max(r["growth_mb"] for r in reports) < 300
    outcomes = [r["outcome"] for r in reports]
    assert outcomes.count("ValueError") > MUTANTS_PER_MODEL // 2  # the mutations do bite
