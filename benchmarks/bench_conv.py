"""Convolution family: Conv2D through the public layer, forward (inference) and forward + backward
(input and weight gradients), float32, at

- the issue's shapes (N, H, W, C_in, C_out, k, stride): (64,32,32,32,64,3,1), (64,16,16,64,128,3,1),
  (1,224,224,3,64,7,2), (64,32,32,64,64,1,1) ("same" padding for k > 1), each reported as GFLOPS
  and as a share of this machine's float32 matmul rate (NumPy 2048^3, measured in the same run),
  with PyTorch's time side by side (same thread count, NCHW, its default) when torch imports;
- the CNN workload's three layers (benchmarks/spec.py), batch 1 and 64.

FLOPs: 2 kh kw cin cout oh ow per sample, x3 for forward + backward.
Run: ``pytest benchmarks/bench_conv.py --benchmark-only`` (rates printed at the end), or
``python -m benchmarks.bench_conv [--per-core]`` for the summary table alone (``--per-core``: one
thread everywhere and CPU time, for a shared machine whose wall times are noise).
"""
import time

import numpy as np
import pytest

import dlcore as dl
from benchmarks import spec
from benchmarks._bench import layer_forward, measure, rand, require_layer

# (N, H, W, C_in, C_out, k, stride)
ISSUE_SHAPES = [(64, 32, 32, 32, 64, 3, 1), (64, 16, 16, 64, 128, 3, 1), (1, 224, 224, 3, 64, 7, 2),
                (64, 32, 32, 64, 64, 1, 1)]
ISSUE_IDS = ["x".join(map(str, s[:5])) + f"-k{s[5]}s{s[6]}" for s in ISSUE_SHAPES]

CNN = spec.model_spec("cnn")
BATCH = spec.WORKLOADS["cnn-train"]["batch"]
CNN_SHAPES, _ = spec._cnn_shapes(CNN)  # (h, w, cin, cout, oh, ow) per layer
K = CNN["kernel"]

_CEILING = {}


def issue_flops(shape):
    n, h, w, c, o, k, s = shape
    oh, ow = -(-h // s), -(-w // s)
    return 2 * n * oh * ow * o * k * k * c


def matmul_ceiling(repeats=5):
    """The float32 GEMM rate of this machine (GFLOPS): NumPy 2048^3, best of ``repeats``."""
    if "gflops" not in _CEILING:
        a, b = rand(2048, 2048), rand(2048, 2048, seed=1)
        out = np.empty_like(a)
        np.matmul(a, b, out=out)
        best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
        _CEILING["gflops"] = 2 * 2048 ** 3 / best / 1e9
    return _CEILING["gflops"]


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def dlcore_calls(shape):
    """(forward, forward + backward) closures for one issue shape, the layer built and warm."""
    n, h, w, c, o, k, s = shape
    layer = dl.layers.Conv2D(o, k, strides=s, padding="same" if k > 1 else "valid")
    x = rand(n, h, w, c)
    forward = layer_forward(layer, x)
    xt = dl.Tensor(x)
    dy = None

    def train():
        nonlocal dy
        with dl.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=True)
        if dy is None:
            dy = np.ones(y.shape, np.float32)
        return tape.gradient(y, [xt, *layer.trainable_weights], output_gradients=dy)

    train()
    return forward, train


def torch_calls(shape):
    """The same two closures in PyTorch (NCHW, symmetric padding k // 2, same FLOPs), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(dl.config.num_threads())
    n, h, w, c, o, k, s = shape
    conv = torch.nn.Conv2d(c, o, k, stride=s, padding=k // 2)
    x = torch.from_numpy(rand(n, c, h, w))

    def forward():
        with torch.no_grad():
            return conv(x)

    xg = x.clone().requires_grad_(True)
    dy = torch.ones_like(forward())

    def train():
        conv.zero_grad(set_to_none=True)
        xg.grad = None
        conv(xg).backward(dy)

    forward()
    train()
    return forward, train


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
@pytest.mark.parametrize("shape", ISSUE_SHAPES, ids=ISSUE_IDS)
def test_conv2d_issue_shapes(benchmark, shape, mode):
    require_layer("Conv2D")
    benchmark.group = f"conv2d {ISSUE_IDS[ISSUE_SHAPES.index(shape)]} {mode}"
    forward, train = dlcore_calls(shape)
    flops = issue_flops(shape) * (1 if mode == "forward" else 3)
    measure(benchmark, forward if mode == "forward" else train, flops=flops)
    if getattr(benchmark, "stats", None) is not None:
        benchmark.extra_info["pct_of_matmul"] = 100 * benchmark.extra_info["gflops"] / matmul_ceiling()


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
@pytest.mark.parametrize("shape", ISSUE_SHAPES, ids=ISSUE_IDS)
def test_torch_conv2d_issue_shapes(benchmark, shape, mode):
    calls = torch_calls(shape)
    if calls is None:
        pytest.skip("torch is not installed")
    benchmark.group = f"conv2d {ISSUE_IDS[ISSUE_SHAPES.index(shape)]} {mode}"
    flops = issue_flops(shape) * (1 if mode == "forward" else 3)
    measure(benchmark, calls[0] if mode == "forward" else calls[1], flops=flops)


def test_numpy_matmul_2048_ceiling(benchmark):
    a, b = rand(2048, 2048), rand(2048, 2048, seed=1)
    out = np.empty_like(a)
    measure(benchmark, lambda: np.matmul(a, b, out=out), flops=2 * 2048 ** 3)


# ---- the CNN workload's layers --------------------------------------------------------------------
def _cnn_flops(shape, batch):
    h, w, c, f, oh, ow = shape
    return 2 * K * K * c * f * oh * ow * batch


@pytest.mark.parametrize("shape", CNN_SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}-{s[3]}" for s in CNN_SHAPES])
@pytest.mark.parametrize("batch", [1, BATCH])
def test_conv2d_forward(benchmark, shape, batch):
    Conv2D = require_layer("Conv2D")
    h, w, c, f, _, _ = shape
    call = layer_forward(Conv2D(f, K, activation="relu"), rand(batch, h, w, c))
    measure(benchmark, call, flops=_cnn_flops(shape, batch))


@pytest.mark.parametrize("shape", CNN_SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}-{s[3]}" for s in CNN_SHAPES])
def test_conv2d_forward_backward(benchmark, shape):
    Conv2D = require_layer("Conv2D")
    h, w, c, f, _, _ = shape
    layer = Conv2D(f, K, activation="relu")
    x = dl.Tensor(rand(BATCH, h, w, c))

    def step():
        with dl.GradientTape() as tape:
            tape.watch(x)
            loss = dl.ops.sum(layer(x, training=True))
        return tape.gradient(loss, [x, *layer.trainable_weights])

    step()
    measure(benchmark, step, flops=3 * _cnn_flops(shape, BATCH))


# ---- summary table (python -m benchmarks.bench_conv [--per-core]) ------------------------------------
def _best(fn, seconds=2.0, at_least=5, clock=time.perf_counter):
    """Best time of repeated calls (the minimum filters out a busy machine's pauses)."""
    times, start = [], time.perf_counter()
    while len(times) < at_least or time.perf_counter() - start < seconds:
        t = clock()
        fn()
        times.append(clock() - t)
    return min(times)


def summary(seconds=2.0, clock=time.perf_counter):
    """Rows (shape, mode, dlcore ms, GFLOPS, % of matmul, torch ms, torch / dlcore time)."""
    _CEILING.clear()
    a, b = rand(2048, 2048), rand(2048, 2048, seed=1)
    out = np.empty_like(a)
    ceiling = 2 * 2048 ** 3 / _best(lambda: np.matmul(a, b, out=out), seconds, 3, clock) / 1e9
    rows = []
    for shape, name in zip(ISSUE_SHAPES, ISSUE_IDS):
        ours = dlcore_calls(shape)
        theirs = torch_calls(shape)
        for i, mode in enumerate(("forward", "forward+backward")):
            flops = issue_flops(shape) * (1 if i == 0 else 3)
            t = _best(ours[i], seconds, clock=clock)
            tt = _best(theirs[i], seconds, clock=clock) if theirs else None
            rows.append((name, mode, t * 1e3, flops / t / 1e9, 100 * flops / t / 1e9 / ceiling,
                         None if tt is None else tt * 1e3, None if tt is None else tt / t))
    return ceiling, rows


def main(argv=None):
    """Print the table. ``--per-core``: one thread everywhere (dlcore, BLAS, torch) and CPU time
    instead of wall time, which a shared, busy machine does not distort."""
    import sys

    per_core = "--per-core" in (sys.argv[1:] if argv is None else argv)
    if per_core:
        dl.config.set_num_threads(1)
    ceiling, rows = summary(clock=time.process_time if per_core else time.perf_counter)
    clock = "CPU time, 1 thread" if per_core else f"wall time, {dl.config.num_threads()} threads"
    print(f"{clock}; float32 matmul ceiling (NumPy 2048^3): {ceiling:.1f} GFLOPS")
    print(f"{'shape':<24} {'mode':<17} {'ms':>8} {'GFLOPS':>8} {'% ceil':>7} {'torch ms':>9} {'torch/dl':>8}")
    for name, mode, ms, gflops, pct, tms, ratio in rows:
        torch_part = f"{tms:9.2f} {ratio:8.2f}" if tms is not None else f"{'-':>9} {'-':>8}"
        print(f"{name:<24} {mode:<17} {ms:8.2f} {gflops:8.1f} {pct:6.0f}% {torch_part}")


if __name__ == "__main__":
    main()
