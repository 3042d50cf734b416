"""Shared by the dataset loaders: the deterministic split, scikit-learn's bundled sets, local
Keras-format ``.npz`` files, and the error for data that must be downloaded (dlcore never
accesses the network)."""
import os

import numpy as np

KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def check_split(test_split, seed):
    if isinstance(test_split, bool) or not isinstance(test_split, (int, float, np.floating)) \
            or not 0 <= test_split < 1:
        raise ValueError(f"load_data: `test_split` must be a number in [0, 1), received test_split={test_split!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"load_data: `seed` must be a non-negative integer, received seed={seed!r}")


def split(x, y, test_split, seed):
    """Keras's split (as boston_housing): shuffle the sample order with
    ``np.random.RandomState(seed)``, the first ``int(n * (1 - test_split))`` samples train."""
    check_split(test_split, seed)
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    n_train = int(len(x) * (1 - test_split))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def load_sklearn(name, test_split, seed):
    """scikit-learn's bundled ``load_<name>`` (features float32, class ids int64 or targets
    float32), split by ``split``."""
    check_split(test_split, seed)
    try:
        from sklearn import datasets
    except ImportError:
        raise ImportError(f"dl.datasets.{name} needs scikit-learn, which holds its data: install the `examples` "
                          "extra (pip install 'dlcore[examples]') or scikit-learn") from None
    x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    y = y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)
    return split(x.astype(np.float32), y, test_split, seed)


def download_required(name, filename, how=None):
    """The error for data dlcore does not bundle and will not download."""
    how = how or (f"download {KERAS_ORIGIN}{filename} (or run keras.datasets.{name}.load_data() once, which saves "
                  f"it as ~/.keras/datasets/{filename}) and pass its path: "
                  f"dl.datasets.{name}.load_data(path=...)")
    return FileNotFoundError(f"dl.datasets.{name}: the data is not bundled and dlcore never downloads; {how}")


def read_npz(name, path, keys):
    """The arrays ``keys`` of the local ``.npz`` file ``path`` (no pickled objects)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"dl.datasets.{name}: `path` must be a file path, received {type(path).__name__}")
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dl.datasets.{name}: no file at path={path!r}; expected a Keras-format .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in keys if k not in archive.files]
            if missing:
                raise ValueError(f"dl.datasets.{name}: {path!r} has the arrays {sorted(archive.files)}, expected "
                                 f"{list(keys)} (missing {missing})")
            return [archive[k] for k in keys]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(f"dl.datasets.{name}: {path!r} holds pickled Python objects, which dlcore does not load; "
                             "expected plain numeric arrays") from None
        raise


def load_npz_splits(name, path, filename, how=None):
    """``(x_train, y_train), (x_test, y_test)`` from a Keras-format .npz with those four arrays."""
    if path is None:
        raise download_required(name, filename, how)
    x_train, y_train, x_test, y_test = read_npz(name, path, ("x_train", "y_train", "x_test", "y_test"))
    return (x_train, y_train), (x_test, y_test)


def load_npz_xy(name, path, filename, test_split, seed):
    """A Keras-format .npz of ``x`` and ``y`` (boston / california housing), split as Keras."""
    check_split(test_split, seed)
    if path is None:
        raise download_required(name, filename)
    x, y = read_npz(name, path, ("x", "y"))
    return split(x, y, test_split, seed)
