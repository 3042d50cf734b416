"""The ``scaling-distributed`` workload of the comparison runner: data-parallel training throughput
measured with 1 and 2 ranks, and a model of many-machine scaling built from the measurements.

Measured (each configuration a fresh ``mpiexec -n P`` launch of benchmarks/distributed_worker.py,
the global batch of the base workload fixed, configurations alternated run by run):
- dlcore: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (MPIStrategy, ``fit``), and
  2 ranks at each bucket size of the spec;
- PyTorch: the same three with DistributedDataParallel over gloo for 2 ranks (skipped, with the
  reason, when torch or its gloo backend is absent).

Model (dlcore, no overlap of communication and backward, as MPIStrategy does it):
- compute per step at a per-rank batch b: ``t(b) = t0 + c * b``, fitted through the measured
  compute of the 1-rank run (b = B) and of the 2-rank run (b = B / 2, its all-reduce time taken
  out);
- ring all-reduce of the gradient bytes over p ranks on a link of bandwidth W:
  ``2 (p - 1) / p * bytes / W + 2 (p - 1) * latency * buckets`` (each bucket is a ring of 2 (p - 1)
  messages; ``LINK_LATENCY_S`` per message, an assumption stated in the report);
- strong scaling (the global batch B fixed, as measured): efficiency
  ``t(B) / (p * (t(B / p) + allreduce(p)))``, p up to B; weak scaling (B per rank, the usual way
  to add machines): ``t(B) / (t(B) + allreduce(p))``. A workload stops scaling at the first p of
  efficiency below ``STOP_EFFICIENCY``.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
from pathlib import Path

from . import spec as _spec
from .compare_processes import bootstrap, child_env

LINK_GBITS = (10, 25, 100)
LINK_LATENCY_S = 25e-6  # one message over TCP on Ethernet between machines (RDMA: ~2 us)
STOP_EFFICIENCY = 0.5
MIN_NOISE = 0.1  # run-to-run spread of a 2-rank launch on this shared machine, at the least
MAX_WEAK_RANKS = 2 ** 16
SETTINGS = {"full": {"reps": 3, "steps": 30, "warmup": 5}, "quick": {"reps": 2, "steps": 10, "warmup": 3},
            "tiny": {"reps": 1, "steps": 2, "warmup": 1}}


def _mpiexec():
    exe = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return exe if os.path.exists(exe) else None


def unavailable(framework):
    """Why ``framework`` cannot run this workload here (None when it can)."""
    import importlib.util

    if _mpiexec() is None:
        return "mpiexec not found (pip install mpich)"
    if framework == "dlcore" and importlib.util.find_spec("mpi4py") is None:
        return "mpi4py not installed (pip install 'dlcore[mpi]')"
    if framework == "torch":
        if importlib.util.find_spec("torch") is None:
            return "torch not installed"
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_gloo_available()):
            return "this torch build has no gloo backend"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(framework, workload, ranks, threads, bucket_bytes, settings, tiny, log_dir, timeout=600):
    """One configuration: ``mpiexec -n ranks`` workers of ``threads`` threads each; rank 0's report."""
    args = {"framework": framework, "workload": workload, "threads": threads, "steps": settings["steps"],
            "warmup": settings["warmup"], "bucket_bytes": bucket_bytes, "port": _free_port(), "tiny": tiny}
    code = bootstrap(f"from _dlcore_bench.distributed_worker import main; main({json.dumps(args)!r})")
    env = child_env(threads)
    env["DLCORE_MPI_TIMEOUT"] = str(timeout)
    tag = f"{framework}-{workload}-{ranks}x{threads}-{bucket_bytes}"
    err_path = Path(log_dir) / f"distributed-{tag}.err"
    with open(err_path, "w") as err:
        proc = subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, "-c", code], stdout=subprocess.PIPE,
                              stderr=err, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} failed (code {proc.returncode}): {err_path.read_text()[-600:].strip()}")
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return json.loads(line[len("BENCH-JSON "):])
    raise RuntimeError(f"{tag} printed no report")


def _configs(wl, frameworks):
    default = wl["bucket_bytes"]
    out = []
    for fw in frameworks:
        for ranks, threads in ((1, 1), (1, 2), (2, 1)):
            out.append((fw, ranks, threads, default))
        if fw == "dlcore":
            out += [(fw, 2, 1, b) for b in wl["buckets"] if b != default]
    return out


def _key(ranks, threads, bucket_bytes, default):
    return f"{ranks}x{threads}" + ("" if bucket_bytes == default else f"@{bucket_bytes}")


def measure(name, frameworks, mode, tiny, log_dir, log=lambda m: None):
    """Measure the workload ``name`` and model it: the JSON entry of ``results["distributed"]``."""
    wl = _spec.WORKLOADS[name]
    settings = SETTINGS["tiny" if tiny else mode]
    if tiny:
        wl = {**wl, "buckets": (wl["bucket_bytes"],)}
    entry = {"kind": "distributed", "bases": list(wl["bases"]), "settings": settings,
             "bucket_default": wl["bucket_bytes"], "buckets": list(wl["buckets"]), "frameworks": {}, "model": {}}
    ready = []
    for fw in ("dlcore", "torch"):
        if fw not in frameworks:
            continue
        reason = unavailable(fw)
        entry["frameworks"][fw] = {"status": "n/a", "reason": reason} if reason else {"status": "ok", "runs": {}}
        if not reason:
            ready.append(fw)
    configs = _configs(wl, ready)
    for base in wl["bases"]:
        runs = {fw: {} for fw in ready}
        for rep in range(settings["reps"]):
            for fw, ranks, threads, bucket in configs[rep % len(configs):] + configs[:rep % len(configs)]:
                key = _key(ranks, threads, bucket, wl["bucket_bytes"])
                log(f"{name}: {base} {fw} {ranks} rank(s) x {threads} thread(s), bucket {bucket} B")
                try:
                    report = launch(fw, base, ranks, threads, bucket, settings, tiny, log_dir)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    runs[fw].setdefault(key, []).append({"error": str(exc)[:600]})
                    continue
                runs[fw].setdefault(key, []).append(report)
        for fw in ready:
            entry["frameworks"][fw]["runs"][base] = {k: _summary(v) for k, v in runs[fw].items()}
        if "dlcore" in ready:
            entry["model"][base] = scaling_model(entry["frameworks"]["dlcore"]["runs"][base],
                                                 _spec.workload_spec(base, tiny)["batch"], wl)
    return entry


def _summary(reports):
    ok = [r for r in reports if "error" not in r]
    if not ok:
        return {"status": "error", "reason": reports[-1]["error"]}
    out = {"status": "ok", "reps": len(ok)}
    for field in ok[0]:
        out[field] = statistics.median(r[field] for r in ok)
    out["samples_per_s_runs"] = [r["samples_per_s"] for r in ok]
    return out


def ring_allreduce_s(nbytes, ranks, gbits, buckets=1, latency=LINK_LATENCY_S):
    """Time of a ring all-reduce of ``nbytes`` over ``ranks`` on a ``gbits`` Gbit/s link."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes * 8 / (gbits * 1e9) + 2 * (ranks - 1) * latency * buckets


def choose_bucket(runs, wl):
    """The bucket size kept, the measured 2-rank rates and the noise: the largest bucket (fewest
    messages, so the smallest latency term on a network; without overlap with the backward a
    smaller bucket buys nothing else) unless a smaller one was measured faster by more than the
    noise. The noise: the largest relative spread between the launches of one configuration, or
    between bucket sizes that gave the same bucket layout (the same work measured twice), at least
    ``MIN_NOISE``."""
    rates, layouts, spreads = {}, {}, [MIN_NOISE]
    for b in wl["buckets"]:
        r = runs.get(_key(2, 1, b, wl["bucket_bytes"]))
        if r and r.get("status") == "ok":
            rates[b] = r["samples_per_s"]
            layouts.setdefault(r.get("buckets"), []).append(r["samples_per_s"])
            reps = r.get("samples_per_s_runs") or [r["samples_per_s"]]
            spreads.append(1 - min(reps) / max(reps))
    if not rates:
        return wl["bucket_bytes"], rates, MIN_NOISE
    noise = max(spreads + [1 - min(v) / max(v) for v in layouts.values() if len(v) > 1])
    best = max(rates.values())
    return max(b for b, v in rates.items() if v >= (1 - noise) * best), rates, noise


def scaling_model(runs, batch, wl):
    """The many-machine model of one base workload from dlcore's measured runs (see the module)."""
    one, two = runs.get("1x1", {}), runs.get("2x1", {})
    if one.get("status") != "ok" or two.get("status") != "ok":
        return {"status": "n/a", "reason": "the 1-rank and 2-rank dlcore runs are needed"}
    t_full, t_half = one["compute_s"], two["compute_s"]
    per_sample = (t_full - t_half) / (batch - batch / 2)
    if per_sample <= 0:  # noise: the halved batch was not faster; call it all per-sample work
        per_sample = t_full / batch
    fixed = max(0.0, t_full - per_sample * batch)
    compute = lambda b: fixed + per_sample * b  # noqa: E731
    bucket, rates, noise = choose_bucket(runs, wl)
    nbytes, buckets = one["grad_bytes"], _buckets_for(runs, bucket, wl)
    out = {"status": "ok", "grad_bytes": nbytes, "compute_s_at_batch": t_full, "fixed_s": fixed,
           "per_sample_s": per_sample, "bucket_chosen": bucket, "bucket_rates": {str(k): v for k, v in rates.items()},
           "bucket_noise": noise,
           "buckets_per_step": buckets, "latency_s": LINK_LATENCY_S,
           "measured_allreduce_s": two["allreduce_s"], "links": {}}
    for gbits in LINK_GBITS:
        strong, weak = {}, {}
        p = 2
        while p <= batch:
            t = compute(batch / p) + ring_allreduce_s(nbytes, p, gbits, buckets)
            strong[p] = t_full / (p * t)
            p *= 2
        p = 2
        while p <= MAX_WEAK_RANKS:
            weak[p] = t_full / (t_full + ring_allreduce_s(nbytes, p, gbits, buckets))
            p *= 2
        out["links"][str(gbits)] = {
            "allreduce_s_at_2": ring_allreduce_s(nbytes, 2, gbits, buckets),
            "strong": {str(k): v for k, v in strong.items()}, "weak": {str(k): v for k, v in weak.items()},
            "strong_stops_at": next((k for k, v in strong.items() if v < STOP_EFFICIENCY), None),
            "weak_stops_at": next((k for k, v in weak.items() if v < STOP_EFFICIENCY), None)}
    return out


def _buckets_for(runs, bucket, wl):
    r = runs.get(_key(2, 1, bucket, wl["bucket_bytes"]), {})
    return int(r.get("buckets", 1)) if r.get("status") == "ok" else 1


def _rate(runs, key):
    r = runs.get(key)
    if not r:
        return "—"
    if r.get("status") != "ok":
        return "error"
    return f"{r['samples_per_s']:,.0f}"


def to_markdown(name, entry):
    """The report's section for the workload ``name``."""
    lines = ["", f"**{name}**: training throughput, samples/s ↑ (global batch of the base workload; "
             f"{entry['settings']['steps']} timed steps per launch, median of {entry['settings']['reps']})", ""]
    fws = [fw for fw, e in entry["frameworks"].items() if e.get("status") == "ok"]
    for fw, e in entry["frameworks"].items():
        if e.get("status") != "ok":
            lines.append(f"- {fw} n/a: {e.get('reason')}")
    if not fws:
        return lines
    head = ["1 rank x 1 thread", "1 process x 2 threads", "2 ranks x 1 thread"]
    lines += ["| workload | framework | " + " | ".join(head) + " | 2 ranks / 1 thread | 2 ranks / 2 threads |",
              "|---|---|" + "---:|" * (len(head) + 2)]
    for base in entry["bases"]:
        for fw in fws:
            runs = entry["frameworks"][fw]["runs"].get(base, {})
            cells = [_rate(runs, k) for k in ("1x1", "1x2", "2x1")]
            ratios = []
            for k in ("1x1", "1x2"):
                a, b = runs.get("2x1", {}), runs.get(k, {})
                ok = a.get("status") == "ok" and b.get("status") == "ok"
                ratios.append(f"{a['samples_per_s'] / b['samples_per_s']:.2f}" if ok else "—")
            label = "PyTorch DDP (gloo)" if fw == "torch" else "dlcore MPIStrategy"
            lines.append(f"| {base} | {label} | " + " | ".join(cells + ratios) + " |")
    for base, m in entry["model"].items():
        lines.append("")
        if m.get("status") != "ok":
            lines.append(f"Model of {base}: n/a ({m.get('reason')})")
            continue
        rates = ", ".join(f"{int(b) // 1024} KiB: {v:,.0f}" for b, v in m["bucket_rates"].items())
        lines.append(f"Model of **{base}** (dlcore): {m['grad_bytes'] / 1e6:.2f} MB of gradients all-reduced per "
                     f"step in {m['buckets_per_step']} bucket(s); compute {m['compute_s_at_batch'] * 1e3:.1f} ms "
                     f"per step at the global batch on 1 thread (fit: {m['fixed_s'] * 1e3:.1f} ms fixed + "
                     f"{m['per_sample_s'] * 1e6:.0f} µs per sample); all-reduce measured on this machine "
                     f"(2 ranks, shared memory, waiting included): {m['measured_allreduce_s'] * 1e3:.2f} ms. "
                     f"Bucket sizes at 2 ranks (samples/s): {rates}; kept {m['bucket_chosen'] // 1024} KiB: the "
                     f"largest bucket unless a smaller one is faster by more than the noise "
                     f"({100 * m['bucket_noise']:.0f} %: the spread between launches of one configuration or "
                     "between bucket sizes giving the same layout), "
                     "since each bucket costs 2(p-1) messages of latency and, with the reduction after the "
                     "backward pass, buys no overlap.")
        lines += ["", "| link | ring all-reduce at 2 ranks | strong scaling (global batch fixed): efficiency at "
                  "2 / 8 / 32 ranks, stops at | weak scaling (batch per rank fixed): efficiency at 64 / 1024 ranks, "
                  "stops at |",
                  "|---|---:|---|---|"]
        for gbits, link in m["links"].items():
            s, w = link["strong"], link["weak"]
            strong = " / ".join(f"{s[k]:.2f}" if k in s else "—" for k in ("2", "8", "32"))
            weak = " / ".join(f"{w[k]:.2f}" for k in ("64", "1024"))
            stop_s = link["strong_stops_at"] or f"never up to {max(map(int, s))}"
            stop_w = link["weak_stops_at"] or f"beyond {MAX_WEAK_RANKS}"
            lines.append(f"| {gbits} Gbit/s | {link['allreduce_s_at_2'] * 1e3:.2f} ms | {strong}; stops at {stop_s} "
                         f"| {weak}; stops at {stop_w} |")
    lines += ["", f"Model: ring all-reduce 2(p-1)/p x bytes / bandwidth + 2(p-1) x {LINK_LATENCY_S * 1e6:.0f} µs "
              "per bucket (assumed TCP message latency), no overlap with the backward pass; compute fitted as "
              f"fixed + per-sample from the 1- and 2-rank runs; 'stops' = first power of two of efficiency below "
              f"{STOP_EFFICIENCY}. The machine is shared (2 cores, other jobs): the measured figures are noisy."]
    return lines
