"""The int8 recurrences (int8_lstm_forward, int8_gru_forward) against the NumPy reference
(tests/reference/quantized.py): every int8 GEMM path, masks, 1 and 2 threads bit-identical."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import quantized as ref  # noqa: E402

from dlcore.kernels import quantized  # noqa: E402

SIGMOID, TANH = 2, 3  # elementwise.ACTIVATIONS codes (checked below)
ATOL = 2e-4  # the float kernels' polynomial sigmoid / tanh (about 2 ulp) against float64


def rng(seed):
    return np.random.default_rng(seed)


@pytest.fixture(params=[0, 1, 2], ids=["vnni", "avx2", "baseline"])
def isa(request):
    old = quantized.set_isa(request.param)
    if old < 0:
        pytest.skip("the CPU lacks this ISA")
    yield request.param
    quantized.set_isa(old)


def _pack(w):
    k, m = w.shape
    packed = np.empty(((m + 15) // 16) * ((k + 3) // 4) * 64, np.int8)
    csum = np.empty((m + 15) // 16 * 16, np.int32)
    quantized.int8_pack(np.ascontiguousarray(w), packed, csum)
    return packed, csum


class Inputs:
    """The input side of a case: the exact products q(x) W_q (int32, padded to 16 columns), the rows'
    scales, the kernel's scales and the bias; ``z`` their dequantized sum (float64), the reference's input."""

    def __init__(self, n, t_len, g_cols, g):
        self.xacc = np.zeros((n, t_len, (g_cols + 15) // 16 * 16), np.int32)
        self.xacc[..., :g_cols] = g.integers(-20000, 20000, size=(n, t_len, g_cols))
        self.x_scale = g.uniform(30, 60, size=(n, t_len)).astype(np.float32)
        self.w_scale = g.uniform(200, 400, size=g_cols).astype(np.float32)
        self.b = g.normal(scale=0.1, size=g_cols).astype(np.float32)
        self.z = (self.xacc[..., :g_cols] / (self.w_scale.astype(np.float64) * self.x_scale[..., None])
                  + self.b)

    def args(self):
        return self.xacc, self.x_scale, self.w_scale, self.b


def _case(n, t_len, u, gates, seed=0):
    g = rng(seed)
    z = Inputs(n, t_len, gates * u, g)
    r_q = g.integers(-127, 128, size=(u, gates * u)).astype(np.int8)
    r_scale = (127.0 / g.uniform(0.2, 0.6, size=gates * u)).astype(np.float32)
    h = g.normal(scale=0.5, size=(n, u)).astype(np.float32)
    return z, r_q, r_scale, h


def test_activation_codes():
    from dlcore.kernels.elementwise import ACTIVATIONS

    assert (ACTIVATIONS["sigmoid"], ACTIVATIONS["tanh"]) == (SIGMOID, TANH)


def _lstm(z, r_q, r_scale, h, c, mask=None, zero_output=False, threads=1, seq=True):
    h, c = h.copy(), c.copy()
    packed, csum = _pack(r_q)
    y = np.empty(z.xacc.shape[:2] + (h.shape[1],), np.float32) if seq else None
    m = None if mask is None else np.ascontiguousarray(mask, np.uint8)
    quantized.int8_lstm_forward(*z.args(), packed, csum, r_scale, m, TANH, 0.0, SIGMOID, 0.0, zero_output, h, c, y,
                                threads)
    return y, h, c


@pytest.mark.parametrize("n,t_len,u", [(1, 6, 8), (3, 5, 13), (20, 4, 16)])
def test_int8_lstm_forward_against_reference(n, t_len, u, isa):
    z, r_q, r_scale, h = _case(n, t_len, u, 4)
    c = rng(1).normal(size=(n, u)).astype(np.float32)
    y, h1, c1 = _lstm(z, r_q, r_scale, h, c)
    y_ref, h_ref, c_ref = ref.int8_lstm(z.z, r_q, r_scale, h, c)
    np.testing.assert_allclose(y, y_ref, atol=ATOL)
    np.testing.assert_allclose(h1, h_ref, atol=ATOL)
    np.testing.assert_allclose(c1, c_ref, atol=ATOL)


@pytest.mark.parametrize("zero_output", [False, True])
def test_int8_lstm_forward_mask(zero_output):
    n, t_len, u = 4, 6, 8
    z, r_q, r_scale, h = _case(n, t_len, u, 4, seed=2)
    c = np.zeros((n, u), np.float32)
    mask = rng(3).random((n, t_len)) > 0.4
    mask[0] = False  # a row with no valid step keeps its initial states
    y, h1, c1 = _lstm(z, r_q, r_scale, h, c, mask, zero_output)
    y_ref, h_ref, c_ref = ref.int8_lstm(z.z, r_q, r_scale, h, c, mask, zero_output)
    np.testing.assert_allclose(y, y_ref, atol=ATOL)
    np.testing.assert_allclose(h1, h_ref, atol=ATOL)
    np.testing.assert_array_equal(h1[0], h[0])


def test_int8_lstm_forward_threads_identical():
    n, t_len, u = 40, 3, 16
    z, r_q, r_scale, h = _case(n, t_len, u, 4, seed=4)
    c = np.zeros((n, u), np.float32)
    one = _lstm(z, r_q, r_scale, h, c, threads=1)
    two = _lstm(z, r_q, r_scale, h, c, threads=2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    no_seq = _lstm(z, r_q, r_scale, h, c, seq=False)
    np.testing.assert_array_equal(no_seq[1], one[1])


def _gru(z, r_q, r_scale, h, brh, reset_after, mask=None, threads=1):
    h = h.copy()
    u = h.shape[1]
    pzr, czr = _pack(r_q[:, :2 * u])
    ph, ch = _pack(r_q[:, 2 * u:])
    y = np.empty(z.xacc.shape[:2] + (u,), np.float32)
    m = None if mask is None else np.ascontiguousarray(mask, np.uint8)
    quantized.int8_gru_forward(*z.args(), pzr, czr, ph, ch, r_scale, brh, m, TANH, 0.0, SIGMOID, 0.0, reset_after,
                               False, h, y, threads)
    return y, h


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("n,t_len,u", [(1, 6, 8), (5, 4, 13), (20, 3, 16)])
def test_int8_gru_forward_against_reference(n, t_len, u, reset_after, isa):
    z, r_q, r_scale, h = _case(n, t_len, u, 3, seed=5)
    brh = rng(6).normal(size=u).astype(np.float32) if reset_after else None
    mask = rng(7).random((n, t_len)) > 0.3
    y, h1 = _gru(z, r_q, r_scale, h, brh, reset_after, mask)
    y_ref, h_ref = ref.int8_gru(z.z, r_q, r_scale, h, brh, reset_after, mask)
    np.testing.assert_allclose(y, y_ref, atol=ATOL)
    np.testing.assert_allclose(h1, h_ref, atol=ATOL)
    two = _gru(z, r_q, r_scale, h, brh, reset_after, mask, threads=2)
    np.testing.assert_array_equal(two[0], y)


def test_int8_recurrent_kernels_refuse_bad_shapes():
    z, r_q, r_scale, h = _case(2, 3, 8, 4)
    packed, csum = _pack(r_q)
    c = np.zeros((2, 8), np.float32)
    lstm = quantized.int8_lstm_forward
    with pytest.raises(ValueError, match="r_scale"):
        lstm(*z.args(), packed, csum, r_scale[:-1], None, TANH, 0.0, SIGMOID, 0.0, False, h, c, None)
    with pytest.raises(ValueError, match="x_scale"):
        lstm(z.xacc, z.x_scale[:, :2].copy(), z.w_scale, z.b, packed, csum, r_scale, None, TANH, 0.0, SIGMOID, 0.0,
             False, h, c, None)
    with pytest.raises(ValueError, match="mask"):
        lstm(*z.args(), packed, csum, r_scale, np.ones((2, 2), np.uint8), TANH, 0.0, SIGMOID, 0.0, False, h, c, None)
    with pytest.raises(ValueError, match="expected c"):
        lstm(*z.args(), packed, csum, r_scale, None, TANH, 0.0, SIGMOID, 0.0, False, h, c[:1], None)
