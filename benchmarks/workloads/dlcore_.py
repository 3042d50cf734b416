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

    missing = _keras_api.missing_layers(dl, spec["model_spec"])
    if missing:
        return "dlcore has no " + ", ".join(f"layers.{m}" for m in missing) + " yet"
    return None


def build(spec):
    import dlcore as dl

    dl.utils.set_random_seed(0)
    return _keras_api.Runner(dl, spec)


def cold_start(payload):
    _keras_api.cold_start("dlcore", payload, _set_threads)


def train_memory(payload):
    _keras_api.train_memory("dlcore", payload, _set_threads)


def layer_rates(tiny, iters_hint=None):
    """Forward GFLOPS of dlcore's compute layers at the standard workloads' shapes (inference,
    no tape), for the kernel-share table: (name, flops, layer, input) per entry."""
    import numpy as np

    import dlcore as dl

    from .. import spec as _spec

    rng = np.random.default_rng(0)
    entries = []
    mlp = _spec.model_spec("mlp", tiny)
    batch = _spec.workload_spec("mlp-train", tiny)["batch"]
    sizes = [mlp["input"], *mlp["hidden"], mlp["classes"]]
    for a, b in zip(sizes[:-1], sizes[1:]):
        entries.append((f"Dense {a}->{b} relu, batch {batch}", 2 * batch * a * b,
                        dl.layers.Dense(b, activation="relu"), rng.random((batch, a), dtype=np.float32)))
    if hasattr(dl.layers, "Conv2D"):
        cnn = _spec.model_spec("cnn", tiny)
        cbatch = _spec.workload_spec("cnn-train", tiny)["batch"]
        shapes, _ = _spec._cnn_shapes(cnn)
        k = cnn["kernel"]
        for (h, w, c, f, oh, ow) in shapes:
            entries.append((f"Conv2D {h}x{w}x{c}->{f} 3x3 relu, batch {cbatch}", 2 * cbatch * k * k * c * f * oh * ow,
                            dl.layers.Conv2D(f, k, activation="relu"), rng.random((cbatch, h, w, c), dtype=np.float32)))
    for cell in ("LSTM", "GRU"):
        if hasattr(dl.layers, cell):
            rnn = _spec.model_spec(cell.lower(), tiny)
            rbatch = _spec.workload_spec(f"{cell.lower()}-train", tiny)["batch"]
            flops = (_spec.forward_flops(rnn) - 2 * rnn["units"] * rnn["classes"]) * rbatch
            entries.append((f"{cell} {rnn['units']} units, T={rnn['timesteps']}, batch {rbatch}", flops,
                            getattr(dl.layers, cell)(rnn["units"]),
                            rng.random((rbatch, rnn["timesteps"], rnn["features"]), dtype=np.float32)))
    return entries
