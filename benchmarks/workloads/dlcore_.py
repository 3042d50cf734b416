"""dlcore: the standard workloads through the public Keras-style API (``_keras_api``).

A model whose layers dlcore does not have yet (``hasattr(dl.layers, "Conv2D")`` is false) is
"n/a"; it is picked up automatically once the layers exist.
"""
from . import _keras_api

REQUIRES = ("dlcore",)
NAME = "dlcore"


def _set_threads(dl, n):
    dl.config.set_num_threads(int(n))


def setup(threads):
    import dlcore as dl

    _set_threads(dl, threads)
    return {"threads": {"dl.config.num_threads": dl.config.num_threads()}}


def supports(spec):
    import dlcore as dl

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
    if spec["kind"] == "attention":
        return _keras_api.AttentionRunner(dl, spec, _watch)
    return _keras_api.Runner(dl, spec)


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
