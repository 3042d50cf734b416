"""GEMM family (kernels/gemm.py): matmul (BLAS through scipy) and dense_forward (GEMM + fused
bias/activation epilogue), at square sizes, at the MLP workload's shapes (forward and the two
backward products), and NumPy's matmul as the reference BLAS. FLOPs: 2 m n k."""
import numpy as np
import pytest

from benchmarks._bench import measure, rand
from dlcore import kernels
from dlcore.kernels.elementwise import ACTIVATIONS

matmul = kernels.get("matmul")
dense_forward = kernels.get("dense_forward")
RELU = ACTIVATIONS["relu"]


@pytest.mark.parametrize("n", [256, 512, 1024])
def test_matmul_square_float32(benchmark, n):
    a, b, c = rand(n, n), rand(n, n, seed=1), np.empty((n, n), np.float32)
    measure(benchmark, lambda: matmul(a, b, c), flops=2 * n ** 3)


def test_numpy_matmul_1024_reference(benchmark):
    n = 1024
    a, b, c = rand(n, n), rand(n, n, seed=1), np.empty((n, n), np.float32)
    measure(benchmark, lambda: np.matmul(a, b, out=c), flops=2 * n ** 3)


def test_matmul_512_float64(benchmark):
    n = 512
    a, b, c = rand(n, n, dtype=np.float64), rand(n, n, dtype=np.float64, seed=1), np.empty((n, n))
    measure(benchmark, lambda: matmul(a, b, c), flops=2 * n ** 3)


# (N, K, M) of the MLP workload's layers at batch 128
MLP_SHAPES = [(128, 784, 512), (128, 512, 256), (128, 256, 10)]


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_forward(benchmark, n, k, m):
    x, w, y = rand(n, k), rand(k, m, seed=1), np.empty((n, m), np.float32)
    measure(benchmark, lambda: matmul(x, w, y), flops=2 * n * k * m)


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_weight_grad(benchmark, n, k, m):
    """dW (K, M) = x^T (K, N) @ dy (N, M)."""
    x, dy, dw = rand(n, k), rand(n, m, seed=1), np.empty((k, m), np.float32)
    measure(benchmark, lambda: matmul(x, dy, dw, trans_a=True), flops=2 * n * k * m)


@pytest.mark.parametrize("n,k,m", MLP_SHAPES)
def test_matmul_mlp_input_grad(benchmark, n, k, m):
    """dx (N, K) = dy (N, M) @ W^T (M, K)."""
    dy, w, dx = rand(n, m), rand(k, m, seed=1), np.empty((n, k), np.float32)
    measure(benchmark, lambda: matmul(dy, w, dx, trans_b=True), flops=2 * n * k * m)


@pytest.mark.parametrize("n", [1, 128])
def test_dense_forward_relu(benchmark, n):
    k, m = 784, 512
    x, w, b, y = rand(n, k), rand(k, m, seed=1), rand(m, seed=2), np.empty((n, m), np.float32)
    threads = kernels.threads_for(n * k * m)
    measure(benchmark, lambda: dense_forward(x, w, b, RELU, 0.0, y, threads), flops=2 * n * k * m)


# ---- the per-CPU report: `python -m benchmarks.bench_gemm` -------------------------------------
REPORT_SHAPES = ((1024, 1024, 1024), (128, 128, 128), (256, 784, 512))  # (m, k, n)


def fma_peak_gflops(threads, seconds=0.2):
    """The physical float32 peak (GFLOPS) on `threads` threads: a register-only FMA loop of 12
    independent chains in the CPU's widest vectors (kernels._gemm.fma_peak), best of 3."""
    from dlcore.kernels import _gemm

    isa = 0 if "avx512" in _gemm.AVAILABLE_PATHS else 1
    flops, took = _gemm.fma_peak(isa, 1_000_000, threads)
    if flops == 0:
        return None
    iters = max(1_000_000, int(1_000_000 * seconds / max(took, 1e-6)))
    return max(f / s for f, s in (_gemm.fma_peak(isa, iters, threads) for _ in range(3))) / 1e9


def _median_gflops(fn, flops, reps):
    import time

    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return flops / sorted(times)[len(times) // 2] / 1e9


def report(thread_counts=(1, 2), rounds=3):
    """Markdown: the CPU class, the FMA peak, and per thread count a table of float32 GEMM
    GFLOPS (dlcore's chosen path, each forced path, NumPy's BLAS), variants alternated."""
    from benchmarks.compare_processes import cpu_class, machine_info
    from dlcore import config
    from dlcore.kernels import _gemm

    info = machine_info(max(thread_counts))
    lines = [f"CPU: {info['cpu']} ({cpu_class(info['flags'])}); flags: {', '.join(info['flags'])}"]
    for threads in thread_counts:
        config.set_num_threads(threads)
        peak = fma_peak_gflops(threads)
        lines += ["", f"float32 GEMM, {threads} thread{'s' if threads > 1 else ''} "
                  f"(FMA peak {peak:.0f} GFLOPS); GFLOPS, median of alternated runs"
                  if peak else f"float32 GEMM, {threads} thread(s) (no FMA peak measured)", ""]
        paths = ["auto"] + [p for p in _gemm.AVAILABLE_PATHS if p != "base"]
        lines.append("| m x k x n | " + " | ".join(f"dlcore {p}" for p in paths) + " | NumPy | chosen | % of peak |")
        lines.append("|---|" + "---:|" * (len(paths) + 3))
        for m, k, n in REPORT_SHAPES:
            a, b, c = rand(m, k), rand(k, n, seed=1), np.empty((m, n), np.float32)
            flops, reps = 2 * m * n * k, 5 if m * n * k > 1e8 else 50
            best = {}
            for _ in range(rounds):
                for p in paths:
                    previous = _gemm.set_path(p)
                    try:
                        g = _median_gflops(lambda: matmul(a, b, c, n_threads=threads), flops, reps)
                    finally:
                        _gemm.set_path(previous)
                    best[p] = max(best.get(p, 0), g)
                g = _median_gflops(lambda: np.matmul(a, b, out=c), flops, reps)
                best["numpy"] = max(best.get("numpy", 0), g)
            chosen = "/".join(map(str, _gemm.choose_path(m, n, k, n_threads=threads)))
            share = f"{100 * best['auto'] / peak:.0f}%" if peak else "n/a"
            lines.append(f"| {m}x{k}x{n} | " + " | ".join(f"{best[p]:.1f}" for p in paths)
                         + f" | {best['numpy']:.1f} | {chosen} | {share} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
