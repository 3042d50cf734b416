"""dl.random: keras.random's names, arguments and seeding rules; moments by closed forms."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import random as R

N = 20000


def test_seeding_rules():
    # an int seed: the same values every call; None: the session generator (set_random_seed repeats it)
    np.testing.assert_array_equal(R.normal((3,), seed=5).value, R.normal((3,), seed=5).value)
    dl.utils.set_random_seed(1)
    a = R.uniform((4,)).value
    b = R.uniform((4,)).value
    dl.utils.set_random_seed(1)
    np.testing.assert_array_equal(R.uniform((4,)).value, a)
    assert not np.array_equal(a, b)
    # a SeedGenerator: new values each call, the same sequence for the same seed
    g1, g2 = R.SeedGenerator(42), R.SeedGenerator(42)
    first = R.normal((3,), seed=g1).value
    assert not np.array_equal(first, R.normal((3,), seed=g1).value)
    np.testing.assert_array_equal(first, R.normal((3,), seed=g2).value)
    dl.utils.set_random_seed(3)
    s1 = R.SeedGenerator().seed
    dl.utils.set_random_seed(3)
    assert R.SeedGenerator().seed == s1


@pytest.mark.parametrize("fn, kwargs, mean, var", [
    (R.normal, {"mean": 1.0, "stddev": 2.0}, 1.0, 4.0),
    (R.uniform, {"minval": -1.0, "maxval": 3.0}, 1.0, 16 / 12),
    (R.truncated_normal, {"stddev": 1.0}, 0.0, 0.7737),  # variance of N(0,1) truncated to [-2, 2]
    (R.gamma, {"alpha": 3.0}, 3.0, 3.0),
    (R.beta, {"alpha": 2.0, "beta": 3.0}, 0.4, 6 / 150),
    (R.binomial, {"counts": 10, "probabilities": 0.3}, 3.0, 2.1),
])
def test_moments(fn, kwargs, mean, var):
    v = fn((N,), seed=0, **kwargs).value
    assert v.dtype == np.float32 and v.shape == (N,)
    assert abs(v.mean() - mean) < 4 * np.sqrt(var / N) + 1e-3
    assert abs(v.var() - var) / var < 0.05


def test_truncated_normal_and_uniform_bounds():
    assert np.abs(R.truncated_normal((N,), stddev=0.5, seed=1).value).max() <= 1.0
    u = R.uniform((N,), minval=2.0, maxval=2.5, seed=1).value
    assert u.min() >= 2.0 and u.max() < 2.5


def test_randint_categorical_shuffle_dropout():
    r = R.randint((N,), 3, 7, seed=0).value
    assert r.dtype == np.int32 and set(np.unique(r)) == {3, 4, 5, 6}
    logits = np.log(np.array([[0.2, 0.8], [0.9, 0.1]]))
    c = R.categorical(logits, 5000, seed=0).value
    assert c.shape == (2, 5000) and c.dtype == np.int32
    np.testing.assert_allclose(c.mean(axis=1), [0.8, 0.1], atol=0.03)
    x = np.arange(12).reshape(3, 4)
    s = R.shuffle(x, axis=1, seed=0).value
    np.testing.assert_array_equal(np.sort(s, axis=1), x)
    d = R.dropout(np.ones((100, 100), "float32"), 0.25, seed=0).value
    assert set(np.unique(d)) == {0.0, np.float32(1 / 0.75)}
    assert abs((d == 0).mean() - 0.25) < 0.02


def test_dropout_is_differentiable():
    x = dl.Variable(np.ones((4, 4), "float32"))
    with dl.GradientTape() as tape:
        y = R.dropout(x, 0.5, seed=1)
    g = tape.gradient(y, x).value
    np.testing.assert_array_equal(g, y.value)  # d(x * mask / 0.5)/dx = mask / 0.5 = y at x = 1


def test_bad_input():
    with pytest.raises(ValueError, match="minval < maxval"):
        R.uniform((2,), minval=1.0, maxval=1.0)
    with pytest.raises(ValueError, match="`seed` must be None, a non-negative int or a SeedGenerator"):
        R.normal((2,), seed="x")
    with pytest.raises(TypeError, match="`shape` must be a tuple"):
        R.normal("ab")
    with pytest.raises(ValueError, match="float dtype"):
        R.normal((2,), dtype="int32")
    with pytest.raises(ValueError, match="logits` must be 2-D"):
        R.categorical(np.ones(3), 2)
    with pytest.raises(ValueError, match="alpha` must be positive"):
        R.gamma((2,), alpha=0.0)
    with pytest.raises(ValueError, match="SeedGenerator: `seed`"):
        R.SeedGenerator(-1)
