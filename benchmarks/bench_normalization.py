"""Normalization family, layer and RMS forms: LayerNormalization and RMSNormalization through the
public layers on a transformer block's activations (32, 128, 128) and (8, 512, 768); the fused
kernels at (32*128, 128); PyTorch's F.layer_norm / F.rms_norm side by side when torch imports
(same thread count). Rates: G elements/s."""
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
