"""Every CUDA kernel against its CPU twin on small shapes, under NUMBA_ENABLE_CUDASIM=1.

Run by tests/cuda/test_cudasim.py in its own process (the simulator must be chosen before numba
is imported); not collected by the main test run.
"""
import inspect
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

from numba import cuda  # noqa: E402

from dlcore import kernels  # noqa: E402
from dlcore.kernels import cuda as cuda_kernels  # noqa: E402

RNG = np.random.default_rng(0)
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def run_both(name, make_args, out_index, dtype):
    """Call the CPU and CUDA kernels on copies of the same arguments; compare the outputs."""
    cpu_args = make_args()
    gpu_args = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in
                [a.copy() if isinstance(a, np.ndarray) else a for a in cpu_args]]
    kernels.get(name)(*cpu_args)
    kernels.get(name, device="cuda")(*gpu_args)
    for i in out_index:
        np.testing.assert_allclose(gpu_args[i].copy_to_host(), cpu_args[i], rtol=TOL[dtype] * 10,
                                   atol=TOL[dtype] * 10, err_msg=f"{name} output {i}")


def test_every_cuda_kernel_has_its_cpu_twins_signature():
    names = cuda_kernels.names()
    assert {"matmul", "dense_forward", "activation_forward", "activation_backward", "sum_axis0",
            "softmax_forward", "log_softmax_forward", "softmax_backward", "log_softmax_backward",
            "sparse_categorical_crossentropy_forward", "sparse_categorical_crossentropy_backward",
            "sgd_update", "adam_update"} <= set(names)
    for name in names:
        cpu, gpu = kernels.get(name), kernels.get(name, device="cuda")
        assert inspect.signature(gpu) == inspect.signature(cpu), name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b,beta", [(False, False, 0.0), (True, False, 0.5), (False, True, 1.0),
                                                  (True, True, 0.0)])
def test_matmul(dtype, trans_a, trans_b, beta):
    m, k, n = 5, 19, 7  # k spans two tiles, m and n part of one
    a = rand(k, m, dtype=dtype) if trans_a else rand(m, k, dtype=dtype)
    b = rand(n, k, dtype=dtype) if trans_b else rand(k, n, dtype=dtype)
    run_both("matmul", lambda: [a, b, rand(m, n, dtype=dtype), trans_a, trans_b, 1.5, beta], [2], dtype)


@pytest.mark.parametrize("code", [0, 1, 2, 3, 5, 15, 16])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_forward(code, bias):
    x, w, b = rand(3, 6), rand(6, 4), rand(4)
    run_both("dense_forward", lambda: [x, w, b if bias else None, code, 0.3, np.zeros((3, 4), np.float32)], [5],
             np.float32)


@pytest.mark.parametrize("code", range(15))
def test_activation_forward_and_backward(code):
    x = np.concatenate([rand(20) * 3, np.float32([0.0, -3.0, 3.0, 6.0])]).astype(np.float32)
    y = np.empty_like(x)
    kernels.get("activation_forward")(code, x, 0.2, y)
    run_both("activation_forward", lambda: [code, x, 0.2, np.zeros_like(x)], [3], np.float32)
    run_both("activation_backward", lambda: [code, x, y, rand(x.size), 0.2, np.zeros_like(x)], [5], np.float32)


def test_activation_codes_out_of_range_raise():
    x = cuda.to_device(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="codes 0..14, received 15"):
        kernels.get("activation_forward", device="cuda")(15, x, 0.0, x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_forward_and_backward(name):
    x = rand(4, 5) * 4
    y = np.empty_like(x)
    kernels.get(name + "_forward")(x, y)
    run_both(name + "_forward", lambda: [x, np.zeros_like(x)], [1], np.float32)
    run_both(name + "_backward", lambda: [y, rand(4, 5), np.zeros_like(x)], [2], np.float32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_axis0(dtype):
    run_both("sum_axis0", lambda: [rand(7, 9, dtype=dtype), np.zeros(9, dtype)], [1], dtype)


@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_categorical_crossentropy(from_logits):
    labels = np.array([0, 2, 1, 2, 0], dtype=np.int64)
    if from_logits:
        pred = rand(5, 3)
    else:
        pred = np.abs(rand(5, 3)) + 0.05
        pred /= pred.sum(1, keepdims=True)
        pred[0, 1] = 0.0  # outside the clip range: zero gradient
    run_both("sparse_categorical_crossentropy_forward", lambda: [labels, pred, np.zeros(5, np.float32), from_logits],
             [2], np.float32)
    run_both("sparse_categorical_crossentropy_backward",
             lambda: [labels, pred, rand(5), np.zeros_like(pred), from_logits], [3], np.float32)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd_update(momentum, nesterov):
    m = rand(10) if momentum else np.zeros(0, np.float32)
    w, g = rand(10), rand(10)
    run_both("sgd_update", lambda: [w, g, m, 0.1, momentum, nesterov], [0, 2], np.float32)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_update(amsgrad):
    w, g, m, v = rand(10), rand(10), rand(10), np.abs(rand(10))
    vhat = np.abs(rand(10)) if amsgrad else np.zeros(0, np.float32)
    run_both("adam_update", lambda: [w, g, m, v, vhat, 0.01, 0.9, 0.999, 1e-7, amsgrad], [0, 2, 3, 4], np.float32)


@pytest.mark.parametrize("stride,pad,dilation,groups,code", [(1, 0, 1, 1, 1), (2, 1, 1, 2, 0), (1, 2, 2, 1, 15)])
def test_conv2d_forward_and_backward(stride, pad, dilation, groups, code):
    n, h, w, cin, cout, k = 2, 5, 6, 4, 4, 3
    oh = (h + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    ow = (w + 2 * pad - dilation * (k - 1) - 1) // stride + 1
    x, wt, b = rand(n, h, w, cin), rand(k, k, cin // groups, cout), rand(cout)
    geometry = [stride, stride, pad, pad, dilation, dilation, groups]
    run_both("conv2d_forward", lambda: [x, wt, b, *geometry, code, 0.1, np.zeros((n, oh, ow, cout), np.float32)],
             [12], np.float32)
    dy = rand(n, oh, ow, cout)
    run_both("conv2d_backward_input", lambda: [dy, wt, *geometry, np.zeros_like(x)], [9], np.float32)
    run_both("conv2d_backward_weight", lambda: [x, dy, *geometry, np.zeros_like(wt), np.zeros(cout, np.float32)],
             [9, 10], np.float32)
