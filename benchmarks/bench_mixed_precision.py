"""Dtype policies: the runner's MLP (784-512-256-10, spec "mlp") under float32, mixed_bfloat16
and mixed_float16: a training step at batch 128 (SGD with momentum, as mlp-train), predict at
batch 128 and batch 1, and the bf16 GEMM kernel (matmul_bf16, AVX512_BF16 or portable) against the
float32 one at the MLP's shapes.

    pytest benchmarks/bench_mixed_precision.py --benchmark-only      (pytest-benchmark)
    python -m benchmarks.bench_mixed_precision [--threads 1] [--rounds 7]
        the ratios float32 time / policy time, rounds alternated between the policies in one
        process, median (min-max) per policy.
"""
import argparse
import time

import numpy as np
import pytest

import dlcore as dl
from benchmarks import spec as _spec
from benchmarks._bench import measure, rand
from dlcore import kernels
from dlcore.kernels import _gemm

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
MLP_SHAPES = [(128, 784, 512), (128, 512, 256), (128, 256, 10)]


def _mlp(policy):
    """(model compiled as mlp-train, x (128, 784), y (128,)) under ``policy``."""
    mlp = _spec.model_spec("mlp")
    batch = _spec.workload_spec("mlp-train")["batch"]
    dl.mixed_precision.set_global_policy(policy)
    try:
        dl.utils.set_random_seed(0)
        layers = [dl.Input((mlp["input"],))] + [dl.layers.Dense(h, activation="relu") for h in mlp["hidden"]]
        model = dl.Sequential(layers + [dl.layers.Dense(mlp["classes"], activation="softmax")])
        model.compile(dl.optimizers.SGD(0.01, momentum=0.9), "sparse_categorical_crossentropy")
    finally:
        dl.mixed_precision.set_global_policy(None)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, mlp["input"])).astype(np.float32)
    y = rng.integers(0, mlp["classes"], batch)
    return model, x, y


def _steps(policy):
    model, x, y = _mlp(policy)
    return {"train step b128": lambda: model.train_on_batch(x, y),
            "predict b128": lambda: model.predict_on_batch(x),
            "predict b1": lambda: model.predict_on_batch(x[:1])}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("step", ["train step b128", "predict b128", "predict b1"])
def test_mlp(benchmark, policy, step):
    fn = _steps(policy)[step]
    fn()
    measure(benchmark, fn, samples=128 if "128" in step else 1)


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
@pytest.mark.parametrize("kernel", ["matmul", "matmul_bf16"])
def test_gemm_mlp_shapes(benchmark, kernel, n, k, m):
    a, b, c = rand(n, k), rand(k, m, seed=1), np.empty((n, m), np.float32)
    fn = kernels.get(kernel)
    measure(benchmark, lambda: fn(a, b, c), flops=2 * n * k * m)


def _time(fn, seconds):
    fn()
    start, runs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        runs += 1
    return (time.perf_counter() - start) / runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="per measurement")
    args = parser.parse_args()
    dl.config.set_num_threads(args.threads)
    cases = {}
    for policy in POLICIES:
        for name, fn in _steps(policy).items():
            cases[(name, policy)] = fn
    for n, k, m in MLP_SHAPES:
        a, b, c = rand(n, k), rand(k, m, seed=1), np.empty((n, m), np.float32)
        for policy, kernel in (("float32", "matmul"), ("mixed_bfloat16", "matmul_bf16")):
            fn = kernels.get(kernel)
            cases[(f"gemm {n}x{k}x{m}", policy)] = lambda fn=fn, a=a, b=b, c=c: fn(a, b, c)
    times = {key: [] for key in cases}
    for _ in range(args.rounds):  # alternate the policies round by round (a shared, noisy machine)
        for key, fn in cases.items():
            times[key].append(_time(fn, args.seconds))
    print(f"threads {args.threads}, bf16 tiles: {_gemm.bf16_isa()}, {args.rounds} rounds; "
          "ms median (min-max); ratio = float32 / policy (> 1: the policy is faster)")
    for name in dict.fromkeys(n for n, _ in cases):
        base = np.median(times[(name, "float32")])
        row = []
        for policy in POLICIES:
            if (name, policy) in times:
                t = np.array(times[(name, policy)]) * 1e3
                row.append(f"{policy} {np.median(t):.3f} ({t.min():.3f}-{t.max():.3f}) x{base * 1e3 / np.median(t):.2f}")
        print(f"{name:18s} " + " | ".join(row))


if __name__ == "__main__":
    main()
