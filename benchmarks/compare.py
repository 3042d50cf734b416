"""Side-by-side comparison of dlcore with PyTorch, Keras (TensorFlow backend) and ONNX Runtime.

    python -m benchmarks.compare                 # every standard workload, every installed peer
    python -m benchmarks.compare --quick         # fewer repetitions and shapes: under two minutes
    python -m benchmarks.compare --workload mlp-train --workload cold-start-mlp
    python -m benchmarks.compare --frameworks dlcore --tiny   # smallest shapes, one repetition

Method: every framework runs in its own worker process (isolated imports, thread pools and
memory) with the same thread count; after a warm-up, the runner alternates the frameworks run by
run, so that a noisy neighbour or a frequency change hits all of them alike. One run is a loop of
iterations sized to ``run_s`` seconds; its value is the median iteration time; a workload reports
the median over runs with the min-max. Cold start and memory are fresh processes (``python -c``),
their wall time measured from the parent and their peak RSS read from the child's rusage
(``os.wait4``). The float32 GEMM ceiling (NumPy ``matmul``, same thread count) is measured in the
same invocation, and each workload's and each dlcore kernel's achieved GFLOPS is reported as a
share of it.

Ratios are peer / dlcore in time (or memory): above 1, dlcore is faster (or smaller). A workload
a framework lacks is "n/a", with the reason in the JSON; nothing is estimated.

Output: a Markdown report on stdout (and ``--markdown-out``), a JSON file and PNG charts
(matplotlib, if installed) in ``--out-dir``.
"""
import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import spec as _spec
from .workloads import MODULES as _MODULES
from .workloads import _common

PKG = __package__ or "benchmarks"
HERE = Path(__file__).resolve().parent

# Repetitions and sizes per mode. run_s: seconds per timed run; warmup: (min iterations, min
# seconds); process_reps / memory_reps: fresh processes per framework for cold start / memory
# (peak RSS varies little run to run); process_warmup: one untimed process first.
MODES = {
    "full": {"reps": 7, "run_s": 1.0, "warmup": (3, 1.0), "process_reps": 5, "memory_reps": 3, "process_warmup": True,
             "ceiling_sizes": (512, 1024, 2048), "ceiling_reps": 30, "layer_s": 0.5, "scaling_batches": None},
    "quick": {"reps": 3, "run_s": 0.1, "warmup": (2, 0.1), "process_reps": 1, "memory_reps": 1,
              "process_warmup": False,
              "ceiling_sizes": (512, 1024), "ceiling_reps": 20, "layer_s": 0.15,
              "scaling_batches": _spec.QUICK_SCALING_BATCHES},
    "tiny": {"reps": 1, "run_s": 0.0, "warmup": (1, 0.0), "process_reps": 1, "memory_reps": 1,
             "process_warmup": False, "ceiling_sizes": (64,), "ceiling_reps": 2, "layer_s": 0.0,
             "scaling_batches": None},
}

CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd")
VERSIONED = ("dlcore", "numpy", "scipy", "numba", "torch", "keras", "tensorflow", "tensorflow-cpu",
             "onnxruntime", "onnx", "matplotlib")


class WorkerError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------------
# Environment, machine, versions
# --------------------------------------------------------------------------------------------
def default_threads():
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def child_env(threads):
    """The environment of every child: one thread count for all, quiet TensorFlow, Keras on TF."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS"):
        env[var] = str(threads)
    env["KERAS_BACKEND"] = "tensorflow"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONWARNINGS"] = "ignore"
    return env


# Children load this directory as a stand-alone package by path, so that a PyTorch cold start
# never imports dlcore even when the benchmarks are installed as `dlcore.benchmarks`, and a source
# tree needs no PYTHONPATH.
CHILD_PACKAGE = "_dlcore_bench"


def bootstrap(statement):
    """``python -c`` code that loads the benchmarks package by path, then runs ``statement``."""
    return ("import importlib.util as _u, sys; "
            f"_s = _u.spec_from_file_location({CHILD_PACKAGE!r}, {str(HERE / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(HERE)!r}]); "
            "_m = _u.module_from_spec(_s); "
            f"sys.modules[{CHILD_PACKAGE!r}] = _m; _s.loader.exec_module(_m); " + statement)


def probe(framework):
    """None if the framework's packages are installed, else why not (nothing is imported)."""
    module = importlib.import_module(f"{PKG}.workloads.{_MODULES[framework]}")
    missing = [name for name in module.REQUIRES if importlib.util.find_spec(name) is None]
    return f"not installed ({', '.join(missing)})" if missing else None


def _cpuinfo():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    key, value = (s.strip() for s in line.split(":", 1))
                    info.setdefault(key, value)
    except OSError:
        pass
    return info


def machine_info(threads):
    cpu = _cpuinfo()
    model = cpu.get("model name") or cpu.get("Model") or platform.processor() or platform.machine()
    if sys.platform == "darwin":
        try:
            model = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                   text=True, timeout=5).stdout.strip() or model
        except (OSError, subprocess.SubprocessError):
            pass
    flags = set((cpu.get("flags") or cpu.get("Features") or "").split())
    mem_gb = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem_gb = round(int(line.split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "cpu": model,
        "cores_logical": os.cpu_count(),
        "cores_available": default_threads(),
        "flags": [f for f in CPU_FLAGS if f in flags],
        "memory_gb": mem_gb,
        "os": platform.platform(),
        "python": platform.python_version(),
        "threads": threads,
        "load_average_start": load,
    }


def versions():
    out = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        out["dlcore_git"] = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=HERE.parent,
                                           capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["dlcore_git"] = None
    return out


# --------------------------------------------------------------------------------------------
# Worker processes (one per framework) and fresh child processes
# --------------------------------------------------------------------------------------------
CALL_TIMEOUT_S = 900  # one worker call (a build, a warm-up, a run) longer than this is a hang


class Worker:
    """A framework's long-lived benchmark process (``benchmarks.worker``)."""

    def __init__(self, framework, threads, env, log_dir):
        self.framework = framework
        self.log_path = Path(log_dir) / f"worker-{framework}.log"
        self._log = open(self.log_path, "a")
        code = bootstrap(f"from {CHILD_PACKAGE}.worker import main; sys.exit(main(sys.argv[1:]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, framework, "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     env=env, bufsize=1)
        self.hello = self._read()

    def _read(self, timeout=CALL_TIMEOUT_S):
        if sys.platform != "win32":
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if not ready:
                self.proc.kill()
                self.proc.wait()
                raise WorkerError(f"{self.framework} worker did not answer in {timeout} s (killed)")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise WorkerError(f"{self.framework} worker exited (code {self.proc.returncode}): {self.log_tail()}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise WorkerError(reply.get("error", "unknown error"))
        return reply

    def call(self, op, **kwargs):
        try:
            self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"{self.framework} worker is gone ({exc}): {self.log_tail()}") from None
        return self._read()

    def log_tail(self, n=800):
        try:
            self._log.flush()
            return self.log_path.read_text()[-n:].strip()
        except OSError:
            return ""

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except WorkerError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def run_child(code, env, log_dir, timeout=600):
    """Run ``python -c code`` as a fresh process: wall time (parent's clock, interpreter start
    included), peak RSS (the child's rusage) and the child's report line."""
    out_path = Path(log_dir) / "child.out"
    err_path = Path(log_dir) / "child.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=err, env=env)
        rss_mb = None
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            # ru_maxrss: KiB on Linux, bytes on macOS
            rss_mb = usage.ru_maxrss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)
        else:
            proc.wait(timeout=timeout)
            wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise WorkerError(f"child failed (code {proc.returncode}): {err_path.read_text()[-800:].strip()}")
    report = None
    for line in out_path.read_text().splitlines():
        if line.startswith(_common.REPORT_PREFIX):
            report = json.loads(line[len(_common.REPORT_PREFIX):])
    return {"wall_s": wall, "rss_mb": rss_mb, "report": report}


def _child_code(framework, function, payload):
    return bootstrap(f"import json; from {CHILD_PACKAGE}.workloads import {_MODULES[framework]} as w; "
                     f"w.{function}(json.loads({json.dumps(payload)!r}))")


CEILING_CODE = """
import json, time, numpy as np
sizes, reps, threads, lib = {sizes!r}, {reps}, {threads}, {lib!r}
if lib == "torch":
    import torch
    torch.set_num_threads(threads)
    matmul = lambda a, b, c: torch.matmul(a, b, out=c)
    convert = torch.from_numpy
else:
    matmul = lambda a, b, c: np.matmul(a, b, out=c)
    convert = lambda a: a
rng = np.random.default_rng(0)
out = {{}}
for n in sizes:
    a = convert(rng.random((n, n), dtype=np.float32)); b = convert(rng.random((n, n), dtype=np.float32))
    c = convert(np.empty((n, n), np.float32))
    matmul(a, b, c)
    times = []
    for _ in range(reps):
        t = time.perf_counter(); matmul(a, b, c); times.append(time.perf_counter() - t)
    out[n] = times
print({prefix!r} + json.dumps(out))
"""

CEILING_LIBS = {"numpy": "numpy.matmul (NumPy's BLAS)", "torch": "torch.matmul (PyTorch's BLAS)"}


def measure_ceiling(sizes, reps, threads, env, log_dir, libs=("numpy",)):
    """The float32 GEMM ceiling: the best GFLOPS of square float32 matrix products (NumPy's
    ``matmul``, and PyTorch's when PyTorch is compared) over ``sizes``, ``reps`` runs each, in
    fresh processes with the run's thread count. Best, not median: a ceiling is what the machine
    reaches, and a shared machine only ever subtracts."""
    sources = {}
    for lib in libs:
        try:
            result = run_child(CEILING_CODE.format(sizes=tuple(sizes), reps=reps, threads=threads, lib=lib,
                                                   prefix=_common.REPORT_PREFIX), env, log_dir)
        except WorkerError as exc:
            sources[lib] = {"error": str(exc)}
            continue
        per_size = {}
        for n, times in result["report"].items():
            flops = 2.0 * int(n) ** 3
            per_size[n] = {"gflops": flops / min(times) / 1e9, "gflops_median": flops / statistics.median(times) / 1e9}
        best_n = max(per_size, key=lambda n: per_size[n]["gflops"])
        sources[lib] = {"what": f"{CEILING_LIBS[lib]} float32 {best_n}x{best_n}x{best_n}", "n": int(best_n),
                        "gflops": per_size[best_n]["gflops"], "gflops_median": per_size[best_n]["gflops_median"],
                        "per_size": per_size}
    ok = {lib: r for lib, r in sources.items() if "gflops" in r}
    if not ok:
        return {"error": "; ".join(f"{lib}: {r['error']}" for lib, r in sources.items()), "sources": sources}
    best = max(ok, key=lambda lib: ok[lib]["gflops"])
    return {"what": ok[best]["what"], "source": best, "gflops": ok[best]["gflops"],
            "gflops_median": ok[best]["gflops_median"], "runs": reps, "sources": sources}


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------
def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def _rotate(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


def metric_of(spec):
    """(metric name, unit, better, function of seconds per iteration)."""
    batch = spec["batch"]
    if spec["kind"] == "infer" and batch == 1:
        return "latency", "ms", "lower", lambda t: t * 1e3
    return "throughput", "samples/s", "higher", lambda t: batch / t


class Runner:
    def __init__(self, frameworks, threads, mode, tiny, log_dir, progress=True):
        self.frameworks = list(frameworks)
        self.threads = threads
        self.mode = mode
        self.cfg = MODES["tiny" if tiny else mode]
        self.tiny = tiny
        self.log_dir = Path(log_dir)
        self.env = child_env(threads)
        self.workers = {}
        self.worker_errors = {}
        self.onnx = {}
        self.progress = progress

    def log(self, message):
        if self.progress:
            print(f"[dlcore-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    # workers ---------------------------------------------------------------------------------
    def worker(self, framework):
        if framework in self.worker_errors:
            raise WorkerError(self.worker_errors[framework])
        if framework in self.workers and self.workers[framework].proc.poll() is not None:
            self.log(f"the {framework} worker died (code {self.workers[framework].proc.returncode}); restarting it")
            self.workers.pop(framework).close()
        if framework not in self.workers:
            self.log(f"starting the {framework} worker")
            try:
                self.workers[framework] = Worker(framework, self.threads, self.env, self.log_dir)
            except WorkerError as exc:
                self.worker_errors[framework] = str(exc)
                raise
        return self.workers[framework]

    def close(self):
        for w in self.workers.values():
            w.close()
        self.workers.clear()

    def onnx_path(self, model):
        """The ONNX export of ``model`` ("cnn", "mlp", "lstm", "gru"), made once by the torch
        worker; None if it cannot be made."""
        if model not in self.onnx:
            path = self.log_dir / f"{model}{'-tiny' if self.tiny else ''}.onnx"
            try:
                self.log(f"exporting the PyTorch {model} to ONNX")
                reply = self.worker("torch").call("export", model=model, path=str(path), tiny=self.tiny)
                self.onnx[model] = (str(path), reply["exporter"])
            except WorkerError as exc:
                self.log(f"ONNX export of {model} failed: {exc}")
                self.onnx[model] = (None, str(exc))
        return self.onnx[model][0]

    def _extra(self, framework, spec):
        if framework == "onnxruntime" and spec["kind"] in ("infer", "cold-start"):
            return {"onnx_path": self.onnx_path(spec["model"])}
        return {}

    # timed workloads ---------------------------------------------------------------------------
    def measure_timed(self, name, batch=None, base_name=None):
        """One train/infer workload on every framework: build, warm up, alternate runs."""
        spec = _spec.workload_spec(base_name or name, tiny=self.tiny, batch=batch)
        metric, unit, better, convert = metric_of(spec)
        flops = _spec.workload_flops(spec)
        entry = {"kind": spec["kind"], "model": spec["model"], "batch": spec["batch"], "metric": metric,
                 "unit": unit, "better": better, "flops_per_iteration": flops,
                 "expected_params": _spec.param_count(spec["model_spec"]), "frameworks": {}}
        key = f"{name}@{spec['batch']}"
        active = []
        for fw in self.frameworks:
            result = entry["frameworks"][fw] = {}
            try:
                reply = self.worker(fw).call("build", key=key, workload=spec["name"], tiny=self.tiny,
                                             batch=batch, **self._extra(fw, spec))
            except WorkerError as exc:
                result.update(status="error", reason=str(exc))
                continue
            if "na" in reply:
                result.update(status="n/a", reason=reply["na"])
                continue
            result.update(status="ok", params=reply["params"], info=reply["info"])
            active.append(fw)
        # warm-up, then the number of iterations per run
        iters = {}
        for fw in list(active):
            n_min, s_min = self.cfg["warmup"]
            try:
                times = self.worker(fw).call("warmup", key=key, min_iters=n_min, min_s=s_min)["times"]
            except WorkerError as exc:
                entry["frameworks"][fw].update(status="error", reason=str(exc))
                active.remove(fw)
                continue
            estimate = statistics.median(times[len(times) // 2:])
            iters[fw] = max(1, min(100000, round(self.cfg["run_s"] / max(estimate, 1e-7))))
            entry["frameworks"][fw]["first_call_s"] = times[0]
            entry["frameworks"][fw]["iterations_per_run"] = iters[fw]
        seconds = {fw: [] for fw in active}
        for rep in range(self.cfg["reps"]):
            for fw in _rotate(active, rep):
                if fw not in seconds:
                    continue
                try:
                    times = self.worker(fw).call("run", key=key, iters=iters[fw],
                                                 max_s=max(1.0, 5 * self.cfg["run_s"]))["times"]
                except WorkerError as exc:
                    entry["frameworks"][fw].update(status="error", reason=str(exc))
                    seconds.pop(fw)
                    continue
                seconds[fw].append(statistics.median(times))
        for fw, values in seconds.items():
            result = entry["frameworks"][fw]
            result["seconds"] = _stats(values)
            result.update(_stats([convert(t) for t in values]))
            result["gflops"] = flops / statistics.median(values) / 1e9
        for fw in self.frameworks:
            if fw in self.workers:
                try:
                    self.workers[fw].call("free", key=key)
                except WorkerError:
                    pass
        _add_ratios(entry, lambda r: r["seconds"]["median"])
        return entry

    def measure_scaling(self, name):
        wl = _spec.workload_spec(name, tiny=self.tiny)
        batches = self.cfg["scaling_batches"] if (self.cfg["scaling_batches"] and not self.tiny) else wl["batches"]
        out = {"base": wl["base"], "batches": list(batches), "unit": "us/sample", "better": "lower",
               "frameworks": {fw: {} for fw in self.frameworks}}
        for b in batches:
            self.log(f"{name}: batch {b}")
            entry = self.measure_timed(name, batch=b, base_name=wl["base"])
            for fw, r in entry["frameworks"].items():
                if r.get("status") == "ok":
                    per_sample = [t / b * 1e6 for t in r["seconds"]["runs"]]
                    out["frameworks"][fw][str(b)] = {"status": "ok", **_stats(per_sample)}
                else:
                    out["frameworks"][fw][str(b)] = {"status": r.get("status"), "reason": r.get("reason")}
        return out

    # process workloads ---------------------------------------------------------------------------
    def measure_process(self, name):
        spec = _spec.workload_spec(name, tiny=self.tiny)
        function = "cold_start" if spec["kind"] == "cold-start" else "train_memory"
        entry = {"kind": spec["kind"], "model": spec["model"], "batch": spec["batch"],
                 "steps": spec.get("steps"), "frameworks": {}}
        payloads = {}
        for fw in self.frameworks:
            result = entry["frameworks"][fw] = {}
            extra = self._extra(fw, spec)
            try:
                na = self.worker(fw).call("supports", workload=name, tiny=self.tiny, **extra)["na"]
            except WorkerError as exc:
                result.update(status="error", reason=str(exc))
                continue
            if na:
                result.update(status="n/a", reason=na)
                continue
            payloads[fw] = {"threads": self.threads, "spec": dict(spec, **extra)}
            result["status"] = "ok"
        walls = {fw: [] for fw in payloads}
        rss = {fw: [] for fw in payloads}
        reports = {fw: [] for fw in payloads}
        reps = self.cfg["process_reps" if spec["kind"] == "cold-start" else "memory_reps"]
        reps += 1 if self.cfg["process_warmup"] else 0
        for rep in range(reps):
            for fw in _rotate(list(payloads), rep):
                if fw not in walls:
                    continue
                try:
                    res = run_child(_child_code(fw, function, payloads[fw]), self.env, self.log_dir)
                except WorkerError as exc:
                    entry["frameworks"][fw].update(status="error", reason=str(exc))
                    walls.pop(fw)
                    continue
                if self.cfg["process_warmup"] and rep == 0:
                    continue  # the untimed run: OS file cache and bytecode caches warmed
                walls[fw].append(res["wall_s"])
                if res["rss_mb"] is not None:
                    rss[fw].append(res["rss_mb"])
                reports[fw].append(res["report"])
        for fw in walls:
            result = entry["frameworks"][fw]
            if spec["kind"] == "cold-start":
                result["wall_s"] = _stats(walls[fw])
                phases = [r["phases"] for r in reports[fw] if r]
                if phases:
                    result["phases_s"] = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
                    result["loaded_modules"] = reports[fw][-1].get("loaded")
            else:
                result["train_s"] = _stats([r["phases"]["train_s"] for r in reports[fw] if r])
            if rss[fw]:
                result["rss_mb"] = _stats(rss[fw])
        if spec["kind"] == "cold-start":
            _add_ratios(entry, lambda r: r["wall_s"]["median"], field="ratio_wall")
        _add_ratios(entry, lambda r: r["rss_mb"]["median"] if "rss_mb" in r else None, field="ratio_rss")
        return entry

    def measure_baseline(self):
        """A bare ``python -c "import numpy"``: the floor under every cold start and RSS."""
        walls, rss = [], []
        for _ in range(max(1, self.cfg["process_reps"])):
            res = run_child("import numpy", self.env, self.log_dir)
            walls.append(res["wall_s"])
            if res["rss_mb"] is not None:
                rss.append(res["rss_mb"])
        return {"what": 'python -c "import numpy"', "wall_s": _stats(walls),
                **({"rss_mb": _stats(rss)} if rss else {})}

    def measure_layers(self, ceiling):
        if "dlcore" not in self.frameworks:
            return []
        try:
            reply = self.worker("dlcore").call("layers", tiny=self.tiny, min_s=self.cfg["layer_s"])
        except WorkerError as exc:
            return [{"name": "dlcore layers", "status": "error", "reason": str(exc)}]
        out = []
        for item in reply["layers"]:
            t = statistics.median(item["times"])
            gflops = item["flops"] / t / 1e9
            out.append({"name": item["name"], "flops": item["flops"], "seconds": t, "gflops": gflops,
                        "ceiling_share": gflops / ceiling["gflops"] if ceiling else None})
        return out


def _add_ratios(entry, value, field="ratio"):
    """peer / dlcore of ``value`` (time or memory): above 1, dlcore is faster or smaller."""
    base = entry["frameworks"].get("dlcore", {})
    try:
        ref = value(base) if base.get("status") == "ok" else None
    except (KeyError, TypeError):
        ref = None
    for fw, r in entry["frameworks"].items():
        if fw == "dlcore" or r.get("status") != "ok":
            continue
        try:
            v = value(r)
        except (KeyError, TypeError):
            v = None
        r[field] = (v / ref) if (ref and v) else None


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------
def select_workloads(names, skip_extra=False):
    """The workloads ``names`` (all by default; ``skip_extra`` leaves out the MLP twins of the
    CNN process workloads, unless named)."""
    if not names:
        return [n for n, w in _spec.WORKLOADS.items() if not (skip_extra and w.get("extra"))]
    unknown = [n for n in names if n not in _spec.WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workload(s) {unknown}; known: {', '.join(_spec.WORKLOADS)}")
    return [n for n in _spec.WORKLOADS if n in names]


def _command(argv):
    """The command line that reproduces the run (without ``--note`` and its text)."""
    args, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--note":
            skip = True
            continue
        if a.startswith("--note="):
            continue
        args.append(a)
    prog = "python -m benchmarks.compare" if PKG == "benchmarks" else "dlcore-bench"
    return " ".join([prog, *args])


def run(workloads=None, frameworks=None, threads=None, mode="quick", tiny=False, log_dir=None,
        progress=True, argv=None):
    """Run the comparison and return the results (the JSON document as a dict)."""
    threads = threads or default_threads()
    workloads = select_workloads(workloads, skip_extra=(mode == "quick" and not tiny))
    requested = [fw for fw in _spec.FRAMEWORKS if fw in frameworks] if frameworks else list(_spec.FRAMEWORKS)
    skipped = {}
    chosen = []
    for fw in requested:
        reason = probe(fw)
        if reason:
            skipped[fw] = reason
        else:
            chosen.append(fw)
    own_tmp = log_dir is None
    log_dir = Path(tempfile.mkdtemp(prefix="dlcore-bench-")) if own_tmp else Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {
        "meta": {
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": _command(argv if argv is not None else sys.argv[1:]),
            "mode": "tiny" if tiny else mode,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in MODES["tiny" if tiny else mode].items()},
            "threads": threads, "frameworks": chosen, "frameworks_skipped": skipped,
            "machine": machine_info(threads), "versions": versions(),
            "ratio": "peer / dlcore, in time (or peak RSS): above 1, dlcore is faster (or smaller)",
            "notes": [
                "Keras: TensorFlow backend, train_on_batch / predict_on_batch (compiled tf.function "
                "steps); compile(jit_compile='auto'), which Keras resolves to no XLA without a GPU.",
                "PyTorch: eager; CNN inference with channels_last; training on logits with "
                "F.cross_entropy (Keras: softmax + sparse categorical cross-entropy).",
                "ONNX Runtime: inference only, on the models exported from PyTorch.",
                "dlcore: train_on_batch / predict_on_batch; cold start calls predict.",
                "Training FLOPs are counted as 3x the forward FLOPs (matrix products and "
                "convolutions only).",
            ],
        },
        "ceiling": None, "workloads": {}, "scaling": {}, "layers": [], "baseline": None,
    }
    runner = Runner(chosen, threads, mode, tiny, log_dir, progress)
    try:
        runner.log(f"frameworks: {', '.join(chosen) or 'none'}; threads: {threads}; mode: {results['meta']['mode']}")
        libs = ("numpy", "torch") if "torch" in chosen else ("numpy",)
        runner.log(f"float32 GEMM ceiling ({', '.join(libs)})")
        results["ceiling"] = measure_ceiling(runner.cfg["ceiling_sizes"], runner.cfg["ceiling_reps"], threads,
                                             runner.env, log_dir, libs)
        ceiling = results["ceiling"] if results["ceiling"] and "gflops" in results["ceiling"] else None
        for name in workloads:
            kind = _spec.WORKLOADS[name]["kind"]
            runner.log(name)
            if kind in ("train", "infer"):
                entry = runner.measure_timed(name)
                for r in entry["frameworks"].values():
                    if r.get("status") == "ok" and ceiling:
                        r["ceiling_share"] = r["gflops"] / ceiling["gflops"]
                results["workloads"][name] = entry
            elif kind == "scaling":
                results["scaling"][name] = runner.measure_scaling(name)
            else:
                results["workloads"][name] = runner.measure_process(name)
        if any(_spec.WORKLOADS[n]["kind"] == "cold-start" for n in workloads) or any(
                _spec.WORKLOADS[n]["kind"] == "memory" for n in workloads):
            runner.log("baseline: python -c 'import numpy'")
            results["baseline"] = runner.measure_baseline()
        runner.log("dlcore kernel and layer rates")
        results["layers"] = runner.measure_layers(ceiling)
        results["meta"]["worker_info"] = {fw: w.hello.get("info") for fw, w in runner.workers.items()}
        results["meta"]["onnx_exports"] = {m: {"path_used": bool(p), "exporter": e}
                                           for m, (p, e) in runner.onnx.items()}
    finally:
        runner.close()
    results["meta"]["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["meta"]["elapsed_s"] = time.perf_counter() - started
    return results


# --------------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------------
def _fmt(x):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def _cell(stats):
    if not stats:
        return "n/a"
    return f"{_fmt(stats['median'])} ({_fmt(stats['min'])}–{_fmt(stats['max'])})"


def _ratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def _label(fw):
    return _spec.FRAMEWORK_LABELS[fw]


COLORS = {"dlcore": "tab:blue", "torch": "tab:orange", "keras": "tab:green", "onnxruntime": "tab:red"}


def to_markdown(results):
    meta = results["meta"]
    fws = meta["frameworks"]
    peers = [fw for fw in fws if fw != "dlcore"]
    m = meta["machine"]
    v = meta["versions"]
    lines = []
    if meta.get("note"):
        lines += [meta["note"], ""]
    lines.append(f"Measured {meta['date'][:10]} with `{meta['command'].strip()}` ({meta['mode']} mode, "
                 f"{meta['threads']} thread{'s' if meta['threads'] != 1 else ''} for every framework).")
    lines.append("")
    flags = ", ".join(m["flags"]) or "none detected"
    load = m.get("load_average_start")
    load_txt = f"; load average {load[0]:.1f} at the start" if load else ""
    lines.append(f"- Machine: {m['cpu']}, {m['cores_available']} cores available ({m['cores_logical']} logical), "
                 f"{m['memory_gb']} GB, {m['os']}; CPU flags: {flags}{load_txt}.")
    names = [("dlcore", "dlcore"), ("numpy", "NumPy"), ("scipy", "SciPy"), ("numba", "Numba"),
             ("torch", "PyTorch"), ("keras", "Keras"), ("tensorflow", "TensorFlow"),
             ("tensorflow-cpu", "TensorFlow (cpu)"), ("onnxruntime", "ONNX Runtime"), ("onnx", "onnx")]
    vers = ", ".join(f"{label} {v[k]}" for k, label in names if v.get(k))
    git = f"; dlcore git {v['dlcore_git']}" if v.get("dlcore_git") else ""
    lines.append(f"- Python {m['python']}; {vers}{git}.")
    c = results.get("ceiling") or {}
    if "gflops" in c:
        others = [f"{CEILING_LIBS[lib].split(' ')[0]} {_fmt(r['gflops'])}" for lib, r in c.get("sources", {}).items()
                  if lib != c.get("source") and "gflops" in r]
        lines.append("- float32 GEMM ceiling, measured in this run with the same threads: "
                     f"**{c['gflops']:.1f} GFLOPS** "
                     f"({c['what']}, best of {c['runs']}; median {c['gflops_median']:.1f}"
                     + (f"; {', '.join(others)}" if others else "") + ").")
    if meta.get("frameworks_skipped"):
        skipped = "; ".join(f"{_label(k)}: {r}" for k, r in meta["frameworks_skipped"].items())
        lines.append(f"- Not compared: {skipped}.")
    lines.append("- Cells: median (min–max) over runs, frameworks alternated run by run after a warm-up. "
                 "Ratio = peer ÷ dlcore in time or memory: **above 1, dlcore is faster (or smaller)**. "
                 "n/a: the framework lacks the workload (nothing is estimated).")
    lines.append("")
    header = ["workload", "metric"] + [_label(fw) for fw in fws] + [f"{_label(p)} ÷ dlcore" for p in peers]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for name, e in results["workloads"].items():
        if e["kind"] in ("train", "infer"):
            arrow = "↑" if e["better"] == "higher" else "↓"
            metric = f"{e['unit']} {arrow}"
            cells = [_cell(e["frameworks"][fw]) if e["frameworks"][fw].get("status") == "ok" else "n/a"
                     for fw in fws]
            ratios = [_ratio(e["frameworks"][p].get("ratio")) for p in peers]
            lines.append("| " + " | ".join([name, metric] + cells + ratios) + " |")
        else:
            rows = []
            if e["kind"] == "cold-start":
                rows.append(("wall s ↓", "wall_s", "ratio_wall"))
            rows.append(("peak RSS MB ↓", "rss_mb", "ratio_rss"))
            for metric, field, rfield in rows:
                cells = [_cell(e["frameworks"][fw].get(field)) if e["frameworks"][fw].get("status") == "ok" else "n/a"
                         for fw in fws]
                ratios = [_ratio(e["frameworks"][p].get(rfield)) for p in peers]
                lines.append("| " + " | ".join([name, metric] + cells + ratios) + " |")
    base = results.get("baseline")
    if base:
        extra = f", {_fmt(base['rss_mb']['median'])} MB" if "rss_mb" in base else ""
        lines.append("")
        lines.append(f"Floor under every cold start and RSS: `{base['what']}` takes "
                     f"{_fmt(base['wall_s']['median'])} s{extra}.")
    # reasons for n/a
    reasons = {}
    for name, e in results["workloads"].items():
        for fw, r in e["frameworks"].items():
            if r.get("status") in ("n/a", "error"):
                reasons.setdefault((fw, r.get("status"), r.get("reason")), []).append(name)
    for name, s in results.get("scaling", {}).items():
        for fw, per_batch in s["frameworks"].items():
            for r in per_batch.values():
                if r.get("status") in ("n/a", "error"):
                    reasons.setdefault((fw, r.get("status"), r.get("reason")), []).append(name)
    if reasons:
        lines.append("")
        for (fw, status, reason), names_ in reasons.items():
            short = (reason or "").splitlines()[0][:160] if reason else ""
            lines.append(f"- {_label(fw)} {status} on {', '.join(sorted(set(names_)))}: {short}")
    # scaling
    for name, s in results.get("scaling", {}).items():
        lines.append("")
        lines.append(f"**{name}** (base workload {s['base']}): time per sample, µs ↓, median (min–max)")
        lines.append("")
        lines.append("| batch | " + " | ".join(_label(fw) for fw in fws) + " |")
        lines.append("|---:|" + "|".join(["---:"] * len(fws)) + "|")
        for b in s["batches"]:
            cells = []
            for fw in fws:
                r = s["frameworks"][fw].get(str(b), {})
                cells.append(_cell(r) if r.get("status") == "ok" else "n/a")
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
    # ceiling shares
    if "gflops" in c:
        lines.append("")
        lines.append(f"**Share of the GEMM ceiling** ({c['gflops']:.1f} GFLOPS): achieved GFLOPS (% of ceiling); "
                     "training counted as 3× forward FLOPs. Above 100%: faster than the best square BLAS GEMM "
                     "measured (a convolution library's own kernels can be).")
        lines.append("")
        lines.append("| workload | GFLOP/iteration | " + " | ".join(_label(fw) for fw in fws) + " |")
        lines.append("|---|---:|" + "|".join(["---:"] * len(fws)) + "|")
        for name, e in results["workloads"].items():
            if e["kind"] not in ("train", "infer"):
                continue
            cells = []
            for fw in fws:
                r = e["frameworks"][fw]
                cells.append(f"{_fmt(r['gflops'])} ({100 * r['ceiling_share']:.0f}%)"
                             if r.get("status") == "ok" and r.get("ceiling_share") is not None else "n/a")
            lines.append(f"| {name} | {_fmt(e['flops_per_iteration'] / 1e9)} | " + " | ".join(cells) + " |")
        layers = [x for x in results.get("layers", []) if "gflops" in x]
        if layers:
            lines.append("")
            lines.append("| dlcore kernel / layer (forward) | GFLOPS | % of ceiling |")
            lines.append("|---|---:|---:|")
            for x in layers:
                share = f"{100 * x['ceiling_share']:.0f}%" if x.get("ceiling_share") is not None else "n/a"
                lines.append(f"| {x['name']} | {_fmt(x['gflops'])} | {share} |")
    lines.append("")
    lines.append("Notes: " + " ".join(meta.get("notes", [])))
    return "\n".join(lines) + "\n"


def plot(results, out_dir):
    """ratios.png (peer ÷ dlcore per workload) and scaling.png (time per sample vs batch).
    Returns the paths written; none when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out_dir = Path(out_dir)
    written = []
    fws = results["meta"]["frameworks"]
    peers = [fw for fw in fws if fw != "dlcore"]
    rows = []
    for name, e in results["workloads"].items():
        fields = ["ratio"] if e["kind"] in ("train", "infer") else (
            ["ratio_wall", "ratio_rss"] if e["kind"] == "cold-start" else ["ratio_rss"])
        for field in fields:
            label = name + {"ratio": "", "ratio_wall": " (wall)", "ratio_rss": " (RSS)"}[field]
            rows.append((label, {p: e["frameworks"].get(p, {}).get(field) for p in peers}))
    rows = [r for r in rows if any(v for v in r[1].values())]
    if rows and peers:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) * max(1, len(peers)) / 1.5 + 1.5))
        height = 0.8 / len(peers)
        for i, p in enumerate(peers):
            ys = [j + i * height for j in range(len(rows))]
            xs = [r[1].get(p) or 0 for r in rows]
            ax.barh(ys, xs, height=height, label=_label(p), color=COLORS[p])
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xscale("log")
        ax.set_yticks([j + 0.4 - height / 2 for j in range(len(rows))])
        ax.set_yticklabels([r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel("peer ÷ dlcore (time or memory; > 1: dlcore faster or smaller)")
        n = results["meta"]["threads"]
        ax.set_title(f"dlcore vs peers, {n} thread{'s' if n != 1 else ''}, {results['meta']['date'][:10]}")
        ax.legend()
        fig.tight_layout()
        path = out_dir / "ratios.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    scaling = results.get("scaling", {})
    if scaling:
        fig, axes = plt.subplots(1, len(scaling), figsize=(5.5 * len(scaling), 4), squeeze=False)
        for ax, (name, s) in zip(axes[0], scaling.items()):
            missing = []
            for fw in fws:
                pts = [(b, s["frameworks"][fw][str(b)]["median"]) for b in s["batches"]
                       if s["frameworks"][fw].get(str(b), {}).get("status") == "ok"]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=_label(fw),
                            color=COLORS[fw])
                else:
                    missing.append(_label(fw))
            if missing:
                ax.text(0.02, 0.02, "n/a: " + ", ".join(missing), transform=ax.transAxes, fontsize=8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("batch size")
            ax.set_ylabel("µs per sample")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        path = out_dir / "scaling.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parameter_counts(workloads=None, frameworks=None, tiny=False, threads=1):
    """{workload: {framework: trainable parameters or None (n/a)}} for the train/infer workloads,
    each model built in its framework's worker. ONNX Runtime runs PyTorch's export: not counted."""
    names = [n for n in select_workloads(workloads) if _spec.WORKLOADS[n]["kind"] in ("train", "infer")]
    fws = [fw for fw in (frameworks or _spec.FRAMEWORKS) if fw != "onnxruntime" and probe(fw) is None]
    log_dir = Path(tempfile.mkdtemp(prefix="dlcore-bench-params-"))
    runner = Runner(fws, threads, "quick", tiny, log_dir, progress=False)
    out = {}
    try:
        for name in names:
            out[name] = {}
            for fw in fws:
                out[name][fw] = runner.worker(fw).call("params", workload=name, tiny=tiny).get("params")
    finally:
        runner.close()
    return out


def build_parser():
    parser = argparse.ArgumentParser(prog="dlcore-bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Workloads: " + ", ".join(_spec.WORKLOADS))
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and sizes, no MLP twins of the CNN process workloads "
                             "(under two minutes on an idle machine)")
    parser.add_argument("--tiny", action="store_true",
                        help="smallest shapes, one repetition (the test suite's mode; numbers are meaningless)")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help="run only this workload (repeatable)")
    parser.add_argument("--frameworks", default=None,
                        help=f"comma-separated subset of {','.join(_spec.FRAMEWORKS)} (default: all installed)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every framework (default: the cores available)")
    parser.add_argument("--out-dir", default="bench-results", help="JSON, Markdown and PNG go here")
    parser.add_argument("--json-out", default=None, help="JSON path (default OUT_DIR/results.json)")
    parser.add_argument("--markdown-out", default=None, help="Markdown path (default OUT_DIR/results.md)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG charts")
    parser.add_argument("--note", default=None,
                        help="a sentence printed at the top of the Markdown (e.g. the conditions of the run)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--render", metavar="JSON", default=None,
                        help="measure nothing: rewrite the Markdown and charts from a results JSON")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        for name, w in _spec.WORKLOADS.items():
            print(f"{name:18s} {w['kind']:10s} model={w['model']}" + (" (extra)" if w.get("extra") else ""))
        return 0
    frameworks = [f.strip() for f in args.frameworks.split(",")] if args.frameworks else None
    if frameworks:
        bad = [f for f in frameworks if f not in _spec.FRAMEWORKS]
        if bad:
            raise SystemExit(f"unknown framework(s) {bad}; known: {', '.join(_spec.FRAMEWORKS)}")
    if args.threads is not None and args.threads < 1:
        raise SystemExit("--threads must be a positive integer")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        results = run(workloads=args.workload, frameworks=frameworks, threads=args.threads,
                      mode="quick" if args.quick else "full", tiny=args.tiny,
                      argv=list(argv) if argv is not None else sys.argv[1:])
    if args.note:
        results["meta"]["note"] = args.note
    json_path = Path(args.json_out) if args.json_out else out_dir / "results.json"
    md_path = Path(args.markdown_out) if args.markdown_out else out_dir / "results.md"
    for path in (json_path, md_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    pngs = [] if args.no_plots else plot(results, out_dir)
    markdown = to_markdown(results)
    if pngs:
        rel = [os.path.relpath(p, md_path.parent) for p in pngs]
        markdown += "\n" + " ".join(f"![{Path(r).stem}]({Path(r).as_posix()})" for r in rel) + "\n"
    if not args.render or Path(args.render).resolve() != json_path.resolve():
        json_path.write_text(json.dumps(results, indent=1) + "\n")
    md_path.write_text(markdown)
    sys.stdout.write(markdown)
    print(f"\n[dlcore-bench] wrote {json_path}, {md_path}" + "".join(f", {p}" for p in pngs)
          + ("" if args.render else f" in {results['meta']['elapsed_s']:.0f} s"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
