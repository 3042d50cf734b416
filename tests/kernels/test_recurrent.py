"""Recurrent kernels against the step-by-step NumPy references (tests/reference/recurrent.py).

The kernels take z = x @ W + b for all steps; with W = I (K = G) and no bias the reference's
input *is* z, so the forward outputs and the backward's dz (the gradient with respect to z) are
compared with the reference and with central differences of the reference in float64.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import elementwise as ref_act  # noqa: E402
from reference import recurrent as ref  # noqa: E402

from dlcore.kernels import elementwise, recurrent  # noqa: E402

N, T, U = 3, 5, 4
DTYPES = (np.float32, np.float64)
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-11, atol=1e-12)}
CODE = elementwise.ACTIVATIONS
ALPHA = {"elu": 1.0, "leaky_relu": 0.2}  # the reference's defaults (Keras's)


def alpha(name):
    return ALPHA.get(name, 0.0)


def rng(seed):
    return np.random.default_rng(seed)


def make_mask(kind, seed=0):
    """None, random (with a fully masked row and leading/trailing masked steps) or all valid."""
    if kind is None:
        return None
    if kind == "ones":
        return np.ones((N, T), dtype=bool)
    m = rng(seed).random((N, T)) > 0.35
    m[0] = False           # a sequence with no valid step
    m[1, :2] = False       # leading padding
    m[2, -2:] = False      # trailing padding
    m[1, 2] = True
    m[2, 0] = True
    return m


def u8(mask):
    return None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)


def run_forward(cell, z_in, r, h0, c0=None, mask=None, rmask=None, zero_output=False, brh=None,
                reset_after=True, activation="tanh", recurrent_activation="sigmoid", save=True):
    dtype = z_in.dtype
    z = z_in.copy()
    h = h0.astype(dtype).copy()
    y = np.full((N, T, U), np.nan, dtype)
    hprev = np.empty((N, T, U), dtype) if save else None
    act, rec = CODE[activation], CODE[recurrent_activation]
    a, ra = alpha(activation), alpha(recurrent_activation)
    if cell == "simple_rnn":
        recurrent.simple_rnn_forward(z, r, u8(mask), rmask, act, a, zero_output, h, hprev, y)
        return dict(z=z, h=h, y=y, hprev=hprev)
    if cell == "lstm":
        c = c0.astype(dtype).copy()
        cprev = np.empty((N, T, U), dtype) if save else None
        recurrent.lstm_forward(z, r, u8(mask), rmask, act, a, rec, ra, zero_output, h, c, hprev,
                               cprev, y)
        return dict(z=z, h=h, c=c, y=y, hprev=hprev, cprev=cprev)
    aux = np.empty((N, T, U), dtype)
    recurrent.gru_forward(z, r, brh, u8(mask), rmask, act, a, rec, ra, reset_after, zero_output,
                          h, hprev, aux, y)
    return dict(z=z, h=h, y=y, hprev=hprev, aux=aux)


def reference(cell, z_in, r, h0, c0=None, mask=None, rmask=None, zero_output=False, brh=None,
              reset_after=True, activation="tanh", recurrent_activation="sigmoid"):
    g = z_in.shape[2]
    eye = np.eye(g)
    kw = dict(mask=mask, zero_output=zero_output, activation=activation, h_masks=rmask)
    if cell == "simple_rnn":
        return ref.simple_rnn(z_in, eye, r, None, h0, **kw)
    if cell == "lstm":
        return ref.lstm(z_in, eye, r, None, h0, c0, recurrent_activation=recurrent_activation, **kw)
    bias = None
    if reset_after and brh is not None:
        bias = np.zeros((2, g))
        bias[1, 2 * U:] = brh
    return ref.gru(z_in, eye, r, bias, h0, reset_after=reset_after,
                   recurrent_activation=recurrent_activation, **kw)


def inputs(cell, dtype, seed=0, with_rmask=False):
    r_ = rng(seed)
    g = ref.GATES[cell] * U
    z_in = r_.normal(0, 0.8, (N, T, g)).astype(dtype)
    rk = r_.normal(0, 0.5, (U, g)).astype(dtype)
    h0 = r_.normal(0, 0.5, (N, U)).astype(dtype)
    c0 = r_.normal(0, 0.5, (N, U)).astype(dtype)
    brh = r_.normal(0, 0.3, U).astype(dtype)
    rmask = None
    if with_rmask:
        k = ref.GATES[cell]
        rmask = ((r_.random((k, N, U)) > 0.3) / 0.7).astype(dtype)
    return z_in, rk, h0, c0, brh, rmask


CASES = [("simple_rnn", {}), ("lstm", {}), ("gru", dict(reset_after=True)),
         ("gru", dict(reset_after=False))]
CASE_IDS = ["simple_rnn", "lstm", "gru_reset_after", "gru_reset_before"]


def test_kernel_table():
    assert set(recurrent.KERNELS) == {
        "simple_rnn_forward", "simple_rnn_backward", "lstm_forward", "lstm_forward_inputs", "lstm_backward",
        "gru_forward", "gru_backward", "rows_matmul", "rows_matmul_tn", "mask_time_steps"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_mask_time_steps(dtype):
    x, mask = rng(30).normal(size=(N, T, 6)).astype(dtype), (rng(31).random((N, 6)) > 0.4).astype(dtype) * 2
    out = np.full_like(x, np.nan)
    recurrent.mask_time_steps(x, mask, False, out)  # out is only written
    np.testing.assert_allclose(out, ref.mask_time_steps(x, mask), **TOL[dtype])
    acc = rng(32).normal(size=x.shape).astype(dtype)
    expected = ref.mask_time_steps(x, mask, acc)
    recurrent.mask_time_steps(x, mask, True, acc)
    np.testing.assert_allclose(acc, expected, **TOL[dtype])
    recurrent.mask_time_steps(x, mask, False, x)  # out may be x
    np.testing.assert_allclose(x, out, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cell,extra", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("mask_kind", [None, "random", "ones"])
@pytest.mark.parametrize("zero_output", [False, True])
@pytest.mark.parametrize("with_rmask", [False, True])
def test_forward_matches_reference(dtype, cell, extra, mask_kind, zero_output, with_rmask):
    if zero_output and mask_kind is None:
        pytest.skip("zero_output only matters with a mask")
    z_in, rk, h0, c0, brh, rmask = inputs(cell, dtype, with_rmask=with_rmask)
    mask = make_mask(mask_kind)
    brh = brh if extra.get("reset_after", True) else None
    out = run_forward(cell, z_in, rk, h0, c0, mask, rmask, zero_output, brh, **extra)
    seq, last, states = reference(cell, z_in, rk, h0, c0, mask, rmask, zero_output, brh, **extra)
    tol = TOL[dtype]
    np.testing.assert_allclose(out["y"], seq, **tol)
    np.testing.assert_allclose(out["h"], states[0], **tol)
    if cell == "lstm":
        np.testing.assert_allclose(out["c"], states[1], **tol)
    # hprev holds the state entering each step
    np.testing.assert_allclose(out["hprev"][:, 0], h0, **tol)


@pytest.mark.parametrize("activation,recurrent_activation",
                         [("relu", "hard_sigmoid"), ("softsign", "sigmoid"), ("elu", "tanh"),
                          ("linear", "softplus"), ("selu", "relu6")])
@pytest.mark.parametrize("cell,extra", CASES, ids=CASE_IDS)
def test_other_activations(cell, extra, activation, recurrent_activation):
    z_in, rk, h0, c0, brh, _ = inputs(cell, np.float64, seed=3)
    out = run_forward(cell, z_in, rk, h0, c0, brh=brh, activation=activation,
                      recurrent_activation=recurrent_activation, **extra)
    seq, _, _ = reference(cell, z_in, rk, h0, c0, brh=brh, activation=activation,
                          recurrent_activation=recurrent_activation, **extra)
    np.testing.assert_allclose(out["y"], seq, **TOL[np.float64])


def test_inference_without_saved_buffers():
    z_in, rk, h0, c0, _, _ = inputs("lstm", np.float32)
    full = run_forward("lstm", z_in, rk, h0, c0)
    z, h, c = z_in.copy(), h0.copy(), c0.copy()
    recurrent.lstm_forward(z, rk, None, None, CODE["tanh"], 0.0, CODE["sigmoid"], 0.0, False, h, c,
                           None, None, None)
    np.testing.assert_array_equal(h, full["h"])
    np.testing.assert_array_equal(c, full["c"])


# ---- backward: dz against central differences of the reference ------------------------------
def numeric_grads(cell, z_in, rk, h0, c0, mask, rmask, zero_output, brh, extra, proj, acts):
    """Central differences of sum(proj_y * y) + sum(proj_h * h_T) (+ proj_c * c_T) with respect
    to z_in, h0 and c0, through the reference."""
    py, ph, pc = proj

    def f(z, h, c):
        seq, _, states = reference(cell, z, rk, h, c, mask, rmask, zero_output, brh,
                                   activation=acts[0], recurrent_activation=acts[1], **extra)
        total = np.sum(py * seq) + np.sum(ph * states[0])
        if cell == "lstm":
            total += np.sum(pc * states[1])
        return total

    def grad(arr, which):
        g = np.zeros_like(arr)
        eps = 1e-6
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            plus = f(*which())
            arr[idx] = old - eps
            minus = f(*which())
            arr[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        return g

    z, h, c = z_in.copy(), h0.copy(), c0.copy()
    state = lambda: (z, h, c)  # noqa: E731
    return grad(z, state), grad(h, state), grad(c, state) if cell == "lstm" else None


def run_backward(cell, fwd, rk, mask, rmask, zero_output, extra, proj, acts):
    py, ph, pc = proj
    act, rec = CODE[acts[0]], CODE[acts[1]]
    a, ra = alpha(acts[0]), alpha(acts[1])
    dh = ph.copy()
    dz = np.full(fwd["z"].shape, np.nan)
    if cell == "simple_rnn":
        recurrent.simple_rnn_backward(fwd["z"], rk, u8(mask), rmask, act, a, zero_output, py, dh, dz)
        return dz, dh, None, None
    if cell == "lstm":
        dc = pc.copy()
        recurrent.lstm_backward(fwd["z"], fwd["cprev"], rk, u8(mask), rmask, act, a, rec, ra,
                                zero_output, py, dh, dc, dz)
        return dz, dh, dc, None
    reset_after = extra["reset_after"]
    dzr = np.full(fwd["z"].shape, np.nan) if reset_after else None
    recurrent.gru_backward(fwd["z"], fwd["hprev"], fwd["aux"], rk, u8(mask), rmask, act, a, rec, ra,
                           reset_after, zero_output, py, dh, dz, dzr)
    return dz, dh, None, dzr


@pytest.mark.parametrize("cell,extra", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("mask_kind,zero_output,with_rmask",
                         [(None, False, False), ("random", False, False), ("random", True, False),
                          (None, False, True), ("random", False, True)])
def test_backward_against_finite_differences(cell, extra, mask_kind, zero_output, with_rmask):
    z_in, rk, h0, c0, brh, rmask = inputs(cell, np.float64, seed=7, with_rmask=with_rmask)
    mask = make_mask(mask_kind, seed=2)
    brh = brh if extra.get("reset_after", True) else None
    acts = ("tanh", "sigmoid")
    r_ = rng(11)
    proj = (r_.normal(size=(N, T, U)), r_.normal(size=(N, U)), r_.normal(size=(N, U)))
    fwd = run_forward(cell, z_in, rk, h0, c0, mask, rmask, zero_output, brh, **extra)
    dz, dh0, dc0, dzr = run_backward(cell, fwd, rk, mask, rmask, zero_output, extra, proj, acts)
    gz, gh, gc = numeric_grads(cell, z_in, rk, h0, c0, mask, rmask, zero_output, brh, extra, proj, acts)
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dz, gz, **tol, err_msg="dz")
    np.testing.assert_allclose(dh0, gh, **tol, err_msg="dh0")
    if cell == "lstm":
        np.testing.assert_allclose(dc0, gc, **tol, err_msg="dc0")
    if dzr is not None:
        g = 3 * U
        np.testing.assert_array_equal(dzr[..., :2 * U], dz[..., :2 * U])
        # the h part is dz_h * r: the gradient of the recurrent bias b_rh
        np.testing.assert_allclose(dzr[..., 2 * U:g], dz[..., 2 * U:g] * fwd["z"][..., U:2 * U], rtol=1e-12)


@pytest.mark.parametrize("activation,recurrent_activation",
                         [("relu", "hard_sigmoid"), ("softsign", "softplus"), ("elu", "tanh"),
                          ("selu", "sigmoid"), ("exponential", "sigmoid"), ("leaky_relu", "relu6"),
                          ("linear", "hard_sigmoid")])
def test_backward_other_activations(activation, recurrent_activation):
    acts = (activation, recurrent_activation)
    r_ = rng(5)
    proj = (r_.normal(size=(N, T, U)), r_.normal(size=(N, U)), r_.normal(size=(N, U)))
    for cell, extra in CASES:
        z_in, rk, h0, c0, brh, _ = inputs(cell, np.float64, seed=9)
        z_in = z_in * 0.5
        brh = brh if extra.get("reset_after", True) else None
        fwd = run_forward(cell, z_in, rk, h0, c0, brh=brh, activation=activation,
                          recurrent_activation=recurrent_activation, **extra)
        dz, dh0, dc0, _ = run_backward(cell, fwd, rk, None, None, False, extra, proj, acts)
        gz, gh, _ = numeric_grads(cell, z_in, rk, h0, c0, None, None, False, brh, extra, proj, acts)
        # some of these activations grow the state a lot: the differences' noise scales with it
        atol = 1e-9 * max(1.0, np.abs(gz).max())
        np.testing.assert_allclose(dz, gz, rtol=1e-5, atol=atol, err_msg=f"{cell} {extra} dz")
        np.testing.assert_allclose(dh0, gh, rtol=1e-5, atol=atol, err_msg=f"{cell} {extra} dh0")


@pytest.mark.parametrize("batch", [1, 5, 9, 40])
def test_gemv_and_gemm_paths_agree(batch):
    """Small batches take one gemv per row (GEMV_ROWS), larger ones one gemm per step."""
    r_ = rng(batch)
    g, u = 4 * 6, 6
    z_in = r_.normal(size=(batch, 3, g))
    rk = r_.normal(size=(u, g)) * 0.4
    h0, c0 = r_.normal(size=(batch, u)), r_.normal(size=(batch, u))
    z, h, c = z_in.copy(), h0.copy(), c0.copy()
    recurrent.lstm_forward(z, rk, None, None, CODE["tanh"], 0.0, CODE["sigmoid"], 0.0, False, h, c,
                           None, None, None)
    _, _, states = ref.lstm(z_in, np.eye(g), rk, None, h0, c0)
    np.testing.assert_allclose(h, states[0], rtol=1e-11, atol=1e-12)
    dh = r_.normal(size=(batch, u))
    dc = np.zeros_like(dh)
    dz = np.empty_like(z_in)
    z2, h2, c2 = z_in.copy(), h0.copy(), c0.copy()
    cprev = np.empty((batch, 3, u))
    recurrent.lstm_forward(z2, rk, None, None, CODE["tanh"], 0.0, CODE["sigmoid"], 0.0, False, h2, c2,
                           np.empty((batch, 3, u)), cprev, None)
    recurrent.lstm_backward(z2, cprev, rk, None, None, CODE["tanh"], 0.0, CODE["sigmoid"], 0.0, False,
                            None, dh, dc, dz)
    assert np.all(np.isfinite(dz))


def test_fast_float32_activations():
    x = np.concatenate([np.linspace(-90, 90, 20001), np.linspace(-1, 1, 2001),
                        [0.0, 1e-8, -1e-8, np.inf, -np.inf]]).astype(np.float32)
    y = np.empty_like(x)
    for name, fn in (("sigmoid", ref_act.sigmoid), ("tanh", ref_act.tanh)):
        recurrent.fast_activation(CODE[name], x, y)
        np.testing.assert_allclose(y, fn(x), rtol=3e-7, atol=1e-37, err_msg=name)
        recurrent.fast_activation(CODE[name], np.array([np.nan], np.float32), y[:1])
        assert np.isnan(y[0]), f"{name}(nan) must be nan"


@pytest.mark.parametrize("cell,extra", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_batch_chunks_match_one_chunk(cell, extra, with_mask):
    """n_threads splits the batch into chunks that each run the whole sequence (MIN_CHUNK_ROWS
    rows at least); a row's float32 arithmetic does not depend on its chunk, so the results are
    bit-identical for any thread count."""
    n, t_len, u = 2 * recurrent.MIN_CHUNK_ROWS + 3, 4, 5
    gates = ref.GATES[cell]
    r_ = rng(21)
    z_in = r_.normal(size=(n, t_len, gates * u)).astype(np.float32)
    rk = (r_.normal(size=(u, gates * u)) * 0.4).astype(np.float32)
    h0 = r_.normal(size=(n, u)).astype(np.float32)
    mask = u8(r_.random((n, t_len)) > 0.3) if with_mask else None
    rmask = ((r_.random((gates, n, u)) > 0.3) / 0.7).astype(np.float32)
    dy = r_.normal(size=(n, t_len, u)).astype(np.float32)
    results = []
    for threads in (1, 2):
        z, h, c = z_in.copy(), h0.copy(), h0.copy()
        hprev, cprev, aux, y = (np.empty((n, t_len, u), np.float32) for _ in range(4))
        dz, dh, dc = np.empty_like(z_in), dy[:, -1].copy(), dy[:, 0].copy()
        act, rec = CODE["tanh"], CODE["sigmoid"]
        if cell == "simple_rnn":
            recurrent.simple_rnn_forward(z, rk, mask, rmask, act, 0.0, False, h, hprev, y, threads)
            recurrent.simple_rnn_backward(z, rk, mask, rmask, act, 0.0, False, dy, dh, dz, threads)
        elif cell == "lstm":
            recurrent.lstm_forward(z, rk, mask, rmask, act, 0.0, rec, 0.0, False, h, c, hprev, cprev, y,
                                   threads)
            recurrent.lstm_backward(z, cprev, rk, mask, rmask, act, 0.0, rec, 0.0, False, dy, dh, dc, dz,
                                    threads)
        else:
            ra = extra["reset_after"]
            dzr = np.empty_like(z_in) if ra else None
            recurrent.gru_forward(z, rk, h0[0] if ra else None, mask, rmask, act, 0.0, rec, 0.0, ra, False,
                                  h, hprev, aux, y, threads)
            recurrent.gru_backward(z, hprev, aux, rk, mask, rmask, act, 0.0, rec, 0.0, ra, False, dy, dh, dz,
                                   dzr, threads)
        results.append((y, h, dz, dh))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


# ---- the GEMMs: the per-step product and the ones around the recurrence -------------------------
SHAPES = [(1, 128, 512), (3, 5, 7), (4, 16, 64), (9, 33, 130), (70, 128, 384), (17, 1, 3)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_step_matmul(dtype, m, k, n):
    r_ = rng(m * k + n)
    a, b, c0 = (r_.normal(size=s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
    c = c0.copy()
    recurrent.step_matmul(a, b, c, 0.0)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, **TOL[dtype] if dtype == np.float64 else
                               dict(rtol=1e-5, atol=1e-5 * np.sqrt(k)))
    c = c0.copy()
    recurrent.step_matmul(a, b, c, 1.0)
    np.testing.assert_allclose(c, a.astype(np.float64) @ b + c0, rtol=1e-5, atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("m", [69, 70, 71])
def test_step_matmul_rows_do_not_depend_on_the_batch(isa, m):
    """Each output element is one FMA chain, whichever tile (4-row, the 1-3 remainder rows, 1-row,
    column tail) computes it: a row's result is the same in a 1-row product and inside an m-row
    one, and with beta = 1."""
    r_ = rng(3)
    a = r_.normal(size=(m, 128)).astype(np.float32)
    b = r_.normal(size=(128, 515)).astype(np.float32)
    c0 = r_.normal(size=(m, 515)).astype(np.float32)
    full, full1 = np.empty((m, 515), np.float32), c0.copy()
    recurrent.step_matmul(a, b, full)
    recurrent.step_matmul(a, b, full1, 1.0)
    for i in (0, 3, 64, m - 2, m - 1):
        one, one1 = np.empty((1, 515), np.float32), c0[i:i + 1].copy()
        recurrent.step_matmul(a[i:i + 1].copy(), b, one)
        recurrent.step_matmul(a[i:i + 1].copy(), b, one1, 1.0)
        np.testing.assert_array_equal(one[0], full[i])
        np.testing.assert_array_equal(one1[0], full1[i])


@pytest.fixture(params=[0, 1, 2], ids=["avx512", "avx2", "baseline"])
def isa(request):
    """Runs a test with each ISA of the float32 products the CPU has (set_isa), then restores."""
    old = recurrent.set_isa(request.param)
    if old < 0:
        pytest.skip("the CPU or the build lacks this ISA")
    yield request.param
    recurrent.set_isa(old)


@pytest.mark.parametrize("m,k,n", [(1, 128, 512), (1, 7, 70), (2, 33, 300), (3, 5, 16), (5, 16, 130),
                                   (7, 128, 384), (4, 1, 1), (1, 64, 257)])
def test_packed_step_matmul_is_bit_identical(m, k, n, isa):
    """The few-row forward steps read a panel-packed copy of R (partial last panels included):
    every element is the same FMA chain as the unpacked product's, so the results are equal."""
    r_ = rng(m * 1000 + k * 10 + n)
    a, b, c0 = (r_.normal(size=s).astype(np.float32) for s in ((m, k), (k, n), (m, n)))
    for beta in (0.0, 1.0):
        plain, packed = c0.copy(), c0.copy()
        recurrent.step_matmul(a, b, plain, beta)
        recurrent.step_matmul(a, b, packed, beta, True)
        np.testing.assert_array_equal(packed, plain)
        np.testing.assert_allclose(packed, a.astype(np.float64) @ b + beta * c0, rtol=1e-5,
                                   atol=1e-5 * np.sqrt(k))


@pytest.mark.parametrize("cell,extra", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("with_mask", [False, True])
@pytest.mark.parametrize("h0_kind", ["random", "zero", "zero_inf_r"])
def test_packed_forward_rows_match_the_batch(cell, extra, with_mask, h0_kind, isa):
    """Forward passes of fewer than 8 rows (batch-1 inference) read R packed, and skip the
    product of a zero state with a finite R; a 12-row LSTM batch (R read in place) adds the one
    product 0 @ R to every row at step 0 instead of running it per row. A row's float32 results
    (gates, signs of zeros and NaN from an infinite R included) equal the same row's inside the
    12-row batch."""
    n, t_len, u = 12, 9, 70
    gates = ref.GATES[cell]
    r_ = rng(5)
    z_in = r_.normal(size=(n, t_len, gates * u)).astype(np.float32)
    z_in[:, 0, ::7] = -0.0  # z + h @ R is +0 there when h is 0
    rk = (r_.normal(size=(u, gates * u)) * 0.2).astype(np.float32)
    if h0_kind == "zero_inf_r":
        rk[3, 5] = np.inf  # 0 * inf is NaN: the product must run
    h0 = r_.normal(size=(n, u)).astype(np.float32)
    if h0_kind != "random":
        h0[:] = 0.0
        h0[1::2] = -0.0
    brh = r_.normal(size=u).astype(np.float32)
    mask = u8(r_.random((n, t_len)) > 0.3) if with_mask else None
    act, rec = CODE["tanh"], CODE["sigmoid"]

    def forward(rows):
        m = len(rows)
        z, h, c = z_in[rows].copy(), h0[rows].copy(), h0[rows][:, ::-1].copy()
        y = np.empty((m, t_len, u), np.float32)
        mk = None if mask is None else mask[rows].copy()
        if cell == "simple_rnn":
            recurrent.simple_rnn_forward(z, rk, mk, None, act, 0.0, False, h, None, y)
        elif cell == "lstm":
            recurrent.lstm_forward(z, rk, mk, None, act, 0.0, rec, 0.0, False, h, c, None, None, y)
        else:
            ra = extra["reset_after"]
            aux = np.empty((m, t_len, u), np.float32)
            recurrent.gru_forward(z, rk, brh if ra else None, mk, None, act, 0.0, rec, 0.0, ra, False, h,
                                  None, aux, y)
        return z, y, h

    full = forward(list(range(n)))
    for rows in ([0], [3], [1, 2, 5], [0, 4, 6, 7, 8, 9, 11]):
        for part, whole in zip(forward(rows), full):
            np.testing.assert_array_equal(part, whole[rows])
            np.testing.assert_array_equal(np.signbit(part), np.signbit(whole[rows]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(3200, 32, 512), (7, 3, 5), (130, 17, 40), (1, 5, 70), (0, 3, 4)])
def test_rows_matmul_and_tn(dtype, m, k, n):
    r_ = rng(m + k + n)
    a = r_.normal(size=(m, k)).astype(dtype)
    b = r_.normal(size=(k, n)).astype(dtype)
    bias = r_.normal(size=n).astype(dtype)
    bb = r_.normal(size=(m, n)).astype(dtype)
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(max(m, k, 1))) if dtype == np.float32 else TOL[dtype]
    results = []
    for threads in (1, 2):
        c = np.empty((m, n), dtype)
        recurrent.rows_matmul(a, b, bias, c, False, threads)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b + bias, **tol)
        ct = np.empty((m, n), dtype)
        recurrent.rows_matmul(a, np.ascontiguousarray(b.T), None, ct, True, threads)
        np.testing.assert_allclose(ct, a.astype(np.float64) @ b, **tol)
        tn = np.empty((k, n), dtype)
        sums = np.empty(n, dtype)
        recurrent.rows_matmul_tn(a, bb, tn, sums, threads)
        np.testing.assert_allclose(tn, a.T.astype(np.float64) @ bb, **tol)
        np.testing.assert_allclose(sums, bb.sum(axis=0, dtype=np.float64), **tol)
        results.append((c, ct, tn, sums))
    for x, y in zip(*results):
        np.testing.assert_array_equal(x, y)  # no dependence on the thread count


@pytest.mark.parametrize("m,k,j,n", [(3200, 32, 128, 512), (130, 5, 7, 70), (37, 3, 1, 45), (0, 3, 2, 4),
                                     (9, 0, 4, 5)])
def test_rows_matmul_tn_second_product_in_the_same_pass(m, k, j, n, isa):
    """rows_matmul_tn's a2/c2 (the LSTM's dW, db and dR from one pass over dz): each result equal
    to its own call's, for any thread count; float32 column sums are the plain sums in row order."""
    r_ = rng(m + 3 * k + j)
    for dtype in DTYPES:
        a, a2, b = (r_.normal(size=s).astype(dtype) for s in ((m, k), (m, j), (m, n)))
        if m:
            b[0, 0] = -0.0
            b[m // 2, 1] = np.inf
        alone = [np.empty((k, n), dtype), np.empty(n, dtype), np.empty((j, n), dtype)]
        recurrent.rows_matmul_tn(a, b, alone[0], alone[1], 1)
        recurrent.rows_matmul_tn(a2, b, alone[2], None, 1)
        if dtype == np.float32:
            plain = np.add.accumulate(b, axis=0)[-1] if m else np.zeros(n, dtype)
            np.testing.assert_array_equal(alone[1], plain)
        for threads in (1, 2):
            both = [np.empty((k, n), dtype), np.empty(n, dtype), np.empty((j, n), dtype)]
            recurrent.rows_matmul_tn(a, b, both[0], both[1], threads, a2, both[2])
            for x, y in zip(both, alone):
                np.testing.assert_array_equal(x, y)
                np.testing.assert_array_equal(np.signbit(x), np.signbit(y))


def test_rows_matmul_tn_second_product_arguments():
    a, b = np.ones((4, 2), np.float32), np.ones((4, 3), np.float32)
    c = np.empty((2, 3), np.float32)
    with pytest.raises(ValueError, match="a2_mj and c2_jn go together"):
        recurrent.rows_matmul_tn(a, b, c, None, 1, a, None)
    with pytest.raises(ValueError, match=r"expected a2_mj \(4, J\) and c2_jn \(J, 3\)"):
        recurrent.rows_matmul_tn(a, b, c, None, 1, a, np.empty((3, 3), np.float32))


# ---- the BLAS thread switch (dl_blas_threads.h, shared with the conv kernels) --------------------
def _openblas_counts():
    from dlcore.kernels import _config

    return [getter() for _, getter, _ in _config.blas_thread_hooks()]


def test_blas_thread_counts_restored_with_conv_and_recurrent_threads_in_flight():
    """Conv and LSTM kernels from several Python threads share one nesting count: when all are
    done the BLAS thread counts are what they were and nothing is left inside the switch."""
    import threading

    from dlcore.kernels import _blas, conv

    if not recurrent.BLAS_THREADS_BOUND:
        pytest.skip("no OpenBLAS thread setter in this process")
    before = _openblas_counts()
    z0, rk = rng(3).normal(size=(32, T, 4 * U)).astype(np.float32), rng(4).normal(size=(U, 4 * U)).astype(np.float32)
    x, k = rng(5).normal(size=(2, 8, 8, 4)).astype(np.float32), rng(6).normal(size=(3, 3, 4, 4)).astype(np.float32)
    tanh, sigmoid = CODE["tanh"], CODE["sigmoid"]
    errors = []

    def lstm_run():
        z, h, c = z0.copy(), np.zeros((32, U), np.float32), np.zeros((32, U), np.float32)
        recurrent.lstm_forward(z, rk, None, None, tanh, 0.0, sigmoid, 0.0, False, h, c, None, None, None, 2)
        return h

    expected = lstm_run()

    def work(i):
        try:
            for _ in range(10):
                if i % 2:
                    np.testing.assert_array_equal(lstm_run(), expected)
                else:
                    conv.conv2d_forward(x, k, None, 1, 1, 1, 1, 1, 1, 1, 0, 0.0, np.empty((2, 8, 8, 4), np.float32), 2)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert _blas.depth() == 0
    assert _openblas_counts() == before
