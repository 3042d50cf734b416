"""Helpers shared by the framework modules: synthetic data, the child-process report line."""
import json
import sys
import time

from .. import spec as _spec

REPORT_PREFIX = "BENCH-JSON "
HEAVY_MODULES = ("numba", "torch", "tensorflow", "keras", "onnxruntime", "jax")


def make_data(spec, seed=0):
    """Inputs (batch, *input_shape) float32 in [0, 1) channels_last (token ids int32 in [0, vocab)
    for the transformer), and int64 labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model = spec["model_spec"]
    if model["kind"] == "transformer":
        x = rng.integers(0, model["vocab"], size=(spec["batch"], model["maxlen"]), dtype=np.int32)
        y = rng.integers(0, model["classes"], size=spec["batch"], dtype=np.int64)
        return x, y
    x = rng.random((spec["batch"], *_spec.input_shape(model)), dtype=np.float32)
    y = rng.integers(0, model["classes"], size=spec["batch"], dtype=np.int64)
    return x, y


def report(payload):
    """Print the child's result as one line the parent parses."""
    sys.stdout.write(REPORT_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def loaded_heavy_modules():
    return sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in HEAVY_MODULES})


class Clock:
    """Phase timings since construction, in seconds."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.phases = {}

    def mark(self, name):
        now = time.perf_counter()
        self.phases[name] = now - self.last
        self.last = now

    def total(self):
        return time.perf_counter() - self.t0


def make_qkv(spec, seed=0):
    """Query, key and value (batch, seq, heads, head_dim) float32 in [-1, 1) and the output
    gradient of the same shape, for the attention workload."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model = spec["model_spec"]
    shape = (spec["batch"], spec["seq"], model["heads"], model["head_dim"])
    return [rng.uniform(-1, 1, size=shape).astype(np.float32) for _ in range(4)]


def peak_rss_mb():
    """This process's peak resident memory so far, in MB."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def attention_memory(payload, setup, make_step):
    """Body of an attention-memory child: warm every code path at a short sequence (imports,
    compilation), then one call at the spec's sequence length; reports the peak RSS it added."""
    clock = Clock()
    spec = payload["spec"]
    lib = setup(payload["threads"])
    make_step(lib, dict(spec, seq=min(64, spec["seq"])))()
    step = make_step(lib, spec)
    before = peak_rss_mb()
    clock.mark("warm_s")
    step()
    clock.mark("call_s")
    report({"phases": clock.phases, "inside_s": clock.total(), "rss_before_mb": before,
            "added_mb": peak_rss_mb() - before})


def rss_mb():
    """This process's resident memory now, in MB (Linux; None elsewhere)."""
    import os

    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return None


def memory_info(info, model_path=None, float_path=None):
    """``info`` with the model file's size (MB; the float model's too when given) and this worker's resident and peak memory (MB) after
    the model was built and called once (the worker is shared by the workloads it runs: its peak
    covers the earlier ones too)."""
    import os

    if model_path:
        info["model_file_mb"] = round(os.path.getsize(model_path) / 2 ** 20, 3)
    if float_path:
        info["float_model_file_mb"] = round(os.path.getsize(float_path) / 2 ** 20, 3)
    rss = rss_mb() or 0.0
    info["rss_mb"] = round(rss, 1)
    info["peak_rss_mb"] = round(max(peak_rss_mb(), rss), 1)
    return info


class Unsupported(Exception):
    """Raised by a module's ``build`` when the framework cannot run the workload on the chosen
    device (dlcore's ValueError or TypeError naming the layer or op without a GPU path): the
    runner lists the workload as skipped, with this text as the reason."""


def make_gemm(spec, seed=0):
    """The GEMM workload's operands: a and b, (n, n) float32 in [-1, 1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = spec["n"]
    return [rng.uniform(-1, 1, size=(n, n)).astype(np.float32) for _ in range(2)]


GEMM_CHECK_ROWS = 64
# float32 products of [-1, 1) entries are off by ~1e-6 of the largest entry (k = 4096); TF32
# (10-bit mantissa) by ~1e-4 to 1e-3: above this the product is not float32
GEMM_TOLERANCE = 1e-4


def check_gemm(a, b, out):
    """The largest error of the first rows of ``out`` (host, float32) against a @ b in float64,
    relative to the largest entry; RuntimeError above GEMM_TOLERANCE (a wrong or TF32 product
    would be timed otherwise)."""
    import numpy as np

    rows = min(GEMM_CHECK_ROWS, a.shape[0])
    ref = a[:rows].astype(np.float64) @ b.astype(np.float64)
    err = float(np.max(np.abs(out[:rows] - ref)) / max(np.max(np.abs(ref)), 1e-30))
    if not err <= GEMM_TOLERANCE:
        raise RuntimeError(f"gemm {a.shape[0]}x{a.shape[1]}x{b.shape[1]}: the product's first {rows} rows are off "
                           f"by {err:.3g} of the largest entry (float32 tolerance {GEMM_TOLERANCE:g}; TF32 on?)")
    return err


def current_rss_mb():
    """This process's resident memory now, in MB (Linux; the peak elsewhere)."""
    rss = rss_mb()
    return peak_rss_mb() if rss is None else rss


def infer_memory(payload, fresh_model, extra=None):
    """Body of an inference-memory child: a first copy of the model predicts once at batch 1
    (imports, kernels, thread pools, caches), then a second copy predicts once at the workload's
    batch; reports the resident memory that second call added (``added_mb``: still held after it,
    ``added_peak_mb``: its peak above everything before). ``fresh_model(spec)`` builds or loads a
    model and returns its predict function of a batch; ``extra(predict)`` adds framework figures."""
    clock = Clock()
    spec = payload["spec"]
    warm = dict(spec, batch=1)
    fresh_model(warm)(make_data(warm)[0])
    predict = fresh_model(spec)
    x, _ = make_data(spec)
    clock.mark("warm_s")
    before, peak_before = current_rss_mb(), peak_rss_mb()
    predict(x)
    clock.mark("call_s")
    out = {"phases": clock.phases, "inside_s": clock.total(), "added_mb": max(0.0, current_rss_mb() - before),
           "added_peak_mb": max(0.0, peak_rss_mb() - peak_before)}
    if extra is not None:
        out.update(extra(predict))
    report(out)
