"""Normalization kernels against the NumPy reference (tests/reference/normalization.py). Layer/RMS:
forward and backward, float32/float64, layer and RMS forms, one or many row chunks, the
need_dx / need_params switches; parameter gradients bit-identical for 1 and 2 threads."""
import numpy as np
import pytest

from dlcore.kernels import normalization as kn
from reference import normalization as ref

DTYPES = (np.float32, np.float64)
BATCH_SHAPES = ((1, 1), (1, 5), (7, 3), (300, 4), (1000, 17), (257, 64))
SHAPES = ((1, 1), (1, 7), (5, 3), (130, 16), (257, 33))


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)


def _data(shape, dtype, seed=0):
    rs = np.random.default_rng(seed)
    x = (rs.standard_normal(shape) * 2 + 3).astype(dtype)
    return x, rs.standard_normal(shape[1]).astype(dtype), rs.standard_normal(shape[1]).astype(dtype), \
        rs.standard_normal(shape).astype(dtype)


def test_kernel_table():
    assert set(kn.KERNELS) == {"layer_norm_forward", "layer_norm_backward", "batch_norm_forward", "batch_norm_moments",
                               "batch_norm_backward_params", "batch_norm_backward_input", "batch_norm_scale_shift",
                               "batch_norm_backward_terms", "batch_norm_update_moving"}


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward(shape, dtype, rms):
    x, gamma, beta, _ = _data(shape, dtype)
    y = np.full(shape, np.nan, dtype)
    mean, rstd = np.full(shape[0], np.nan), np.full(shape[0], np.nan)
    kn.layer_norm_forward(x, gamma, beta, 1e-3, rms, y, mean, rstd, 2)
    y_ref, mean_ref, rstd_ref = ref.forward(x, gamma, beta, 1e-3, rms)
    np.testing.assert_allclose(y, y_ref, **_tol(dtype))
    np.testing.assert_allclose(mean, mean_ref, **_tol(dtype))
    np.testing.assert_allclose(rstd, rstd_ref, **_tol(dtype))


@pytest.mark.parametrize("rms", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_backward(shape, dtype, rms):
    x, gamma, beta, dy = _data(shape, dtype, seed=1)
    y, mean, rstd = np.empty_like(x), np.empty(shape[0]), np.empty(shape[0])
    kn.layer_norm_forward(x, gamma, beta, 1e-3, rms, y, mean, rstd, 1)
    dx_ref, dg_ref, db_ref = ref.backward(dy, x, gamma, 1e-3, rms)
    results = []
    for threads in (1, 2):
        dx, dg, db = np.full_like(x, np.nan), np.full_like(gamma, np.nan), np.full_like(gamma, np.nan)
        kn.layer_norm_backward(dy, x, mean, rstd, gamma, rms, dx, dg, db, True, True, threads)
        np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))
        np.testing.assert_allclose(dg, dg_ref, **_tol(dtype))
        np.testing.assert_allclose(db, db_ref, **_tol(dtype))
        results.append((dx, dg, db))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)  # independent of the thread count


def test_backward_switches():
    x, gamma, beta, dy = _data((70, 5), np.float64)
    y, mean, rstd = np.empty_like(x), np.empty(70), np.empty(70)
    kn.layer_norm_forward(x, gamma, beta, 1e-3, False, y, mean, rstd, 1)
    dx_ref, dg_ref, _ = ref.backward(dy, x, gamma, 1e-3)
    dx, dg, db = np.full_like(x, 7.0), np.full(5, 7.0), np.full(5, 7.0)
    kn.layer_norm_backward(dy, x, mean, rstd, gamma, False, dx, dg, db, True, False, 2)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-11)
    assert (dg == 7.0).all() and (db == 7.0).all()  # params untouched
    dx[:] = 7.0
    kn.layer_norm_backward(dy, x, mean, rstd, gamma, False, dx, dg, db, False, True, 2)
    np.testing.assert_allclose(dg, dg_ref, rtol=1e-11)
    assert (dx == 7.0).all()  # dx untouched


def test_empty_rows():
    x = np.empty((0, 4), np.float32)
    dg, db = np.full(4, np.nan, np.float32), np.full(4, np.nan, np.float32)
    kn.layer_norm_backward(x, x, np.empty(0), np.empty(0), np.ones(4, np.float32), False, x, dg, db, True, True, 1)
    assert (dg == 0).all() and (db == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_large_mean_keeps_the_variance(dtype):
    """The one-pass statistics shift by a value of the row: no cancellation when |mean| >> std."""
    rs = np.random.default_rng(4)
    x = (1e4 + rs.standard_normal((6, 128)) * 0.05).astype(dtype)
    ones, zeros = np.ones(128, dtype), np.zeros(128, dtype)
    y, mean, rstd = np.empty_like(x), np.empty(6), np.empty(6)
    kn.layer_norm_forward(x, ones, zeros, 1e-8, False, y, mean, rstd, 1)
    y_ref, _, rstd_ref = ref.forward(x, ones, zeros, 1e-8)
    np.testing.assert_allclose(rstd, rstd_ref, rtol=1e-3 if dtype == np.float32 else 1e-9)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=2e-3 if dtype == np.float32 else 1e-8)
    dy = rs.standard_normal(x.shape).astype(dtype)
    dx, dg, db = np.empty_like(x), np.empty(128, dtype), np.empty(128, dtype)
    kn.layer_norm_backward(dy, x, mean, rstd, ones, False, dx, dg, db, True, True, 1)
    dx_ref, dg_ref, _ = ref.backward(dy, x, ones, 1e-8)
    scale = np.abs(dx_ref).max()
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=(5e-3 if dtype == np.float32 else 1e-8) * scale)
    np.testing.assert_allclose(dg, dg_ref, rtol=0, atol=(5e-3 if dtype == np.float32 else 1e-8) * np.abs(dg_ref).max())


# ---- batch normalization: moments, the fused forward and both backward kernels, one or many row chunks;
# statistics bit-identical for 1 and 2 threads ----
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_moments(shape, dtype):
    x = (np.random.default_rng(0).standard_normal(shape) * 3 + 5).astype(dtype)
    m1, v1, m2, v2 = (np.full(shape[1], np.nan) for _ in range(4))
    kn.batch_norm_moments(x, m1, v1, 1)
    kn.batch_norm_moments(x, m2, v2, 2)
    np.testing.assert_array_equal(m1, m2)  # independent of the thread count
    np.testing.assert_array_equal(v1, v2)
    mean, var = ref.batch_moments(x)
    np.testing.assert_allclose(m1, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v1, var, rtol=1e-11, atol=1e-12)


def test_moments_are_accurate_far_from_zero():
    # two passes in float64: no cancellation for a large mean and a small spread
    x = (1e4 + np.random.default_rng(1).standard_normal((5000, 2)) * 1e-2).astype(np.float64)
    m, v = np.empty(2), np.empty(2)
    kn.batch_norm_moments(x, m, v, 2)
    np.testing.assert_allclose(v, x.var(axis=0), rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_batch_forward(shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    scale, shift = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    y = np.full(shape, np.nan, dtype=dtype)
    kn.batch_norm_forward(x, scale, shift, y, 2)
    np.testing.assert_allclose(y, x.astype(np.float64) * scale + shift, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BATCH_SHAPES)
def test_training_backward(shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[1])
    eps = 1e-3
    mean, var = np.empty(shape[1]), np.empty(shape[1])
    kn.batch_norm_moments(x, mean, var, 2)
    inv_std = 1.0 / np.sqrt(var + eps)
    dgamma = [np.full(shape[1], np.nan, dtype=dtype) for _ in range(2)]
    dbeta = [np.full(shape[1], np.nan, dtype=dtype) for _ in range(2)]
    for t in (1, 2):
        kn.batch_norm_backward_params(dy, x, mean, inv_std, dgamma[t - 1], dbeta[t - 1], t)
    np.testing.assert_array_equal(dgamma[0], dgamma[1])
    np.testing.assert_array_equal(dbeta[0], dbeta[1])
    dx_ref, dgamma_ref, dbeta_ref = ref.batch_training_backward(x, dy, gamma, eps)
    np.testing.assert_allclose(dgamma[0], dgamma_ref, **_tol(dtype))
    np.testing.assert_allclose(dbeta[0], dbeta_ref, **_tol(dtype))
    r = shape[0]
    a = gamma * inv_std
    k = a * inv_std * dgamma[0].astype(np.float64) / r
    b = a * dbeta[0].astype(np.float64) / r
    dx = np.full(shape, np.nan, dtype=dtype)
    kn.batch_norm_backward_input(dy, x, mean.astype(dtype), a.astype(dtype), k.astype(dtype), b.astype(dtype),
                                   dx, 2)
    np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))


def test_chunking_is_fixed():
    assert kn.BATCH_CHUNK_ROWS == 256


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_per_channel_terms(dtype, affine):
    rng = np.random.default_rng(3)
    mean, var = rng.standard_normal(5).astype(dtype), np.abs(rng.standard_normal(5)).astype(dtype)
    gamma, beta = (rng.standard_normal(5).astype(dtype) for _ in range(2)) if affine else (None, None)
    scale, shift, inv_std = np.empty(5, dtype), np.empty(5, dtype), np.empty(5)
    mean_out, var_out = np.empty(5, np.float32), np.empty(5, np.float32)
    kn.batch_norm_scale_shift(mean, var, gamma, beta, 1e-3, scale, shift, inv_std, mean_out, var_out)
    for got, want in zip((scale, shift, inv_std), ref.batch_scale_shift(mean, var, gamma, beta, 1e-3)):
        np.testing.assert_allclose(got, want, **_tol(dtype))
    np.testing.assert_array_equal(mean_out, mean.astype(np.float32))
    np.testing.assert_array_equal(var_out, var.astype(np.float32))
    dgamma, dbeta, dmean, dvar = (rng.standard_normal(5).astype(dtype) for _ in range(4))
    for extra in ((None, None), (dmean, dvar)):
        a, k, b = np.empty(5, dtype), np.empty(5, dtype), np.empty(5, dtype)
        kn.batch_norm_backward_terms(gamma, inv_std, dgamma, dbeta, *extra, 7, a, k, b)
        for got, want in zip((a, k, b), ref.batch_backward_terms(gamma, inv_std, dgamma, dbeta, *extra, 7)):
            np.testing.assert_allclose(got, want, **_tol(dtype))
    new = np.empty(5, dtype)
    kn.batch_norm_update_moving(mean, var, 0.9, new)
    np.testing.assert_allclose(new, ref.batch_moving_update(mean, var, 0.9), **_tol(dtype))
    kn.batch_norm_update_moving(mean, var, 0.9, mean)  # in place
    np.testing.assert_array_equal(mean, new)
