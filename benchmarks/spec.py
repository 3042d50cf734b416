"""The standard workloads, defined once for every framework.

Every framework module in ``workloads/`` builds its models from ``MODELS`` and runs the
workloads of ``WORKLOADS``; nothing else in the benchmarks chooses a shape, a batch size or an
optimizer setting. ``TINY`` holds the smallest shapes, used by the test suite so that the
runner cannot rot (one repetition, seconds).

Legend of a model spec:
  cnn:  input (H, W, C); filters per Conv2D (3x3, "valid", relu), each followed by 2x2 max
        pooling; Flatten; Dense(dense, relu); Dropout(dropout); Dense(classes, softmax)
  mlp:  input features; hidden Dense layers (relu); Dense(classes, softmax)
  lstm/gru: (timesteps, features) input; one recurrent layer of ``units`` returning its last
        step; Dense(classes, softmax). Keras semantics: LSTM gates i, f, c, o with one bias,
        GRU z, r, h with reset_after=True (two biases, as PyTorch's GRU).

The standard stack is pure Python (no numpy) so that a cold-start child imports nothing extra.
"""
import copy

MODELS = {
    "cnn": {"kind": "cnn", "input": (32, 32, 1), "filters": (32, 64, 128), "kernel": 3, "pool": 2,
            "dense": 128, "dropout": 0.5, "classes": 10},
    "mlp": {"kind": "mlp", "input": 784, "hidden": (512, 256), "classes": 10},
    "lstm": {"kind": "lstm", "units": 128, "timesteps": 50, "features": 32, "classes": 10},
    "gru": {"kind": "gru", "units": 128, "timesteps": 50, "features": 32, "classes": 10},
}

# Keras 3 defaults, spelled out so that PyTorch gets the same values (its Adam eps is 1e-8).
OPTIMIZERS = {
    "adam": {"name": "adam", "learning_rate": 1e-3, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7},
    "sgd-momentum": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
}

LOSS = "sparse_categorical_crossentropy"  # on softmax outputs (PyTorch: cross_entropy on logits)

# kind: "train" (one optimizer step on one batch: samples/s), "infer" (one predict call:
# latency at batch 1, throughput above), "cold-start" (a fresh process: import, build, predict one
# sample: wall time and peak RSS), "memory" (a fresh process: peak RSS over `steps` training
# steps), "scaling" (time per sample for each batch size).
# extra=True marks workloads the issue did not list: MLP twins of the CNN process workloads, so
# that frameworks without convolutions still get a cold-start and memory figure.
WORKLOADS = {
    "cnn-train": {"kind": "train", "model": "cnn", "batch": 64, "optimizer": "adam"},
    "cnn-infer-b1": {"kind": "infer", "model": "cnn", "batch": 1},
    "cnn-infer-b256": {"kind": "infer", "model": "cnn", "batch": 256},
    "mlp-train": {"kind": "train", "model": "mlp", "batch": 128, "optimizer": "sgd-momentum"},
    "mlp-infer-b1": {"kind": "infer", "model": "mlp", "batch": 1},
    "lstm-train": {"kind": "train", "model": "lstm", "batch": 64, "optimizer": "adam"},
    "gru-train": {"kind": "train", "model": "gru", "batch": 64, "optimizer": "adam"},
    "lstm-infer-b1": {"kind": "infer", "model": "lstm", "batch": 1},
    "cold-start": {"kind": "cold-start", "model": "cnn", "batch": 1},
    "cold-start-mlp": {"kind": "cold-start", "model": "mlp", "batch": 1, "extra": True},
    "train-memory": {"kind": "memory", "model": "cnn", "batch": 64, "optimizer": "adam", "steps": 20},
    "train-memory-mlp": {"kind": "memory", "model": "mlp", "batch": 128, "optimizer": "sgd-momentum",
                         "steps": 20, "extra": True},
    "scaling-cnn-infer": {"kind": "scaling", "base": "cnn-infer-b1", "model": "cnn",
                          "batches": (1, 4, 16, 64, 256)},
    "scaling-mlp-train": {"kind": "scaling", "base": "mlp-train", "model": "mlp",
                          "batches": (1, 4, 16, 64, 256), "optimizer": "sgd-momentum"},
}

QUICK_SCALING_BATCHES = (1, 16, 256)

# The smallest shapes that keep every layer valid (three 3x3 "valid" convolutions with 2x2
# pooling need 22 pixels); used by `--tiny` and the test suite.
TINY = {
    "models": {
        "cnn": {"input": (22, 22, 1), "filters": (2, 3, 4), "dense": 8},
        "mlp": {"input": 16, "hidden": (8, 8)},
        "lstm": {"units": 4, "timesteps": 3, "features": 2},
        "gru": {"units": 4, "timesteps": 3, "features": 2},
    },
    "batch": 2,            # every training and batch>1 inference workload
    "steps": 2,            # memory workloads
    "batches": (1, 2),     # scaling
}

FRAMEWORKS = ("dlcore", "torch", "keras", "onnxruntime")
FRAMEWORK_LABELS = {"dlcore": "dlcore", "torch": "PyTorch", "keras": "Keras (TF)",
                    "onnxruntime": "ONNX Runtime"}
# ONNX Runtime is an inference engine: it runs the models exported from PyTorch.
INFERENCE_ONLY = {"onnxruntime"}


def model_spec(name, tiny=False):
    """The model spec ``name`` ("cnn", "mlp", "lstm", "gru"), with tiny shapes if asked."""
    spec = copy.deepcopy(MODELS[name])
    if tiny:
        spec.update(copy.deepcopy(TINY["models"][name]))
    if isinstance(spec.get("input"), list):
        spec["input"] = tuple(spec["input"])
    return spec


def workload_spec(name, tiny=False, batch=None):
    """The workload ``name`` resolved: its model spec under "model_spec", tiny shapes if asked,
    ``batch`` overriding the batch size (scaling runs)."""
    spec = copy.deepcopy(WORKLOADS[name])
    spec["name"] = name
    spec["model_spec"] = model_spec(spec["model"], tiny)
    if tiny:
        if spec.get("batch", 1) > 1:
            spec["batch"] = TINY["batch"]
        if "steps" in spec:
            spec["steps"] = TINY["steps"]
        if "batches" in spec:
            spec["batches"] = TINY["batches"]
    if batch is not None:
        spec["batch"] = int(batch)
    if "optimizer" in spec:
        spec["optimizer_spec"] = dict(OPTIMIZERS[spec["optimizer"]])
    return spec


def input_shape(model):
    """Per-sample input shape, channels_last (Keras, dlcore)."""
    if model["kind"] == "cnn":
        return tuple(model["input"])
    if model["kind"] == "mlp":
        return (model["input"],)
    return (model["timesteps"], model["features"])


def _cnn_shapes(model):
    h, w, c = model["input"]
    k, p = model["kernel"], model["pool"]
    out = []
    for f in model["filters"]:
        oh, ow = h - k + 1, w - k + 1
        out.append((h, w, c, f, oh, ow))
        h, w, c = oh // p, ow // p, f
    return out, h * w * c


def param_count(model):
    """Trainable parameters of a model spec, from the formulas (Keras semantics)."""
    kind = model["kind"]
    if kind == "mlp":
        sizes = [model["input"], *model["hidden"], model["classes"]]
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    if kind == "cnn":
        convs, flat = _cnn_shapes(model)
        k = model["kernel"]
        total = sum(k * k * c * f + f for (_, _, c, f, _, _) in convs)
        return total + flat * model["dense"] + model["dense"] + model["dense"] * model["classes"] + model["classes"]
    u, d = model["units"], model["features"]
    if kind == "lstm":
        rnn = 4 * (d * u + u * u + u)
    else:  # gru, reset_after: input and recurrent biases
        rnn = 3 * (d * u + u * u + 2 * u)
    return rnn + u * model["classes"] + model["classes"]


def forward_flops(model):
    """Floating-point operations of one forward pass on one sample (2 per multiply-add, matrix
    products and convolutions only: biases, activations and pooling are not counted)."""
    kind = model["kind"]
    if kind == "mlp":
        sizes = [model["input"], *model["hidden"], model["classes"]]
        return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if kind == "cnn":
        convs, flat = _cnn_shapes(model)
        k = model["kernel"]
        conv = sum(2 * k * k * c * f * oh * ow for (_, _, c, f, oh, ow) in convs)
        return conv + 2 * flat * model["dense"] + 2 * model["dense"] * model["classes"]
    u, d, t = model["units"], model["features"], model["timesteps"]
    gates = 4 if kind == "lstm" else 3
    return t * 2 * (d + u) * gates * u + 2 * u * model["classes"]


def workload_flops(spec):
    """FLOPs of one iteration of a train/infer workload: forward x batch, training counted as
    3x forward (forward + gradients of inputs and weights), the usual approximation."""
    fwd = forward_flops(spec["model_spec"]) * spec["batch"]
    return 3 * fwd if spec["kind"] == "train" else fwd


def timed_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] in ("train", "infer")]


def process_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] in ("cold-start", "memory")]


def scaling_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] == "scaling"]
