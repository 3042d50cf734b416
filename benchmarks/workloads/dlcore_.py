"""dlcore: the standard workloads through the public Keras-style API (``_keras_api``).

A model whose layers dlcore does not have yet (``hasattr(dl.layers, "Conv2D")`` is false) is
"n/a"; it is picked up automatically once the layers exist.

On the GPU (``setup(threads, "gpu")``), the worker enters ``dl.device("gpu:0")`` for its whole
life, as a user's script does: models are built, compiled and stepped inside the scope, NumPy
batches in, NumPy predictions out; each step ends with ``cuda.synchronize()``. A model with a
layer or op that has no GPU path yet fails its first step with dlcore's ValueError or TypeError:
that workload is skipped with the error's text.
"""
import contextlib

from . import _common, _keras_api

REQUIRES = ("dlcore",)
NAME = "dlcore"
DEVICES = ("cpu", "gpu")

_GPU_SCOPE = contextlib.ExitStack()  # dl.device("gpu:0"), entered once and held by a GPU worker


def _set_threads(dl, n):
    dl.config.set_num_threads(int(n))


def setup(threads, device="cpu"):
    import dlcore as dl

    _set_threads(dl, threads)
    info = {"threads": {"dl.config.num_threads": dl.config.num_threads()}}
    if device == "gpu":
        info["gpu"] = _enter_gpu(dl)
    return info


def _enter_gpu(dl):
    """Enter ``dl.device("gpu:0")`` for the rest of the process (dlcore's RuntimeError when there
    is no GPU or no numba.cuda) and describe the card."""
    import importlib.metadata

    where = _GPU_SCOPE.enter_context(dl.device("gpu:0"))
    from numba import config, cuda

    info = {"device": where, "scope": 'dl.device("gpu:0")'}
    for dist in ("numba-cuda", "numba"):
        try:
            info["numba_cuda"] = f"{dist} {importlib.metadata.version(dist)}"
            break
        except importlib.metadata.PackageNotFoundError:
            pass
    if config.ENABLE_CUDASIM:
        return dict(info, card="CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return dict(info, card=name, via="numba.cuda.get_current_device().name",
                compute_capability=list(dev.compute_capability))


def supports(spec):
    import dlcore as dl

    if spec["model_spec"]["kind"] == "gemm":
        return None if spec.get("device") == "gpu" else "the gemm workload runs with --device gpu only"
    if spec["model_spec"]["kind"] == "attention":
        return None if hasattr(dl.ops, "dot_product_attention") else "dlcore has no ops.dot_product_attention yet"
    missing = _keras_api.missing_layers(dl, spec["model_spec"])
    if missing:
        return "dlcore has no " + ", ".join(f"layers.{m}" for m in missing) + " yet"
    return None


def _watch(q, k, v, dy, call):
    """Forward+backward step: the gradients of q, k and v through ``dl.GradientTape``."""
    import dlcore as dl

    tensors = [dl.Tensor(x) for x in (q, k, v)]

    def step():
        with dl.GradientTape() as tape:
            for t in tensors:
                tape.watch(t)
            out = call(*tensors)
        return tape.gradient(out, tensors, output_gradients=dy)
    return step


def build(spec):
    import dlcore as dl

    dl.utils.set_random_seed(0)
    if spec["kind"] == "gemm":
        return GemmRunner(spec)
    if spec["kind"] == "attention":
        return _keras_api.AttentionRunner(dl, spec, _watch)
    if spec.get("device") == "gpu":
        return _gpu_runner(dl, spec)
    return _keras_api.Runner(dl, spec)


def _synchronized(step):
    from numba import cuda

    def synced():
        out = step()
        cuda.synchronize()
        return out
    return synced


def _gpu_runner(dl, spec):
    """The workload's Runner inside the GPU scope, checked by one step: a layer or op without a
    GPU path (ValueError / TypeError) makes the workload Unsupported, with dlcore's message."""
    try:
        runner = _keras_api.Runner(dl, spec)
        runner.step()
    except (ValueError, TypeError) as exc:
        raise _common.Unsupported(f"{type(exc).__name__}: {exc}") from exc
    runner.step = _synchronized(runner.step)
    runner.info["device"] = 'gpu:0 (dl.device scope); NumPy batches in, NumPy results out'
    return runner


class GemmRunner:
    """dlcore's CUDA matmul kernel, out = a @ b on (n, n) float32 device arrays; the product is
    checked against NumPy (float64) before it is timed."""

    def __init__(self, spec):
        import numpy as np
        from numba import cuda

        from dlcore import kernels

        a, b = _common.make_gemm(spec)
        matmul = kernels.get("matmul", device="cuda")
        da, db = cuda.to_device(a), cuda.to_device(b)
        out = cuda.device_array(a.shape, dtype=np.float32)
        matmul(da, db, out)
        error = _common.check_gemm(a, b, out.copy_to_host())
        self.step = _synchronized(lambda: matmul(da, db, out))
        self.params = 0
        self.info = {"call": "kernels.get('matmul', device='cuda')(a, b, out), float32 device arrays",
                     "max_error_first_rows": error}


def _setup_lib(threads):
    import dlcore as dl

    _set_threads(dl, threads)
    return dl


def attention_memory(payload):
    from . import _common

    _common.attention_memory(payload, _setup_lib, lambda dl, spec: _keras_api.attention_step(dl, spec, _watch))


def count_params(spec):
    import dlcore

    if spec["kind"] == "attention":
        return 0
    return _keras_api.trainable_params(_keras_api.build_model(dlcore, spec["model_spec"]))


def cold_start(payload):
    _keras_api.cold_start("dlcore", payload, _set_threads)


def train_memory(payload):
    _keras_api.train_memory("dlcore", payload, _set_threads)


def layer_rates(tiny):
    """dlcore's compute at the standard workloads' shapes, for the kernel-share table: the matmul
    kernel (BLAS through scipy) at the ceiling's shapes and the forward pass (inference, no tape)
    of each compute layer dlcore has. Returns (name, flops, call) triples."""
    import numpy as np

    import dlcore as dl
    from dlcore import kernels

    from .. import spec as _spec

    rng = np.random.default_rng(0)
    entries = []

    def layer_call(layer, x):
        def call():
            with dl.no_grad():
                return layer(x, training=False)
        return call

    matmul = kernels.get("matmul")
    n = 64 if tiny else 1024
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    entries.append((f"kernel matmul {n}x{n}x{n} float32", 2 * n ** 3, lambda: matmul(a, b, c)))

    mlp = _spec.model_spec("mlp", tiny)
    batch = _spec.workload_spec("mlp-train", tiny)["batch"]
    sizes = [mlp["input"], *mlp["hidden"], mlp["classes"]]
    for k, m in zip(sizes[:-1], sizes[1:]):
        entries.append((f"Dense {k}->{m} relu, batch {batch}", 2 * batch * k * m,
                        layer_call(dl.layers.Dense(m, activation="relu"),
                                   rng.random((batch, k), dtype=np.float32))))
    if hasattr(dl.layers, "Conv2D"):
        cnn = _spec.model_spec("cnn", tiny)
        cbatch = _spec.workload_spec("cnn-train", tiny)["batch"]
        shapes, _ = _spec._cnn_shapes(cnn)
        k = cnn["kernel"]
        for (h, w, ch, f, oh, ow) in shapes:
            entries.append((f"Conv2D {h}x{w}x{ch}->{f} {k}x{k} relu, batch {cbatch}",
                            2 * cbatch * k * k * ch * f * oh * ow,
                            layer_call(dl.layers.Conv2D(f, k, activation="relu"),
                                       rng.random((cbatch, h, w, ch), dtype=np.float32))))
    for cell in ("LSTM", "GRU"):
        if hasattr(dl.layers, cell):
            rnn = _spec.model_spec(cell.lower(), tiny)
            rbatch = _spec.workload_spec(f"{cell.lower()}-train", tiny)["batch"]
            flops = (_spec.forward_flops(rnn) - 2 * rnn["units"] * rnn["classes"]) * rbatch
            entries.append((f"{cell} {rnn['units']} units, T={rnn['timesteps']}, batch {rbatch}", flops,
                            layer_call(getattr(dl.layers, cell)(rnn["units"]),
                                       rng.random((rbatch, rnn["timesteps"], rnn["features"]), dtype=np.float32))))
    return entries


def save_model(spec, path):
    import dlcore as dl

    return _keras_api.save_model(dl, spec, path + ".dlc")


def infer_memory(payload):
    _keras_api.infer_memory("dlcore", payload, _set_threads)
