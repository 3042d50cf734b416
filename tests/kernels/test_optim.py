"""Optimizer update kernels (dlcore.kernels.optim) stepped against the Keras 3 NumPy reference."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from dlcore.kernels import _config
from dlcore.kernels import optim as K


def _load_reference(name):
    path = Path(__file__).resolve().parents[1] / "reference" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_dlcore_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference("optim")
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
N = 257
STEPS = 5


def _data(dtype, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=N).astype(dtype)
    grads = [rng.normal(size=N).astype(dtype) for _ in range(STEPS)]
    return w, grads


def _assert_close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_sgd(momentum, nesterov, dtype):
    w, grads = _data(dtype, 1)
    lr = 0.05
    kw, km = w.copy(), np.zeros_like(w)
    rw, rm = w.copy(), np.zeros_like(w)
    for g in grads:
        K.sgd_update(kw, g, km, lr, momentum, nesterov)
        rw, rm = R.sgd_step(rw, g, rm, lr, momentum, nesterov)
    assert kw.dtype == dtype
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)


def test_sgd_without_momentum_accepts_empty_slot():
    w, grads = _data(np.float32, 2)
    kw = w.copy()
    K.sgd_update(kw, grads[0], np.empty(0, np.float32), 0.1, 0.0, False)
    _assert_close(kw, R.sgd_step(w, grads[0], np.zeros_like(w), 0.1)[0], np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad(dtype):
    w, grads = _data(dtype, 3)
    lr, eps = 0.01, 1e-7
    kw, kacc = w.copy(), np.full_like(w, 0.1)
    rw, racc = w.copy(), np.full_like(w, 0.1)
    for g in grads:
        K.adagrad_update(kw, g, kacc, lr, eps)
        rw, racc = R.adagrad_step(rw, g, racc, lr, eps)
    _assert_close(kw, rw, dtype)
    _assert_close(kacc, racc, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop(momentum, centered, dtype):
    w, grads = _data(dtype, 4)
    lr, rho, eps = 0.01, 0.9, 1e-7
    empty = np.empty(0, dtype=dtype)
    kw, kv = w.copy(), np.zeros_like(w)
    kmg = np.zeros_like(w) if centered else empty
    kmom = np.zeros_like(w) if momentum > 0 else empty
    rw, rv, rmg, rmom = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        K.rmsprop_update(kw, g, kv, kmg, kmom, lr, rho, momentum, eps, centered)
        rw, rv, rmg, rmom = R.rmsprop_step(rw, g, rv, rmg, rmom, lr, rho, momentum, eps, centered)
    _assert_close(kw, rw, dtype)
    _assert_close(kv, rv, dtype)
    if centered:
        _assert_close(kmg, rmg, dtype)
    if momentum > 0:
        _assert_close(kmom, rmom, dtype)


def _adam_alpha(lr, beta_1, beta_2, t):
    return lr * math.sqrt(1.0 - beta_2**t) / (1.0 - beta_1**t)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam(amsgrad, dtype):
    w, grads = _data(dtype, 5)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    kw, km, kv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    kvh = np.zeros_like(w) if amsgrad else np.empty(0, dtype=dtype)
    rw, rm, rv, rvh = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for it, g in enumerate(grads):
        if amsgrad and it == 2:
            g = g * dtype(0.1)  # smaller gradients: v falls below vhat, so the max matters
        K.adam_update(kw, g, km, kv, kvh, _adam_alpha(lr, b1, b2, it + 1), b1, b2, eps, amsgrad)
        rw, rm, rv, rvh = R.adam_step(rw, g, rm, rv, rvh, it, lr, b1, b2, eps, amsgrad)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)
    _assert_close(kv, rv, dtype)
    if amsgrad:
        _assert_close(kvh, rvh, dtype)
        assert np.any(kvh > kv)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad", [False, True])
def test_adamw(amsgrad, dtype):
    w, grads = _data(dtype, 6)
    lr, wd, b1, b2, eps = 0.01, 0.05, 0.9, 0.999, 1e-7
    kw, km, kv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    kvh = np.zeros_like(w) if amsgrad else np.empty(0, dtype=dtype)
    rw, rm, rv, rvh = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for it, g in enumerate(grads):
        K.decay_weights(kw, lr * wd)
        K.adam_update(kw, g, km, kv, kvh, _adam_alpha(lr, b1, b2, it + 1), b1, b2, eps, amsgrad)
        rw, rm, rv, rvh = R.adamw_step(rw, g, rm, rv, rvh, it, lr, wd, b1, b2, eps, amsgrad)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_decay_weights(dtype):
    w, _ = _data(dtype, 7)
    kw = w.copy()
    K.decay_weights(kw, 0.003)
    _assert_close(kw, R.apply_weight_decay(w, 0.1, 0.03), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adamax(dtype):
    w, grads = _data(dtype, 8)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    kw, km, ku = w.copy(), np.zeros_like(w), np.zeros_like(w)
    rw, rm, ru = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for it, g in enumerate(grads):
        K.adamax_update(kw, g, km, ku, lr / (1.0 - b1 ** (it + 1)), b1, b2, eps)
        rw, rm, ru = R.adamax_step(rw, g, rm, ru, it, lr, b1, b2, eps)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)
    _assert_close(ku, ru, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nadam(dtype):
    w, grads = _data(dtype, 9)
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    kw, km, kv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    rw, rm, rv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    k_uprod, r_uprod = 1.0, 1.0
    for it, g in enumerate(grads):
        c_m, c_g, c_v, k_uprod = K.nadam_coefficients(it + 1, b1, k_uprod, b2)
        K.nadam_update(kw, g, km, kv, lr, b1, b2, eps, c_m, c_g, c_v)
        rw, rm, rv, r_uprod = R.nadam_step(rw, g, rm, rv, r_uprod, it, lr, b1, b2, eps)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)
    _assert_close(kv, rv, dtype)
    np.testing.assert_allclose(k_uprod, r_uprod, rtol=1e-6)


def test_nadam_coefficients_first_step():
    # t = 1 from u_product = 1: u_1 = b1 (1 - 0.48), u_2 = b1 (1 - 0.5 * 0.9216).
    b1, b2 = 0.9, 0.999
    c_m, c_g, c_v, u_prod = K.nadam_coefficients(1, b1, 1.0, b2)
    u1, u2 = b1 * 0.52, b1 * (1 - 0.5 * 0.9216)
    assert u_prod == pytest.approx(u1, rel=1e-15)
    assert c_m == pytest.approx(u2 / (1 - u1 * u2), rel=1e-14)
    assert c_g == pytest.approx((1 - u1) / (1 - u1), rel=1e-14)
    assert c_v == pytest.approx(1 / (1 - b2), rel=1e-12)


def test_thread_count_bit_identical():
    rng = np.random.default_rng(10)
    n = 100_000
    w = rng.normal(size=n).astype(np.float32)
    g = rng.normal(size=n).astype(np.float32)

    def run():
        kw, km, kv, kvh = w.copy(), np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
        for t in range(1, 4):
            K.adam_update(kw, g, km, kv, kvh, _adam_alpha(0.01, 0.9, 0.999, t), 0.9, 0.999, 1e-7, True)
        return kw

    before = _config.num_threads()
    try:
        _config.set_num_threads(1)
        one = run()
        _config.set_num_threads(max(2, before))
        two = run()
    finally:
        _config.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adadelta(dtype):
    w, grads = _data(dtype, 11)
    lr, rho, eps = 0.5, 0.9, 1e-6
    kw, kg, kd = w.copy(), np.zeros_like(w), np.zeros_like(w)
    rw, rg, rd = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for g in grads:
        K.adadelta_update(kw, g, kg, kd, lr, rho, eps)
        rw, rg, rd = R.adadelta_step(rw, g, rg, rd, lr, rho, eps)
    _assert_close(kw, rw, dtype)
    _assert_close(kg, rg, dtype)
    _assert_close(kd, rd, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_lion(dtype):
    w, grads = _data(dtype, 12)
    kw, km = w.copy(), np.zeros_like(w)
    rw, rm = w.copy(), np.zeros_like(w)
    for g in grads:
        K.lion_update(kw, g, km, 0.01, 0.8, 0.95)
        rw, rm = R.lion_step(rw, g, rm, 0.01, 0.8, 0.95)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)
    nan = np.array([np.nan, 1.0], dtype)
    out = np.zeros(2, dtype)
    K.lion_update(out, nan, np.zeros(2, dtype), 0.1, 0.9, 0.99)
    assert np.isnan(out[0]) and out[1] == dtype(-0.1)


@pytest.mark.parametrize("power", [-0.5, -0.6])  # -0.5 (Keras's default) takes the sqrt path
@pytest.mark.parametrize("dtype", DTYPES)
def test_ftrl(dtype, power):
    w, grads = _data(dtype, 13)
    lr, l1, l2, shrink, beta = 0.1, 0.05, 0.1, 0.02, 0.3
    kw, kn, kz = w.copy(), np.full_like(w, 0.2), np.zeros_like(w)
    rw, rn, rz = w.copy(), np.full_like(w, 0.2), np.zeros_like(w)
    for g in grads:
        K.ftrl_update(kw, g, kn, kz, lr, -power, l1, l2 + beta / (2 * lr), shrink)
        rw, rn, rz = R.ftrl_step(rw, g, rn, rz, lr, power, l1, l2, shrink, beta)
    # w = (clip(z) - z) / q cancels where |z| is near l1, and z sums terms of opposite sign:
    # float32 rounding differences show up there as absolute differences of a few ulps of |z|
    tol = dict(rtol=2e-5, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    np.testing.assert_allclose(kw, rw, **tol)
    np.testing.assert_allclose(kz, rz, **tol)  # z accumulates differences of similar terms too
    _assert_close(kn, rn, dtype)


def test_kernel_table():
    names = {"sgd_update", "adagrad_update", "rmsprop_update", "adam_update", "decay_weights",
             "adamax_update", "nadam_update", "adadelta_update", "lion_update", "ftrl_update"}
    assert set(K.KERNELS) == names
    for name, fn in K.KERNELS.items():
        assert fn.__doc__ and "w_n: (N,)" in fn.__doc__
