"""The comparison's processes (benchmarks/compare.py): modes and settings, the environment and
machine description, one worker process per framework, fresh child processes, and the float32
GEMM ceiling."""
import importlib.metadata
import importlib.util
import json
import os
import platform
import select
import statistics
import subprocess
import sys
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
             "ceiling_sizes": (512, 1024, 2048), "ceiling_reps": 30, "layer_s": 0.5, "scaling_batches": None,
             "attention_seqs": None},
    "quick": {"reps": 3, "run_s": 0.1, "warmup": (2, 0.1), "process_reps": 1, "memory_reps": 1,
              "process_warmup": False,
              "ceiling_sizes": (512, 1024), "ceiling_reps": 20, "layer_s": 0.15,
              "scaling_batches": _spec.QUICK_SCALING_BATCHES, "attention_seqs": _spec.QUICK_ATTENTION_SEQS},
    "tiny": {"reps": 1, "run_s": 0.0, "warmup": (1, 0.0), "process_reps": 1, "memory_reps": 1,
             "process_warmup": False, "ceiling_sizes": (64,), "ceiling_reps": 2, "layer_s": 0.0,
             "scaling_batches": None, "attention_seqs": None},
}

CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd")
VERSIONED = ("dlcore", "numpy", "scipy", "numba", "numba-cuda", "torch", "keras", "tensorflow", "tensorflow-cpu",
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
    # Children keep Python's bytecode caches, as every installed package has them (pip compiles
    # at install): with PYTHONDONTWRITEBYTECODE set, a source or editable checkout of dlcore
    # recompiled its ~60 modules in every cold start (~0.1-0.3 s here) while the peers read their
    # site-packages caches. The untimed warm-up process (full mode) writes them.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
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


def cpu_class(flags):
    """A short name for the vector class of a CPU from its flags (what decides the GEMM paths)."""
    flags = set(flags)
    if "avx512f" in flags:
        extra = [f for f in ("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile") if f in flags]
        # Zen 4 has AVX-512 (as two 256-bit halves) and no AVX-VNNI; Zen 5 and Intel since
        # Sapphire Rapids add avx_vnni
        return "AVX-512" + (f" + {', '.join(extra)}" if extra else "")
    if "avx2" in flags and "fma" in flags:
        return "AVX2 + FMA" + (" + avx_vnni" if "avx_vnni" in flags else "")
    if "neon" in flags or "asimd" in flags:
        return "ARM NEON"
    return "baseline x86-64 (SSE2)"


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
        "cpu_class": cpu_class(flags),
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

    def __init__(self, framework, threads, env, log_dir, device="cpu"):
        self.framework = framework
        self.log_path = Path(log_dir) / f"worker-{framework}.log"
        self._log = open(self.log_path, "a")
        code = bootstrap(f"from {CHILD_PACKAGE}.worker import main; sys.exit(main(sys.argv[1:]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, framework, "--threads", str(threads),
                                      "--device", device],
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
