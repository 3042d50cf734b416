"""The comparison's measurements (benchmarks/compare.py): the Runner, which alternates the
frameworks' workers run by run and times workloads, process starts, memory, scaling and dlcore's
own layers."""
import statistics
import sys
import time
from pathlib import Path

from . import spec as _spec
from .compare_processes import MODES, Worker, WorkerError, _child_code, child_env, run_child


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------
def _stats(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def _percentile(values, q):
    """The q-th percentile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-q * len(ordered) // 100) - 1))]


def _rotate(items, k):
    k %= max(1, len(items))
    return items[k:] + items[:k]


def metric_of(spec):
    """(metric name, unit, better, function of seconds per iteration)."""
    batch = spec["batch"]
    if spec["kind"] == "gemm":
        flops = _spec.workload_flops(spec)
        return "throughput", "GFLOPS", "higher", lambda t: flops / t / 1e9
    if spec["kind"] == "attention" or (spec["kind"] == "infer" and batch == 1):
        return "latency", "ms", "lower", lambda t: t * 1e3
    return "throughput", "samples/s", "higher", lambda t: batch / t


class Runner:
    def __init__(self, frameworks, threads, mode, tiny, log_dir, progress=True, device="cpu"):
        self.frameworks = list(frameworks)
        self.threads = threads
        self.device = device
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
                self.workers[framework] = Worker(framework, self.threads, self.env, self.log_dir, self.device)
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
        if framework in ("onnxruntime", "dlcore_onnx", "onnxruntime_int8") and spec["kind"] in ("infer", "cold-start"):
            return {"onnx_path": self.onnx_path(spec["model"])}
        return {}

    # timed workloads ---------------------------------------------------------------------------
    def measure_timed(self, name, batch=None, base_name=None, variant=None):
        """One train/infer workload (or one ``variant`` of the attention workload) on every
        framework: build, warm up, alternate runs."""
        spec = _spec.workload_spec(base_name or name, tiny=self.tiny, batch=batch, variant=variant)
        metric, unit, better, convert = metric_of(spec)
        flops = _spec.workload_flops(spec)
        entry = {"kind": spec["kind"], "model": spec["model"], "batch": spec["batch"], "metric": metric,
                 "unit": unit, "better": better, "flops_per_iteration": flops,
                 "expected_params": _spec.param_count(spec["model_spec"]), "frameworks": {}}
        key = f"{name}@{spec['batch']}" + "".join(f"/{v}" for v in (variant or {}).values())
        active = []
        for fw in self.frameworks:
            result = entry["frameworks"][fw] = {}
            try:
                reply = self.worker(fw).call("build", key=key, workload=spec["name"], tiny=self.tiny,
                                             batch=batch, variant=variant, **self._extra(fw, spec))
            except WorkerError as exc:
                result.update(status="error", reason=str(exc))
                continue
            if "na" in reply:
                result.update(status="n/a", reason=reply["na"])
                continue
            if "skip" in reply:  # no path on this device yet (dlcore's error text)
                result.update(status="skipped", reason=reply["skip"])
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
        means = {fw: [] for fw in active}  # a run's mean call: its calls over its time (tails included)
        every_call = {fw: [] for fw in active}
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
                means[fw].append(statistics.fmean(times))
                every_call[fw] += times
        for fw, values in seconds.items():
            result = entry["frameworks"][fw]
            result["seconds"] = _stats(values)
            result["mean_seconds"] = _stats(means[fw])
            result["p99_seconds"] = _percentile(every_call[fw], 99)
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

    def measure_attention(self, name):
        """The attention workload: for each pass and sequence length, the time of one call (timed
        like a workload) and the peak memory one call adds in a fresh process."""
        wl = _spec.workload_spec(name, tiny=self.tiny)
        seqs = self.cfg["attention_seqs"] if (self.cfg["attention_seqs"] and not self.tiny) else wl["model_spec"]["seqs"]
        out = {"kind": "attention", "seqs": list(seqs), "passes": list(wl["passes"]), "unit": "ms",
               "better": "lower", "memory": "MB a fresh process's peak RSS grows by during one call",
               "frameworks": {fw: {} for fw in self.frameworks}}
        for p in wl["passes"]:
            for seq in seqs:
                variant = {"seq": seq, "pass": p}
                self.log(f"{name}: {p}, sequence {seq}")
                entry = self.measure_timed(name, variant=variant)
                spec = _spec.workload_spec(name, tiny=self.tiny, variant=variant)
                for fw, r in entry["frameworks"].items():
                    cell = out["frameworks"][fw][f"{p}@{seq}"] = {"status": r.get("status"), "reason": r.get("reason")}
                    if r.get("status") != "ok":
                        continue
                    cell.update(_stats([t * 1e3 for t in r["seconds"]["runs"]]), gflops=r["gflops"])
                    try:
                        res = run_child(_child_code(fw, "attention_memory", {"threads": self.threads, "spec": spec}),
                                        self.env, self.log_dir)
                        cell["added_mb"] = res["report"]["added_mb"]
                    except (WorkerError, TypeError, KeyError) as exc:
                        cell["memory_error"] = str(exc)
                base = out["frameworks"].get("dlcore", {}).get(f"{p}@{seq}", {})
                for fw in self.frameworks:
                    cell = out["frameworks"][fw][f"{p}@{seq}"]
                    if fw == "dlcore" or cell.get("status") != "ok" or base.get("status") != "ok":
                        continue
                    cell["ratio"] = cell["median"] / base["median"]
                    if cell.get("added_mb") and base.get("added_mb"):
                        cell["ratio_mb"] = cell["added_mb"] / base["added_mb"]
        return out

    # process workloads ---------------------------------------------------------------------------
    def measure_process(self, name):
        spec = _spec.workload_spec(name, tiny=self.tiny)
        function = "cold_start" if spec["kind"] == "cold-start" else "train_memory"
        entry = {"kind": spec["kind"], "model": spec["model"], "batch": spec["batch"],
                 "steps": spec.get("steps"), "saved": bool(spec.get("saved")), "frameworks": {}}
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
            if spec.get("saved") and fw not in _spec.INFERENCE_ONLY:  # the ONNX ones load the export
                try:
                    extra["saved_path"] = self.worker(fw).call(
                        "save", workload=name, path=str(self.log_dir / f"{name}-{fw}"), tiny=self.tiny)["path"]
                except WorkerError as exc:
                    result.update(status="error", reason=str(exc))
                    continue
                result["saved_path"] = extra["saved_path"]
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
