"""dlcore.regularizers: Keras 3 penalties (no 1/2 on L2), their gradients through GradientTape,
validation, and name/config round trips."""
import json

import numpy as np
import pytest

import dlcore as dl
from dlcore import regularizers


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)


def _grad(reg, value):
    t = dl.Tensor(value)
    with dl.GradientTape() as tape:
        tape.watch(t)
        r = reg(t)
    return r, tape.gradient(r, t)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_closed_form(x, dtype):
    x = x.astype(dtype)
    x64 = x.astype(np.float64)
    cases = [
        (regularizers.L1(0.3), 0.3 * np.abs(x64).sum()),
        (regularizers.L2(0.2), 0.2 * np.square(x64).sum()),
        (regularizers.L1L2(l1=0.1, l2=0.4), 0.1 * np.abs(x64).sum() + 0.4 * np.square(x64).sum()),
        (regularizers.L1L2(l2=0.4), 0.4 * np.square(x64).sum()),
        (regularizers.L1(), 0.01 * np.abs(x64).sum()),
        (regularizers.L2(), 0.01 * np.square(x64).sum()),
    ]
    for reg, expected in cases:
        r = reg(x)
        assert isinstance(r, dl.Tensor) and r.shape == () and r.dtype == dtype, reg
        np.testing.assert_allclose(float(r), expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_zero_factors_give_a_zero_scalar_of_the_input_dtype(x):
    r = regularizers.L1L2()(x)
    assert isinstance(r, dl.Tensor) and r.shape == () and r.dtype == np.float32 and float(r) == 0.0
    assert regularizers.L1L2()(x.astype(np.float64)).dtype == np.float64


def test_accepts_variables_and_tensors(x):
    v = dl.Variable(x)
    np.testing.assert_allclose(float(regularizers.L2(0.5)(v)), 0.5 * np.square(x.astype(np.float64)).sum(),
                               rtol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients(x, dtype):
    x = x.astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-12)
    _, g = _grad(regularizers.L2(0.2), x)
    np.testing.assert_allclose(g.numpy(), 2 * 0.2 * x, **tol)
    _, g = _grad(regularizers.L1(0.3), x)
    np.testing.assert_allclose(g.numpy(), 0.3 * np.sign(x), **tol)
    _, g = _grad(regularizers.L1L2(0.3, 0.2), x)
    np.testing.assert_allclose(g.numpy(), 0.3 * np.sign(x) + 2 * 0.2 * x, **tol)
    assert g.dtype == dtype


def test_gradient_of_a_trainable_variable_is_recorded_automatically(x):
    v = dl.Variable(x)
    with dl.GradientTape() as tape:
        r = regularizers.L2(0.1)(v)
    np.testing.assert_allclose(tape.gradient(r, v).numpy(), 0.2 * x, rtol=1e-6)


def _orthogonal_reference(w, factor, mode):
    w = w.astype(np.float64)
    if mode == "columns":
        w = w.T
    n = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-7)
    p = n @ n.T
    size = w.shape[0]
    off = np.abs(p - np.diag(np.diag(p))).sum()
    return factor * 0.5 * off / (size * (size - 1) / 2)


@pytest.mark.parametrize("mode", ["rows", "columns"])
def test_orthogonal_regularizer(x, mode):
    x64 = x.astype(np.float64)
    reg = regularizers.OrthogonalRegularizer(factor=0.3, mode=mode)
    np.testing.assert_allclose(float(reg(x64)), _orthogonal_reference(x64, 0.3, mode), rtol=1e-12)
    np.testing.assert_allclose(float(reg(x)), _orthogonal_reference(x64, 0.3, mode), rtol=1e-5)
    # an orthogonal matrix has no penalty in the matching mode
    q, _ = np.linalg.qr(np.random.default_rng(1).standard_normal((6, 6)))
    assert abs(float(reg(q))) < 1e-12
    # gradient vs central differences
    _, g = _grad(reg, x64)
    num = np.zeros_like(x64)
    h = 1e-6
    for idx in np.ndindex(x64.shape):
        xp, xm = x64.copy(), x64.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = (float(reg(xp)) - float(reg(xm))) / (2 * h)
    np.testing.assert_allclose(g.numpy(), num, rtol=1e-5, atol=1e-8)


def test_orthogonal_regularizer_validation():
    with pytest.raises(ValueError, match="mode"):
        regularizers.OrthogonalRegularizer(mode="diagonal")
    with pytest.raises(ValueError, match="rank 2"):
        regularizers.OrthogonalRegularizer()(np.ones((2, 3, 4)))
    assert regularizers.OrthogonalRegularizer().get_config() == {"factor": 0.01, "mode": "rows"}


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf"), "0.1", True])
def test_factor_validation(bad):
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L1(bad)
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L2(bad)
    with pytest.raises(ValueError, match="non-negative"):
        regularizers.L1L2(l1=bad)


def test_none_factors_mean_defaults():
    assert regularizers.L1(None).l1 == 0.01
    assert regularizers.L2(None).l2 == 0.01
    assert regularizers.L1L2(None, None).get_config() == {"l1": 0.0, "l2": 0.0}


@pytest.mark.parametrize("name,cls", [
    ("l1", regularizers.L1), ("l2", regularizers.L2), ("l1_l2", regularizers.L1L2),
    ("L1", regularizers.L1), ("L2", regularizers.L2), ("L1L2", regularizers.L1L2),
    ("orthogonal_regularizer", regularizers.OrthogonalRegularizer),
    ("OrthogonalRegularizer", regularizers.OrthogonalRegularizer),
])
def test_get_by_name(name, cls):
    assert type(regularizers.get(name)) is cls


def test_string_defaults_as_keras():
    assert regularizers.get("l2").get_config() == {"l2": 0.01}
    assert regularizers.get("l1").get_config() == {"l1": 0.01}
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.0, "l2": 0.0}  # Keras 3: L1L2()


@pytest.mark.parametrize("reg", [regularizers.L1(0.2), regularizers.L2(0.3), regularizers.L1L2(0.1, 0.5),
                                 regularizers.OrthogonalRegularizer(0.2, "columns")],
                         ids=lambda r: type(r).__name__)
def test_serialize_round_trip(reg, x):
    config = json.loads(json.dumps(regularizers.serialize(reg)))
    assert config == {"class_name": type(reg).__name__, "config": reg.get_config()}
    back = regularizers.deserialize(config)
    assert type(back) is type(reg) and back.get_config() == reg.get_config()
    np.testing.assert_allclose(float(back(x)), float(reg(x)))
    assert regularizers.get(config).get_config() == reg.get_config()


def test_get_passthrough_and_errors():
    assert regularizers.get(None) is None
    reg = regularizers.L2(0.5)
    assert regularizers.get(reg) is reg
    assert type(regularizers.get(regularizers.L1)) is regularizers.L1

    def custom(w):
        return dl.ops.sum(w)

    assert regularizers.get(custom) is custom
    with pytest.raises(ValueError, match="Unknown regularizer identifier.*L1L2"):
        regularizers.get("l3")
    with pytest.raises(ValueError):
        regularizers.get(3.0)
    with pytest.raises(NotImplementedError):
        regularizers.Regularizer().get_config()
    assert regularizers.Regularizer()(np.ones(3)) == 0.0


def test_matches_keras_when_available(x):
    keras = pytest.importorskip("keras")
    for ours, theirs in [(regularizers.L1(0.3), keras.regularizers.L1(0.3)),
                         (regularizers.L2(0.2), keras.regularizers.L2(0.2)),
                         (regularizers.L1L2(0.1, 0.4), keras.regularizers.L1L2(0.1, 0.4)),
                         (regularizers.OrthogonalRegularizer(0.2), keras.regularizers.OrthogonalRegularizer(0.2))]:
        np.testing.assert_allclose(float(ours(x)), float(keras.ops.convert_to_numpy(theirs(x))), rtol=1e-5)
        theirs_config = theirs.get_config()  # Keras holds factors as float32 tensors
        assert ours.get_config().keys() == theirs_config.keys()
        for key, value in ours.get_config().items():
            assert value == (pytest.approx(theirs_config[key]) if isinstance(value, float) else theirs_config[key])
