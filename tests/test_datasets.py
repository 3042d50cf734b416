"""dl.datasets: scikit-learn's bundled sets split as documented, local Keras-format .npz files,
clear errors (never a download) for the rest."""
import subprocess
import sys

import numpy as np
import pytest

import dlcore as dl


@pytest.mark.parametrize("name,n,features", [("iris", 150, 4), ("digits", 1797, 64), ("wine", 178, 13),
                                             ("breast_cancer", 569, 30), ("diabetes", 442, 10)])
def test_sklearn_sets_split_deterministically(name, n, features):
    datasets = pytest.importorskip("sklearn.datasets")
    (x_train, y_train), (x_test, y_test) = getattr(dl.datasets, name).load_data()
    assert x_train.shape == (int(n * 0.8), features) and len(x_test) == n - int(n * 0.8)
    assert x_train.dtype == np.float32 and len(y_train) == len(x_train)
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    order = np.arange(n)
    np.random.RandomState(113).shuffle(order)  # the documented split
    np.testing.assert_allclose(x_test, x[order[int(n * 0.8):]].astype(np.float32))
    np.testing.assert_array_equal(y_train, y[order[:int(n * 0.8)]].astype(y_train.dtype))
    (again, _), _ = getattr(dl.datasets, name).load_data()
    np.testing.assert_array_equal(again, x_train)
    (other, _), (test, _) = getattr(dl.datasets, name).load_data(test_split=0.5, seed=1)
    assert len(test) == n - int(n * 0.5) and not np.array_equal(other[:5], x_train[:5])


def test_iris_labels_and_missing_sklearn_message(monkeypatch):
    pytest.importorskip("sklearn")
    (_, y_train), _ = dl.datasets.iris.load_data()
    assert y_train.dtype == np.int64 and set(y_train.tolist()) == {0, 1, 2}
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(ImportError, match="examples"):
        dl.datasets.iris.load_data()


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "reuters",
                                  "boston_housing", "california_housing"])
def test_download_sets_say_how_and_never_download(name):
    with pytest.raises(FileNotFoundError, match=f"dl.datasets.{name}: .*never downloads"):
        getattr(dl.datasets, name).load_data()


def test_local_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 255, (6, 28, 28), dtype=np.uint8), "y_train": np.arange(6, dtype=np.uint8),
              "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.ones(2, np.uint8)}
    np.savez(tmp_path / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = dl.datasets.mnist.load_data(path=tmp_path / "mnist.npz")
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    assert y_test.tolist() == [1, 1] and x_test.shape == (2, 28, 28)
    x, y = rng.random((10, 13)), np.arange(10.0)
    np.savez(tmp_path / "boston_housing.npz", x=x, y=y)
    (x_train, y_train), (x_test, y_test) = dl.datasets.boston_housing.load_data(path=str(tmp_path / "boston_housing.npz"))
    order = np.arange(10)
    np.random.RandomState(113).shuffle(order)  # Keras's boston_housing split
    np.testing.assert_array_equal(y_train, order[:8])
    np.testing.assert_array_equal(x_test, x[order[8:]])


def test_bad_paths_and_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="no file"):
        dl.datasets.mnist.load_data(path=tmp_path / "missing.npz")
    np.savez(tmp_path / "wrong.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="x_train"):
        dl.datasets.mnist.load_data(path=tmp_path / "wrong.npz")
    np.savez(tmp_path / "objects.npz", x=np.array([[1], [2, 3]], dtype=object), y=np.zeros(2))
    with pytest.raises(ValueError, match="pickled"):
        dl.datasets.boston_housing.load_data(path=tmp_path / "objects.npz")
    with pytest.raises(TypeError, match="path"):
        dl.datasets.mnist.load_data(path=3)
    with pytest.raises(ValueError, match="test_split"):
        dl.datasets.iris.load_data(test_split=1.5)
    with pytest.raises(ValueError, match="seed"):
        dl.datasets.iris.load_data(seed=-1)


def test_import_dlcore_does_not_import_sklearn():
    code = "import sys, dlcore; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
