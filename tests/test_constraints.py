"""dlcore.constraints: Keras 3 projections on NumPy weights, and name/config round trips."""
import json

import numpy as np
import pytest

import dlcore as dl
from dlcore import constraints

EPS = 1e-7


@pytest.fixture
def w():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((6, 5)) * rng.uniform(0.1, 3.0, size=5)).astype(np.float32)


def _norms(w, axis):
    return np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [0, 1, [0, 1, 2]])
def test_max_norm(axis):
    w = np.random.default_rng(1).standard_normal((3, 3, 4, 5)) * 2
    w32 = w.astype(np.float32)
    c = constraints.MaxNorm(max_value=1.5, axis=axis)
    out = c(w32)
    assert out.dtype == np.float32 and out.shape == w.shape
    n = _norms(w, tuple(axis) if isinstance(axis, list) else axis)
    expected = w * (np.clip(n, 0, 1.5) / (EPS + n))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert (_norms(out, tuple(axis) if isinstance(axis, list) else axis) <= 1.5 + 1e-5).all()


def test_max_norm_leaves_small_slices(w):
    c = constraints.MaxNorm()  # max_value=2, axis=0
    n = _norms(w, 0).ravel()
    out = c(w)
    small = n <= 2
    assert small.any() and (~small).any()
    np.testing.assert_allclose(out[:, small], w[:, small], rtol=1e-6)
    np.testing.assert_allclose(_norms(out, 0).ravel()[~small], 2.0, rtol=1e-5)


@pytest.mark.parametrize("rate", [1.0, 0.5])
def test_min_max_norm(w, rate):
    c = constraints.MinMaxNorm(min_value=0.8, max_value=1.6, rate=rate, axis=0)
    out = c(w)
    n = _norms(w, 0)
    desired = rate * np.clip(n, 0.8, 1.6) + (1 - rate) * n
    np.testing.assert_allclose(out, w * desired / (EPS + n), rtol=1e-5, atol=1e-7)
    if rate == 1.0:
        on = _norms(out, 0)
        assert (on >= 0.8 - 1e-5).all() and (on <= 1.6 + 1e-5).all()


def test_non_neg(w):
    out = constraints.NonNeg()(w)
    np.testing.assert_array_equal(out, np.where(w >= 0, w, 0))
    assert out.dtype == w.dtype and (out >= 0).all()


@pytest.mark.parametrize("axis", [0, 1])
def test_unit_norm(w, axis):
    out = constraints.UnitNorm(axis=axis)(w)
    np.testing.assert_allclose(out, w / (EPS + _norms(w, axis)), rtol=1e-5)
    np.testing.assert_allclose(_norms(out, axis), 1.0, rtol=1e-5)


def test_float64_and_variable_inputs(w):
    w64 = w.astype(np.float64)
    assert constraints.UnitNorm()(w64).dtype == np.float64
    v = dl.Variable(w)
    out = constraints.MaxNorm(1.0)(v)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, constraints.MaxNorm(1.0)(w))
    v.assign(out)  # the optimizer's use: project, then assign in place
    assert (_norms(v.numpy(), 0) <= 1.0 + 1e-5).all()


def test_base_constraint_is_identity(w):
    assert constraints.Constraint()(w) is w
    assert constraints.Constraint().get_config() == {}


def test_defaults():
    assert constraints.MaxNorm().get_config() == {"max_value": 2, "axis": 0}
    assert constraints.MinMaxNorm().get_config() == {"min_value": 0.0, "max_value": 1.0, "rate": 1.0, "axis": 0}
    assert constraints.UnitNorm().get_config() == {"axis": 0}
    assert constraints.NonNeg().get_config() == {}


@pytest.mark.parametrize("name,cls", [
    ("max_norm", constraints.MaxNorm), ("MaxNorm", constraints.MaxNorm), ("maxnorm", constraints.MaxNorm),
    ("min_max_norm", constraints.MinMaxNorm), ("MinMaxNorm", constraints.MinMaxNorm),
    ("non_neg", constraints.NonNeg), ("NonNeg", constraints.NonNeg), ("nonneg", constraints.NonNeg),
    ("unit_norm", constraints.UnitNorm), ("UnitNorm", constraints.UnitNorm),
])
def test_get_by_name(name, cls):
    assert type(constraints.get(name)) is cls


@pytest.mark.parametrize("c", [constraints.MaxNorm(3.0, axis=[0, 1]), constraints.MinMaxNorm(0.1, 2.0, 0.3, 1),
                               constraints.NonNeg(), constraints.UnitNorm(axis=1)],
                         ids=lambda c: type(c).__name__)
def test_serialize_round_trip(c, w):
    config = json.loads(json.dumps(constraints.serialize(c)))
    assert config == {"class_name": type(c).__name__, "config": c.get_config()}
    back = constraints.deserialize(config)
    assert type(back) is type(c) and back.get_config() == c.get_config()
    np.testing.assert_array_equal(back(w), c(w))
    assert constraints.get(config).get_config() == c.get_config()


def test_get_passthrough_and_errors():
    assert constraints.get(None) is None
    c = constraints.UnitNorm()
    assert constraints.get(c) is c
    assert type(constraints.get(constraints.NonNeg)) is constraints.NonNeg

    def clip(w):
        return np.clip(w, -1, 1)

    assert constraints.get(clip) is clip
    with pytest.raises(ValueError, match="Unknown constraint identifier.*NonNeg"):
        constraints.get("positive")
    with pytest.raises(ValueError):
        constraints.get(1)


def test_matches_keras_when_available(w):
    keras = pytest.importorskip("keras")
    pairs = [(constraints.MaxNorm(1.2), keras.constraints.MaxNorm(1.2)),
             (constraints.MinMaxNorm(0.5, 1.5, 0.7), keras.constraints.MinMaxNorm(0.5, 1.5, 0.7)),
             (constraints.NonNeg(), keras.constraints.NonNeg()),
             (constraints.UnitNorm(1), keras.constraints.UnitNorm(1))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours(w), keras.ops.convert_to_numpy(theirs(w)), rtol=1e-5, atol=1e-7)
        assert ours.get_config() == theirs.get_config()
