"""scikit-learn's bundled wine data set, split Keras-style (scikit-learn: the `examples` extra)."""
from ._common import load_sklearn


def load_data(test_split=0.2, seed=113):
    """``(x_train, y_train), (x_test, y_test)``: the samples shuffled with
    ``np.random.RandomState(seed)``, the first ``int(n * (1 - test_split))`` for training."""
    return load_sklearn("wine", test_split, seed)
