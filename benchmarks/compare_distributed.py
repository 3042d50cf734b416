"""The ``scaling-distributed`` workload of the comparison runner: data-parallel training throughput
measured with 1 and 2 ranks, and a model of many-machine scaling built from the measurements.

Measured (each configuration a fresh ``mpiexec -n P`` launch of benchmarks/distributed_worker.py,
the global batch of the base workload fixed, configurations alternated run by run):
- dlcore: 1 rank x 1 thread, 1 rank x 2 threads, 2 ranks x 1 thread (MPIStrategy, ``fit``); the
  2-rank launch also times the gradient all-reduce alone at each bucket size of the spec (ranks
  aligned by a barrier, 20 calls: far less noisy than whole training runs on a shared machine);
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
BUCKET_TOLERANCE = 0.1
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


def launch(framework, workload, ranks, threads, bucket_bytes, settings, tiny, log_dir, timeout=600, buckets=()):
    """One configuration: ``mpiexec -n ranks`` workers of ``threads`` threads each; rank 0's report
    (dlcore with several ranks: also the gradient all-reduce alone at each of ``buckets``)."""
    args = {"framework": framework, "workload": workload, "threads": threads, "steps": settings["steps"],
            "warmup": settings["warmup"], "bucket_bytes": bucket_bytes, "buckets": list(buckets),
            "port": _free_port(), "tiny": tiny}
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


def _configs(frameworks):
    return [(fw, ranks, threads) for fw in frameworks for ranks, threads in ((1, 1), (1, 2), (2, 1))]


def measure(name, frameworks, mode, tiny, log_dir, log=lambda m: None):
    """Measure the workload ``name`` and model it: the JSON entry of ``results["distributed"]``."""
    wl = _spec.WORKLOADS[name]
    settings = SETTINGS["tiny" if tiny else mode]
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
    configs = _configs(ready)
    for base in wl["bases"]:
        runs = {fw: {} for fw in ready}
        for rep in range(settings["reps"]):
            for fw, ranks, threads in configs[rep % len(configs):] + configs[:rep % len(configs)]:
                key = f"{ranks}x{threads}"
                log(f"{name}: {base} {fw} {ranks} rank(s) x {threads} thread(s)")
                try:
                    report = launch(fw, base, ranks, threads, wl["bucket_bytes"], settings, tiny, log_dir,
                                    buckets=wl["buckets"] if fw == "dlcore" else ())
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
        if field != "allreduce_by_bucket":
            out[field] = statistics.median(r[field] for r in ok)
    out["samples_per_s_runs"] = [r["samples_per_s"] for r in ok]
    by_bucket = [r.get("allreduce_by_bucket") or {} for r in ok]
    if any(by_bucket):  # over the launches: the least of the minima, the median of the medians
        out["allreduce_by_bucket"] = {b: {"min": min(x[b]["min"] for x in by_bucket if b in x),
                                          "median": statistics.median(x[b]["median"] for x in by_bucket if b in x),
                                          "buckets": by_bucket[0][b]["buckets"]} for b in by_bucket[0]}
    return out


def ring_allreduce_s(nbytes, ranks, gbits, buckets=1, latency=LINK_LATENCY_S):
    """Time of a ring all-reduce of ``nbytes`` over ``ranks`` on a ``gbits`` Gbit/s link."""
    if ranks == 1:
        return 0.0
    return 2 * (ranks - 1) / ranks * nbytes * 8 / (gbits * 1e9) + 2 * (ranks - 1) * latency * buckets


def choose_bucket(runs, wl):
    """The bucket size kept and the 2-rank all-reduce times by bucket size: the largest bucket
    whose least all-reduce time is within ``BUCKET_TOLERANCE`` of the fastest (fewer buckets:
    fewer messages, so a smaller latency term on a network; with the reduction after the backward
    pass a smaller bucket buys no overlap)."""
    timed = (runs.get("2x1") or {}).get("allreduce_by_bucket") or {}
    if not timed:
        return wl["bucket_bytes"], timed
    best = min(t["min"] for t in timed.values())
    return max(int(b) for b, t in timed.items() if t["min"] <= (1 + BUCKET_TOLERANCE) * best), timed


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
    bucket, timed = choose_bucket(runs, wl)
    nbytes = one["grad_bytes"]
    buckets = int(timed[str(bucket)]["buckets"]) if str(bucket) in timed else int(two.get("buckets", 1))
    out = {"status": "ok", "grad_bytes": nbytes, "compute_s_at_batch": t_full, "fixed_s": fixed,
           "per_sample_s": per_sample, "bucket_chosen": bucket, "allreduce_by_bucket": timed,
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
        timed = "; ".join(f"{int(b) // 1024} KiB ({t['buckets']} bucket{'s' if t['buckets'] > 1 else ''}): "
                          f"{t['min'] * 1e3:.2f} ms least, {t['median'] * 1e3:.2f} median"
                          for b, t in m["allreduce_by_bucket"].items())
        lines.append(f"Model of **{base}** (dlcore): {m['grad_bytes'] / 1e6:.2f} MB of gradients all-reduced per "
                     f"step; compute {m['compute_s_at_batch'] * 1e3:.1f} ms per step at the global batch on 1 "
                     f"thread (fit: {m['fixed_s'] * 1e3:.1f} ms fixed + {m['per_sample_s'] * 1e6:.0f} µs per "
                     f"sample); in the 2-rank steps the all-reduce took {m['measured_allreduce_s'] * 1e3:.2f} ms "
                     "(waiting for the other rank included). The gradient all-reduce alone on 2 ranks of this "
                     f"machine (shared memory), by bucket size: {timed or 'not measured'}. Kept: "
                     f"{m['bucket_chosen'] // 1024} KiB ({m['buckets_per_step']} bucket(s) per step), the largest "
                     f"within {100 * BUCKET_TOLERANCE:.0f} % of the fastest: each bucket is 2(p-1) messages of "
                     "latency on a ring, and with the reduction after the backward pass a smaller bucket buys "
                     "no overlap.")
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
