"""Side-by-side comparison of dlcore with PyTorch, Keras (TensorFlow backend) and ONNX Runtime.

    python -m benchmarks.compare                 # every standard workload, every installed peer
    python -m benchmarks.compare --quick         # fewer repetitions and shapes: under two minutes
    python -m benchmarks.compare --workload mlp-train --workload cold-start-mlp
    python -m benchmarks.compare --frameworks dlcore --tiny   # smallest shapes, one repetition
    python -m benchmarks.compare --quick --workload scaling-distributed   # 1 and 2 ranks under mpiexec
    python -m benchmarks.compare --device gpu --quick  # dlcore numba.cuda vs PyTorch CUDA (compare_gpu.py)

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
a framework lacks is "n/a", with the reason in the JSON; nothing is estimated. ``--device gpu``
compares dlcore's GPU path with PyTorch CUDA instead (compare_gpu.py): a workload dlcore cannot
run on the GPU yet is "skipped", with dlcore's error as the reason.

Output: a Markdown report on stdout (and ``--markdown-out``), a JSON file and PNG charts
(matplotlib, if installed) in ``--out-dir``.
"""
import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import compare_gpu as _gpu
from . import spec as _spec
from .compare_processes import MODES, PKG, default_threads, machine_info, measure_ceiling, probe, versions
from .compare_distributed import measure as measure_distributed
from .compare_deploy import measure_concurrent, measure_infer_memory, under_load
from .compare_measure import Runner
from .compare_report import plot, to_markdown


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------
def select_workloads(names, skip_extra=False, skip_distributed=False):
    """The workloads ``names`` (all by default; ``skip_extra`` leaves out the MLP twins of the
    CNN process workloads, ``skip_distributed`` the multi-process launches, unless named)."""
    if not names:
        return [n for n, w in _spec.WORKLOADS.items() if not (skip_extra and w.get("extra"))
                and not (skip_distributed and w["kind"] == "distributed")]
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


CPU_NOTES = [
    "Keras: TensorFlow backend, train_on_batch / predict_on_batch (compiled tf.function "
    "steps); compile(jit_compile='auto'), which Keras resolves to no XLA without a GPU.",
    "PyTorch: eager; CNN inference with channels_last; training on logits with "
    "F.cross_entropy (Keras: softmax + sparse categorical cross-entropy).",
    "ONNX Runtime: inference only, on the models exported from PyTorch.",
    "dlcore: train_on_batch / predict_on_batch; cold start calls predict.",
    "Cold start: every framework's Python bytecode caches are kept (as installed packages have "
    "them); the environment's PYTHONDONTWRITEBYTECODE is lifted for the children.",
    "Training FLOPs are counted as 3x the forward FLOPs (matrix products and "
    "convolutions only).",
    "Attention: one causal self-attention op (dlcore and Keras: ops.dot_product_attention, "
    "Keras in a tf.function; PyTorch: F.scaled_dot_product_attention); memory is the peak "
    "RSS a fresh process adds during one call, after a warm-up at sequence 64.",
]


def run(workloads=None, frameworks=None, threads=None, mode="quick", tiny=False, log_dir=None,
        progress=True, argv=None, device="cpu", background_load=0):
    """Run the comparison and return the results (the JSON document as a dict). ``device="gpu"``:
    dlcore's GPU path against PyTorch CUDA (compare_gpu.py); with ``background_load`` N, every CPU
    inference workload is measured again while N processes spin."""
    if device not in ("cpu", "gpu"):
        raise ValueError(f"run: device must be 'cpu' or 'gpu', received {device!r}")
    gpu = device == "gpu"
    threads = threads or default_threads()
    # --tiny (the test suite's run) launches no mpiexec unless scaling-distributed is named
    workloads = _gpu.select_workloads(workloads) if gpu else select_workloads(
        workloads, skip_extra=(mode == "quick" and not tiny), skip_distributed=tiny)
    everyone = _spec.GPU_FRAMEWORKS if gpu else _spec.FRAMEWORKS
    requested = [fw for fw in _spec.FRAMEWORKS if fw in frameworks] if frameworks else list(everyone)
    skipped = {}
    chosen = []
    for fw in requested:
        reason = (_gpu.cpu_only(fw) if gpu else None) or probe(fw)
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
            "mode": "tiny" if tiny else mode, "device": device,
            "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in MODES["tiny" if tiny else mode].items()},
            "threads": threads, "background_load": background_load, "frameworks": chosen,
            "frameworks_skipped": skipped,
            "machine": machine_info(threads), "versions": versions(),
            "ratio": "peer / dlcore, in time (or peak RSS): above 1, dlcore is faster (or smaller)",
            "notes": list(_gpu.NOTES if gpu else CPU_NOTES),
        },
        "ceiling": None, "workloads": {}, "scaling": {}, "attention": {}, "distributed": {}, "deploy": {},
        "layers": [],
        "baseline": None,
    }
    runner = Runner(chosen, threads, mode, tiny, log_dir, progress, device)
    try:
        runner.log(f"frameworks: {', '.join(chosen) or 'none'}; threads: {threads}; mode: {results['meta']['mode']}"
                   f"; device: {device}")
        if gpu:
            _gpu.measure(runner, results, workloads)
        else:
            _measure_cpu(runner, results, workloads, threads, log_dir, background_load)
        results["meta"]["worker_info"] = {fw: w.hello.get("info") for fw, w in runner.workers.items()}
        results["meta"]["onnx_exports"] = {m: {"path_used": bool(p), "exporter": e}
                                           for m, (p, e) in runner.onnx.items()}
    finally:
        runner.close()
    results["meta"]["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["meta"]["elapsed_s"] = time.perf_counter() - started
    return results


def _measure_cpu(runner, results, workloads, threads, log_dir, background_load=0):
    """Fill ``results`` with the CPU comparison: the GEMM ceiling, the workloads (the inference ones
    again under ``background_load`` busy processes when asked), the baseline process and dlcore's
    kernel and layer rates."""
    libs = ("numpy", "torch") if "torch" in runner.frameworks else ("numpy",)
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
            if background_load and kind == "infer":
                runner.log(f"{name} under a background load of {background_load} busy processes")
                entry["under_load"] = under_load(runner, name, background_load, entry)
        elif kind == "concurrent":
            results["deploy"][name] = measure_concurrent(runner, name)
        elif kind == "infer-memory":
            results["deploy"][name] = measure_infer_memory(runner, name)
        elif kind == "scaling":
            results["scaling"][name] = runner.measure_scaling(name)
        elif kind == "attention":
            results["attention"][name] = runner.measure_attention(name)
        elif kind == "distributed":
            results["distributed"][name] = measure_distributed(name, runner.frameworks, runner.mode, runner.tiny,
                                                               log_dir, runner.log)
        else:
            results["workloads"][name] = runner.measure_process(name)
    if any(_spec.WORKLOADS[n]["kind"] == "cold-start" for n in workloads) or any(
            _spec.WORKLOADS[n]["kind"] == "memory" for n in workloads):
        runner.log("baseline: python -c 'import numpy'")
        results["baseline"] = runner.measure_baseline()
    runner.log("dlcore kernel and layer rates")
    results["layers"] = runner.measure_layers(ceiling)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def parameter_counts(workloads=None, frameworks=None, tiny=False, threads=1):
    """{workload: {framework: trainable parameters or None (n/a)}} for the train/infer workloads,
    each model built in its framework's worker. ONNX Runtime runs PyTorch's export: not counted."""
    names = [n for n in select_workloads(workloads) if _spec.WORKLOADS[n]["kind"] in ("train", "infer")]
    fws = [fw for fw in (frameworks or _spec.FRAMEWORKS) if fw not in ("onnxruntime", "dlcore_onnx", "onnxruntime_int8")
           and probe(fw) is None]
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
                                     epilog="Workloads: " + ", ".join(_spec.WORKLOADS)
                                     + ". With --device gpu: " + ", ".join(_spec.GPU_WORKLOADS))
    parser.add_argument("--quick", action="store_true",
                        help="fewer repetitions and sizes, no MLP twins of the CNN process workloads "
                             "(under two minutes on an idle machine)")
    parser.add_argument("--tiny", action="store_true",
                        help="smallest shapes, one repetition (the test suite's mode; numbers are meaningless)")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help="run only this workload (repeatable)")
    parser.add_argument("--frameworks", default=None,
                        help=f"comma-separated subset of {','.join(_spec.FRAMEWORKS)} (default: all installed)")
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                        help="gpu: dlcore under dl.device('gpu:0') against PyTorch CUDA (TF32 off) on the GPU "
                             "workloads and the GEMM; the other frameworks are left out (default: cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for every framework (default: the cores available)")
    parser.add_argument("--out-dir", default="bench-results", help="JSON, Markdown and PNG go here")
    parser.add_argument("--json-out", default=None, help="JSON path (default OUT_DIR/results.json)")
    parser.add_argument("--markdown-out", default=None, help="Markdown path (default OUT_DIR/results.md)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG charts")
    parser.add_argument("--note", default=None,
                        help="a sentence printed at the top of the Markdown (e.g. the conditions of the run)")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="measure every inference workload again while N processes spin on the CPU "
                             "(a deployment's neighbours), reported beside the idle figures")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--render", metavar="JSON", default=None,
                        help="measure nothing: rewrite the Markdown and charts from a results JSON")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.list:
        names = _spec.GPU_WORKLOADS if args.device == "gpu" else _spec.WORKLOADS
        for name in names:
            w = _spec.workload_spec(name)
            print(f"{name:22s} {w['kind']:12s} model={w['model']}" + (" (extra)" if w.get("extra") else ""))
        return 0
    frameworks = [f.strip() for f in args.frameworks.split(",")] if args.frameworks else None
    if frameworks:
        bad = [f for f in frameworks if f not in _spec.FRAMEWORKS]
        if bad:
            raise SystemExit(f"unknown framework(s) {bad}; known: {', '.join(_spec.FRAMEWORKS)}")
    if args.threads is not None and args.threads < 1:
        raise SystemExit("--threads must be a positive integer")
    if args.background_load < 0:
        raise SystemExit("--background-load must be 0 or a positive integer")
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.render:
        results = json.loads(Path(args.render).read_text())
    else:
        results = run(workloads=args.workload, frameworks=frameworks, threads=args.threads,
                      mode="quick" if args.quick else "full", tiny=args.tiny,
                      argv=list(argv) if argv is not None else sys.argv[1:], device=args.device,
                      background_load=args.background_load)
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
