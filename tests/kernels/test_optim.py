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
    updates = {"sgd_update", "adagrad_update", "rmsprop_update", "adam_update", "decay_weights",
               "adamax_update", "nadam_update", "adadelta_update", "lion_update", "ftrl_update",
               "trust_ratio_update", "adafactor_apply"}
    helpers = {"axpby", "sum_squares", "scale_by_norm", "clip_values", "lamb_moments",
               "adafactor_factored_moments", "adafactor_moments", "adafactor_direction"}
    assert set(K.KERNELS) == updates | helpers
    for name in updates:
        assert K.KERNELS[name].__doc__ and "w_n: (N,)" in K.KERNELS[name].__doc__


@pytest.mark.parametrize("dtype", DTYPES)
def test_axpby(dtype):
    x, (y, _, _, _, _) = _data(dtype, 20)
    out = np.empty_like(x)
    K.axpby(x, 0.5, y, -2.0, out)
    _assert_close(out, R.axpby(x, 0.5, y, -2.0), dtype)
    inplace = y.copy()  # out may be y
    K.axpby(x, 1.5, inplace, 0.25, inplace)
    _assert_close(inplace, R.axpby(x, 1.5, y, 0.25), dtype)
    x[0], y[1] = np.inf, np.nan  # b == 0 never reads y: inf stays inf, y's NaN does not leak
    K.axpby(x, 2.0, y, 0.0, out)
    _assert_close(out, R.axpby(x, 2.0, y, 0.0), dtype)
    assert out[0] == np.inf and not np.isnan(out[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_squares_accumulates_in_float64(dtype):
    x, (y, _, _, _, _) = _data(dtype, 21)
    rtol = 1e-6 if dtype == np.float32 else 1e-13  # float32: the squares are rounded to float32
    total = np.zeros(1, np.float64)
    K.sum_squares(x, total)
    np.testing.assert_allclose(total[0], R.sum_squares(x), rtol=rtol)
    K.sum_squares(y, total)  # a shared total is a global norm's square
    np.testing.assert_allclose(total[0], R.sum_squares(x, y), rtol=rtol)
    many = np.full(1 << 16, 1.0 + 2.0 ** -10, dtype)  # a float32 running sum would drift here
    total[0] = 0.0
    K.sum_squares(many, total)
    np.testing.assert_allclose(total[0], R.sum_squares(many), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("clip_norm", [0.5, 1e3])  # clipped, and left alone (scale 1)
def test_scale_by_norm_is_clipnorm(dtype, clip_norm):
    x = _data(dtype, 22)[0]
    total = np.zeros(1, np.float64)
    K.sum_squares(x, total)
    out = np.empty_like(x)
    K.scale_by_norm(x, total, clip_norm, False, out)
    _assert_close(out, R.clip_by_norm(x, clip_norm), dtype)
    zero = np.zeros(3, dtype)
    K.scale_by_norm(zero, np.zeros(1), clip_norm, False, out[:3])
    np.testing.assert_array_equal(out[:3], R.clip_by_norm(zero, clip_norm))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scale_by_norm_is_global_clipnorm(dtype):
    xs = [_data(dtype, 23)[0], _data(dtype, 24)[0][:31]]
    total = np.zeros(1, np.float64)
    for x in xs:
        K.sum_squares(x, total)
    for x, expected in zip(xs, R.clip_by_global_norm(xs, 2.0)):
        out = x.copy()  # out may be x
        K.scale_by_norm(out, total, 2.0, True, out)
        _assert_close(out, expected, dtype)


@pytest.mark.parametrize("nonfinite_nan", [False, True])
def test_scale_by_norm_non_finite_norms(nonfinite_nan):
    x = np.array([1.0, -2.0, 0.5], np.float32)
    out = np.empty_like(x)
    # clipnorm: x clip_norm / max(inf, clip_norm) = 0; global_clipnorm: NaN
    expected = R.clip_by_global_norm([x, np.array([np.inf], np.float32)], 1.0)[0] if nonfinite_nan else x * 0
    K.scale_by_norm(x, np.array([np.inf]), 1.0, nonfinite_nan, out)
    np.testing.assert_array_equal(out, expected)
    assert np.isnan(out).all() == nonfinite_nan
    K.scale_by_norm(x, np.array([np.nan]), 1.0, nonfinite_nan, out)
    assert np.isnan(out).all() and np.isnan(R.clip_by_norm(np.array([np.nan], np.float32), 1.0)).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_clip_values(dtype):
    x = _data(dtype, 25)[0] * dtype(3)
    x[:3] = [np.nan, np.inf, -np.inf]
    out = np.empty_like(x)
    K.clip_values(x, 1.25, out)
    np.testing.assert_array_equal(out, R.clip_by_value(x, 1.25))
    assert np.isnan(out[0]) and out[1] == dtype(1.25) and out[2] == dtype(-1.25)
    K.clip_values(x, 0.5, x)  # out may be x
    np.testing.assert_array_equal(x, R.clip_by_value(out, 0.5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lamb_kernels_step_against_keras_reference(dtype):
    w, grads = _data(dtype, 26)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-7
    kw, km, kv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    rw, rm, rv = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for it, g in enumerate(grads):
        u = np.empty_like(w)
        K.lamb_moments(g, km, kv, u, 1 - b1 ** (it + 1), 1 - b2 ** (it + 1), b1, b2, eps)
        em, ev, eu = R.lamb_moments(g, rm, rv, it, b1, b2, eps)
        _assert_close(u, eu, dtype)
        norms = np.zeros(2, np.float64)
        K.sum_squares(kw, norms[0:1])
        K.sum_squares(u, norms[1:2])
        expected_w = R.trust_ratio_step(kw, u, lr)
        K.trust_ratio_update(kw, u, norms[0:1], norms[1:2], lr)
        _assert_close(kw, expected_w, dtype)
        rw, rm, rv = R.lamb_step(rw, g, rm, rv, it, lr, b1, b2, eps)
        _assert_close(rm, em, dtype)
    _assert_close(kw, rw, dtype)
    _assert_close(km, rm, dtype)
    _assert_close(kv, rv, dtype)


def test_trust_ratio_is_one_at_a_zero_norm():
    w, u = np.zeros(4, np.float32), np.ones(4, np.float32)
    K.trust_ratio_update(w, u, np.zeros(1), np.array([4.0]), 0.5)
    np.testing.assert_array_equal(w, R.trust_ratio_step(np.zeros(4, np.float32), u, 0.5))
    assert (w == -0.5).all()


def _adafactor_kernels(w, g, r, c, v, iterations, lr=0.01, decay=-0.8, eps_1=1e-30, eps_2=1e-3, clip=1.0):
    """One Adafactor step made of the kernels, as dlcore/optimizers/adafactor.py calls them."""
    dt = w.dtype.type
    t = float(iterations + 1)
    rho_t = min(min(float(dt(lr)), 1.0 / math.sqrt(t)), 1.0 / math.sqrt(t))
    beta = float(dt(1.0 - t ** decay))
    if w.ndim >= 2:
        rows, cols = w.shape[-2:]
        b = w.size // (rows * cols)
        K.adafactor_factored_moments(g.reshape(b, rows, cols), r.reshape(b, rows), c.reshape(b, cols),
                                     beta, eps_1, v.reshape(b, rows, cols))
    else:
        K.adafactor_moments(g.reshape(-1), v.reshape(-1), beta, eps_1)
    u = np.empty(w.size, w.dtype)
    K.adafactor_direction(g.reshape(-1), v.reshape(-1), u)
    sums = np.zeros(2, np.float64)
    K.sum_squares(w.reshape(-1), sums[0:1])
    K.sum_squares(u, sums[1:2])
    K.adafactor_apply(w.reshape(-1), u, sums, rho_t, eps_2, clip)
    return u


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (5, 6), (2, 3, 4)], ids=str)
def test_adafactor_kernels_step_against_keras_reference(shape, dtype):
    rng = np.random.default_rng(27)
    w = rng.normal(size=shape).astype(dtype)
    factored = len(shape) >= 2
    slots = (shape[:-1], shape[:-2] + shape[-1:]) if factored else ((0,), (0,))
    kw, kr, kc, kv = w.copy(), np.zeros(slots[0], dtype), np.zeros(slots[1], dtype), np.zeros(shape, dtype)
    rw, rr, rc, rv = w.copy(), kr.copy(), kc.copy(), kv.copy()
    for it in range(STEPS):
        g = rng.normal(size=shape).astype(dtype)
        u = _adafactor_kernels(kw, g, kr, kc, kv, it)
        rw, rr, rc, rv = R.adafactor_step(rw, g, rr, rc, rv, it, learning_rate=0.01)
        _assert_close(u, R.adafactor_direction(g, rv).reshape(-1), dtype)
        _assert_close(kv, rv, dtype)
        _assert_close(kw, rw, dtype)
    if factored:
        _assert_close(kr, rr, dtype)
        _assert_close(kc, rc, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adafactor_moments_and_apply_alone(dtype):
    rng = np.random.default_rng(28)
    g, v, w = (rng.normal(size=9).astype(dtype) for _ in range(3))
    v = np.abs(v)
    expected = R.adafactor_second_moment(g, None, None, v, 0.7, 1e-3)[2]
    K.adafactor_moments(g, v, 0.7, 1e-3)
    _assert_close(v, expected, dtype)
    g3, r, c = rng.normal(size=(2, 3, 4)).astype(dtype), np.ones((2, 3), dtype), np.ones((2, 4), dtype)
    v3 = np.empty_like(g3)
    er, ec, ev = R.adafactor_second_moment(g3, r, c, None, 0.7, 1e-3)
    K.adafactor_factored_moments(g3, r, c, 0.7, 1e-3, v3)
    for actual, ref in ((r, er), (c, ec), (v3, ev)):
        _assert_close(actual, ref, dtype)
    u = g * dtype(40)  # rms(u) > clip_threshold: the update is clipped
    for eps_2 in (1e-3, 10.0):  # alpha from rms(w), then from epsilon_2
        kw = w.copy()
        sums = np.array([R.sum_squares(w), R.sum_squares(u)])
        K.adafactor_apply(kw, u, sums, 0.1, eps_2, 1.0)
        _assert_close(kw, R.adafactor_apply(w, u, 0.1, eps_2, 1.0), dtype)


@pytest.mark.parametrize("n", [8, 100_000])
def test_zero_divisor_gives_ieee_values_in_both_twins(n):
    """A small array runs the serial twin and a large one (at 2 threads) the parallel twin: both
    compile with NumPy's error model (kernels/_config.ERROR_MODEL), so Adagrad with eps = 0 and
    a zero gradient divides 0 by 0 into NaN instead of raising ZeroDivisionError in one twin."""
    assert _config.ERROR_MODEL == "numpy"
    w, g, acc = np.ones(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
    before = _config.num_threads()
    try:
        _config.set_num_threads(2)
        K.adagrad_update(w, g, acc, 0.1, 0.0)
    finally:
        _config.set_num_threads(before)
    assert np.all(np.isnan(w)) and np.all(acc == 0)
