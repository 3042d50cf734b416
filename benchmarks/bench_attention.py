"""Attention family: the fused scaled-dot-product attention (``dl.ops.dot_product_attention``),
forward and forward+backward, batch 1, 4 heads of 32, causal, at 512, 2048 and 4096 tokens;
PyTorch's ``scaled_dot_product_attention`` side by side when it imports (same thread count).
Rates: GFLOPS of the causal work (4 T^2 D H / 2 forward, 2.5x that for the backward).

``python benchmarks/bench_attention.py [threads]`` prints the issue's table instead: best-of-5
times and the peak resident memory each run adds (each case in its own process).
"""
import json
import os
import subprocess
import sys
import time

import pytest

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._bench import measure, rand  # noqa: E402

HEADS, DIM = 4, 32
LENGTHS = [512, 2048, 4096]


def _flops(T, backward):
    fwd = 4 * T * T * DIM * HEADS / 2
    return fwd * (3.5 if backward else 1.0)


def _dlcore_calls(T):
    import dlcore as dl

    q, k, v = (rand(1, T, HEADS, DIM, seed=i) for i in range(3))

    def forward():
        return dl.ops.dot_product_attention(q, k, v, is_causal=True)

    def forward_backward():
        ts = [dl.Tensor(x) for x in (q, k, v)]
        with dl.GradientTape() as tape:
            for t in ts:
                tape.watch(t)
            loss = dl.ops.sum(dl.ops.dot_product_attention(*ts, is_causal=True))
        return tape.gradient(loss, ts)

    return forward, forward_backward


def _torch_calls(T, torch):
    q, k, v = (torch.from_numpy(rand(1, HEADS, T, DIM, seed=i)).requires_grad_() for i in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def forward():
        with torch.no_grad():
            return sdpa(q, k, v, is_causal=True)

    def forward_backward():
        for x in (q, k, v):
            x.grad = None
        sdpa(q, k, v, is_causal=True).sum().backward()

    return forward, forward_backward


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_dot_product_attention(benchmark, T, mode):
    forward, forward_backward = _dlcore_calls(T)
    fn = forward if mode == "forward" else forward_backward
    measure(benchmark, fn, flops=_flops(T, mode != "forward"), pedantic=dict(rounds=3, iterations=1))


@pytest.mark.parametrize("T", LENGTHS)
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_torch_sdpa(benchmark, T, mode):
    torch = pytest.importorskip("torch")
    from dlcore import kernels

    torch.set_num_threads(kernels.num_threads())
    forward, forward_backward = _torch_calls(T, torch)
    fn = forward if mode == "forward" else forward_backward
    measure(benchmark, fn, flops=_flops(T, mode != "forward"), pedantic=dict(rounds=3, iterations=1))


# ---- the table ----------------------------------------------------------------------------
def _status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _calls(lib, T, threads):
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        return _torch_calls(T, torch)
    import dlcore as dl

    dl.config.set_num_threads(threads)
    return _dlcore_calls(T)


def _peak_case(lib, T, threads, mode):
    """Run in a child process: the peak resident memory (MB) one call adds over the inputs."""
    index = 0 if mode == "forward" else 1
    _calls(lib, 16, threads)[index]()  # lazy imports at a tiny length: not the call's memory
    fn = _calls(lib, T, threads)[index]
    before = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # Linux: reset the peak (VmHWM) to the current RSS
        f.write("5")
    fn()
    return _status_mb("VmHWM") - before


def _time_case(lib, T, threads, mode, rounds=5):
    """Run in a child process: the best of ``rounds`` wall times (ms) of one call."""
    fn = _calls(lib, T, threads)[0 if mode == "forward" else 1]
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _child(function, *args):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import json, benchmarks.bench_attention as b; print(json.dumps(b.{function}{args!r}))"
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    return json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else float("nan")


def main(threads, repeats=2):
    """Each library in its own processes (one library's idle OpenMP threads spinning would slow
    the other's), alternating ``repeats`` times, best time kept; and each call's added peak
    memory (VmHWM over the RSS before the call, Linux)."""
    import importlib.util

    libs = ("dlcore", "torch") if importlib.util.find_spec("torch") else ("dlcore",)
    for T in LENGTHS:
        for mode in ("forward", "forward_backward"):
            best = {lib: min(_child("_time_case", lib, T, threads, mode) for _ in range(repeats)) for lib in libs}
            parts = [f"{lib} {best[lib]:8.1f} ms +{_child('_peak_case', lib, T, threads, mode):6.1f} MB"
                     for lib in libs]
            print(f"T={T:5d} {mode:17s} threads={threads}  " + "   ".join(parts), flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
