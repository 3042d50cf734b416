"""The comparison on a GPU (``python -m benchmarks.compare --device gpu``): dlcore's numba.cuda
path against PyTorch CUDA on the same card.

dlcore runs in a worker that has entered ``dl.device("gpu:0")``, PyTorch in one whose models and
tensors are on "cuda" with TF32 off (``torch.backends.cuda.matmul.allow_tf32`` and
``torch.backends.cudnn.allow_tf32`` False), so both compute in float32. The workloads are
``spec.GPU_WORKLOADS``: the training and inference ones, timed as on the CPU (each step ends with a
device synchronize), and "gemm", dlcore's CUDA matmul kernel against ``torch.matmul`` at each size
(GFLOPS, and dlcore's share of PyTorch's). Each worker names the card it runs on
(``numba.cuda.get_current_device().name``, ``torch.cuda.get_device_name(0)``).

What cannot run is reported, never crashed on: a framework without a GPU here (no CUDA device, a
CPU-only PyTorch, no numba.cuda) is left out with the reason its worker gave; a workload whose
model has a layer or op without a GPU path in dlcore yet is "skipped" with dlcore's error text.
"""
from . import spec as _spec
from .compare_processes import WorkerError

NOTES = [
    "GPU mode: dlcore inside dl.device('gpu:0') (numba.cuda kernels), train_on_batch / predict_on_batch "
    "with NumPy batches in and NumPy results out; PyTorch eager on 'cuda', TF32 off for matmul and cuDNN "
    "(float32_matmul_precision 'highest'), cudnn.benchmark at its default, the NumPy batch moved to the "
    "GPU each step and the loss (.item()) or predictions (.cpu()) moved back, as dlcore does.",
    "Every timed step ends with a device synchronize (cuda.synchronize() / torch.cuda.synchronize()), "
    "so a step's time is its whole GPU time.",
    "PyTorch: training on logits with F.cross_entropy (Keras: softmax + sparse categorical "
    "cross-entropy); CNN inference with channels_last.",
    "gemm: out = a @ b, float32 (n, n) device arrays, dlcore's kernels.get('matmul', device='cuda') "
    "against torch.matmul(a, b, out=c); each product's first rows are checked against NumPy float64 "
    "before timing (a TF32 product fails the check). Training FLOPs are counted as 3x the forward FLOPs.",
]


def select_workloads(names):
    """The GPU workloads ``names`` (all of spec.GPU_WORKLOADS by default), in their order."""
    if not names:
        return list(_spec.GPU_WORKLOADS)
    unknown = [n for n in names if n not in _spec.GPU_WORKLOADS]
    if unknown:
        raise SystemExit(f"workload(s) {unknown} do not run with --device gpu; "
                         f"GPU workloads: {', '.join(_spec.GPU_WORKLOADS)}")
    return [n for n in _spec.GPU_WORKLOADS if n in names]


def cpu_only(framework):
    """Why ``framework`` is not compared on the GPU, or None if it is."""
    if framework in _spec.GPU_FRAMEWORKS:
        return None
    return (f"runs on the CPU only in this comparison (--device gpu compares dlcore with "
            f"{' and '.join(_spec.FRAMEWORK_LABELS[f] for f in _spec.GPU_FRAMEWORKS if f != 'dlcore')} CUDA)")


def start_workers(runner, meta):
    """Start each framework's GPU worker; one that cannot set up on the GPU (its error: no CUDA
    device, a CPU-only build) leaves the comparison, its reason in ``meta["frameworks_skipped"]``.
    Fills ``meta["gpu"]`` with each worker's card description."""
    cards = {}
    for fw in list(runner.frameworks):
        try:
            cards[fw] = runner.worker(fw).hello["info"]["gpu"]
        except WorkerError as exc:
            runner.log(f"{fw}: no GPU ({exc})")
            meta["frameworks_skipped"][fw] = str(exc)
            runner.frameworks.remove(fw)
    meta["frameworks"] = list(runner.frameworks)
    names = sorted({c["card"] for c in cards.values()})
    meta["gpu"] = {"card": " / ".join(names) if names else None, "frameworks": cards}


def measure_gemm(runner, name):
    """The GEMM workload at each size: GFLOPS per framework (median, min-max over runs) and, for
    each peer, dlcore's GFLOPS as a share of the peer's (``share``: peer time / dlcore time)."""
    wl = _spec.workload_spec(name, tiny=runner.tiny)
    sizes = list(wl["model_spec"]["sizes"])
    target = [(int(key.partition("@")[2]), t) for key, t in _spec.GPU_TARGETS.items() if key.startswith(f"{name}@")]
    out = {"kind": "gemm", "sizes": sizes, "unit": "GFLOPS", "better": "higher",
           "target": target[0][1] if target else None, "target_n": target[0][0] if target else None,
           "frameworks": {fw: {} for fw in runner.frameworks}}
    for n in sizes:
        runner.log(f"{name}: {n}x{n}x{n} float32")
        entry = runner.measure_timed(name, variant={"n": n})
        for fw, r in entry["frameworks"].items():
            cell = out["frameworks"][fw][str(n)] = {"status": r.get("status"), "reason": r.get("reason")}
            if r.get("status") == "ok":
                cell.update({k: r[k] for k in ("median", "min", "max", "runs", "info")})
                cell["seconds"] = r["seconds"]
                if fw != "dlcore":
                    cell["share"] = r.get("ratio")
    return out


def measure(runner, results, workloads):
    """Fill ``results`` with the GPU comparison: the cards, the timed workloads, the GEMM."""
    meta = results["meta"]
    start_workers(runner, meta)
    results["gemm"] = {}
    for name in workloads:
        runner.log(name)
        if _spec.workload_spec(name)["kind"] == "gemm":
            results["gemm"][name] = measure_gemm(runner, name)
        else:
            results["workloads"][name] = runner.measure_timed(name)
    meta["targets"] = target_checks(results)


def target_checks(results):
    """Issue 18's GPU targets against this run: {target: {"target", "value", "met"}} for each
    target whose workload ran on dlcore and PyTorch (value: dlcore's speed / PyTorch's)."""
    out = {}
    for key, target in _spec.GPU_TARGETS.items():
        name, _, size = key.partition("@")
        if size:
            cell = results.get("gemm", {}).get(name, {}).get("frameworks", {}).get("torch", {}).get(size, {})
            value = cell.get("share")
        else:
            value = results["workloads"].get(name, {}).get("frameworks", {}).get("torch", {}).get("ratio")
        if value is not None:
            out[key] = {"target": target, "value": value, "met": value >= target}
    return out
