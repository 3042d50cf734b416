"""The one-shot GPU check (issue 18, item 4): on a machine with an NVIDIA GPU, in a source
checkout, installing nothing, within ~8 minutes:

    python -m benchmarks.gpu_check --out "$OUT"        # or: OUT=... bash benchmarks/gpu_check.sh

1. prepare: the ``dlcore/kernels`` and ``dlcore/benchmarks`` links of a source tree, and the
   Cython kernels built in place (``setup.py build_ext --inplace``) if this Python has none;
2. probe: the card as numba.cuda and PyTorch see it (no GPU: the check stops, exit status 2);
3. compare: ``python -m benchmarks.compare --device gpu --quick`` (dlcore vs PyTorch CUDA), first,
   so that its figures come back even if a later step runs out of time;
4. cuda-tests: the tests/cuda suites (sim_*.py) on the hardware, not the simulator
   (DLCORE_CUDA_HARDWARE=1, NUMBA_ENABLE_CUDASIM unset);
5. digits: the seed CNN (examples/digits_cnn.py) trained inside ``dl.device("gpu:0")``, held to
   its 98% holdout accuracy (DLCORE_TARGET_ACC).

Writes to OUT: gpu_check.md (the summary: each step's status, time and figures, then the
comparison's report), gpu_check.log (every step's output), and the comparison's results.json,
results.md and ratios.png. Exit status 0 when every step passed, 1 when one failed, 2 without GPU.
``--simulator`` keeps NUMBA_ENABLE_CUDASIM=1 (the test suite's way to run it without a GPU);
``--only`` and ``--workload`` narrow the run.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The comparison first: its figures are what a short loan of a GPU is for.
STEPS = ("compare", "cuda-tests", "digits")
# seconds each step may take at most (the whole check is held to --budget-s as well)
LIMITS = {"prepare": 240, "probe": 60, "compare": 240, "cuda-tests": 180, "digits": 150}
TARGET_ACC = 0.98

PROBE = r"""
import json
out = {}
try:
    from numba import config, cuda
    out["numba_cuda"] = bool(cuda.is_available())
    if out["numba_cuda"]:
        if config.ENABLE_CUDASIM:
            out["card"] = "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)"
        else:
            name = cuda.get_current_device().name
            out["card"] = name.decode() if isinstance(name, bytes) else str(name)
except Exception as exc:
    out["numba_cuda"], out["numba_error"] = False, f"{type(exc).__name__}: {exc}"
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
except ImportError:
    out["torch"] = None
import dlcore as dl
out["dlcore_devices"] = dl.config.list_devices()
print("PROBE-JSON " + json.dumps(out))
"""

DIGITS = ("import runpy, sys\n"
          "import dlcore as dl\n"
          "sys.argv = ['examples/digits_cnn.py']\n"
          "with dl.device('gpu:0'):\n"
          "    runpy.run_path('examples/digits_cnn.py', run_name='__main__')\n")


class Check:
    def __init__(self, out, budget_s, simulator, log):
        self.out = Path(out)
        self.deadline = time.monotonic() + budget_s
        self.simulator = simulator
        self.log = log
        self.steps = {}

    def env(self, **extra):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p), **extra}
        if not self.simulator:
            env.pop("NUMBA_ENABLE_CUDASIM", None)
        return env

    def run(self, step, argv, env=None):
        """Run ``argv`` in the checkout, its output appended to the log; (return code or None on
        timeout, output, seconds)."""
        limit = min(LIMITS[step], self.deadline - time.monotonic())
        if limit < 10:
            self.steps[step] = {"status": "not run", "reason": "out of time (--budget-s)"}
            return None, "", 0.0
        self.log.write(f"\n===== {step}: {' '.join(argv)} (limit {limit:.0f} s)\n")
        self.log.flush()
        start = time.monotonic()
        try:
            proc = subprocess.run(argv, cwd=ROOT, env=env or self.env(), capture_output=True, text=True,
                                  timeout=limit)
            code, text = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired as exc:
            code = None
            text = "".join(x.decode() if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
        seconds = time.monotonic() - start
        self.log.write(text + f"\n===== {step}: {'timed out' if code is None else f'exit {code}'} "
                              f"after {seconds:.0f} s\n")
        self.log.flush()
        return code, text, seconds

    def record(self, step, code, seconds, **figures):
        status = "timed out" if code is None else ("passed" if code == 0 else "failed")
        self.steps[step] = {"status": status, "seconds": round(seconds, 1), **figures}


def prepare(check):
    """The package links of a source tree and, if this Python lacks them, the Cython kernels."""
    for name in ("kernels", "benchmarks"):
        link = ROOT / "dlcore" / name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(Path("..") / name)
    code = ("import importlib; from dlcore import kernels; "
            "[importlib.import_module(f'dlcore.kernels.{f}') for f in kernels.FAMILIES]")
    if subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=check.env(), capture_output=True).returncode == 0:
        check.steps["prepare"] = {"status": "passed", "seconds": 0.0, "built": False}
        return True
    jobs = str(os.cpu_count() or 1)
    rc, _, seconds = check.run("prepare", [sys.executable, "setup.py", "build_ext", "--inplace", "-j", jobs])
    check.record("prepare", rc, seconds, built=True)
    return rc == 0


def probe(check):
    """The card as numba.cuda and PyTorch see it: "passed", "no GPU" or "failed" (the probe broke)."""
    rc, text, seconds = check.run("probe", [sys.executable, "-c", PROBE])
    found = {}
    for line in text.splitlines():
        if line.startswith("PROBE-JSON "):
            found = json.loads(line[len("PROBE-JSON "):])
    check.record("probe", rc, seconds, **found)
    if rc == 0 and not found.get("numba_cuda"):
        check.steps["probe"].update(status="no GPU", reason="numba.cuda.is_available() is False"
                                    + (f" ({found['numba_error']})" if found.get("numba_error") else ""))
    return check.steps["probe"]["status"]


def pytest_counts(text):
    """{"passed": n, "failed": n, "skipped": n, ...} from pytest's closing line ("12 passed,
    1 skipped in 30.1s"), wherever the lines of stderr fell; {} if there is none."""
    tallies = [line for line in text.splitlines() if re.search(r"\d+ (passed|failed|errors?)\b.* in [0-9.]+s", line)]
    return {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|errors?|skipped)", tallies[-1] if tallies else "")}


def cuda_tests(check):
    suites = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "cuda").glob("sim_*.py"))
    rc, text, seconds = check.run("cuda-tests", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                                 "-rs", *suites], env=check.env(DLCORE_CUDA_HARDWARE="1"))
    counts = pytest_counts(text)
    check.record("cuda-tests", rc, seconds, suites=suites, **counts)
    if rc == 0 and counts.get("skipped"):  # a suite that skips on hardware did not run there
        check.steps["cuda-tests"].update(status="failed", reason="tests skipped on the hardware (see the log)")


def digits(check):
    rc, text, seconds = check.run("digits", [sys.executable, "-c", DIGITS],
                                  env=check.env(DLCORE_TARGET_ACC=str(TARGET_ACC), DLCORE_VERBOSE="2"))
    found = re.findall(r"holdout accuracy ([0-9.]+)", text)
    check.record("digits", rc, seconds, accuracy=float(found[-1]) if found else None, target=TARGET_ACC)


def compare(check, tiny=False, workloads=()):
    argv = [sys.executable, "-m", "benchmarks.compare", "--device", "gpu", "--tiny" if tiny else "--quick",
            "--out-dir", str(check.out)]
    for name in workloads:
        argv += ["--workload", name]
    rc, _, seconds = check.run("compare", argv)
    figures = {}
    path = check.out / "results.json"
    if rc == 0 and path.exists():
        results = json.loads(path.read_text())
        meta = results["meta"]
        figures = {"card": (meta.get("gpu") or {}).get("card"), "frameworks": meta["frameworks"],
                   "left_out": meta["frameworks_skipped"], "targets": meta.get("targets"),
                   "skipped_workloads": {n: r["reason"] for n, e in results["workloads"].items()
                                         for fw, r in e["frameworks"].items() if r.get("status") == "skipped"}}
    check.record("compare", rc, seconds, **figures)


def summary(check, started):
    lines = [f"# GPU check, {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"`python -m benchmarks.gpu_check` in {ROOT} ({time.monotonic() - started:.0f} s"
             + (", under the CUDA simulator" if check.simulator else "") + ").", "",
             "| step | status | seconds | figures |", "|---|---|---:|---|"]
    for step, r in check.steps.items():
        figures = "; ".join(f"{k}: {v}" for k, v in r.items() if k not in ("status", "seconds"))
        lines.append(f"| {step} | {r['status']} | {r.get('seconds', '')} | {figures.replace('|', '/')} |")
    report = check.out / "results.md"
    if check.steps.get("compare", {}).get("status") == "passed" and report.exists():
        lines += ["", "## The comparison (results.md)", "", report.read_text()]
    (check.out / "gpu_check.md").write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="the report folder (default: $OUT)")
    parser.add_argument("--budget-s", type=float, default=480, help="the whole check's time (default 480)")
    parser.add_argument("--only", action="append", choices=("probe",) + STEPS,
                        help="run only this step after prepare and probe (repeatable; probe: none)")
    parser.add_argument("--workload", action="append", default=[], help="the comparison's workloads (repeatable)")
    parser.add_argument("--tiny", action="store_true", help="the comparison in --tiny mode (tests)")
    parser.add_argument("--simulator", action="store_true",
                        help="keep NUMBA_ENABLE_CUDASIM=1 from the environment (tests without a GPU)")
    args = parser.parse_args(argv)
    if not args.out:
        parser.error("give the report folder as --out DIR or in $OUT")
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, received {args.budget_s}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = args.only or STEPS
    with open(out / "gpu_check.log", "w") as log:
        check = Check(out, args.budget_s, args.simulator, log)
        try:
            if not prepare(check):
                return 1
            found = probe(check)
            if found != "passed":
                return 2 if found == "no GPU" else 1
            if "compare" in steps:
                compare(check, args.tiny, args.workload)
            if "cuda-tests" in steps:
                cuda_tests(check)
            if "digits" in steps:
                digits(check)
        finally:
            summary(check, started)
            print((out / "gpu_check.md").read_text())
    return 0 if all(r["status"] == "passed" for r in check.steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
