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
  transformer: token ids (maxlen,) from ``vocab``; Embedding(vocab, embed) + learned position
        Embedding(maxlen, embed); ``blocks`` post-norm encoder blocks (MultiHeadAttention with
        ``heads`` x ``key_dim`` = embed, dropout, residual, LayerNormalization; FFN Dense(ffn,
        relu), Dense(embed), dropout, residual, LayerNormalization), as keras.io's
        TransformerBlock and PyTorch's nn.TransformerEncoderLayer; GlobalAveragePooling1D;
        Dense(classes, softmax).
  attention: one causal self-attention softmax(q k^T / sqrt(head_dim)) v of ``heads`` heads at
        each sequence length of ``seqs`` (no projections: the fused op itself), batch 1.
  gemm: float32 out (n, n) = a (n, n) @ b (n, n) at each n of ``sizes`` (GPU only: the CUDA matmul
        kernel against torch.matmul).

The standard stack is pure Python (no numpy) so that a cold-start child imports nothing extra.
"""
import copy

MODELS = {
    "cnn": {"kind": "cnn", "input": (32, 32, 1), "filters": (32, 64, 128), "kernel": 3, "pool": 2,
            "dense": 128, "dropout": 0.5, "classes": 10},
    "mlp": {"kind": "mlp", "input": 784, "hidden": (512, 256), "classes": 10},
    "lstm": {"kind": "lstm", "units": 128, "timesteps": 50, "features": 32, "classes": 10},
    "gru": {"kind": "gru", "units": 128, "timesteps": 50, "features": 32, "classes": 10},
    "transformer": {"kind": "transformer", "vocab": 8000, "maxlen": 128, "embed": 128, "blocks": 2, "heads": 4,
                    "key_dim": 32, "ffn": 512, "dropout": 0.1, "epsilon": 1e-6, "classes": 2},
    "attention": {"kind": "attention", "heads": 4, "head_dim": 32, "seqs": (512, 1024, 2048, 4096, 8192)},
    # square float32 products n x n x n, one per size (the GPU GEMM workload)
    "gemm": {"kind": "gemm", "sizes": (1024, 2048, 4096)},
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
# steps), "scaling" (time per sample for each batch size), "distributed" (samples/s with several
# processes under mpiexec).
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
    "transformer-train": {"kind": "train", "model": "transformer", "batch": 32, "optimizer": "adam"},
    "transformer-infer-b1": {"kind": "infer", "model": "transformer", "batch": 1},
    # one causal self-attention per sequence length, forward and forward+backward: time (latency,
    # ms) and the peak memory a fresh process adds for one call (MB above the state before it)
    "attention-long": {"kind": "attention", "model": "attention", "batch": 1,
                       "passes": ("forward", "forward+backward")},
    "cold-start": {"kind": "cold-start", "model": "cnn", "batch": 1},
    "cold-start-mlp": {"kind": "cold-start", "model": "mlp", "batch": 1, "extra": True},
    "train-memory": {"kind": "memory", "model": "cnn", "batch": 64, "optimizer": "adam", "steps": 20},
    "train-memory-mlp": {"kind": "memory", "model": "mlp", "batch": 128, "optimizer": "sgd-momentum",
                         "steps": 20, "extra": True},
    # deployment: a saved model loaded in a fresh process (import + load + predict one sample; .dlc,
    # .keras, PyTorch state_dict, ONNX Runtime on the exported .onnx); N Python threads calling one
    # model's predict at batch 1 (calls/s for each number of callers); the resident memory a model's
    # first predict adds once the process is warm (activations and workspace), per inference workload
    "cold-start-saved": {"kind": "cold-start", "model": "cnn", "batch": 1, "saved": True},
    "cold-start-saved-mlp": {"kind": "cold-start", "model": "mlp", "batch": 1, "saved": True, "extra": True},
    "concurrent-predict": {"kind": "concurrent", "base": "cnn-infer-b1", "model": "cnn", "callers": (1, 2)},
    "concurrent-predict-mlp": {"kind": "concurrent", "base": "mlp-infer-b1", "model": "mlp", "callers": (1, 2)},
    "infer-memory": {"kind": "infer-memory", "model": "cnn",
                     "bases": ("cnn-infer-b1", "cnn-infer-b256", "mlp-infer-b1", "lstm-infer-b1")},
    "scaling-cnn-infer": {"kind": "scaling", "base": "cnn-infer-b1", "model": "cnn",
                          "batches": (1, 4, 16, 64, 256)},
    "scaling-mlp-train": {"kind": "scaling", "base": "mlp-train", "model": "mlp",
                          "batches": (1, 4, 16, 64, 256), "optimizer": "sgd-momentum"},
    # data-parallel training of the base workloads (their global batch) with 1 and 2 ranks of one
    # thread under mpiexec against 1 process of 2 threads, dlcore's MPIStrategy and PyTorch DDP
    # (gloo); dlcore's 2 ranks also at each bucket size; plus a many-machine model
    # (benchmarks/compare_distributed.py)
    "scaling-distributed": {"kind": "distributed", "model": "cnn", "bases": ("cnn-train", "lstm-train"),
                            "bucket_bytes": 25 * 2 ** 20, "buckets": (64 * 2 ** 10, 2 ** 20, 25 * 2 ** 20)},
}

# The GPU comparison (``--device gpu``): dlcore under dl.device("gpu:0") against PyTorch on
# "cuda" (TF32 off), on the training and inference workloads above and on one workload of its own,
# "gemm": dlcore's CUDA matmul kernel against torch.matmul, float32, at each size of the model.
GPU_ONLY_WORKLOADS = {
    "gemm": {"kind": "gemm", "model": "gemm", "batch": 1},
}
GPU_WORKLOADS = ("cnn-train", "lstm-train", "mlp-train", "cnn-infer-b256", "mlp-infer-b1", "gemm")
GPU_FRAMEWORKS = ("dlcore", "torch")
# issue 18's targets: dlcore's throughput / PyTorch CUDA's on these workloads, and dlcore's GEMM
# GFLOPS / torch.matmul's at 4096
GPU_TARGETS = {"cnn-train": 0.5, "lstm-train": 0.5, "gemm@4096": 0.5}

QUICK_SCALING_BATCHES = (1, 16, 256)
QUICK_ATTENTION_SEQS = (512, 2048)

# The smallest shapes that keep every layer valid (three 3x3 "valid" convolutions with 2x2
# pooling need 22 pixels); used by `--tiny` and the test suite.
TINY = {
    "models": {
        "cnn": {"input": (22, 22, 1), "filters": (2, 3, 4), "dense": 8},
        "mlp": {"input": 16, "hidden": (8, 8)},
        "lstm": {"units": 4, "timesteps": 3, "features": 2},
        "gru": {"units": 4, "timesteps": 3, "features": 2},
        "transformer": {"vocab": 50, "maxlen": 8, "embed": 8, "heads": 2, "key_dim": 4, "ffn": 16},
        "attention": {"seqs": (16, 32)},
        "gemm": {"sizes": (8, 19)},
    },
    "batch": 2,            # every training and batch>1 inference workload
    "steps": 2,            # memory workloads
    "batches": (1, 2),     # scaling
}

FRAMEWORKS = ("dlcore", "torch", "keras", "onnxruntime", "dlcore_onnx", "dlcore_int8", "onnxruntime_int8",
              "dlcore_bf16", "torch_int8")
FRAMEWORK_LABELS = {"dlcore": "dlcore", "torch": "PyTorch", "keras": "Keras (TF)",
                    "onnxruntime": "ONNX Runtime", "dlcore_onnx": "dlcore (ONNX import)",
                    "dlcore_int8": "dlcore int8", "onnxruntime_int8": "ONNX Runtime int8",
                    "dlcore_bf16": "dlcore mixed_bfloat16",
                    "torch_int8": "PyTorch int8"}
# ONNX Runtime is an inference engine: it runs the models exported from PyTorch.
# The int8 variants (inference workloads of the CNN, the MLP, the LSTM and the GRU): dlcore's
# model.quantize("int8") (the CNN calibrated), ONNX Runtime's onnxruntime.quantization of the PyTorch
# export (static QDQ for the CNN, dynamic for the others) and PyTorch's quantize_dynamic (MLP, LSTM, GRU).
INFERENCE_ONLY = {"onnxruntime", "dlcore_onnx", "dlcore_int8", "onnxruntime_int8", "torch_int8"}


def model_spec(name, tiny=False):
    """The model spec ``name`` ("cnn", "mlp", "lstm", "gru"), with tiny shapes if asked."""
    spec = copy.deepcopy(MODELS[name])
    if tiny:
        spec.update(copy.deepcopy(TINY["models"][name]))
    for key in ("input", "seqs", "sizes"):
        if isinstance(spec.get(key), list):
            spec[key] = tuple(spec[key])
    if spec["kind"] == "transformer" and spec["heads"] * spec["key_dim"] != spec["embed"]:
        raise ValueError(f"transformer spec: heads x key_dim must equal embed (PyTorch's twin), "
                         f"received {spec['heads']} x {spec['key_dim']} != {spec['embed']}")
    return spec


def workload_spec(name, tiny=False, batch=None, variant=None):
    """The workload ``name`` resolved: its model spec under "model_spec", tiny shapes if asked,
    ``batch`` overriding the batch size (scaling runs), ``variant`` (a dict) set on top (the
    attention workload's {"seq": T, "pass": "forward" | "forward+backward"}, the GEMM's {"n": N})."""
    spec = copy.deepcopy(WORKLOADS[name] if name in WORKLOADS else GPU_ONLY_WORKLOADS[name])
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
    if variant:
        spec.update(variant)
    return spec


def input_shape(model):
    """Per-sample input shape, channels_last (Keras, dlcore)."""
    if model["kind"] == "cnn":
        return tuple(model["input"])
    if model["kind"] == "mlp":
        return (model["input"],)
    if model["kind"] == "transformer":
        return (model["maxlen"],)
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
    if kind == "transformer":
        e, f = model["embed"], model["ffn"]
        block = 4 * (e * e + e) + (e * f + f) + (f * e + e) + 2 * (2 * e)  # MHA, FFN, two LayerNorms
        return (model["vocab"] + model["maxlen"]) * e + model["blocks"] * block + e * model["classes"] + model["classes"]
    if kind in ("attention", "gemm"):
        return 0
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
    if kind == "transformer":
        t, e, f = model["maxlen"], model["embed"], model["ffn"]
        block = 4 * 2 * t * e * e + 2 * 2 * t * t * e + 2 * 2 * t * e * f  # projections, q.k and p.v, FFN
        return model["blocks"] * block + 2 * e * model["classes"]
    u, d, t = model["units"], model["features"], model["timesteps"]
    gates = 4 if kind == "lstm" else 3
    return t * 2 * (d + u) * gates * u + 2 * u * model["classes"]


def attention_flops(model, seq, batch=1, backward=False):
    """FLOPs of one causal self-attention (q.k^T and p.v over the causal half, 2 per multiply-add);
    forward+backward counts 3.5x forward (the backward's five products of the same size)."""
    fwd = 2 * 2 * batch * model["heads"] * model["head_dim"] * seq * (seq + 1) / 2
    return 3.5 * fwd if backward else fwd


def workload_flops(spec):
    """FLOPs of one iteration of a train/infer workload: forward x batch, training counted as
    3x forward (forward + gradients of inputs and weights), the usual approximation."""
    if spec["kind"] == "attention":
        return attention_flops(spec["model_spec"], spec["seq"], spec["batch"], spec["pass"] != "forward")
    if spec["kind"] == "gemm":
        return 2 * spec["n"] ** 3
    fwd = forward_flops(spec["model_spec"]) * spec["batch"]
    return 3 * fwd if spec["kind"] == "train" else fwd


def timed_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] in ("train", "infer")]


def process_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] in ("cold-start", "memory")]


def attention_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] == "attention"]


def deploy_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] in ("concurrent", "infer-memory")]


def scaling_workloads():
    return [n for n, w in WORKLOADS.items() if w["kind"] == "scaling"]
