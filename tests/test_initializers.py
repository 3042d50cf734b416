"""dlcore.initializers against the Keras 3 formulas: statistics on large shapes, bounds,
orthogonality, seeding, and name/config round trips."""
import math

import numpy as np
import pytest

import dlcore as dl
from dlcore import initializers
from dlcore.utils import random as dl_random

TRUNC_STD = 0.87962566103423978  # std of a standard normal truncated to [-2, 2]
N_SAMPLES_SHAPE = (300, 400)  # 120k samples: the std of a sample mean is ~0.3% of sigma


def _check_stats(values, mean, std, rel=0.02):
    assert abs(values.mean() - mean) < 5 * std / math.sqrt(values.size) + 1e-12
    assert values.std() == pytest.approx(std, rel=rel)


# ---- constant initializers -----------------------------------------------------------------------
def test_zeros_ones_default_dtype_and_dtype_argument():
    z = initializers.Zeros()((3, 4))
    assert z.dtype == np.float32 and z.shape == (3, 4) and not z.any()
    o = initializers.Ones()((2, 5), dtype="float64")
    assert o.dtype == np.float64 and (o == 1).all()
    assert initializers.Ones()((3,), dtype="int32").dtype == np.int32
    assert initializers.Zeros()(7).shape == (7,)


def test_default_dtype_follows_floatx():
    try:
        dl.config.set_floatx("float64")
        assert initializers.GlorotUniform(seed=1)((3, 3)).dtype == np.float64
        assert initializers.Zeros()((2,)).dtype == np.float64
    finally:
        dl.config.set_floatx("float32")


def test_constant_scalar_and_broadcast():
    c = initializers.Constant(2.5)((2, 3))
    assert c.dtype == np.float32 and (c == 2.5).all()
    row = initializers.Constant([1.0, 2.0, 3.0])((2, 3))
    np.testing.assert_array_equal(row, [[1, 2, 3], [1, 2, 3]])
    assert row.flags.writeable and row.flags.c_contiguous
    assert initializers.Constant(3)((2,), dtype="int64").tolist() == [3, 3]
    with pytest.raises(ValueError, match="broadcast"):
        initializers.Constant([1.0, 2.0])((3, 3))
    assert initializers.Constant(np.float32(1.5)).get_config() == {"value": 1.5}


def test_identity():
    np.testing.assert_array_equal(initializers.Identity()((3, 3)), np.eye(3))
    np.testing.assert_array_equal(initializers.Identity(gain=2.0)((2, 4)), 2 * np.eye(2, 4))
    assert initializers.Identity()((3, 3), dtype="float64").dtype == np.float64
    with pytest.raises(ValueError, match="2D"):
        initializers.Identity()((3, 3, 3))


# ---- random initializers -------------------------------------------------------------------------
def test_random_normal_statistics():
    v = initializers.RandomNormal(mean=1.0, stddev=2.0, seed=3)(N_SAMPLES_SHAPE)
    assert v.dtype == np.float32 and v.shape == N_SAMPLES_SHAPE
    _check_stats(v.astype(np.float64), 1.0, 2.0)


def test_random_normal_defaults():
    init = initializers.RandomNormal()
    assert (init.mean, init.stddev, init.seed) == (0.0, 0.05, None)
    _check_stats(initializers.RandomNormal(seed=0)(N_SAMPLES_SHAPE).astype(np.float64), 0.0, 0.05)


def test_random_uniform_statistics_and_bounds():
    lo, hi = -0.3, 0.7
    v = initializers.RandomUniform(minval=lo, maxval=hi, seed=4)(N_SAMPLES_SHAPE).astype(np.float64)
    assert v.min() >= lo and v.max() < hi
    _check_stats(v, (lo + hi) / 2, (hi - lo) / math.sqrt(12))
    d = initializers.RandomUniform(seed=1)((1000,))
    assert d.min() >= -0.05 and d.max() < 0.05


def test_truncated_normal_statistics_and_bounds():
    mean, std = 0.5, 2.0
    v = initializers.TruncatedNormal(mean=mean, stddev=std, seed=5)(N_SAMPLES_SHAPE).astype(np.float64)
    assert np.abs(v - mean).max() <= 2 * std + 1e-6
    # the truncation resamples rather than clips: ~0.11% of samples in the outer 0.01 sigma
    # (clipping would pile ~4.6% up there)
    assert np.mean(np.abs(v - mean) > 1.99 * std) < 3e-3
    _check_stats(v, mean, std * TRUNC_STD)
    assert initializers.TruncatedNormal().stddev == 0.05


@pytest.mark.parametrize("shape,fans", [
    ((), (1, 1)),
    ((7,), (7, 7)),
    ((5, 9), (5, 9)),
    ((3, 4, 5), (12, 15)),
    ((3, 3, 16, 32), (144, 288)),
    ((2, 3, 3, 4, 8), (72, 144)),
])
def test_compute_fans(shape, fans):
    assert initializers.compute_fans(shape) == fans


VS_CASES = [
    # (initializer, scale, mode, distribution)
    (initializers.GlorotUniform, 1.0, "fan_avg", "uniform"),
    (initializers.GlorotNormal, 1.0, "fan_avg", "truncated_normal"),
    (initializers.HeUniform, 2.0, "fan_in", "uniform"),
    (initializers.HeNormal, 2.0, "fan_in", "truncated_normal"),
    (initializers.LecunUniform, 1.0, "fan_in", "uniform"),
    (initializers.LecunNormal, 1.0, "fan_in", "truncated_normal"),
]


def _n(shape, mode):
    fan_in, fan_out = initializers.compute_fans(shape)
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]


def _check_variance_scaling(v, scale, mode, distribution, shape):
    v = v.astype(np.float64)
    target_std = math.sqrt(scale / max(1.0, _n(shape, mode)))  # every distribution has this std
    if distribution == "uniform":
        limit = math.sqrt(3 * scale / max(1.0, _n(shape, mode)))
        assert np.abs(v).max() <= limit
        assert np.abs(v).max() > 0.99 * limit
    elif distribution == "truncated_normal":
        stddev = target_std / TRUNC_STD
        assert np.abs(v).max() <= 2 * stddev * (1 + 1e-6)
    _check_stats(v, 0.0, target_std, rel=0.03)


@pytest.mark.parametrize("cls,scale,mode,distribution", VS_CASES, ids=[c[0].__name__ for c in VS_CASES])
@pytest.mark.parametrize("shape", [(300, 200), (3, 3, 64, 48)])
def test_variance_scaling_family(cls, scale, mode, distribution, shape):
    init = cls(seed=11)
    assert (init.scale, init.mode, init.distribution) == (scale, mode, distribution)
    assert init.get_config() == {"seed": 11, "input_axes": None, "output_axes": None}
    _check_variance_scaling(init(shape), scale, mode, distribution, shape)


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["uniform", "truncated_normal", "untruncated_normal"])
def test_variance_scaling_modes_and_distributions(mode, distribution):
    shape = (120, 700)
    init = initializers.VarianceScaling(scale=3.0, mode=mode, distribution=distribution, seed=2)
    _check_variance_scaling(init(shape), 3.0, mode, distribution, shape)


def test_compute_fans_with_axes():
    assert initializers.compute_fans((4, 5, 6, 7), input_axes=[0, 1], output_axes=[2, 3]) == (20, 42)
    assert initializers.compute_fans((4, 5, 6), input_axes=[0], output_axes=[-2, -1]) == (4, 30)


def test_variance_scaling_fan_axes():
    shape = (64, 8, 16)  # EinsumDense-style (input, heads, head_dim)
    init = initializers.HeUniform(seed=3, input_axes=[0], output_axes=[1, 2])
    _check_variance_scaling(init(shape), 2.0, "fan_in", "uniform", (64, 128))
    back = initializers.deserialize(initializers.serialize(init))
    assert back.get_config() == {"seed": 3, "input_axes": [0], "output_axes": [1, 2]}
    np.testing.assert_array_equal(back(shape), init(shape))


def test_variance_scaling_defaults_and_validation():
    init = initializers.VarianceScaling()
    assert (init.scale, init.mode, init.distribution, init.seed) == (1.0, "fan_in", "truncated_normal", None)
    assert initializers.VarianceScaling(distribution="Normal").distribution == "truncated_normal"
    with pytest.raises(ValueError, match="scale"):
        initializers.VarianceScaling(scale=0.0)
    with pytest.raises(ValueError, match="mode"):
        initializers.VarianceScaling(mode="fan_sum")
    with pytest.raises(ValueError, match="distribution"):
        initializers.VarianceScaling(distribution="cauchy")


def test_random_initializers_reject_integer_dtype_and_bad_seed():
    with pytest.raises(ValueError, match="float"):
        initializers.GlorotUniform()((3, 3), dtype="int32")
    with pytest.raises(ValueError, match="seed"):
        initializers.RandomNormal(seed="abc")
    with pytest.raises(ValueError, match="seed"):
        initializers.RandomNormal(seed=1.5)


@pytest.mark.parametrize("shape", [(64, 64), (80, 30), (30, 80), (3, 3, 4, 8), (2, 5, 20)])
def test_orthogonal(shape):
    gain = 1.5
    v = initializers.Orthogonal(gain=gain, seed=9)(shape).astype(np.float64)
    assert v.shape == shape
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    m = v.reshape(rows, cols) / gain
    if rows >= cols:
        np.testing.assert_allclose(m.T @ m, np.eye(cols), atol=1e-5)  # orthonormal columns
    else:
        np.testing.assert_allclose(m @ m.T, np.eye(rows), atol=1e-5)  # orthonormal rows


def test_orthogonal_sign_correction_as_keras():
    """Q of the QR of a normal (max, min) matrix, each column multiplied by sign(diag(R))."""
    shape = (6, 4)
    got = initializers.Orthogonal(seed=21)(shape, dtype="float64")
    a = np.random.default_rng(21).standard_normal((6, 4))
    q, r = np.linalg.qr(a)
    np.testing.assert_allclose(got, q * np.sign(np.diag(r)), rtol=1e-12, atol=1e-12)
    # the sign correction makes Q^T A upper triangular with a positive diagonal
    assert (np.diag(got.T @ a) > 0).all()
    with pytest.raises(ValueError, match="two-dimensional"):
        initializers.Orthogonal()((5,))


ALL_RANDOM = [
    initializers.RandomNormal, initializers.RandomUniform, initializers.TruncatedNormal,
    initializers.VarianceScaling, initializers.GlorotUniform, initializers.GlorotNormal,
    initializers.HeUniform, initializers.HeNormal, initializers.LecunNormal, initializers.LecunUniform,
    initializers.Orthogonal,
]


@pytest.mark.parametrize("cls", ALL_RANDOM, ids=lambda c: c.__name__)
def test_seeded_initializer_returns_the_same_values_every_call(cls):
    init = cls(seed=42)
    a, b = init((8, 6)), init((8, 6))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, cls(seed=42)((8, 6)))
    assert not np.array_equal(a, cls(seed=43)((8, 6)))
    # float32 and float64 draws agree up to rounding
    np.testing.assert_allclose(init((8, 6), dtype="float64"), a, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cls", ALL_RANDOM, ids=lambda c: c.__name__)
def test_unseeded_initializers_follow_set_random_seed(cls):
    dl_random.set_random_seed(1234)
    init = cls()
    first, second = init((5, 7)), init((5, 7))
    assert not np.array_equal(first, second)  # the global generator advances
    dl_random.set_random_seed(1234)
    np.testing.assert_array_equal(cls()((5, 7)), first)
    np.testing.assert_array_equal(cls()((5, 7)), second)


# ---- names, get, (de)serialization --------------------------------------------------------------
ALIASES = {
    "zeros": initializers.Zeros, "ones": initializers.Ones, "constant": initializers.Constant,
    "random_normal": initializers.RandomNormal, "random_uniform": initializers.RandomUniform,
    "truncated_normal": initializers.TruncatedNormal, "glorot_uniform": initializers.GlorotUniform,
    "glorot_normal": initializers.GlorotNormal, "he_uniform": initializers.HeUniform,
    "he_normal": initializers.HeNormal, "lecun_normal": initializers.LecunNormal,
    "lecun_uniform": initializers.LecunUniform, "orthogonal": initializers.Orthogonal,
    "identity": initializers.Identity, "variance_scaling": initializers.VarianceScaling,
    "normal": initializers.RandomNormal, "uniform": initializers.RandomUniform,
    "zero": initializers.Zeros, "one": initializers.Ones,
    "OrthogonalInitializer": initializers.Orthogonal, "IdentityInitializer": initializers.Identity,
    "GlorotUniform": initializers.GlorotUniform, "HeNormal": initializers.HeNormal,
}


@pytest.mark.parametrize("name", sorted(ALIASES))
def test_get_by_name(name):
    obj = initializers.get(name)
    assert type(obj) is ALIASES[name]


INSTANCES = [
    initializers.Zeros(), initializers.Ones(), initializers.Constant(0.3), initializers.Constant([1.0, 2.0]),
    initializers.Identity(gain=2.0), initializers.RandomNormal(mean=0.1, stddev=0.2, seed=3),
    initializers.RandomUniform(-1.0, 2.0), initializers.TruncatedNormal(stddev=0.3, seed=8),
    initializers.VarianceScaling(2.0, "fan_out", "uniform", seed=5), initializers.GlorotUniform(seed=1),
    initializers.GlorotNormal(), initializers.HeUniform(seed=2), initializers.HeNormal(),
    initializers.LecunNormal(seed=4), initializers.LecunUniform(), initializers.Orthogonal(gain=0.5, seed=6),
]


@pytest.mark.parametrize("init", INSTANCES, ids=lambda i: type(i).__name__)
def test_serialize_round_trip(init):
    config = initializers.serialize(init)
    assert set(config) == {"class_name", "config"}
    assert config["class_name"] == type(init).__name__
    import json

    config = json.loads(json.dumps(config))  # JSON-safe
    back = initializers.deserialize(config)
    assert type(back) is type(init)
    assert back.get_config() == init.get_config()
    again = initializers.get(config)
    assert type(again) is type(init) and again.get_config() == init.get_config()
    shape = (4, 2) if not isinstance(init, initializers.Constant) else (3, 2)
    if init.get_config().get("seed") is not None or not hasattr(init, "seed"):
        np.testing.assert_array_equal(back(shape), init(shape))
    clone = init.clone()
    assert clone is not init and clone.get_config() == init.get_config()


def test_get_passthrough_and_errors():
    assert initializers.get(None) is None
    inst = initializers.HeNormal()
    assert initializers.get(inst) is inst
    assert type(initializers.get(initializers.Ones)) is initializers.Ones

    def custom(shape, dtype=None):
        return np.full(shape, 7.0, dtype=dtype)

    assert initializers.get(custom) is custom
    assert initializers.serialize(custom) == "custom"
    with pytest.raises(ValueError, match="Unknown initializer identifier.*glorot_uniform"):
        initializers.get("glorot_unicorn")
    with pytest.raises(ValueError):
        initializers.get(42)
    with pytest.raises(ValueError):
        initializers.deserialize({"config": {}})


def test_keras_config_defaults():
    assert initializers.RandomNormal().get_config() == {"seed": None, "mean": 0.0, "stddev": 0.05}
    assert initializers.RandomUniform().get_config() == {"seed": None, "minval": -0.05, "maxval": 0.05}
    assert initializers.VarianceScaling().get_config() == {
        "seed": None, "scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
        "input_axes": None, "output_axes": None}
    assert initializers.Orthogonal().get_config() == {"seed": None, "gain": 1.0}
    assert initializers.Identity().get_config() == {"gain": 1.0}
    assert initializers.Constant().get_config() == {"value": 0.0}
    assert initializers.Zeros().get_config() == {}


def test_matches_keras_configs_when_available():
    keras = pytest.importorskip("keras")
    for init in INSTANCES:
        theirs = getattr(keras.initializers, type(init).__name__).from_config(init.get_config())
        # (Keras's Identity drops `gain` from its config; ours keeps it)
        assert set(theirs.get_config()) <= set(init.get_config())
        if not isinstance(init, initializers.Identity):
            assert theirs.get_config().keys() == init.get_config().keys()
