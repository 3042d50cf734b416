"""The comparison's reports (benchmarks/compare.py): the Markdown tables and the PNG charts of a
results document."""
import math
from pathlib import Path

from . import compare_distributed
from . import spec as _spec
from .compare_processes import CEILING_LIBS


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


COLORS = {"dlcore": "tab:blue", "torch": "tab:orange", "keras": "tab:green", "onnxruntime": "tab:red", "dlcore_onnx": "tab:purple",
          "dlcore_int8": "tab:cyan", "onnxruntime_int8": "tab:pink",
          "dlcore_bf16": "tab:olive", "torch_int8": "tab:brown"}


def deploy_markdown(results, fws):
    from .compare_deploy import markdown

    return markdown(results, fws)


def to_markdown(results):
    meta = results["meta"]
    fws = meta["frameworks"]
    peers = [fw for fw in fws if fw != "dlcore"]
    m = meta["machine"]
    v = meta["versions"]
    lines = []
    if meta.get("note"):
        lines += [meta["note"], ""]
    gpu = meta.get("device") == "gpu"
    threads = f"{meta['threads']} thread{'s' if meta['threads'] != 1 else ''}"
    where = (f"on the GPU: dlcore under dl.device(\"gpu:0\") against PyTorch CUDA, {threads} on the host" if gpu
             else f"{threads} for every framework")
    lines.append(f"Measured {meta['date'][:10]} with `{meta['command'].strip()}` ({meta['mode']} mode, {where}).")
    lines.append("")
    flags = ", ".join(m["flags"]) or "none detected"
    load = m.get("load_average_start")
    load_txt = f"; load average {load[0]:.1f} at the start" if load else ""
    cls = f" ({m['cpu_class']} class)" if m.get("cpu_class") else ""
    lines.append(f"- Machine: {m['cpu']}{cls}, {m['cores_available']} cores available ({m['cores_logical']} logical), "
                 f"{m['memory_gb']} GB, {m['os']}; CPU flags: {flags}{load_txt}.")
    names = [("dlcore", "dlcore"), ("numpy", "NumPy"), ("scipy", "SciPy"), ("numba", "Numba"),
             ("numba-cuda", "numba-cuda"), ("torch", "PyTorch"), ("keras", "Keras"), ("tensorflow", "TensorFlow"),
             ("tensorflow-cpu", "TensorFlow (cpu)"), ("onnxruntime", "ONNX Runtime"), ("onnx", "onnx")]
    vers = ", ".join(f"{label} {v[k]}" for k, label in names if v.get(k))
    git = f"; dlcore git {v['dlcore_git']}" if v.get("dlcore_git") else ""
    lines.append(f"- Python {m['python']}; {vers}{git}.")
    if gpu:
        lines += gpu_lines(meta)
    c = results.get("ceiling") or {}
    if "gflops" in c:
        others = [f"{CEILING_LIBS[lib].split(' ')[0]} {_fmt(r['gflops'])}" for lib, r in c.get("sources", {}).items()
                  if lib != c.get("source") and "gflops" in r]
        lines.append(f"- float32 GEMM ceiling, measured in this run with the same threads ({meta['threads']}): "
                     f"**{c['gflops']:.1f} GFLOPS** "
                     f"({c['what']}, best of {c['runs']}; median {c['gflops_median']:.1f}"
                     + (f"; {', '.join(others)}" if others else "") + ").")
    if meta.get("frameworks_skipped"):
        skipped = "; ".join(f"{_label(k)}: {r}" for k, r in meta["frameworks_skipped"].items())
        lines.append(f"- Not compared: {skipped}.")
    lines.append("- Cells: median (min–max) over runs, frameworks alternated run by run after a warm-up. "
                 "Ratio = peer ÷ dlcore in time or memory: **above 1, dlcore is faster (or smaller)**. "
                 "n/a: the framework lacks the workload (nothing is estimated)."
                 + (" skipped: dlcore has no GPU path for a layer or op of the model yet (its error below)." if gpu
                    else ""))
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
            if r.get("status") in ("n/a", "error", "skipped"):
                reasons.setdefault((fw, r.get("status"), r.get("reason")), []).append(name)
    for name, g in results.get("gemm", {}).items():
        for fw, per_size in g["frameworks"].items():
            for r in per_size.values():
                if r.get("status") in ("n/a", "error", "skipped"):
                    reasons.setdefault((fw, r.get("status"), r.get("reason")), []).append(name)
    for name, s in list(results.get("scaling", {}).items()) + list(results.get("attention", {}).items()):
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
    for name, a in results.get("attention", {}).items():
        lines += [""] + attention_table(name, a, fws, peers)
    for name, d in results.get("distributed", {}).items():
        lines += compare_distributed.to_markdown(name, d)
    for name, g in results.get("gemm", {}).items():
        lines += [""] + gemm_table(name, g, fws, peers)
    if gpu:
        lines += [""] + target_lines(meta)
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
    lines += deploy_markdown(results, fws)
    lines.append("")
    lines.append("Notes: " + " ".join(meta.get("notes", [])))
    return "\n".join(lines) + "\n"


def gpu_lines(meta):
    """Markdown lines naming the card and how each framework reached it (GPU mode)."""
    info = meta.get("gpu") or {}
    cards = info.get("frameworks") or {}
    if not cards:
        return ["- GPU: none reached: every framework was left out (reasons below)."]
    parts = []
    for fw, c in cards.items():
        extra = [f"{c['via']} = {c['card']}" if c.get("via") else c["card"]]
        if c.get("compute_capability"):
            extra.append("compute capability " + ".".join(str(x) for x in c["compute_capability"]))
        if c.get("numba_cuda"):
            extra.append(c["numba_cuda"])
        if c.get("cuda"):
            extra.append(f"CUDA {c['cuda']}, cuDNN {c.get('cudnn')}")
        if "tf32" in c:
            extra.append("TF32 " + ("off" if not any(v is True for v in c["tf32"].values()) else "ON") + " ("
                         + ", ".join(f"{k} = {v}" for k, v in c["tf32"].items()) + ")")
        parts.append(f"{_label(fw)}: " + "; ".join(extra))
    return [f"- GPU: **{info.get('card')}**. " + ". ".join(parts) + "."]


def gemm_table(name, g, fws, peers):
    """Markdown lines: GFLOPS per framework at each size, and dlcore's share of each peer's."""
    lines = [f"**{name}**: float32 n×n×n products on the GPU, GFLOPS ↑ median (min–max); "
             f"dlcore ÷ peer in GFLOPS" + (f" (target ≥ {100 * g['target']:.0f}% at {g['target_n']})"
                                           if g.get("target") else ""), ""]
    header = ["n"] + [f"{_label(fw)} GFLOPS" for fw in fws] + [f"dlcore ÷ {_label(p)}" for p in peers]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---:"] * len(header)) + "|")
    for n in g["sizes"]:
        cells = [g["frameworks"][fw].get(str(n), {}) for fw in fws]
        gflops = [_cell(c) if c.get("status") == "ok" else "n/a" for c in cells]
        shares = [g["frameworks"][p].get(str(n), {}).get("share") for p in peers]
        lines.append("| " + " | ".join([str(n)] + gflops + ["n/a" if x is None else f"{100 * x:.0f}%"
                                                             for x in shares]) + " |")
    return lines


def target_lines(meta):
    """Issue 18's GPU targets, met or not, for those this run measured."""
    checks = meta.get("targets") or {}
    if not checks:
        return ["GPU targets (dlcore ÷ PyTorch CUDA: ≥ 0.5× training throughput on cnn-train and lstm-train, "
                "≥ 50% of torch.matmul's GFLOPS at 4096): not measured in this run (a framework or workload "
                "was left out)."]
    parts = [f"{key}: {c['value']:.2f}× (target ≥ {c['target']:.2f}×, {'met' if c['met'] else 'NOT met'})"
             for key, c in checks.items()]
    return ["GPU targets, dlcore's speed ÷ PyTorch CUDA's: " + "; ".join(parts) + "."]


def attention_table(name, a, fws, peers):
    """Markdown lines: per pass and sequence length, time (ms) and added peak memory (MB) of each
    framework, and the peers' ratios to dlcore."""
    lines = [f"**{name}**: one causal self-attention, batch 1; time ms ↓ median (min–max); "
             f"added peak memory MB ↓ ({a['memory']}); ratio = peer ÷ dlcore (time / memory)", ""]
    header = ["pass", "sequence"] + [f"{_label(fw)} ms" for fw in fws] + [f"{_label(fw)} MB" for fw in fws] + [
        f"{_label(p)} ÷ dlcore" for p in peers]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|---|---:|" + "|".join(["---:"] * (len(header) - 2)) + "|")
    for p in a["passes"]:
        for seq in a["seqs"]:
            cells = [a["frameworks"][fw].get(f"{p}@{seq}", {}) for fw in fws]
            times = [_cell(c) if c.get("status") == "ok" else "n/a" for c in cells]
            mem = [_fmt(c.get("added_mb")) if c.get("status") == "ok" else "n/a" for c in cells]
            ratios = []
            for peer in peers:
                c = a["frameworks"][peer].get(f"{p}@{seq}", {})
                ratios.append(f"{_ratio(c.get('ratio'))} / {_ratio(c.get('ratio_mb'))}")
            lines.append("| " + " | ".join([p, str(seq)] + times + mem + ratios) + " |")
    return lines


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
        card = (results["meta"].get("gpu") or {}).get("card")
        where = f"on {card}" if results["meta"].get("device") == "gpu" else f"{n} thread{'s' if n != 1 else ''}"
        ax.set_title(f"dlcore vs peers, {where}, {results['meta']['date'][:10]}")
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
