"""The CNN families' CUDA kernels (pooling, batch normalization, dropout) against their CPU twins on
small shapes, under NUMBA_ENABLE_CUDASIM=1 (the conv kernels are in sim_kernels.py).

Run by tests/cuda/test_cudasim.py in its own process; not collected by the main test run.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

from numba import cuda  # noqa: E402

from dlcore import kernels  # noqa: E402

RNG = np.random.default_rng(1)
TOL = {np.float32: 1e-5, np.float64: 1e-12}


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def run_both(name, args, out_index, dtype=np.float32, exact=()):
    """Call the CPU and CUDA kernels on copies of the same arguments; compare the outputs
    (bit-exact for the indices in ``exact``)."""
    cpu_args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu_args = [cuda.to_device(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    kernels.get(name)(*cpu_args)
    kernels.get(name, device="cuda")(*gpu_args)
    for i in out_index:
        got = gpu_args[i].copy_to_host()
        if i in exact:
            np.testing.assert_array_equal(got, cpu_args[i], err_msg=f"{name} output {i}")
        else:
            np.testing.assert_allclose(got, cpu_args[i], rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10,
                                       err_msg=f"{name} output {i}")
    return cpu_args


# pool (PH, PW), strides (SH, SW), pads (PT, PL), input (H, W): valid, "same" with padding, overlapping windows
GEOMETRIES = [((2, 2), (2, 2), (0, 0), (5, 4)), ((3, 3), (2, 2), (1, 1), (5, 6)), ((3, 2), (1, 1), (1, 0), (4, 3))]


def _out(h, p, s, pad):
    return -(-h // s) if pad else (h - p) // s + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool,strides,pads,hw", GEOMETRIES)
def test_max_and_avg_pool2d(pool, strides, pads, hw, dtype):
    n, c = 2, 3
    oh, ow = _out(hw[0], pool[0], strides[0], pads[0]), _out(hw[1], pool[1], strides[1], pads[1])
    x = rand(n, *hw, c, dtype=dtype)
    x[0, 0, :2, 0] = 7.0  # a tie: the first maximum wins on both devices
    geometry = [*pool, *strides, *pads]
    y = np.zeros((n, oh, ow, c), dtype)
    run_both("max_pool2d_forward", [x, *geometry, y], [7], dtype, exact=(7,))
    run_both("avg_pool2d_forward", [x, *geometry, y], [7], dtype)
    cpu = run_both("max_pool2d_forward_argmax", [x, *geometry, y, np.zeros(y.shape, np.int32)], [7, 8], dtype,
                   exact=(7, 8))
    dy = rand(n, oh, ow, c, dtype=dtype)
    run_both("max_pool2d_backward", [dy, cpu[8], *geometry, np.full(x.shape, np.nan, dtype)], [8], dtype)
    run_both("avg_pool2d_backward", [dy, *geometry, np.full(x.shape, np.nan, dtype)], [7], dtype)


@pytest.mark.parametrize("hw", [(4, 6), (5, 3)])  # an odd size leaves a row / column outside every window
def test_pool2d_2x2(hw):
    x = rand(2, *hw, 3)
    y = np.zeros((2, hw[0] // 2, hw[1] // 2, 3), np.float32)
    cpu = run_both("max_pool2d_2x2_forward", [x, y, np.zeros(y.shape, np.uint8)], [1, 2], exact=(1, 2))
    run_both("avg_pool2d_2x2_forward", [x, y], [1])
    dy = rand(*y.shape)
    run_both("max_pool2d_2x2_backward", [dy, cpu[2], np.full(x.shape, np.nan, np.float32)], [2])
    run_both("avg_pool2d_2x2_backward", [dy, np.full(x.shape, np.nan, np.float32)], [1])
    gpu_y = cuda.to_device(y)
    kernels.get("max_pool2d_2x2_forward", device="cuda")(cuda.to_device(x), gpu_y)  # argmax None: inference
    np.testing.assert_array_equal(gpu_y.copy_to_host(), cpu[1])


def test_global_pooling():
    x = rand(2, 5, 3)
    x[1, 1, 2] = x[1, 3, 2] = 9.0  # tied maxima share the gradient
    y = np.zeros((2, 3), np.float32)
    run_both("global_avg_pool_forward", [x, y], [1])
    cpu = run_both("global_max_pool_forward", [x, y], [1], exact=(1,))
    dy = rand(2, 3)
    run_both("global_avg_pool_backward", [dy, np.zeros_like(x)], [1])
    run_both("global_max_pool_backward", [x, cpu[1], dy, np.zeros_like(x)], [3])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_kernels(dtype):
    r, c = 13, 4
    x, dy = rand(r, c, dtype=dtype) * 2 + 1, rand(r, c, dtype=dtype)
    cpu = run_both("batch_norm_moments", [x, np.zeros(c), np.zeros(c)], [1, 2], np.float64)
    mean, var = cpu[1], cpu[2]
    gamma, beta = rand(c, dtype=dtype), rand(c, dtype=dtype)
    stats = [np.zeros(c, dtype), np.zeros(c, dtype), np.zeros(c), np.zeros(c, dtype), np.zeros(c, dtype)]
    terms = run_both("batch_norm_scale_shift", [mean, var, gamma, beta, 1e-3, *stats], [5, 6, 7, 8, 9], dtype)
    run_both("batch_norm_scale_shift", [mean, var, None, None, 1e-3, *stats[:3]], [5, 6, 7], dtype)
    scale, shift, inv_std = terms[5], terms[6], terms[7]
    run_both("batch_norm_forward", [x, scale, shift, np.zeros_like(x)], [3], dtype)
    params = run_both("batch_norm_backward_params", [dy, x, mean, inv_std, np.zeros(c, dtype), np.zeros(c, dtype)],
                      [4, 5], dtype)
    dgamma, dbeta = params[4], params[5]
    for gamma_c, dmean, dvar in ((gamma, None, None), (None, rand(c, dtype=dtype), rand(c, dtype=dtype))):
        abk = run_both("batch_norm_backward_terms", [gamma_c, inv_std, dgamma, dbeta, dmean, dvar, r,
                                                     np.zeros(c, dtype), np.zeros(c, dtype), np.zeros(c, dtype)],
                       [7, 8, 9], dtype)
    run_both("batch_norm_backward_input", [dy, x, terms[8], abk[7], abk[8], abk[9], np.zeros_like(x)], [6], dtype)
    run_both("batch_norm_update_moving", [gamma, beta, 0.9, np.zeros(c, dtype)], [3], dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_philox_uniform_is_the_cpu_draw_bit_for_bit(dtype):
    run_both("philox_uniform", [2 ** 31 + 5, 77, np.zeros(300, dtype)], [2], dtype, exact=(2,))


def test_dropout_forward_and_backward():
    x, u = rand(40), np.abs(rand(40)) % 1.0
    cpu = run_both("dropout_forward", [x, u, 0.3, np.zeros_like(x), np.zeros(40, np.uint8)], [3, 4], exact=(3, 4))
    run_both("dropout_backward", [rand(40), cpu[4], 0.3, np.zeros_like(x)], [3], exact=(3,))


@pytest.mark.parametrize("rms", [False, True])
def test_layer_norm_forward_and_backward(rms):
    r, c = 5, 6
    x, dy, gamma, beta = rand(r, c) * 2 + 1, rand(r, c), rand(c), rand(c)
    cpu = run_both("layer_norm_forward", [x, gamma, beta, 1e-3, rms, np.zeros_like(x), np.zeros(r), np.zeros(r)],
                   [5, 6, 7])
    mean, rstd = cpu[6], cpu[7]
    run_both("layer_norm_backward", [dy, x, mean, rstd, gamma, rms, np.zeros_like(x), np.zeros(c, np.float32),
                                     np.zeros(c, np.float32)], [6, 7, 8])
    run_both("layer_norm_backward", [dy, x, mean, rstd, gamma, rms, np.zeros_like(x), np.full(c, 5, np.float32),
                                     np.full(c, 5, np.float32), True, False], [6, 7, 8])  # params untouched


def test_add_bias_channels():
    y, b = RNG.standard_normal((7, 5)).astype(np.float32), RNG.standard_normal(5).astype(np.float32)
    gpu = cuda.to_device(y)
    kernels.get("add_bias_channels", device="cuda")(gpu, cuda.to_device(b))
    np.testing.assert_allclose(gpu.copy_to_host(), y + b, rtol=1e-6)


@pytest.mark.parametrize("kd,sd,pd,dd,groups", [(3, 1, 1, 1, 1), (2, 2, 0, 1, 2), (2, 1, 2, 2, 1)])
def test_conv3d_depth_columns_and_kernel_moves(kd, sd, pd, dd, groups):
    n, d, h, w, c, o = 2, 5, 2, 3, 4, 3
    od = (d + 2 * pd - (kd - 1) * dd - 1) // sd + 1
    x = RNG.standard_normal((n, d, h, w, c)).astype(np.float32)
    shape = (n * od, h, w, groups * kd * (c // groups))
    cols = [np.zeros(shape, np.float32), cuda.to_device(np.zeros(shape, np.float32))]
    for dev, xx, out in (("cpu", x, cols[0]), ("cuda", cuda.to_device(x), cols[1])):
        kernels.get("depth_columns", dev)(xx, kd, sd, pd, dd, groups, out)
    np.testing.assert_array_equal(cols[1].copy_to_host(), cols[0])
    assert cols[0][0, 0, 0, 0] == (x[0, dd * 0 - pd, 0, 0, 0] if pd == 0 else 0.0)  # tap 0 of depth 0: padding
    dcols = RNG.standard_normal(shape).astype(np.float32)
    dx = [np.empty_like(x), cuda.to_device(np.empty_like(x))]
    for dev, dc, out in (("cpu", dcols, dx[0]), ("cuda", cuda.to_device(dcols), dx[1])):
        kernels.get("depth_columns_backward", dev)(dc, kd, sd, pd, dd, groups, out)
    np.testing.assert_allclose(dx[1].copy_to_host(), dx[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.sum(dx[0] * x), np.sum(dcols * cols[0]), rtol=1e-4)  # the adjoint of the gather
    wk = RNG.standard_normal((kd, 2, 3, c // groups, o)).astype(np.float32)
    w4 = [np.empty((2, 3, kd * (c // groups), o), np.float32), cuda.to_device(np.empty((2, 3, kd * (c // groups), o),
                                                                                       np.float32))]
    back = [np.empty_like(wk), cuda.to_device(np.empty_like(wk))]
    for i, dev in enumerate(("cpu", "cuda")):
        kernels.get("kernel_depth_to_channels", dev)(wk if i == 0 else cuda.to_device(wk), w4[i])
        kernels.get("kernel_channels_to_depth", dev)(w4[i], back[i])
    np.testing.assert_array_equal(w4[1].copy_to_host(), w4[0])
    np.testing.assert_array_equal(back[1].copy_to_host(), wk)
    np.testing.assert_array_equal(back[0], wk)
