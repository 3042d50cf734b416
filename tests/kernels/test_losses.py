"""Loss kernels (dlcore.kernels.losses) against the NumPy reference and finite differences."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcore.kernels import losses as K


def _load_reference(name):
    path = Path(__file__).resolve().parents[1] / "reference" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_dlcore_reference_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


R = _load_reference("losses")
EPS = 1e-7
DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}

# name -> (reference function, extra kernel scalars, has from_logits)
REGRESSION = {
    "mse": (R.mean_squared_error, ()),
    "mae": (R.mean_absolute_error, ()),
    "huber": (R.huber, (1.0,)),
    "huber_delta": (R.huber, (0.3,)),
    "log_cosh": (R.log_cosh, ()),
}


# name -> (forward, backward) kernel names
REGRESSION_KERNELS = {
    "mse": ("mse_forward", "mse_backward"),
    "mae": ("mae_forward", "mae_backward"),
    "huber": ("huber_forward", "huber_backward"),
    "huber_delta": ("huber_forward", "huber_backward"),
    "log_cosh": ("log_cosh_forward", "log_cosh_backward"),
}


def _kernel(name):
    forward, backward = REGRESSION_KERNELS[name]
    return getattr(K, forward), getattr(K, backward)


def _regression_data(rng, m, d, dtype):
    t = rng.normal(size=(m, d))
    p = t + rng.normal(size=(m, d))
    return t.astype(dtype), p.astype(dtype)


def _bce_data(rng, m, d, dtype, from_logits):
    t = rng.uniform(size=(m, d))  # soft targets (label smoothing)
    p = rng.normal(scale=2.0, size=(m, d)) if from_logits else rng.uniform(0.05, 0.95, size=(m, d))
    return t.astype(dtype), p.astype(dtype)


def _cce_data(rng, m, c, dtype, from_logits):
    t = rng.dirichlet(np.ones(c), size=m)
    p = rng.normal(scale=2.0, size=(m, c)) if from_logits else rng.uniform(0.05, 1.0, size=(m, c))
    return t.astype(dtype), p.astype(dtype)


def _scce_data(rng, m, c, dtype, from_logits):
    labels = rng.integers(0, c, size=m).astype(np.int64)
    if from_logits:
        p = rng.normal(scale=2.0, size=(m, c))
    else:
        p = rng.dirichlet(np.ones(c), size=m) * 0.9 + 0.1 / c  # inside [eps, 1 - eps]
    return labels, p.astype(dtype)


def _forward(fwd, t, p, scalars, n_threads=1):
    out = np.empty(p.shape[0], dtype=p.dtype)
    fwd(t, p, out, *scalars, n_threads)
    return out


def _backward(bwd, t, p, dloss, scalars, n_threads=1):
    out = np.empty_like(p)
    bwd(t, p, dloss, out, *scalars, n_threads)
    return out


def _numeric_grad(f, p, dloss, h=1e-6):
    """d(sum_m dloss_m * f(p)_m)/dp by central differences (float64)."""
    grad = np.empty_like(p)
    flat = p.reshape(-1)
    gflat = grad.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + h
        up = np.dot(dloss, f(p))
        flat[k] = old - h
        down = np.dot(dloss, f(p))
        flat[k] = old
        gflat[k] = (up - down) / (2 * h)
    return grad


# ---------------------------------------------------------------------------------------------
# Forward vs reference
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_forward(name, dtype):
    ref, scalars = REGRESSION[name]
    fwd, _ = _kernel(name)
    t, p = _regression_data(np.random.default_rng(0), 7, 5, dtype)
    out = _forward(fwd, t, p, scalars)
    assert out.dtype == dtype
    np.testing.assert_allclose(out, ref(t, p, *scalars), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_forward(from_logits, dtype):
    t, p = _bce_data(np.random.default_rng(1), 6, 4, dtype, from_logits)
    out = _forward(K.binary_crossentropy_forward, t, p, (from_logits, EPS))
    np.testing.assert_allclose(out, R.binary_crossentropy(t, p, from_logits, EPS), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_crossentropy_forward(from_logits, dtype):
    t, p = _cce_data(np.random.default_rng(2), 6, 5, dtype, from_logits)
    out = _forward(K.categorical_crossentropy_forward, t, p, (from_logits, EPS))
    np.testing.assert_allclose(out, R.categorical_crossentropy(t, p, from_logits, EPS), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_forward(from_logits, dtype):
    labels, p = _scce_data(np.random.default_rng(3), 6, 5, dtype, from_logits)
    out = _forward(K.sparse_categorical_crossentropy_forward, labels, p, (from_logits, EPS))
    expected = R.sparse_categorical_crossentropy(labels, p, from_logits, EPS)
    np.testing.assert_allclose(out, expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_probability_clipping_forward(dtype):
    # Exact 0 and 1 (and values beyond) are clipped to [eps, 1 - eps], as Keras does.
    t = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0]], dtype=dtype)
    p = np.array([[0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1e-9, 0.5]], dtype=dtype)
    out = _forward(K.binary_crossentropy_forward, t, p, (False, EPS))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, R.binary_crossentropy(t, p, False, EPS), **TOL[dtype])
    pc = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    tc = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=dtype)
    out = _forward(K.categorical_crossentropy_forward, tc, pc, (False, EPS))
    np.testing.assert_allclose(out, R.categorical_crossentropy(tc, pc, False, EPS), **TOL[dtype])
    labels = np.array([0, 2], dtype=np.int64)
    out = _forward(K.sparse_categorical_crossentropy_forward, labels, pc, (False, EPS))
    expected = R.sparse_categorical_crossentropy(labels, pc, False, EPS)
    np.testing.assert_allclose(out, expected, **TOL[dtype])


def test_known_values():
    # Keras docstring example for categorical_crossentropy: [0.10536 0.11653 0.06188].
    t = np.eye(3, dtype=np.float32)
    p = np.array([[0.9, 0.05, 0.05], [0.05, 0.89, 0.06], [0.05, 0.01, 0.94]], dtype=np.float32)
    out = _forward(K.categorical_crossentropy_forward, t, p, (False, EPS))
    np.testing.assert_allclose(out, [0.10536, 0.11653, 0.06188], atol=1e-5)
    out = _forward(K.sparse_categorical_crossentropy_forward, np.arange(3, dtype=np.int64), p,
                   (False, EPS))
    np.testing.assert_allclose(out, [0.10536, 0.11653, 0.06188], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Backward vs finite differences (float64) and float32 vs float64
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_backward_fd(name):
    ref, scalars = REGRESSION[name]
    _, bwd = _kernel(name)
    rng = np.random.default_rng(4)
    t, p = _regression_data(rng, 5, 4, np.float64)
    if name in ("mae", "huber", "huber_delta"):  # keep away from the kinks (e = 0, |e| = delta)
        e = p - t
        e = np.where(np.abs(e) < 0.05, 0.05 * np.sign(e + 1e-300), e)
        delta = scalars[0] if scalars else 0.0
        e = np.where(np.abs(np.abs(e) - delta) < 0.05, e * 1.2, e)
        p = t + e
    dloss = rng.normal(size=5)
    grad = _backward(bwd, t, p, dloss, scalars)
    expected = _numeric_grad(lambda q: ref(t, q, *scalars), p.copy(), dloss)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("from_logits", [False, True])
def test_binary_crossentropy_backward_fd(from_logits):
    rng = np.random.default_rng(5)
    t, p = _bce_data(rng, 5, 4, np.float64, from_logits)
    dloss = rng.normal(size=5)
    grad = _backward(K.binary_crossentropy_backward, t, p, dloss, (from_logits, EPS))
    expected = _numeric_grad(lambda q: R.binary_crossentropy(t, q, from_logits, EPS), p.copy(), dloss)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("from_logits", [False, True])
def test_categorical_crossentropy_backward_fd(from_logits):
    rng = np.random.default_rng(6)
    t, p = _cce_data(rng, 5, 4, np.float64, from_logits)
    t[0] *= 1.7  # a target row not summing to 1: the exact gradient, sum(t) softmax - t
    dloss = rng.normal(size=5)
    grad = _backward(K.categorical_crossentropy_backward, t, p, dloss, (from_logits, EPS))
    expected = _numeric_grad(lambda q: R.categorical_crossentropy(t, q, from_logits, EPS),
                             p.copy(), dloss)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_crossentropy_backward_fd(from_logits):
    rng = np.random.default_rng(7)
    labels, p = _scce_data(rng, 5, 4, np.float64, from_logits)
    dloss = rng.normal(size=5)
    grad = _backward(K.sparse_categorical_crossentropy_backward, labels, p, dloss,
                     (from_logits, EPS))
    expected = _numeric_grad(
        lambda q: R.sparse_categorical_crossentropy(labels, q, from_logits, EPS), p.copy(), dloss)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)


def test_clipped_gradients():
    # Outside [eps, 1 - eps] the clip stops the gradient (BCE and sparse CCE on probabilities).
    t = np.array([[1.0, 0.0, 0.3, 0.7]])
    p = np.array([[0.0, 1.0, 1e-9, 0.5]])
    grad = _backward(K.binary_crossentropy_backward, t, p, np.ones(1), (False, EPS))
    np.testing.assert_array_equal(grad[0, :3], 0.0)
    assert grad[0, 3] != 0.0
    p = np.array([[1e-9, 0.6, 0.4 - 1e-9]])
    grad = _backward(K.sparse_categorical_crossentropy_backward, np.array([0]), p, np.ones(1),
                     (False, EPS))
    assert grad[0, 0] == 0.0 and np.all(grad[0, 1:] != 0.0)
    # Categorical on probabilities: the clipped class still passes gradient through sum(p).
    t = np.array([[0.2, 0.5, 0.3]])
    p = np.array([[0.0, 0.6, 0.4]])
    dloss = np.ones(1)
    grad = _backward(K.categorical_crossentropy_backward, t, p, dloss, (False, EPS))
    expected = _numeric_grad(lambda q: R.categorical_crossentropy(t, q, False, EPS), p.copy(),
                             dloss, h=1e-8)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)


LOGIT_CASES = ["bce", "cce", "scce"]


def _logit_case(case, rng, m, c, dtype):
    if case == "bce":
        t, p = _bce_data(rng, m, c, dtype, True)
        return K.binary_crossentropy_forward, K.binary_crossentropy_backward, t, p
    if case == "cce":
        t, p = _cce_data(rng, m, c, dtype, True)
        return K.categorical_crossentropy_forward, K.categorical_crossentropy_backward, t, p
    labels, p = _scce_data(rng, m, c, dtype, True)
    return (K.sparse_categorical_crossentropy_forward, K.sparse_categorical_crossentropy_backward,
            labels, p)


@pytest.mark.parametrize("case", LOGIT_CASES + ["prob_bce", "prob_cce", "prob_scce"])
def test_float32_backward_matches_float64(case):
    rng = np.random.default_rng(8)
    from_logits = not case.startswith("prob_")
    if from_logits:
        fwd, bwd, t, p = _logit_case(case, rng, 6, 5, np.float64)
    else:
        kind = case[5:]
        if kind == "bce":
            t, p = _bce_data(rng, 6, 5, np.float64, False)
        elif kind == "cce":
            t, p = _cce_data(rng, 6, 5, np.float64, False)
        else:
            t, p = _scce_data(rng, 6, 5, np.float64, False)
        bwd = {"bce": K.binary_crossentropy_backward, "cce": K.categorical_crossentropy_backward,
               "scce": K.sparse_categorical_crossentropy_backward}[kind]
    dloss = rng.normal(size=6)
    t32 = t if t.dtype == np.int64 else t.astype(np.float32)
    g64 = _backward(bwd, t32.astype(np.float64) if t.dtype != np.int64 else t,
                    p.astype(np.float32).astype(np.float64), dloss, (from_logits, EPS))
    g32 = _backward(bwd, t32, p.astype(np.float32), dloss.astype(np.float32), (from_logits, EPS))
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REGRESSION))
def test_regression_float32_backward_matches_float64(name):
    _, scalars = REGRESSION[name]
    _, bwd = _kernel(name)
    rng = np.random.default_rng(9)
    t, p = _regression_data(rng, 6, 5, np.float32)
    dloss = rng.normal(size=6).astype(np.float32)
    g32 = _backward(bwd, t, p, dloss, scalars)
    g64 = _backward(bwd, t.astype(np.float64), p.astype(np.float64), dloss.astype(np.float64),
                    scalars)
    np.testing.assert_allclose(g32, g64, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Stability, threading, packaging
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOGIT_CASES)
def test_extreme_logits_finite(case, dtype):
    rng = np.random.default_rng(10)
    fwd, bwd, t, p = _logit_case(case, rng, 4, 3, dtype)
    p = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -1e4]],
                 dtype=dtype)
    loss = _forward(fwd, t, p, (True, EPS))
    grad = _backward(bwd, t, p, np.ones(4, dtype=dtype), (True, EPS))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    ref = {"bce": R.binary_crossentropy, "cce": R.categorical_crossentropy,
           "scce": R.sparse_categorical_crossentropy}[case]
    np.testing.assert_allclose(loss, ref(t, p, True, EPS), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_errors_finite(dtype):
    t = np.zeros((2, 3), dtype=dtype)
    p = np.array([[1e4, -1e4, 0.0], [1e4, 1e4, -1e4]], dtype=dtype)
    for name in ("log_cosh", "huber", "mse", "mae"):
        fwd, bwd = _kernel(name)
        scalars = REGRESSION[name][1]
        loss = _forward(fwd, t, p, scalars)
        grad = _backward(bwd, t, p, np.ones(2, dtype=dtype), scalars)
        assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad)), name
    fwd, _ = _kernel("log_cosh")
    np.testing.assert_allclose(_forward(fwd, t, p, ()), R.log_cosh(t, p), rtol=1e-6)


ALL_CASES = [
    ("mse", ()), ("mae", ()), ("huber", (0.7,)), ("log_cosh", ()),
    ("binary_crossentropy", (False, EPS)), ("binary_crossentropy", (True, EPS)),
    ("categorical_crossentropy", (False, EPS)), ("categorical_crossentropy", (True, EPS)),
    ("sparse_categorical_crossentropy", (False, EPS)),
    ("sparse_categorical_crossentropy", (True, EPS)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,scalars", ALL_CASES)
def test_threads_bit_identical(name, scalars, dtype):
    rng = np.random.default_rng(11)
    m, c = 301, 7
    if name == "sparse_categorical_crossentropy":
        t, p = _scce_data(rng, m, c, dtype, scalars[0])
    elif name in ("binary_crossentropy", "categorical_crossentropy"):
        t, p = _cce_data(rng, m, c, dtype, scalars[0])
    else:
        t, p = _regression_data(rng, m, c, dtype)
    fwd, bwd = getattr(K, name + "_forward"), getattr(K, name + "_backward")
    dloss = rng.normal(size=m).astype(dtype)
    l1, l2 = _forward(fwd, t, p, scalars, 1), _forward(fwd, t, p, scalars, 2)
    g1, g2 = _backward(bwd, t, p, dloss, scalars, 1), _backward(bwd, t, p, dloss, scalars, 2)
    np.testing.assert_array_equal(l1, l2)
    np.testing.assert_array_equal(g1, g2)


def test_readonly_inputs_accepted():
    t, p = _regression_data(np.random.default_rng(12), 3, 4, np.float32)
    t.flags.writeable = False
    p.flags.writeable = False
    out = np.empty(3, dtype=np.float32)
    K.mse_forward(t, p, out, 1)
    np.testing.assert_allclose(out, R.mean_squared_error(t, p), rtol=1e-5)


def test_kernel_table():
    for name, fn in K.KERNELS.items():
        assert fn is getattr(K, name)
        assert fn.__doc__ and ": (M" in fn.__doc__
    bases = {"mse", "mae", "huber", "log_cosh", "binary_crossentropy", "categorical_crossentropy",
             "sparse_categorical_crossentropy"}
    assert set(K.KERNELS) == {b + s for b in bases for s in ("_forward", "_backward")}


def test_import_does_not_load_numba():
    code = ("import sys; import dlcore.kernels.losses, dlcore.kernels.dropout, "
            "dlcore.kernels.optim; assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
