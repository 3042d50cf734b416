"""Batch-normalization kernels against the NumPy reference (tests/reference/norm.py): moments,
the fused forward and both backward kernels, float32/float64, one or many row chunks; statistics
bit-identical for 1 and 2 threads."""
import numpy as np
import pytest

from dlcore.kernels import norm
from reference import norm as ref

DTYPES = (np.float32, np.float64)
SHAPES = ((1, 1), (1, 5), (7, 3), (300, 4), (1000, 17), (257, 64))


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)


def test_kernel_table():
    assert set(norm.KERNELS) == {"batch_norm_forward", "batch_norm_moments", "batch_norm_backward_params",
                                 "batch_norm_backward_input", "batch_norm_scale_shift", "batch_norm_backward_terms",
                                 "batch_norm_update_moving"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_moments(shape, dtype):
    x = (np.random.default_rng(0).standard_normal(shape) * 3 + 5).astype(dtype)
    m1, v1, m2, v2 = (np.full(shape[1], np.nan) for _ in range(4))
    norm.batch_norm_moments(x, m1, v1, 1)
    norm.batch_norm_moments(x, m2, v2, 2)
    np.testing.assert_array_equal(m1, m2)  # independent of the thread count
    np.testing.assert_array_equal(v1, v2)
    mean, var = ref.moments(x)
    np.testing.assert_allclose(m1, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(v1, var, rtol=1e-11, atol=1e-12)


def test_moments_are_accurate_far_from_zero():
    # two passes in float64: no cancellation for a large mean and a small spread
    x = (1e4 + np.random.default_rng(1).standard_normal((5000, 2)) * 1e-2).astype(np.float64)
    m, v = np.empty(2), np.empty(2)
    norm.batch_norm_moments(x, m, v, 2)
    np.testing.assert_allclose(v, x.var(axis=0), rtol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward(shape, dtype):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    scale, shift = rng.standard_normal(shape[1]).astype(dtype), rng.standard_normal(shape[1]).astype(dtype)
    y = np.full(shape, np.nan, dtype=dtype)
    norm.batch_norm_forward(x, scale, shift, y, 2)
    np.testing.assert_allclose(y, x.astype(np.float64) * scale + shift, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_training_backward(shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, shape[1])
    eps = 1e-3
    mean, var = np.empty(shape[1]), np.empty(shape[1])
    norm.batch_norm_moments(x, mean, var, 2)
    inv_std = 1.0 / np.sqrt(var + eps)
    dgamma = [np.full(shape[1], np.nan, dtype=dtype) for _ in range(2)]
    dbeta = [np.full(shape[1], np.nan, dtype=dtype) for _ in range(2)]
    for t in (1, 2):
        norm.batch_norm_backward_params(dy, x, mean, inv_std, dgamma[t - 1], dbeta[t - 1], t)
    np.testing.assert_array_equal(dgamma[0], dgamma[1])
    np.testing.assert_array_equal(dbeta[0], dbeta[1])
    dx_ref, dgamma_ref, dbeta_ref = ref.training_backward(x, dy, gamma, eps)
    np.testing.assert_allclose(dgamma[0], dgamma_ref, **_tol(dtype))
    np.testing.assert_allclose(dbeta[0], dbeta_ref, **_tol(dtype))
    r = shape[0]
    a = gamma * inv_std
    k = a * inv_std * dgamma[0].astype(np.float64) / r
    b = a * dbeta[0].astype(np.float64) / r
    dx = np.full(shape, np.nan, dtype=dtype)
    norm.batch_norm_backward_input(dy, x, mean.astype(dtype), a.astype(dtype), k.astype(dtype), b.astype(dtype),
                                   dx, 2)
    np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))


def test_chunking_is_fixed():
    assert norm.CHUNK_ROWS == 256


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [True, False])
def test_per_channel_terms(dtype, affine):
    rng = np.random.default_rng(3)
    mean, var = rng.standard_normal(5).astype(dtype), np.abs(rng.standard_normal(5)).astype(dtype)
    gamma, beta = (rng.standard_normal(5).astype(dtype) for _ in range(2)) if affine else (None, None)
    scale, shift, inv_std = np.empty(5, dtype), np.empty(5, dtype), np.empty(5)
    mean_out, var_out = np.empty(5, np.float32), np.empty(5, np.float32)
    norm.batch_norm_scale_shift(mean, var, gamma, beta, 1e-3, scale, shift, inv_std, mean_out, var_out)
    for got, want in zip((scale, shift, inv_std), ref.scale_shift(mean, var, gamma, beta, 1e-3)):
        np.testing.assert_allclose(got, want, **_tol(dtype))
    np.testing.assert_array_equal(mean_out, mean.astype(np.float32))
    np.testing.assert_array_equal(var_out, var.astype(np.float32))
    dgamma, dbeta, dmean, dvar = (rng.standard_normal(5).astype(dtype) for _ in range(4))
    for extra in ((None, None), (dmean, dvar)):
        a, k, b = np.empty(5, dtype), np.empty(5, dtype), np.empty(5, dtype)
        norm.batch_norm_backward_terms(gamma, inv_std, dgamma, dbeta, *extra, 7, a, k, b)
        for got, want in zip((a, k, b), ref.backward_terms(gamma, inv_std, dgamma, dbeta, *extra, 7)):
            np.testing.assert_allclose(got, want, **_tol(dtype))
    new = np.empty(5, dtype)
    norm.batch_norm_update_moving(mean, var, 0.9, new)
    np.testing.assert_allclose(new, ref.moving_update(mean, var, 0.9), **_tol(dtype))
    norm.batch_norm_update_moving(mean, var, 0.9, mean)  # in place
    np.testing.assert_array_equal(mean, new)
