"""dl.utils.split_dataset and normalize: Keras 3 results (stored, and the installed keras when
present), bad input."""
import numpy as np
import pytest

import dlcore as dl

X, Y = np.arange(10), np.arange(10) * 2


def test_split_dataset_matches_keras_fixture():
    (xl, yl), (xr, yr) = dl.utils.split_dataset((X, Y), left_size=0.7)
    assert xl.tolist() == list(range(7)) and xr.tolist() == [7, 8, 9] and (yr == 2 * xr).all()
    (xl, yl), (xr, yr) = dl.utils.split_dataset((X, Y), right_size=3, shuffle=True, seed=5)
    assert xl.tolist() == [2, 3, 1, 0, 8, 7, 6] and xr.tolist() == [5, 4, 9]  # Keras 3.15, seed 5
    assert (yl == 2 * xl).all()
    left, right = dl.utils.split_dataset(X, left_size=2, right_size=5)
    assert left.tolist() == [0, 1] and right.tolist() == [5, 6, 7, 8, 9]
    left, right = dl.utils.split_dataset([X, Y], left_size=0.5)
    assert isinstance(left, list) and left[1].tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("kwargs", [{"left_size": 0.3, "right_size": 0.5, "shuffle": True, "seed": 1},
                                    {"left_size": 4, "shuffle": True, "seed": 11}, {"right_size": 0.25}])
def test_split_dataset_matches_keras(kwargs):
    keras = pytest.importorskip("keras")
    left, right = keras.utils.split_dataset((X, Y), **kwargs)
    (xl, _), (xr, _) = dl.utils.split_dataset((X, Y), **kwargs)
    assert xl.tolist() == [int(np.asarray(item[0])) for item in left]
    assert xr.tolist() == [int(np.asarray(item[0])) for item in right]


def test_split_dataset_bad_input():
    split = dl.utils.split_dataset
    with pytest.raises(ValueError, match="at least one"):
        split(X)
    with pytest.raises(ValueError, match="left_size"):
        split(X, left_size=1.5)
    with pytest.raises(ValueError, match="right_size"):
        split(X, right_size=10)
    with pytest.raises(TypeError, match="left_size"):
        split(X, left_size="half")
    with pytest.raises(ValueError, match="at most 1"):
        split(X, left_size=0.6, right_size=0.6)
    with pytest.raises(ValueError, match="larger than"):
        split(X, left_size=6, right_size=6)
    with pytest.raises(ValueError, match="one length"):
        split((X, Y[:5]), left_size=0.5)
    with pytest.raises(TypeError, match="dataset"):
        split({"x": X}, left_size=0.5)
    with pytest.raises(ValueError, match="empty"):
        split(np.arange(3), left_size=0.1)


def test_normalize():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(dl.utils.normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    np.testing.assert_allclose(dl.utils.normalize(x, order=1), [[3 / 7, 4 / 7], [0, 0]])
    np.testing.assert_allclose(dl.utils.normalize(x, axis=0), [[1.0, 1.0], [0.0, 0.0]])
    keras = pytest.importorskip("keras")
    z = np.random.default_rng(0).random((3, 4))
    np.testing.assert_allclose(dl.utils.normalize(z), keras.utils.normalize(z))
    with pytest.raises(ValueError, match="axis"):
        dl.utils.normalize(x, axis=2)
    with pytest.raises(TypeError, match="numeric"):
        dl.utils.normalize(np.array(["a"]))
