"""mnist: not bundled, never downloaded; ``load_data(path=...)`` reads a local .npz with the
arrays x_train, y_train, x_test, y_test (Keras's own mnist.npz has them)."""
from ._common import load_npz_splits


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)`` from the .npz at ``path``; without one, a
    FileNotFoundError that says how to get the data."""
    return load_npz_splits("mnist", path, "mnist.npz")
