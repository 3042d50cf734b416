"""PyTorch: the standard workloads in eager mode, as PyTorch users write them.

- The network ends in logits; training uses ``F.cross_entropy`` (the idiomatic equivalent of
  Keras's softmax + sparse categorical cross-entropy), inference appends ``nn.Softmax``.
- CNN inputs are NCHW; CNN inference runs with ``channels_last`` tensors and weights.
- Keras's LSTM has one bias per gate, PyTorch's two (``bias_ih`` and ``bias_hh``): ``bias_hh`` is
  zeroed and frozen, so the model is the Keras model and the trainable parameter counts agree.
  GRU: Keras's reset_after=True form is PyTorch's GRU, with the same two biases.
- Adam gets Keras's epsilon (1e-7; PyTorch's default is 1e-8).
- Transformer: ``nn.TransformerEncoderLayer`` (batch_first, post-norm, relu, Keras's LayerNorm
  epsilon), whose parameters are Keras's MultiHeadAttention + FFN + two LayerNorms one for one.
  Its dropout also acts on the attention weights and inside the FFN (Keras's keras.io block: after
  attention and after the FFN only). Token ids go in as int64 (``nn.Embedding`` wants Long).
- Attention: ``F.scaled_dot_product_attention(is_causal=True)`` on (batch, heads, seq, head_dim).
- On the GPU (``setup(threads, "gpu")``): the model on "cuda", TF32 off for matmul and cuDNN
  (float32 as dlcore computes it); each step takes the NumPy batch to the GPU and returns the loss
  (``.item()``) or the predictions (``.cpu()``) to the host, as dlcore's train_on_batch /
  predict_on_batch do, and ends with ``torch.cuda.synchronize()``.
"""
from .. import spec as _spec
from . import _common

REQUIRES = ("torch",)
NAME = "torch"
DEVICES = ("cpu", "gpu")


def _set_threads(torch, n, interop=True):
    torch.set_num_threads(int(n))
    if interop:
        try:
            torch.set_num_interop_threads(int(n))
        except RuntimeError:  # already set, or parallel work already ran
            pass


def setup(threads, device="cpu"):
    import torch

    _set_threads(torch, threads)
    info = {"threads": {"torch.get_num_threads": torch.get_num_threads(),
                        "torch.get_num_interop_threads": torch.get_num_interop_threads()}}
    if device == "gpu":
        info["gpu"] = _setup_cuda(torch)
    return info


def _setup_cuda(torch):
    """RuntimeError when PyTorch has no CUDA device; else TF32 off and the card described."""
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "built without CUDA"
        raise RuntimeError(f"PyTorch CUDA is not available: torch.cuda.is_available() is False "
                           f"(torch {torch.__version__}, {built})")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    return {"device": "cuda:0", "card": torch.cuda.get_device_name(0), "via": "torch.cuda.get_device_name(0)",
            "compute_capability": list(torch.cuda.get_device_capability(0)), "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(), "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32": {"torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                     "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                     "float32_matmul_precision": torch.get_float32_matmul_precision()}}


def supports(spec):
    if spec["kind"] == "gemm" and spec.get("device") != "gpu":
        return "the gemm workload runs with --device gpu only"
    return None


def make_model(model):
    """The network (ending in logits) for a model spec."""
    import torch
    from torch import nn

    kind = model["kind"]
    if kind == "cnn":
        layers, c = [], model["input"][2]
        for f in model["filters"]:
            layers += [nn.Conv2d(c, f, model["kernel"]), nn.ReLU(), nn.MaxPool2d(model["pool"])]
            c = f
        _, flat = _spec._cnn_shapes(model)
        layers += [nn.Flatten(), nn.Linear(flat, model["dense"]), nn.ReLU(), nn.Dropout(model["dropout"]),
                   nn.Linear(model["dense"], model["classes"])]
        return nn.Sequential(*layers)
    if kind == "mlp":
        sizes, layers = [model["input"], *model["hidden"]], []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], model["classes"]))
        return nn.Sequential(*layers)

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            cell = nn.LSTM if kind == "lstm" else nn.GRU
            self.rnn = cell(model["features"], model["units"], batch_first=True)
            if kind == "lstm":  # Keras: one bias per gate
                with torch.no_grad():
                    self.rnn.bias_hh_l0.zero_()
                self.rnn.bias_hh_l0.requires_grad_(False)
            self.fc = nn.Linear(model["units"], model["classes"])

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.fc(out[:, -1])

    if kind == "transformer":
        return _transformer(torch, nn, model)
    return LastStep()


def _transformer(torch, nn, model):
    e = model["embed"]

    class TransformerClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.token_emb = nn.Embedding(model["vocab"], e)
            self.pos_emb = nn.Embedding(model["maxlen"], e)
            layer = nn.TransformerEncoderLayer(e, model["heads"], dim_feedforward=model["ffn"],
                                               dropout=model["dropout"], layer_norm_eps=model["epsilon"],
                                               batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, model["blocks"], enable_nested_tensor=False)
            self.fc = nn.Linear(e, model["classes"])

        def forward(self, x):
            positions = torch.arange(x.shape[1], device=x.device)
            h = self.encoder(self.token_emb(x) + self.pos_emb(positions))
            return self.fc(h.mean(dim=1))

    return TransformerClassifier()


def inference_model(net):
    from torch import nn

    return nn.Sequential(net, nn.Softmax(dim=1)).eval()


def make_optimizer(torch, params, opt):
    if opt["name"] == "adam":
        return torch.optim.Adam(params, lr=opt["learning_rate"], betas=(opt["beta_1"], opt["beta_2"]),
                                eps=opt["epsilon"])
    return torch.optim.SGD(params, lr=opt["learning_rate"], momentum=opt["momentum"])


def trainable_params(net):
    return int(sum(p.numel() for p in net.parameters() if p.requires_grad))


def to_torch_input(torch, x, model, channels_last=False):
    t = torch.from_numpy(x)
    if model["kind"] == "cnn":
        t = t.permute(0, 3, 1, 2)  # NHWC -> NCHW (logical)
        t = t.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if model["kind"] == "transformer":
        t = t.long()
    return t


def _attention_step(torch, spec):
    import torch.nn.functional as F

    q, k, v, dy = (torch.from_numpy(a).permute(0, 2, 1, 3).contiguous() for a in _common.make_qkv(spec))
    if spec["pass"] == "forward":
        def forward():
            with torch.inference_mode():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return forward
    for t in (q, k, v):
        t.requires_grad_(True)

    def forward_backward():
        for t in (q, k, v):
            t.grad = None
        F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dy)
        return q.grad
    return forward_backward


class AttentionRunner:
    def __init__(self, spec):
        import torch

        self.step = _attention_step(torch, spec)
        self.params = 0
        self.info = {"call": f"F.scaled_dot_product_attention(is_causal=True), {spec['pass']}"
                             + (", inference_mode" if spec["pass"] == "forward" else "")}


def _setup_lib(threads):
    import torch

    _set_threads(torch, threads)
    return torch


def attention_memory(payload):
    _common.attention_memory(payload, _setup_lib, _attention_step)


class Runner:
    def __init__(self, spec):
        import torch
        import torch.nn.functional as F

        self.torch, self.F = torch, F
        torch.manual_seed(0)
        model = spec["model_spec"]
        gpu = spec.get("device") == "gpu"
        self.net = make_model(model).to("cuda" if gpu else "cpu")
        self.params = trainable_params(self.net)
        x, y = _common.make_data(spec)
        self.info = {"device": "cuda:0; NumPy batches in, host results out"} if gpu else {}
        if spec["kind"] == "train":
            self.net.train()
            self.x = to_torch_input(torch, x, model)
            self.y = torch.from_numpy(y)
            self.opt = make_optimizer(torch, [p for p in self.net.parameters() if p.requires_grad],
                                      spec["optimizer_spec"])
            self.info["call"] = "eager: zero_grad, cross_entropy(net(x), y), backward, step"
            self.step = self._train_cuda if gpu else self._train
        else:
            channels_last = model["kind"] == "cnn"
            self.inf = inference_model(self.net)
            if channels_last:
                self.inf = self.inf.to(memory_format=torch.channels_last)
            self.x = to_torch_input(torch, x, model, channels_last)
            self.info["call"] = "eager, torch.inference_mode()" + (", channels_last" if channels_last else "")
            self.step = self._predict_cuda if gpu else self._predict

    def _train(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.net(self.x), self.y)
        loss.backward()
        self.opt.step()
        return loss

    def _predict(self):
        with self.torch.inference_mode():
            return self.inf(self.x)

    def _train_cuda(self):
        self.opt.zero_grad(set_to_none=True)
        loss = self.F.cross_entropy(self.net(self.x.to("cuda")), self.y.to("cuda"))
        loss.backward()
        self.opt.step()
        value = loss.item()
        self.torch.cuda.synchronize()
        return value

    def _predict_cuda(self):
        with self.torch.inference_mode():
            out = self.inf(self.x.to("cuda")).cpu()
        self.torch.cuda.synchronize()
        return out


class GemmRunner:
    """torch.matmul(a, b, out=c) on (n, n) float32 CUDA tensors (TF32 off), checked against
    NumPy (float64) before it is timed."""

    def __init__(self, spec):
        import torch

        a, b = _common.make_gemm(spec)
        da, db = torch.from_numpy(a).to("cuda"), torch.from_numpy(b).to("cuda")
        out = torch.empty_like(da)
        torch.matmul(da, db, out=out)
        error = _common.check_gemm(a, b, out.cpu().numpy())

        def step():
            torch.matmul(da, db, out=out)
            torch.cuda.synchronize()
        self.step = step
        self.params = 0
        self.info = {"call": "torch.matmul(a, b, out=c), float32 CUDA tensors, TF32 off",
                     "max_error_first_rows": error}


def build(spec):
    if spec["kind"] == "gemm":
        return GemmRunner(spec)
    if spec["kind"] == "attention":
        return AttentionRunner(spec)
    return Runner(spec)


def count_params(spec):
    if spec["kind"] == "attention":
        return 0
    return trainable_params(make_model(spec["model_spec"]))


def export_onnx(spec, path):
    """Export the inference model of ``spec`` (NCHW input for the CNN) to ONNX at ``path``,
    with a dynamic batch axis. Returns the exporter used."""
    import warnings

    import torch

    torch.manual_seed(0)
    model = spec["model_spec"]
    net = inference_model(make_model(model))
    x, _ = _common.make_data(dict(spec, batch=1))
    example = (to_torch_input(torch, x, model),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, example, path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17,
                              dynamo=False)
            return "torch.onnx.export (TorchScript exporter, opset 17)"
        except TypeError:  # a torch without the `dynamo` argument
            torch.onnx.export(net, example, path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17)
            return "torch.onnx.export (opset 17)"


def cold_start(payload):
    clock = _common.Clock()
    import torch

    _set_threads(torch, payload["threads"])
    clock.mark("import_s")
    spec = payload["spec"]
    model = spec["model_spec"]
    net = make_model(model)
    if spec.get("saved_path"):  # PyTorch's way: the module's code, then its saved state_dict
        net.load_state_dict(torch.load(spec["saved_path"], weights_only=True))
    net = inference_model(net)
    channels_last = model["kind"] == "cnn"
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    clock.mark("load_s" if spec.get("saved_path") else "build_s")
    x, _ = _common.make_data(spec)
    with torch.inference_mode():
        out = net(to_torch_input(torch, x, model, channels_last))
    clock.mark("predict_s")
    assert tuple(out.shape) == (spec["batch"], model["classes"])
    _common.report({"phases": clock.phases, "inside_s": clock.total(),
                    "loaded": _common.loaded_heavy_modules()})


def save_model(spec, path):
    import torch

    torch.manual_seed(0)
    torch.save(make_model(spec["model_spec"]).state_dict(), path + ".pt")
    return path + ".pt"


def infer_memory(payload):
    import torch

    _set_threads(torch, payload["threads"])

    def fresh_model(spec):
        model = spec["model_spec"]
        channels_last = model["kind"] == "cnn"
        net = inference_model(make_model(model))
        if channels_last:
            net = net.to(memory_format=torch.channels_last)

        def predict(x):
            with torch.inference_mode():
                return net(to_torch_input(torch, x, model, channels_last)).numpy()
        return predict
    _common.infer_memory(payload, fresh_model)


def train_memory(payload):
    clock = _common.Clock()
    spec = payload["spec"]
    import torch

    _set_threads(torch, payload["threads"])
    runner = Runner(spec)
    for _ in range(spec["steps"]):
        runner.step()
    clock.mark("train_s")
    _common.report({"phases": clock.phases, "inside_s": clock.total()})
