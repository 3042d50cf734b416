"""Start-up: ``import dlcore`` in a fresh process; the first training step with a cold and with
a warm Numba cache (fresh processes, ``NUMBA_CACHE_DIR`` pointed at an empty or a filled
directory); the first ``predict`` of a fresh process (Cython only, no Numba); and batch-1
latency in a warm process (``predict_on_batch``, ``predict``, ``model(x)``).

The fresh-process benchmarks time the whole child (interpreter start included); the phase the
child measured itself is in ``extra_info`` ("first_step_s", "first_predict_s")."""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import spec
from benchmarks._bench import measure
from benchmarks.workloads import _keras_api

ROOT = Path(__file__).resolve().parents[1]
MLP = spec.model_spec("mlp")

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import dlcore as dl
t_import = time.perf_counter() - t0
sys.path.insert(0, {root!r})
from benchmarks.workloads import _keras_api
from benchmarks import spec
wl = spec.workload_spec({workload!r})
model = _keras_api.build_model(dl, wl["model_spec"])
x = np.random.default_rng(0).random((wl["batch"],) + spec.input_shape(wl["model_spec"]), dtype=np.float32)
out = {{"import_s": t_import}}
if {train!r}:
    _keras_api.compile_model(dl, model, wl)
    y = np.zeros(wl["batch"], np.int64)
    t = time.perf_counter(); model.train_on_batch(x, y); out["first_step_s"] = time.perf_counter() - t
else:
    t = time.perf_counter(); model.predict(x, verbose=0); out["first_predict_s"] = time.perf_counter() - t
out["numba_loaded"] = "numba" in sys.modules
print("RESULT " + json.dumps(out))
"""


def _child(code, env=None):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-2000:]
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {}


def _record(benchmark, reports, key):
    values = [r[key] for r in reports if key in r]
    if values:
        benchmark.extra_info[key] = statistics.median(values)


def test_import_dlcore(benchmark):
    reports = []
    code = ("import time; t = time.perf_counter(); import dlcore, sys, json; "
            "print('RESULT ' + json.dumps({'import_s': time.perf_counter() - t, "
            "'numba_loaded': 'numba' in sys.modules}))")
    measure(benchmark, lambda: reports.append(_child(code)), pedantic={"rounds": 5, "iterations": 1})
    _record(benchmark, reports, "import_s")
    assert not any(r.get("numba_loaded") for r in reports), "import dlcore must not import numba"


def test_first_predict_fresh_process(benchmark):
    reports = []
    code = CHILD.format(root=str(ROOT), workload="mlp-infer-b1", train=False)
    measure(benchmark, lambda: reports.append(_child(code)), pedantic={"rounds": 5, "iterations": 1})
    _record(benchmark, reports, "first_predict_s")


def test_first_train_step_cold_numba_cache(benchmark):
    reports = []
    code = CHILD.format(root=str(ROOT), workload="mlp-train", train=True)

    def setup():
        return (tempfile.mkdtemp(prefix="dlcore-numba-cold-"),), {}

    measure(benchmark, lambda cache: reports.append(_child(code, {"NUMBA_CACHE_DIR": cache})),
            pedantic={"setup": setup, "rounds": 2, "iterations": 1})
    _record(benchmark, reports, "first_step_s")


def test_first_train_step_warm_numba_cache(benchmark):
    reports = []
    code = CHILD.format(root=str(ROOT), workload="mlp-train", train=True)
    cache = tempfile.mkdtemp(prefix="dlcore-numba-warm-")
    _child(code, {"NUMBA_CACHE_DIR": cache})  # fill the cache
    measure(benchmark, lambda: reports.append(_child(code, {"NUMBA_CACHE_DIR": cache})),
            pedantic={"rounds": 3, "iterations": 1})
    _record(benchmark, reports, "first_step_s")


def _mlp_model():
    import dlcore as dl

    model = _keras_api.build_model(dl, MLP)
    x = np.random.default_rng(0).random((1, MLP["input"]), dtype=np.float32)
    model.predict_on_batch(x)
    return model, x


def test_batch1_predict_on_batch(benchmark):
    model, x = _mlp_model()
    measure(benchmark, lambda: model.predict_on_batch(x), flops=spec.forward_flops(MLP), samples=1)


def test_batch1_predict(benchmark):
    model, x = _mlp_model()
    measure(benchmark, lambda: model.predict(x, verbose=0), flops=spec.forward_flops(MLP), samples=1)


def test_batch1_call(benchmark):
    model, x = _mlp_model()
    measure(benchmark, lambda: model(x, training=False), flops=spec.forward_flops(MLP), samples=1)
