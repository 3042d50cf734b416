"""The recurrent, embedding and attention CUDA kernels against their CPU twins, under
NUMBA_ENABLE_CUDASIM=1 (run by tests/cuda/test_cudasim.py in its own process)."""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

from numba import cuda  # noqa: E402

from dlcore import kernels  # noqa: E402

RNG = np.random.default_rng(1)
N, T, U = 3, 4, 3
TANH, SIGMOID, RELU = 3, 2, 1


def rand(*shape, dtype=np.float32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def run_both(name, args, outputs, dtype=np.float32):
    """Call the CPU and CUDA kernels on copies of ``args`` (a list); compare the outputs by index.
    Returns the CPU arguments after the call."""
    cpu = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu = [cuda.to_device(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    kernels.get(name)(*cpu)
    kernels.get(name, device="cuda")(*gpu)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for i in outputs:
        np.testing.assert_allclose(gpu[i].copy_to_host(), cpu[i], rtol=tol, atol=tol, err_msg=f"{name} argument {i}")
    return cpu


def masks(case, dtype, gates):
    """(uint8 mask (N, T) or None, recurrent dropout masks (gates, N, U) or None, zero_output)."""
    mask = rmask = None
    if case in ("mask", "mask_zero"):
        mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 1, 1, 1]], dtype=np.uint8)
    if case == "rmask":
        rmask = ((RNG.random((gates, N, U)) > 0.3) / 0.7).astype(dtype)
    return mask, rmask, case == "mask_zero"


CASES = ["plain", "mask", "mask_zero", "rmask"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_simple_rnn_forward_and_backward(case, dtype):
    mask, rmask, zero = masks(case, dtype, 1)
    z, r = rand(N, T, U, dtype=dtype), rand(U, U, dtype=dtype, scale=0.5)
    out = run_both("simple_rnn_forward", [z, r, mask, rmask, TANH, 0.0, zero, rand(N, U, dtype=dtype),
                                          np.zeros((N, T, U), dtype), np.zeros((N, T, U), dtype)], [0, 7, 8, 9], dtype)
    run_both("simple_rnn_backward", [out[0], r, mask, rmask, TANH, 0.0, zero, rand(N, T, U, dtype=dtype),
                                     rand(N, U, dtype=dtype), np.zeros((N, T, U), dtype)], [8, 9], dtype)


def test_simple_rnn_without_optional_buffers_and_relu():
    z, r = rand(N, T, U), rand(U, U, scale=0.5)
    out = run_both("simple_rnn_forward", [z, r, None, None, RELU, 0.0, False, rand(N, U), None, None], [0, 7])
    run_both("simple_rnn_backward", [out[0], r, None, None, RELU, 0.0, False, None, rand(N, U),
                                     np.zeros((N, T, U), np.float32)], [8, 9])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_forward_and_backward(case, dtype):
    mask, rmask, zero = masks(case, dtype, 4)
    z, r = rand(N, T, 4 * U, dtype=dtype), rand(U, 4 * U, dtype=dtype, scale=0.5)
    states = [np.zeros((N, T, U), dtype) for _ in range(3)]
    out = run_both("lstm_forward", [z, r, mask, rmask, TANH, 0.0, SIGMOID, 0.0, zero, rand(N, U, dtype=dtype),
                                    rand(N, U, dtype=dtype), *states], [0, 9, 10, 11, 12, 13], dtype)
    run_both("lstm_backward", [out[0], out[12], r, mask, rmask, TANH, 0.0, SIGMOID, 0.0, zero,
                               rand(N, T, U, dtype=dtype), rand(N, U, dtype=dtype), rand(N, U, dtype=dtype),
                               np.zeros((N, T, 4 * U), dtype)], [11, 12, 13], dtype)


def test_lstm_other_activations_and_no_sequence_gradient():
    z, r = rand(N, T, 4 * U), rand(U, 4 * U, scale=0.5)
    out = run_both("lstm_forward", [z, r, None, None, RELU, 0.0, 12, 0.0, False, rand(N, U), rand(N, U),
                                    np.zeros((N, T, U), np.float32), np.zeros((N, T, U), np.float32), None],
                   [0, 9, 10, 11, 12])
    run_both("lstm_backward", [out[0], out[12], r, None, None, RELU, 0.0, 12, 0.0, False, None, rand(N, U),
                               rand(N, U), np.zeros((N, T, 4 * U), np.float32)], [11, 12, 13])


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_gru_forward_and_backward(reset_after, case):
    dtype = np.float32
    mask, rmask, zero = masks(case, dtype, 3)
    z, r = rand(N, T, 3 * U), rand(U, 3 * U, scale=0.5)
    brh = rand(U) if reset_after else None
    out = run_both("gru_forward", [z, r, brh, mask, rmask, TANH, 0.0, SIGMOID, 0.0, reset_after, zero, rand(N, U),
                                   np.zeros((N, T, U), dtype), np.zeros((N, T, U), dtype), np.zeros((N, T, U), dtype)],
                   [0, 11, 12, 13, 14])
    dzr = np.zeros((N, T, 3 * U), dtype) if reset_after else None
    run_both("gru_backward", [out[0], out[12], out[13], r, mask, rmask, TANH, 0.0, SIGMOID, 0.0, reset_after, zero,
                              rand(N, T, U), rand(N, U), np.zeros((N, T, 3 * U), dtype), dzr],
             [13, 14] + ([15] if reset_after else []))


@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_rows_matmul(trans_b, bias):
    a, b = rand(7, 5), rand(6, 5) if trans_b else rand(5, 6)
    run_both("rows_matmul", [a, b, rand(6) if bias else None, np.zeros((7, 6), np.float32), trans_b], [3])


@pytest.mark.parametrize("colsum", [True, False])
def test_rows_matmul_tn(colsum):
    run_both("rows_matmul_tn", [rand(9, 4), rand(9, 5), np.zeros((4, 5), np.float32),
                                np.zeros(5, np.float32) if colsum else None], [2] + ([3] if colsum else []))


def test_embedding_forward_and_backward_are_the_cpu_bits():
    ids = np.array([3, 0, 3, 5, 1, 3, 0, 2, 5], dtype=np.int64)
    run_both("embedding_forward", [ids, rand(6, 4), np.zeros((9, 4), np.float32)], [2])
    cpu = [ids, rand(9, 4), rand(6, 4)]
    gpu = [cuda.to_device(a) for a in cpu]
    expected = cpu[2].copy()
    kernels.get("embedding_backward")(cpu[0], cpu[1], expected)
    kernels.get("embedding_backward", device="cuda")(*gpu)
    np.testing.assert_array_equal(gpu[2].copy_to_host(), expected)  # same order of additions: same bits
    host_ids = cuda.to_device(cpu[2])
    kernels.get("embedding_backward", device="cuda")(ids, gpu[1], host_ids)  # host ids are accepted too
    np.testing.assert_array_equal(host_ids.copy_to_host(), expected)


def attention_args(causal, masked, biased, rate, bsz=2, t_len=3, s_len=4, heads=2, kv_heads=1, d=3, dv=2):
    q = rand(bsz, t_len, heads, d)
    k, v = rand(bsz, s_len, kv_heads, d), rand(bsz, s_len, kv_heads, dv)
    bias = rand(bsz, heads, t_len, s_len) if biased else np.zeros((1, 1, 1, 1), np.float32)
    mask = (RNG.random((bsz, heads, t_len, s_len)) > 0.3).astype(np.uint8) if masked else np.zeros((1, 1, 1, 1),
                                                                                                       np.uint8)
    if masked:
        mask[0, 0, 1] = 0  # a fully masked row: uniform over the keys, as the CPU kernel
    return [q, k, v, bias, int(biased), mask, int(masked), 0.7, int(causal), rate, 12345]


@pytest.mark.filterwarnings("ignore:.*overflow encountered")  # the simulator's uint64 hash wraps, as on a GPU
@pytest.mark.parametrize("causal,masked,biased,rate", [(False, False, False, 0.0), (True, False, True, 0.0),
                                                       (False, True, True, 0.0), (True, False, False, 0.4)])
def test_attention_forward_and_backward(causal, masked, biased, rate):
    args = attention_args(causal, masked, biased, rate)
    q, k, v = args[:3]
    out, lse = np.zeros((2, 3, 2, 2), np.float32), np.zeros((2, 2, 3), np.float64)
    cpu = run_both("attention_forward", args + [out, lse], [11, 12])
    dout = rand(2, 3, 2, 2)
    run_both("attention_backward", args + [cpu[11], cpu[12], dout, np.zeros_like(q), np.zeros_like(k),
                                           np.zeros_like(v)], [14, 15, 16])


@pytest.mark.filterwarnings("ignore:.*overflow encountered")
def test_attention_dropout_keep_is_the_cpu_hash():
    run_both("attention_dropout_keep", [2, 2, 3, 5, 0.3, 2**63 + 7, np.zeros((2, 2, 3, 5), np.uint8)], [6])


@pytest.mark.parametrize("accumulate", [False, True])
def test_mask_time_steps(accumulate):
    run_both("mask_time_steps", [rand(N, T, 5), rand(N, 5), accumulate, rand(N, T, 5)], [3])
