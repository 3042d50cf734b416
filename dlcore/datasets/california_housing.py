"""california_housing: not bundled, never downloaded; ``load_data(path=...)`` reads Keras's california_housing.npz
(arrays x and y) and splits it as Keras does."""
from ._common import load_npz_xy


def load_data(path=None, test_split=0.2, seed=113):
    """``(x_train, y_train), (x_test, y_test)`` from the .npz at ``path`` (samples shuffled with
    ``np.random.RandomState(seed)``, the first ``int(n * (1 - test_split))`` train); without a
    path, a FileNotFoundError that says how to get the data."""
    return load_npz_xy("california_housing", path, "california_housing.npz", test_split, seed)
