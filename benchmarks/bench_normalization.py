"""Normalization family, layer and RMS forms: LayerNormalization and RMSNormalization through the
public layers on a transformer block's activations (32, 128, 128) and (8, 512, 768); the fused
kernels at (32*128, 128); PyTorch's F.layer_norm / F.rms_norm side by side when torch imports
(same thread count). Rates: G elements/s.

Batch form: BatchNormalization through the public layer, on the CNN's pooled maps
(batch 64 at 15x15x32 and 6x6x64), a dense (256, 512) activation and the issue's shape
(64, 32, 32, 64); inference (fused affine) and training (batch statistics + backward); the
kernels at the issue's shape; PyTorch's BatchNorm2d side by side when it imports (same thread
count; NCHW and channels_last). Rates: G elements/s. Skipped until dlcore has the layer."""
import numpy as np
import pytest

from benchmarks._bench import layer_forward, layer_train_step, measure, rand, require_layer

ISSUE = (32, 128, 128)
SHAPES = [ISSUE, (8, 512, 768)]
IDS = ["x".join(map(str, s)) for s in SHAPES]


def _size(shape):
    return int(np.prod(shape))


@pytest.mark.parametrize("name", ["LayerNormalization", "RMSNormalization"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_layer_inference(benchmark, name, shape):
    call = layer_forward(require_layer(name)(), rand(*shape))
    measure(benchmark, call, elements=_size(shape))


@pytest.mark.parametrize("name", ["LayerNormalization", "RMSNormalization"])
@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_layer_train_step(benchmark, name, shape):
    step = layer_train_step(require_layer(name)(), rand(*shape))
    measure(benchmark, step, elements=_size(shape))


@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
@pytest.mark.parametrize("direction", ["forward", "forward_backward"])
def test_issue_shape_kernel(benchmark, direction, rms):
    from dlcore import kernels

    threads = kernels.num_threads()
    x = rand(*ISSUE).reshape(-1, ISSUE[-1])
    dy = rand(*ISSUE, seed=1).reshape(x.shape)
    r, c = x.shape
    gamma, beta = np.ones(c, np.float32), np.zeros(c, np.float32)
    y, dx, mean, rstd = np.empty_like(x), np.empty_like(x), np.empty(r), np.empty(r)
    dgamma, dbeta = np.empty(c, np.float32), np.empty(c, np.float32)
    forward, backward = kernels.get("layer_norm_forward"), kernels.get("layer_norm_backward")

    def call():
        forward(x, gamma, beta, 1e-3, rms, y, mean, rstd, threads)
        if direction == "forward_backward":
            backward(dy, x, mean, rstd, gamma, rms, dx, dgamma, dbeta, True, True, threads)

    measure(benchmark, call, elements=x.size)


@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
@pytest.mark.parametrize("direction", ["forward", "forward_backward"])
def test_issue_shape_torch(benchmark, direction, rms):
    torch = pytest.importorskip("torch")
    from dlcore import kernels

    torch.set_num_threads(kernels.num_threads())
    f = torch.nn.functional
    if rms and not hasattr(f, "rms_norm"):
        pytest.skip("this torch has no F.rms_norm")
    x = torch.from_numpy(rand(*ISSUE).reshape(-1, ISSUE[-1]))
    dy = torch.from_numpy(rand(*ISSUE, seed=1).reshape(x.shape))
    c = x.shape[1]
    gamma, beta = torch.ones(c), torch.zeros(c)

    def norm(t, g, b):
        return f.rms_norm(t, (c,), g, 1e-3) if rms else f.layer_norm(t, (c,), g, b, 1e-3)

    if direction == "forward":
        def call():
            with torch.no_grad():
                return norm(x, gamma, beta)
    else:
        xr, gr, br = (t.clone().requires_grad_(True) for t in (x, gamma, beta))

        def call():
            return torch.autograd.grad(norm(xr, gr, br), (xr, gr) if rms else (xr, gr, br), dy)
    call()
    measure(benchmark, call, elements=x.numel())


# ---- batch normalization ----
BATCH_ISSUE = (64, 32, 32, 64)
BATCH_SHAPES = [(64, 15, 15, 32), (64, 6, 6, 64), (256, 512), BATCH_ISSUE]


@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=["x".join(map(str, s)) for s in BATCH_SHAPES])
def test_batch_norm_inference(benchmark, shape):
    BN = require_layer("BatchNormalization")
    call = layer_forward(BN(), rand(*shape))
    measure(benchmark, call, elements=_size(shape))


@pytest.mark.parametrize("shape", BATCH_SHAPES, ids=["x".join(map(str, s)) for s in BATCH_SHAPES])
def test_batch_norm_train_step(benchmark, shape):
    BN = require_layer("BatchNormalization")
    step = layer_train_step(BN(), rand(*shape))
    measure(benchmark, step, elements=_size(shape))


@pytest.mark.parametrize("kernel", ["batch_norm_forward", "batch_norm_moments", "batch_norm_backward_params",
                                    "batch_norm_backward_input"])
def test_batch_issue_shape_kernel(benchmark, kernel):
    from dlcore import kernels

    threads = kernels.num_threads()
    x = rand(*BATCH_ISSUE).reshape(-1, BATCH_ISSUE[-1])
    dy, out = rand(*BATCH_ISSUE, seed=1).reshape(x.shape), np.empty_like(x)
    c = x.shape[1]
    vec = np.ones(c, np.float32)
    mean, var = np.empty(c), np.empty(c)
    kernels.get("batch_norm_moments")(x, mean, var, threads)
    inv_std = 1.0 / np.sqrt(var + 1e-3)
    dgamma, dbeta = np.empty(c, np.float32), np.empty(c, np.float32)
    fn = kernels.get(kernel)
    calls = {
        "batch_norm_forward": lambda: fn(x, vec, vec, out, threads),
        "batch_norm_moments": lambda: fn(x, mean, var, threads),
        "batch_norm_backward_params": lambda: fn(dy, x, mean, inv_std, dgamma, dbeta, threads),
        "batch_norm_backward_input": lambda: fn(dy, x, vec, vec, vec, vec, out, threads),
    }
    measure(benchmark, calls[kernel], elements=x.size)


@pytest.mark.parametrize("memory_format", ["nchw", "channels_last"])
@pytest.mark.parametrize("mode", ["inference", "train_step"])
def test_issue_shape_torch_batch_norm(benchmark, mode, memory_format):
    torch = pytest.importorskip("torch")
    from dlcore import kernels

    torch.set_num_threads(kernels.num_threads())
    n, h, w, c = BATCH_ISSUE
    x = torch.from_numpy(rand(n, c, h, w))
    if memory_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    bn = torch.nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)
    if mode == "inference":
        bn.eval()

        def call():
            with torch.no_grad():
                return bn(x)
    else:
        bn.train()
        x.requires_grad_(True)

        def call():
            x.grad = None
            bn.zero_grad()
            bn(x).sum().backward()
            return x.grad
    call()
    measure(benchmark, call, elements=_size(BATCH_ISSUE))
