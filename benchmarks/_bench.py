"""Helpers for the pytest-benchmark micro-benchmarks: rates (GFLOPS where FLOPs are defined,
GB/s or G elements/s otherwise) stored in ``benchmark.extra_info`` and summarised at the end."""
import numpy as np

RESULTS = []


def measure(benchmark, fn, flops=None, nbytes=None, elements=None, samples=None, pedantic=None):
    """Benchmark ``fn`` and attach its rates (from the median time) to the report."""
    if pedantic:
        result = benchmark.pedantic(fn, **pedantic)
    else:
        result = benchmark(fn)
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: the function ran once, untimed
        return result
    median = stats.stats.median
    parts = [f"{median * 1e3:9.3f} ms"]
    if flops:
        benchmark.extra_info["gflops"] = flops / median / 1e9
        parts.append(f"{benchmark.extra_info['gflops']:8.2f} GFLOPS")
    if nbytes:
        benchmark.extra_info["gb_per_s"] = nbytes / median / 1e9
        parts.append(f"{benchmark.extra_info['gb_per_s']:8.2f} GB/s")
    if elements:
        benchmark.extra_info["gelements_per_s"] = elements / median / 1e9
        parts.append(f"{benchmark.extra_info['gelements_per_s']:8.3f} Gelem/s")
    if samples:
        benchmark.extra_info["samples_per_s"] = samples / median
        parts.append(f"{benchmark.extra_info['samples_per_s']:10.0f} samples/s")
    RESULTS.append({"name": benchmark.name, "text": "  ".join(parts)})
    return result


def rand(*shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float64).astype(dtype)


def require_layer(name):
    """The dlcore layer class ``name``, or skip: families whose layers do not exist yet are
    picked up automatically once they do."""
    import pytest

    import dlcore as dl

    if not hasattr(dl.layers, name):
        pytest.skip(f"dlcore has no layers.{name} yet")
    return getattr(dl.layers, name)


def layer_forward(layer, x):
    """Inference call (no tape), the layer built and warmed once."""
    import dlcore as dl

    def call():
        with dl.no_grad():
            return layer(x, training=False)

    call()
    return call


def layer_train_step(layer, x):
    """Forward with the tape + gradients of the input and of every weight (sum of outputs as
    the loss), the layer built and warmed (Numba compiled) once."""
    import dlcore as dl

    xt = dl.Variable(x) if hasattr(dl, "Variable") else x

    def step():
        with dl.GradientTape() as tape:
            tape.watch(xt)
            loss = dl.ops.sum(layer(xt, training=True))
        return tape.gradient(loss, [xt, *layer.trainable_weights])

    step()
    return step
