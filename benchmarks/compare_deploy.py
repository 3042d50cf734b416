"""The comparison's deployment measurements (benchmarks/compare.py): inference under a background
load, concurrent predict from several Python threads, and the memory of an inference call.

- ``BackgroundLoad(n)``: ``n`` processes spinning on the CPU (a deployment's neighbours) while the
  inference workloads are measured again (``--background-load N``), reported beside the idle figures.
- ``measure_concurrent``: one model per framework, ``callers`` Python threads calling its batch-1
  predict together; calls/s for each number of callers, alternated run by run.
- ``measure_infer_memory``: per inference workload, a fresh process warms up on one copy of the
  model, then reports the resident memory a second copy's first call at the workload's batch adds
  (dlcore also reports its memory plan: arena, unplanned and live-peak bytes).
"""
import statistics
import subprocess
import sys
import time

from . import spec as _spec
from .compare_measure import _rotate, _stats
from .compare_processes import WorkerError, _child_code, run_child

SPIN = "while True:\n    pass"


class BackgroundLoad:
    """``n`` busy processes for the duration of a ``with`` block."""

    def __init__(self, n):
        self.n = int(n)
        self.procs = []

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                      for _ in range(self.n)]
        time.sleep(0.2 if self.n else 0.0)  # the spinners are running before anything is timed
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []
        return False


def under_load(runner, name, n, idle):
    """The timed workload ``name`` measured again while ``n`` processes spin; the figures beside
    ``idle``'s (its entry) with each framework's growth (loaded / idle, in time)."""
    with BackgroundLoad(n):
        loaded = runner.measure_timed(name)
    out = {"processes": n, "unit": loaded["unit"], "metric": loaded["metric"], "frameworks": {}}
    for fw, r in loaded["frameworks"].items():
        cell = out["frameworks"][fw] = {"status": r.get("status"), "reason": r.get("reason")}
        if r.get("status") != "ok":
            continue
        cell.update({k: r[k] for k in ("median", "min", "max", "runs")})
        cell.update({k: r[k] for k in ("seconds", "mean_seconds", "p99_seconds")})
        base = idle["frameworks"].get(fw, {})
        if base.get("status") == "ok":
            cell["growth"] = r["seconds"]["median"] / base["seconds"]["median"]
            cell["growth_mean"] = r["mean_seconds"]["median"] / base["mean_seconds"]["median"]
            cell["idle_mean_seconds"] = base["mean_seconds"]["median"]
            cell["idle_p99_seconds"] = base["p99_seconds"]
    return out


def measure_concurrent(runner, name):
    """Batch-1 predict calls/s of one model shared by 1, 2, ... Python threads, per framework."""
    wl = _spec.workload_spec(name, tiny=runner.tiny)
    callers = list(wl["callers"])
    seconds = 0.05 if runner.tiny else max(0.5, 2 * runner.cfg["run_s"])
    out = {"kind": "concurrent", "base": wl["base"], "model": wl["model"], "callers": callers,
           "unit": "calls/s", "better": "higher", "seconds_per_run": seconds, "frameworks": {}}
    base = _spec.workload_spec(wl["base"], tiny=runner.tiny)
    key = f"{name}@concurrent"
    active = []
    for fw in runner.frameworks:
        result = out["frameworks"][fw] = {}
        try:
            reply = runner.worker(fw).call("build", key=key, workload=wl["base"], tiny=runner.tiny,
                                           **runner._extra(fw, base))
            if "na" not in reply:
                runner.worker(fw).call("warmup", key=key, min_iters=runner.cfg["warmup"][0],
                                       min_s=runner.cfg["warmup"][1])
        except WorkerError as exc:
            result.update(status="error", reason=str(exc))
            continue
        if "na" in reply:
            result.update(status="n/a", reason=reply["na"])
            continue
        result["status"] = "ok"
        active.append(fw)
    rates = {fw: {c: [] for c in callers} for fw in active}  # calls/s over the wall clock
    medians = {fw: {c: [] for c in callers} for fw in active}  # callers / median seconds of a call
    busy = {fw: {c: [] for c in callers} for fw in active}  # process CPU seconds / wall seconds
    for rep in range(runner.cfg["reps"]):
        for fw in _rotate(active, rep):
            for c in (callers if rep % 2 == 0 else callers[::-1]):
                if fw not in rates:
                    continue
                try:
                    r = runner.worker(fw).call("concurrent", key=key, callers=c, seconds=seconds)
                except WorkerError as exc:
                    out["frameworks"][fw].update(status="error", reason=str(exc))
                    rates.pop(fw)
                    continue
                rates[fw][c].append(r["calls"] / r["seconds"])
                busy[fw][c].append(r["cpu_seconds"] / r["seconds"])
                if r["call_s"]:
                    medians[fw][c].append(c / r["call_s"])
    for fw, per in rates.items():
        result = out["frameworks"][fw]
        result["by_callers"] = {str(c): _stats(v) for c, v in per.items() if v}
        one = statistics.median(per[callers[0]]) if per[callers[0]] else None
        result["scaling"] = {str(c): statistics.median(v) / one for c, v in per.items() if v and one}
        result["by_callers_median_call"] = {str(c): _stats(v) for c, v in medians[fw].items() if v}
        one = statistics.median(medians[fw][callers[0]]) if medians[fw][callers[0]] else None
        result["scaling_median_call"] = {str(c): statistics.median(v) / one
                                         for c, v in medians[fw].items() if v and one}
        result["cpu_per_wall"] = {str(c): statistics.median(v) for c, v in busy[fw].items() if v}
    for fw in runner.frameworks:
        if fw in runner.workers:
            try:
                runner.workers[fw].call("free", key=key)
            except WorkerError:
                pass
    return out


def measure_infer_memory(runner, name):
    """Per inference workload of ``name``'s bases and per framework: the memory one inference call
    adds in a warm fresh process (see ``_common.infer_memory``)."""
    wl = _spec.workload_spec(name, tiny=runner.tiny)
    out = {"kind": "infer-memory", "model": wl["model"], "bases": list(wl["bases"]), "unit": "MB",
           "better": "lower", "frameworks": {fw: {} for fw in runner.frameworks}}
    for base in wl["bases"]:
        spec = dict(_spec.workload_spec(base, tiny=runner.tiny), kind="infer-memory")
        for fw in runner.frameworks:
            cell = out["frameworks"][fw][base] = {}
            if fw == "dlcore_onnx":
                cell.update(status="n/a", reason="the import variant runs dlcore's plan: see dlcore")
                continue
            extra = runner._extra(fw, dict(spec, kind="infer"))
            try:
                na = runner.worker(fw).call("supports", workload=base, tiny=runner.tiny, **extra)["na"]
            except WorkerError as exc:
                cell.update(status="error", reason=str(exc))
                continue
            if na:
                cell.update(status="n/a", reason=na)
                continue
            try:
                res = run_child(_child_code(fw, "infer_memory", {"threads": runner.threads,
                                                                   "spec": dict(spec, **extra)}),
                                runner.env, runner.log_dir)
            except WorkerError as exc:
                cell.update(status="error", reason=str(exc))
                continue
            report = res["report"] or {}
            cell.update(status="ok", **{k: v for k, v in report.items() if k.endswith("_mb")})
    return out


def markdown(results, fws):
    """The deployment sections of the report: under load, concurrent predict, inference memory."""
    lines = []
    loaded = {n: e["under_load"] for n, e in results["workloads"].items() if e.get("under_load")}
    if loaded:
        n = next(iter(loaded.values()))["processes"]
        lines += ["", f"**Under background load** ({n} busy process{'es' if n != 1 else ''} spinning while "
                  "measured; the idle figures from the table above): median, and loaded ÷ idle in time ↓", "",
                  "| workload | unit | " + " | ".join(f"{_label(fw)} idle | loaded | ×" for fw in fws) + " |",
                  "|---|---|" + "|".join(["---:"] * (3 * len(fws))) + "|"]
        for name, u in loaded.items():
            idle = results["workloads"][name]["frameworks"]
            cells = []
            for fw in fws:
                i, l = idle.get(fw, {}), u["frameworks"].get(fw, {})
                cells += [_fmt(i.get("median")) if i.get("status") == "ok" else "n/a",
                          _fmt(l.get("median")) if l.get("status") == "ok" else "n/a",
                          f"{l['growth']:.2f}×" if l.get("growth") else "n/a"]
            lines.append(f"| {name} | {u['unit']} | " + " | ".join(cells) + " |")
        lines += ["", "The same runs by their mean call (a run's time over its calls: what a caller gets done, "
                  "the calls that waited for a descheduled thread included) and their 99th-percentile call, "
                  "in microseconds; loaded ÷ idle in time ↓", "",
                  "| workload | " + " | ".join(f"{_label(fw)} mean idle | loaded | × | p99 idle | loaded"
                                             for fw in fws) + " |",
                  "|---|" + "|".join(["---:"] * (5 * len(fws))) + "|"]
        for name, u in loaded.items():
            cells = []
            for fw in fws:
                l = u["frameworks"].get(fw, {})
                if l.get("status") != "ok" or "growth_mean" not in l:
                    cells += ["n/a"] * 5
                    continue
                cells += [f"{l['idle_mean_seconds'] * 1e6:.1f}", f"{l['mean_seconds']['median'] * 1e6:.1f}",
                          f"{l['growth_mean']:.2f}×", f"{l['idle_p99_seconds'] * 1e6:.0f}",
                          f"{l['p99_seconds'] * 1e6:.0f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, c in results.get("deploy", {}).items():
        if c["kind"] == "concurrent":
            lines += ["", f"**{name}** (base workload {c['base']}): one model shared by N Python threads. "
                      "calls/s ↑ over the wall clock, median (min–max), and its scaling over one caller; "
                      "from the median call (N ÷ median seconds of a call: what the threads reach while "
                      "they run, less sensitive to a shared machine's descheduling) and its scaling; "
                      "process CPU ÷ wall (up to N when nothing serializes the threads; the median-call "
                      "figures mean something only where it shows the threads ran together: on a machine "
                      "whose cores other processes take, they take turns)", "",
                      "| framework | callers | calls/s | scaling | from the median call | scaling | CPU ÷ wall |",
                      "|---|---:|---:|---:|---:|---:|---:|"]
            for fw in fws:
                r = c["frameworks"].get(fw, {})
                if r.get("status") != "ok":
                    continue
                for n in c["callers"]:
                    k = str(n)
                    scale = r.get("scaling", {}).get(k)
                    scale_med = r.get("scaling_median_call", {}).get(k)
                    lines.append(f"| {_label(fw)} | {n} | {_cell(r['by_callers'].get(k))} | "
                                 f"{f'{scale:.2f}×' if scale else 'n/a'} | "
                                 f"{_cell(r.get('by_callers_median_call', {}).get(k))} | "
                                 f"{f'{scale_med:.2f}×' if scale_med else 'n/a'} | "
                                 f"{_fmt(r.get('cpu_per_wall', {}).get(k))} |")
        elif c["kind"] == "infer-memory":
            lines += ["", f"**{name}**: MB one inference call adds in a warm fresh process (held after it / "
                      "peak); dlcore's memory plan: arena (unplanned per-call total, live peak)", "",
                      "| workload | " + " | ".join(_label(fw) for fw in fws) + " |",
                      "|---|" + "|".join(["---:"] * len(fws)) + "|"]
            for base in c["bases"]:
                cells = []
                for fw in fws:
                    r = c["frameworks"].get(fw, {}).get(base, {})
                    if r.get("status") != "ok":
                        cells.append("n/a")
                        continue
                    text = f"{_fmt(r.get('added_mb'))} / {_fmt(r.get('added_peak_mb'))}"
                    if "arena_mb" in r:
                        text += (f"; arena {_fmt(r['arena_mb'])} ({_fmt(r['unplanned_mb'])}, "
                                 f"{_fmt(r['live_peak_mb'])})")
                    cells.append(text)
                lines.append(f"| {base} | " + " | ".join(cells) + " |")
    return lines


def _fmt(x):
    from .compare_report import _fmt as fmt

    return fmt(x)


def _cell(stats):
    from .compare_report import _cell as cell

    return cell(stats)


def _label(fw):
    return _spec.FRAMEWORK_LABELS[fw]
