"""cifar10: not bundled, never downloaded; ``load_data(path=...)`` reads a local .npz with the
arrays x_train, y_train, x_test, y_test.
Keras downloads this set in another format (gzip / pickled tarball files); save it once as an .npz
with the arrays x_train, y_train, x_test, y_test (for example from keras.datasets.cifar10.load_data())
and pass that file."""
from ._common import load_npz_splits


def load_data(path=None):
    """``(x_train, y_train), (x_test, y_test)`` from the .npz at ``path``; without one, a
    FileNotFoundError that says how to get the data."""
    return load_npz_splits("cifar10", path, "cifar10.npz", how=(
        "Keras downloads it as gzip / pickled tarball files, which dlcore does not read: run "
        "keras.datasets.cifar10.load_data() once, save the four arrays with np.savez(file, x_train=..., y_train=..., "
        "x_test=..., y_test=...) and pass load_data(path=file)"))
