"""Elementwise kernels (activations, softmax, log_softmax) against the NumPy references."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import elementwise as ref  # noqa: E402

from dlcore.kernels import _config, elementwise  # noqa: E402

DTYPES = (np.float32, np.float64)
# float32 kernels run in float32 against float64 references; float64 to ~1e-12 (atol covers the
# few ulp that libm implementations differ by near zero crossings).
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
ELEMENTWISE = ref.NAMES
# alpha per activation; the ones that ignore alpha get a junk value to prove they ignore it.
ALPHA = {"leaky_relu": 0.2, "elu": 0.7}
JUNK_ALPHA = 0.37


def alpha_of(name):
    return ALPHA.get(name, JUNK_ALPHA)


def code(name):
    return elementwise.ACTIVATIONS[name]


def sample(n, seed=0, lo=-8.0, hi=8.0):
    x = np.random.default_rng(seed).uniform(lo, hi, n)
    if n >= 8:
        x[:8] = [0.0, -0.0, 1e-3, -1e-3, 3.0, -3.0, 6.0, 20.0]
    return x


def away_from_kinks(name, x, gap=1e-3):
    x = np.array(x, dtype=np.float64)
    for k in ref.KINKS.get(name, ()):
        near = np.abs(x - k) < gap
        x[near] = k + np.where(x[near] >= k, gap, -gap) * 2
    return x


def forward(name, x, n_threads=1):
    y = np.empty_like(x)
    elementwise.activation_forward(code(name), x, alpha_of(name), y, n_threads)
    return y


def backward(name, x, y, dy):
    dx = np.empty_like(x)
    elementwise.activation_backward(code(name), x, y, dy, alpha_of(name), dx)
    return dx


@pytest.fixture
def numba_threads():
    """Run with a given Numba thread count, restoring the previous count afterwards."""
    before = _config.num_threads()
    yield _config.set_num_threads
    _config.set_num_threads(before)


# ---- table --------------------------------------------------------------------------------------
def test_activation_codes():
    assert elementwise.ACTIVATIONS == {
        "linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "leaky_relu": 4, "elu": 5, "selu": 6,
        "gelu": 7, "gelu_tanh": 8, "silu": 9, "softplus": 10, "softsign": 11,
        "hard_sigmoid": 12, "relu6": 13, "exponential": 14, "softmax": 15, "log_softmax": 16,
    }
    for name, value in elementwise.ACTIVATIONS.items():
        assert getattr(elementwise, name.upper()) == value
    assert set(elementwise.KERNELS) == {
        "activation_forward", "activation_backward", "softmax_forward", "softmax_backward",
        "log_softmax_forward", "log_softmax_backward", "add_forward", "fill",
    }


def test_import_does_not_load_numba():
    code_ = (
        "import sys; import dlcore.kernels.gemm, dlcore.kernels.elementwise; "
        "assert 'numba' not in sys.modules, 'numba imported'"
    )
    subprocess.run([sys.executable, "-c", code_], check=True)


# ---- forward ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_forward(name, dtype):
    for n in (0, 1, 7, 10_000):  # 10_000 spans several parallel blocks
        x = sample(n, seed=n).astype(dtype)
        y = forward(name, x)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, ref.FORWARD[name](x, alpha_of(name)), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_forward_threads_bit_identical(name, dtype):
    x = sample(10_000, seed=3).astype(dtype)
    np.testing.assert_array_equal(forward(name, x, 1), forward(name, x, 2))


def test_activation_forward_in_place():
    x = sample(100).astype(np.float32)
    expected = forward("gelu", x)
    elementwise.activation_forward(code("gelu"), x, 0.0, x, 1)
    np.testing.assert_array_equal(x, expected)


def test_activation_forward_rejects_row_wise_codes():
    x = np.zeros(4)
    for name in ("softmax", "log_softmax"):
        with pytest.raises(ValueError):
            elementwise.activation_forward(code(name), x, 0.0, np.empty_like(x), 1)


def test_activation_forward_keras_defaults():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    y = np.empty_like(x)
    elementwise.activation_forward(code("leaky_relu"), x, 0.2, y, 1)
    np.testing.assert_allclose(y, [-0.4, -0.1, 0.5, 2.0], rtol=1e-15)
    elementwise.activation_forward(code("hard_sigmoid"), x, 0.0, y, 1)
    np.testing.assert_allclose(y, [1 / 6, 2.5 / 6, 3.5 / 6, 5 / 6], rtol=1e-15)
    elementwise.activation_forward(code("selu"), np.array([1.0, -50.0]), 0.0, y[:2], 1)
    np.testing.assert_allclose(y[:2], [1.05070098, -1.05070098 * 1.67326324], rtol=1e-8)


def test_activation_forward_nan_propagates():
    x = np.array([np.nan, 1.0], dtype=np.float32)
    for name in ELEMENTWISE:
        assert np.isnan(forward(name, x)[0]), name


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ("sigmoid", "softplus", "silu", "gelu", "gelu_tanh", "tanh",
                                  "softsign", "elu", "selu"))
def test_activation_extreme_inputs_finite(name, dtype):
    x = np.array([-1e4, -1e3, -100.0, 100.0, 1e3, 1e4], dtype=dtype)
    y = forward(name, x)
    assert np.all(np.isfinite(y)), y
    np.testing.assert_allclose(y, ref.FORWARD[name](x, alpha_of(name)), **TOL[dtype])
    dx = backward(name, x, y, np.ones_like(x))
    assert np.all(np.isfinite(dx)), dx
    np.testing.assert_allclose(dx, ref.DERIVATIVE[name](x, alpha_of(name)), **TOL[dtype])


# ---- backward -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward(name, dtype):
    for n in (0, 1, 7, 10_000):
        x = away_from_kinks(name, sample(n, seed=n + 1)).astype(dtype)
        dy = np.random.default_rng(n).standard_normal(n).astype(dtype)
        y = forward(name, x)
        dx = backward(name, x, y, dy)
        assert dx.dtype == dtype
        expected = dy.astype(np.float64) * ref.DERIVATIVE[name](x, alpha_of(name))
        np.testing.assert_allclose(dx, expected, **TOL[dtype])


def test_activation_backward_at_kinks():
    x = np.array([0.0, -0.0, 6.0, -3.0, 3.0])
    dy = np.ones_like(x)
    assert backward("relu", x, forward("relu", x), dy)[:2].tolist() == [0.0, 0.0]
    assert backward("leaky_relu", x, forward("leaky_relu", x), dy)[0] == ALPHA["leaky_relu"]
    assert backward("relu6", x, forward("relu6", x), dy)[[0, 2]].tolist() == [0.0, 0.0]
    assert backward("hard_sigmoid", x, forward("hard_sigmoid", x), dy)[3:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_activation_backward_finite_differences(name):
    eps = 1e-6
    x = away_from_kinks(name, sample(64, seed=7, lo=-5.0, hi=5.0), gap=1e-3)
    dx = backward(name, x, forward(name, x), np.ones_like(x))
    fd = (forward(name, x + eps) - forward(name, x - eps)) / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-7)
    # The reference derivative agrees with the reference forward too.
    a = alpha_of(name)
    fd_ref = (ref.FORWARD[name](x + eps, a) - ref.FORWARD[name](x - eps, a)) / (2 * eps)
    np.testing.assert_allclose(ref.DERIVATIVE[name](x, a), fd_ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_backward_threads_bit_identical(dtype, numba_threads):
    # The same buffers for both thread counts: with _config.FASTMATH's "reassoc", LLVM's
    # vectorized loop and its scalar fallback (taken when a runtime alias check fails, e.g. an
    # output starting just past an input's end) may round differently, so results may depend
    # on buffer addresses by an ulp; they must not depend on the thread count.
    x = sample(20_000, seed=5).astype(dtype)
    dy = np.random.default_rng(5).standard_normal(x.size).astype(dtype)
    dx = np.empty_like(x)
    for name in ELEMENTWISE:
        y = forward(name, x)
        numba_threads(1)
        dx[:] = np.nan
        elementwise.activation_backward(code(name), x, y, dy, alpha_of(name), dx)
        one = dx.copy()
        numba_threads(2)
        dx[:] = np.nan
        elementwise.activation_backward(code(name), x, y, dy, alpha_of(name), dx)
        np.testing.assert_array_equal(one, dx, err_msg=name)


# ---- softmax / log_softmax ----------------------------------------------------------------------
SHAPES = ((1, 1), (0, 5), (5, 0), (7, 13), (257, 129))


def logits(shape, dtype, seed=0, scale=4.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ("softmax", "log_softmax"))
def test_softmax_forward(kind, dtype):
    kernel = getattr(elementwise, kind + "_forward")
    for shape in SHAPES:
        x = logits(shape, dtype)
        y1, y2 = np.empty_like(x), np.empty_like(x)
        kernel(x, y1, 1)
        kernel(x, y2, 2)
        np.testing.assert_array_equal(y1, y2)
        if x.size:
            np.testing.assert_allclose(y1, getattr(ref, kind)(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ("softmax", "log_softmax"))
def test_softmax_extreme_inputs_finite(kind, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, 1e4 - 1]], dtype=dtype)
    y = np.empty_like(x)
    getattr(elementwise, kind + "_forward")(x, y, 1)
    assert np.all(np.isfinite(y)), y
    np.testing.assert_allclose(y, getattr(ref, kind)(x), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ("softmax", "log_softmax"))
def test_softmax_backward(kind, dtype, numba_threads):
    forward_k = getattr(elementwise, kind + "_forward")
    backward_k = getattr(elementwise, kind + "_backward")
    vjp = getattr(ref, kind + "_vjp")
    for shape in ((1, 1), (0, 5), (7, 13), (33, 17)):
        x = logits(shape, dtype, seed=1)
        dy = logits(shape, dtype, seed=2, scale=1.0)
        y = np.empty_like(x)
        forward_k(x, y, 1)
        results = []
        dx = np.empty_like(x)  # one buffer for both thread counts (see the test above)
        for threads in (1, 2):
            numba_threads(threads)
            dx[...] = np.nan
            backward_k(y, dy, dx)
            results.append(dx.copy())
        np.testing.assert_array_equal(results[0], results[1])
        if x.size:
            np.testing.assert_allclose(results[0], vjp(x, dy), **TOL[dtype])


@pytest.mark.parametrize("kind", ("softmax", "log_softmax"))
def test_softmax_backward_finite_differences(kind):
    eps = 1e-6
    forward_k = getattr(elementwise, kind + "_forward")
    x = logits((3, 6), np.float64, seed=4, scale=2.0)
    dy = logits((3, 6), np.float64, seed=5, scale=1.0)

    def loss(v):
        y = np.empty_like(v)
        forward_k(v, y, 1)
        return np.sum(y * dy)

    y = np.empty_like(x)
    forward_k(x, y, 1)
    dx = np.empty_like(x)
    getattr(elementwise, kind + "_backward")(y, dy, dx)
    fd = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        fd[idx] = (loss(x + e) - loss(x - e)) / (2 * eps)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


# ---- add_forward, fill --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((7,), (7,)), ((3, 5), (5,)), ((2, 3, 4), (3, 4)), ((5000, 3), (5000, 3)),
                                    ((2, 0), (0,)), ((1, 1), (1,))])
def test_add_forward(shapes, dtype):
    rng = np.random.default_rng(3)
    a = rng.standard_normal(shapes[0]).astype(dtype)
    b = rng.standard_normal(shapes[1]).astype(dtype)
    outs = []
    for threads in (1, 2):
        out = np.full(a.shape, np.nan, dtype)
        elementwise.add_forward(a.reshape(-1), b.reshape(-1), out.reshape(-1), threads)
        outs.append(out)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], ref.add_repeated(a, b))  # one rounding, as NumPy's
    in_place = a.copy()
    elementwise.add_forward(in_place.reshape(-1), b.reshape(-1), in_place.reshape(-1), 1)
    np.testing.assert_array_equal(in_place, outs[0])


def test_add_forward_refuses_sizes_that_do_not_repeat():
    a, b = np.ones(7, np.float32), np.ones(3, np.float32)
    with pytest.raises(ValueError, match="multiple"):
        elementwise.add_forward(a, b, np.empty(7, np.float32), 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fill(dtype):
    for n in (0, 1, 33):
        out = np.full(n, np.nan, dtype)
        elementwise.fill(out, 0.0)
        np.testing.assert_array_equal(out, ref.fill(n, 0.0, dtype))
        elementwise.fill(out, -2.5)
        np.testing.assert_array_equal(out, ref.fill(n, -2.5, dtype))
