"""Pooling family: MaxPooling2D (and AveragePooling2D) 2x2 through the public layers, at the
CNN workload's pooling inputs, batch 64, forward and forward + backward, with PyTorch's
channels_last max_pool2d at the same shapes; the issue's shape (64, 32, 32, 64) float32 at the
kernel level (forward, forward with argmax, backward; the general kernels and the 2x2 stride-2
ones the layers use there) and through the layer, with PyTorch side by side when it imports
(same thread count; NCHW, its default, and channels_last); global average pooling as a NumPy
reduction. Pooling has no multiply-adds: rates are G elements/s of the input. Skipped until
dlcore has the layers."""
import numpy as np
import pytest

from benchmarks import spec
from benchmarks._bench import layer_forward, layer_train_step, measure, rand, require_layer

CNN = spec.model_spec("cnn")
BATCH = spec.WORKLOADS["cnn-train"]["batch"]
SHAPES = [(oh, ow, f) for (_, _, _, f, oh, ow) in spec._cnn_shapes(CNN)[0]]  # conv outputs = pool inputs
ISSUE = (64, 32, 32, 64)  # N, H, W, C
ISSUE_ELEMENTS = int(np.prod(ISSUE))


@pytest.mark.parametrize("layer_name", ["MaxPooling2D", "AveragePooling2D"])
@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}" for s in SHAPES])
def test_pool2d_forward(benchmark, layer_name, shape):
    Pool = require_layer(layer_name)
    call = layer_forward(Pool(CNN["pool"]), rand(BATCH, *shape))
    measure(benchmark, call, elements=BATCH * shape[0] * shape[1] * shape[2])


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}" for s in SHAPES])
def test_maxpool2d_forward_backward(benchmark, shape):
    Pool = require_layer("MaxPooling2D")
    step = layer_train_step(Pool(CNN["pool"]), rand(BATCH, *shape))
    measure(benchmark, step, elements=BATCH * shape[0] * shape[1] * shape[2])


# ---- the issue's shape: kernels, layer, torch --------------------------------------------------
def _threads():
    from dlcore import kernels

    return kernels.num_threads()


@pytest.mark.parametrize("kernel", ["max_pool2d_forward", "max_pool2d_forward_argmax", "max_pool2d_backward",
                                    "avg_pool2d_forward", "avg_pool2d_backward", "max_pool2d_2x2_forward",
                                    "max_pool2d_2x2_forward_argmax", "max_pool2d_2x2_backward",
                                    "avg_pool2d_2x2_forward", "avg_pool2d_2x2_backward"])
def test_issue_shape_kernel(benchmark, kernel):
    """The general kernels (2x2 windows written as a general geometry) and the 2x2 ones."""
    from dlcore import kernels

    n, h, w, c = ISSUE
    x, y = rand(*ISSUE), np.empty((n, h // 2, w // 2, c), np.float32)
    argmax, argmax8, dx = np.empty(y.shape, np.int32), np.empty(y.shape, np.uint8), np.empty(ISSUE, np.float32)
    kernels.get("max_pool2d_forward_argmax")(x, 2, 2, 2, 2, 0, 0, y, argmax, _threads())
    kernels.get("max_pool2d_2x2_forward")(x, y, argmax8, _threads())
    geometry = (2, 2, 2, 2, 0, 0)
    get = kernels.get
    calls = {
        "max_pool2d_forward": lambda: get(kernel)(x, *geometry, y, _threads()),
        "max_pool2d_forward_argmax": lambda: get(kernel)(x, *geometry, y, argmax, _threads()),
        "max_pool2d_backward": lambda: get(kernel)(y, argmax, *geometry, dx, _threads()),
        "avg_pool2d_forward": lambda: get(kernel)(x, *geometry, y, _threads()),
        "avg_pool2d_backward": lambda: get(kernel)(y, *geometry, dx, _threads()),
        "max_pool2d_2x2_forward": lambda: get(kernel)(x, y, None, _threads()),
        "max_pool2d_2x2_forward_argmax": lambda: get("max_pool2d_2x2_forward")(x, y, argmax8, _threads()),
        "max_pool2d_2x2_backward": lambda: get(kernel)(y, argmax8, dx, _threads()),
        "avg_pool2d_2x2_forward": lambda: get(kernel)(x, y, _threads()),
        "avg_pool2d_2x2_backward": lambda: get(kernel)(y, dx, _threads()),
    }
    measure(benchmark, calls[kernel], elements=ISSUE_ELEMENTS)


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{s[0]}x{s[1]}x{s[2]}" for s in SHAPES])
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_torch_maxpool_channels_last(benchmark, mode, shape):
    """PyTorch's max_pool2d on channels_last tensors at the CNN's pooling inputs, the reference
    for test_pool2d_forward / test_maxpool2d_forward_backward (same thread count)."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(_threads())
    h, w, c = shape
    x = torch.from_numpy(rand(BATCH, c, h, w)).contiguous(memory_format=torch.channels_last)
    if mode == "forward":
        def call():
            with torch.no_grad():
                return torch.nn.functional.max_pool2d(x, 2)
    else:
        x.requires_grad_(True)

        def call():
            x.grad = None
            torch.nn.functional.max_pool2d(x, 2).sum().backward()
            return x.grad
    call()
    measure(benchmark, call, elements=BATCH * h * w * c)


@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_issue_shape_maxpool_layer(benchmark, mode):
    Pool = require_layer("MaxPooling2D")
    make = layer_forward if mode == "forward" else layer_train_step
    measure(benchmark, make(Pool(2), rand(*ISSUE)), elements=ISSUE_ELEMENTS)


@pytest.mark.parametrize("memory_format", ["nchw", "channels_last"])
@pytest.mark.parametrize("mode", ["forward", "forward_backward"])
def test_issue_shape_torch_maxpool(benchmark, mode, memory_format):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(_threads())
    n, h, w, c = ISSUE
    x = torch.from_numpy(rand(n, c, h, w))
    if memory_format == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    pool = torch.nn.MaxPool2d(2)
    if mode == "forward":
        def call():
            with torch.no_grad():
                return pool(x)
    else:
        x.requires_grad_(True)

        def call():
            x.grad = None
            pool(x).sum().backward()
            return x.grad
    call()
    measure(benchmark, call, elements=ISSUE_ELEMENTS)


@pytest.mark.parametrize("how", ["mean_axes", "reshape_sum"])
def test_issue_shape_global_average(benchmark, how):
    x = rand(*ISSUE)
    n, h, w, c = ISSUE
    fn = (lambda: x.mean(axis=(1, 2))) if how == "mean_axes" else (lambda: x.reshape(n, h * w, c).sum(axis=1))
    measure(benchmark, fn, elements=ISSUE_ELEMENTS)
