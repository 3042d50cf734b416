"""dlcore.ops.losses: per-sample Keras 3 losses against NumPy formulas written here (never the
kernels), Keras's documented values, finite-difference gradients in float64, shapes and errors."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import ops
from dlcore.ops import losses as L
from harness import check_op_gradients

EPS = 1e-7
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


# ---- NumPy references (float64, from the Keras 3 formulas) ----------------------------------
def _clip(p, dtype):
    lo, hi = np.asarray(EPS, dtype=dtype), np.asarray(1 - EPS, dtype=dtype)
    return np.clip(np.asarray(p, dtype), lo, hi).astype(np.float64)


def _lse(x):
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def ref_mse(t, p):
    return np.mean((t - p) ** 2, -1)


def ref_mae(t, p):
    return np.mean(np.abs(t - p), -1)


def ref_huber(t, p, delta=1.0):
    e = p - t
    return np.mean(np.where(np.abs(e) <= delta, 0.5 * e * e, delta * np.abs(e) - 0.5 * delta * delta), -1)


def ref_log_cosh(t, p):
    return np.mean(np.log(np.cosh(p - t)), -1)


def ref_bce(t, p, from_logits=False, ls=0.0, dtype=np.float64):
    t = t * (1 - ls) + 0.5 * ls
    if from_logits:
        s = 1 / (1 + np.exp(-p))
        return np.mean(-(t * np.log(s) + (1 - t) * np.log(1 - s)), -1)
    c = _clip(p, dtype)
    return np.mean(-(t * np.log(c) + (1 - t) * np.log(1 - c)), -1)


def ref_cce(t, p, from_logits=False, ls=0.0, dtype=np.float64):
    t = t * (1 - ls) + ls / t.shape[-1]
    if from_logits:
        return -np.sum(t * (p - _lse(p)[..., None]), -1)
    q = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -np.sum(t * np.log(q), -1)


def ref_scce(labels, p, from_logits=False, dtype=np.float64):
    q = p if from_logits else np.log(_clip(p, dtype))
    picked = np.take_along_axis(q, labels[..., None], -1)[..., 0]
    return _lse(q) - picked


def ref_mape(t, p):
    return 100 * np.mean(np.abs((t - p) / np.maximum(np.abs(t), EPS)), -1)


def ref_msle(t, p):
    return np.mean((np.log(np.maximum(p, EPS) + 1) - np.log(np.maximum(t, EPS) + 1)) ** 2, -1)


def _hinge_t(t):
    return 2 * t - 1 if np.all((t == 0) | (t == 1)) else t


def ref_hinge(t, p):
    return np.mean(np.maximum(1 - _hinge_t(t) * p, 0), -1)


def ref_squared_hinge(t, p):
    return np.mean(np.maximum(1 - _hinge_t(t) * p, 0) ** 2, -1)


def ref_categorical_hinge(t, p):
    return np.maximum(np.max((1 - t) * p, -1) - np.sum(t * p, -1) + 1, 0)


def ref_kld(t, p):
    t, p = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    return np.sum(t * np.log(t / p), -1)


def ref_poisson(t, p):
    return np.mean(p - t * np.log(p + EPS), -1)


def ref_cosine(t, p, axis=-1):
    tn = t / np.maximum(np.linalg.norm(t, axis=axis, keepdims=True), EPS)
    pn = p / np.maximum(np.linalg.norm(p, axis=axis, keepdims=True), EPS)
    return -np.sum(tn * pn, axis=axis)


# ---- data --------------------------------------------------------------------------------------
def _regression(shape, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=shape)
    return t, t + rng.normal(size=shape)


def _positive(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 2.0, size=shape), rng.uniform(0.1, 2.0, size=shape)


def _binary(shape, seed=0, logits=False):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 2, size=shape).astype(np.float64)
    p = rng.normal(scale=2.0, size=shape) if logits else rng.uniform(0.05, 0.95, size=shape)
    return t, p


def _onehot(n, c, seed=0, logits=False, extra=()):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=(n,) + extra)
    t = np.eye(c)[labels]
    shape = (n,) + extra + (c,)
    p = rng.normal(scale=2.0, size=shape) if logits else rng.uniform(0.05, 1.0, size=shape)
    return labels, t, p


def _prob_rows(n, c, seed=0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(c), size=n), rng.dirichlet(np.ones(c), size=n)


REGRESSION = [
    ("mse", L.mean_squared_error, ref_mse, _regression),
    ("mae", L.mean_absolute_error, ref_mae, _regression),
    ("huber", L.huber, ref_huber, _regression),
    ("huber_delta", lambda t, p: L.huber(t, p, delta=0.3), lambda t, p: ref_huber(t, p, 0.3), _regression),
    ("log_cosh", L.log_cosh, ref_log_cosh, _regression),
    ("mape", L.mean_absolute_percentage_error, ref_mape, _regression),
    ("msle", L.mean_squared_logarithmic_error, ref_msle, _positive),
    ("hinge", L.hinge, ref_hinge, _binary),
    ("squared_hinge", L.squared_hinge, ref_squared_hinge, _binary),
    ("poisson", L.poisson, ref_poisson, _positive),
    ("cosine_similarity", L.cosine_similarity, ref_cosine, _regression),
    ("kl_divergence", L.kl_divergence, ref_kld, lambda shape, seed=0: _prob_rows(shape[0], shape[-1], seed)),
]


# ---- values ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,fn,ref,data", REGRESSION, ids=[r[0] for r in REGRESSION])
def test_regression_losses_match_numpy(name, fn, ref, data, dtype):
    t, p = data((6, 5))
    out = fn(t.astype(dtype), p.astype(dtype))
    assert isinstance(out, dl.Tensor) and out.dtype == dtype and out.shape == (6,)
    expected = ref(t.astype(dtype).astype(np.float64), p.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(out.numpy(), expected, **TOL[dtype])


@pytest.mark.parametrize("name,fn,ref,data", REGRESSION[:5], ids=[r[0] for r in REGRESSION[:5]])
def test_losses_reduce_only_the_last_axis(name, fn, ref, data):
    t, p = data((3, 4, 5))
    out = fn(t, p)
    assert out.shape == (3, 4)
    np.testing.assert_allclose(out.numpy(), ref(t, p), rtol=1e-10)


def test_hinge_keeps_non_binary_labels():
    t = np.array([[-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]])
    p = np.array([[0.3, -0.2, 2.0], [0.5, 0.4, -3.0]])
    np.testing.assert_allclose(L.hinge(t, p).numpy(), np.mean(np.maximum(1 - t * p, 0), -1))
    np.testing.assert_allclose(L.categorical_hinge(np.eye(3)[[0, 2]], p).numpy(),
                               ref_categorical_hinge(np.eye(3)[[0, 2]], p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.2])
def test_binary_crossentropy(dtype, from_logits, ls):
    t, p = _binary((7, 3), logits=from_logits)
    out = L.binary_crossentropy(t.astype(dtype), p.astype(dtype), from_logits=from_logits, label_smoothing=ls)
    assert out.dtype == dtype and out.shape == (7,)
    expected = ref_bce(t, p.astype(dtype).astype(np.float64), from_logits, ls, dtype)
    np.testing.assert_allclose(out.numpy(), expected, **TOL[dtype])


def test_binary_crossentropy_clips_probabilities_like_keras():
    t = np.array([[1.0, 0.0, 1.0, 0.0]], np.float32)
    p = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    # clip to [eps, 1 - eps] in float32: log(eps) terms for the wrong answers, ~0 for the right ones
    expected = ref_bce(t.astype(np.float64), p, dtype=np.float32)
    np.testing.assert_allclose(L.binary_crossentropy(t, p).numpy(), expected, rtol=1e-5)
    assert np.all(np.isfinite(L.binary_crossentropy(t, p, from_logits=True).numpy()))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ls", [0.0, 0.1])
def test_categorical_crossentropy(dtype, from_logits, ls):
    _, t, p = _onehot(6, 4, logits=from_logits)
    out = L.categorical_crossentropy(t.astype(dtype), p.astype(dtype), from_logits=from_logits,
                                     label_smoothing=ls)
    assert out.dtype == dtype and out.shape == (6,)
    expected = ref_cce(t, p.astype(dtype).astype(np.float64), from_logits, ls)
    np.testing.assert_allclose(out.numpy(), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy(dtype, from_logits):
    labels, _, p = _onehot(6, 4, logits=from_logits, extra=(2,))
    out = L.sparse_categorical_crossentropy(labels, p.astype(dtype), from_logits=from_logits)
    assert out.dtype == dtype and out.shape == (6, 2)
    expected = ref_scce(labels, p.astype(dtype).astype(np.float64), from_logits, dtype)
    np.testing.assert_allclose(out.numpy(), expected, **TOL[dtype])
    # float labels (as Keras's Loss casts them) and a trailing axis of 1 are accepted
    again = L.sparse_categorical_crossentropy(labels[..., None].astype(np.float32), p.astype(dtype),
                                              from_logits=from_logits)
    np.testing.assert_array_equal(again.numpy(), out.numpy())


def test_sparse_equals_categorical_on_one_hot():
    labels, t, p = _onehot(8, 5, logits=True)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(labels, p, from_logits=True).numpy(),
                               L.categorical_crossentropy(t, p, from_logits=True).numpy(), rtol=1e-12)


def test_sparse_ignore_class():
    labels, _, p = _onehot(6, 3, logits=True)
    labels[[1, 4]] = -1
    out = L.sparse_categorical_crossentropy(labels, p, from_logits=True, ignore_class=-1).numpy()
    valid = labels != -1
    np.testing.assert_allclose(out[valid], ref_scce(labels[valid], p[valid], True), rtol=1e-12)
    assert np.all(out[~valid] == 0)
    grads = check_op_gradients(
        lambda x: L.sparse_categorical_crossentropy(labels, x, from_logits=True, ignore_class=-1), [p])
    assert np.all(grads[0][~valid] == 0)


@pytest.mark.parametrize("fn,ref", [(L.binary_crossentropy, ref_bce), (L.categorical_crossentropy, ref_cce)])
def test_axis_argument(fn, ref):
    _, t, p = _onehot(4, 3, extra=(5,))
    t, p = np.ascontiguousarray(np.moveaxis(t, -1, 1)), np.ascontiguousarray(np.moveaxis(p, -1, 1))  # (4, 3, 5)
    out = fn(t, p, axis=1)
    assert out.shape == (4, 5)
    np.testing.assert_allclose(out.numpy(), ref(np.moveaxis(t, 1, -1), np.moveaxis(p, 1, -1)), rtol=1e-10)
    check_op_gradients(lambda x: fn(t, x, axis=1), [p])


# ---- Keras's documented values -----------------------------------------------------------------
def test_known_keras_values():
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    # -(log 0.9 + log 0.8) / 2
    np.testing.assert_allclose(L.binary_crossentropy(f32([1, 0]), f32([0.9, 0.2])).numpy(),
                               -(np.log(0.9) + np.log(0.8)) / 2, rtol=1e-6)
    bce = L.binary_crossentropy(f32([[0, 1], [0, 0]]), f32([[0.6, 0.4], [0.4, 0.6]]))
    np.testing.assert_allclose(bce.numpy(),
                               [0.916, 0.714], atol=1e-3)
    t, p = f32([[0, 1, 0], [0, 0, 1]]), f32([[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
    np.testing.assert_allclose(L.categorical_crossentropy(t, p).numpy(), [0.0513, 2.303], atol=1e-3)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy([1, 2], p).numpy(), [0.0513, 2.303], atol=1e-3)
    np.testing.assert_allclose(np.mean(L.huber(f32([[0, 1], [0, 0]]), f32([[0.6, 0.4], [0.4, 0.6]])).numpy()),
                               0.155, atol=1e-3)
    np.testing.assert_allclose(np.mean(L.log_cosh(f32([[0, 1], [0, 0]]), f32([[1, 1], [0, 0]])).numpy()),
                               0.108, atol=1e-3)
    cos = L.cosine_similarity(f32([[0, 1], [1, 1], [1, 1]]), f32([[1, 0], [1, 1], [-1, -1]]))
    np.testing.assert_allclose(cos.numpy(),
                               [0.0, -1.0, 1.0], atol=1e-6)


# ---- shapes, dtypes and conversion ---------------------------------------------------------------
def test_keras_rank_allowance():
    t = np.array([1.0, 2.0, 3.0])
    p = np.array([[1.5], [2.0], [2.0]])
    np.testing.assert_allclose(L.mean_squared_error(t, p).numpy(), [0.25, 0.0, 1.0])  # y_true expanded
    out = L.mean_squared_error(p, t)  # y_pred (N,) expanded to (N, 1)
    assert out.shape == (3,)
    grads = check_op_gradients(lambda x: L.mean_squared_error(p, x), [t])
    assert grads[0].shape == (3,)
    assert L.mean_squared_error(t, t + 1).shape == ()  # rank-1 y_pred: one value, as Keras


def test_y_true_is_cast_to_y_pred_dtype_and_ints_become_floatx():
    out = L.mean_squared_error(np.array([[1, 2]], np.int64), np.array([[1.0, 1.0]], np.float64))
    assert out.dtype == np.float64
    out = L.mean_absolute_error(np.array([[1.0, 2.0]]), np.array([[1, 1]]))
    assert out.dtype == np.float32
    out = L.binary_crossentropy([[1, 0]], [[0.9, 0.2]])  # lists follow floatx
    assert out.dtype == np.float32


def test_only_y_pred_gets_a_gradient():
    t, p = dl.Tensor(np.ones((2, 3))), dl.Tensor(np.zeros((2, 3)))
    with dl.GradientTape(persistent=True) as tape:
        tape.watch([t, p])
        loss = ops.sum(L.mean_squared_error(t, p))
    assert tape.gradient(loss, t) is None
    np.testing.assert_allclose(tape.gradient(loss, p).numpy(), -2 / 3 * np.ones((2, 3)))


def test_forward_is_thread_count_independent():
    t, p = _regression((4000, 16))
    a = L.log_cosh(t.astype(np.float32), p.astype(np.float32)).numpy()
    previous = dl.config.num_threads()
    try:
        dl.config.set_num_threads(1)
        b = L.log_cosh(t.astype(np.float32), p.astype(np.float32)).numpy()
    finally:
        dl.config.set_num_threads(previous)
    np.testing.assert_array_equal(a, b)


# ---- gradients (float64 central differences) --------------------------------------------------
GRADIENT_CASES = {
    "mse": (L.mean_squared_error, _regression),
    "mae": (L.mean_absolute_error, _regression),
    "huber": (L.huber, _regression),
    "huber_delta": (lambda t, p: L.huber(t, p, delta=0.3), _regression),
    "log_cosh": (L.log_cosh, _regression),
    "mape": (L.mean_absolute_percentage_error, _regression),
    "msle": (L.mean_squared_logarithmic_error, _positive),
    "hinge": (L.hinge, _binary),
    "squared_hinge": (L.squared_hinge, _binary),
    "categorical_hinge": (L.categorical_hinge, lambda shape: _onehot(shape[0], shape[1], logits=True)[1:]),
    "poisson": (L.poisson, _positive),
    "cosine_similarity": (L.cosine_similarity, _regression),
    "kl_divergence": (L.kl_divergence, lambda shape: _prob_rows(*shape)),
    "bce": (L.binary_crossentropy, _binary),
    "bce_smoothed": (lambda t, p: L.binary_crossentropy(t, p, label_smoothing=0.2), _binary),
    "bce_logits": (lambda t, p: L.binary_crossentropy(t, p, from_logits=True),
                   lambda shape: _binary(shape, logits=True)),
    "cce": (L.categorical_crossentropy, lambda shape: _onehot(*shape)[1:]),
    "cce_smoothed": (lambda t, p: L.categorical_crossentropy(t, p, label_smoothing=0.1),
                     lambda shape: _onehot(*shape)[1:]),
    "cce_logits": (lambda t, p: L.categorical_crossentropy(t, p, from_logits=True),
                   lambda shape: _onehot(*shape, logits=True)[1:]),
    "scce": (L.sparse_categorical_crossentropy, lambda shape: _onehot(*shape)[::2]),
    "scce_logits": (lambda t, p: L.sparse_categorical_crossentropy(t, p, from_logits=True),
                    lambda shape: _onehot(*shape, logits=True)[::2]),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_gradients_finite_differences(name):
    fn, data = GRADIENT_CASES[name]
    t, p = data((3, 4))
    check_op_gradients(lambda x: fn(t, x), [p], rtol=1e-5, atol=1e-7)


def test_float32_gradient_is_float32():
    t, p = _binary((4, 3))
    x = dl.Tensor(p.astype(np.float32))
    with dl.GradientTape() as tape:
        tape.watch(x)
        loss = ops.sum(L.binary_crossentropy(t, x))
    g = tape.gradient(loss, x)
    assert g.dtype == np.float32
    expected = ((1 - t) / (1 - p) - t / p) / 3
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-4)


# ---- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [L.mean_squared_error, L.binary_crossentropy, L.categorical_crossentropy,
                                L.hinge, L.kl_divergence, L.cosine_similarity])
def test_shape_mismatch_is_a_clear_error(fn):
    with pytest.raises(ValueError, match=r"y_true\.shape=\(4, 3\), y_pred\.shape=\(4, 2\)"):
        fn(np.zeros((4, 3)), np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="same shape"):
        fn(np.zeros((4,)), np.full((4, 2), 0.5))  # no silent broadcasting


def test_sparse_label_errors():
    p = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy.*\[0, 4\).*\[4\]"):
        L.sparse_categorical_crossentropy([0, 4, 1], p)
    with pytest.raises(ValueError, match=r"\[-1\]"):
        L.sparse_categorical_crossentropy([0, -1, 1], p)
    with pytest.raises(ValueError, match="non-integer"):
        L.sparse_categorical_crossentropy([0.0, 1.5, 1.0], p)
    with pytest.raises(ValueError, match=r"of shape \(3,\)"):
        L.sparse_categorical_crossentropy([0, 1], p)
    with pytest.raises(ValueError, match=r"of shape \(3,\)"):
        L.sparse_categorical_crossentropy(np.zeros((3, 4)), p)  # one-hot given to the sparse loss


def test_other_argument_errors():
    t, p = _binary((2, 3))
    with pytest.raises(ValueError, match="label_smoothing"):
        L.binary_crossentropy(t, p, label_smoothing=1.5)
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        L.categorical_crossentropy(t, p, axis=2)
    with pytest.raises(ValueError, match="axis must be an int"):
        L.categorical_crossentropy(t, p, axis=True)
    with pytest.raises(ValueError, match="rank >= 1"):
        L.mean_squared_error(1.0, 2.0)
