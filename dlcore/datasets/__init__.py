"""Data sets as ``keras.datasets``: ``dl.datasets.<name>.load_data()`` -> ``(x_train, y_train),
(x_test, y_test)``. digits, iris, wine, breast_cancer and diabetes come from scikit-learn (the
``examples`` extra); the Keras download sets are read from a local file given as ``path=`` where
their format is plain arrays. Nothing here accesses the network."""
from . import (boston_housing, breast_cancer, california_housing, cifar10, cifar100, diabetes, digits, fashion_mnist,
               imdb, iris, mnist, reuters, wine)

__all__ = ["boston_housing", "breast_cancer", "california_housing", "cifar10", "cifar100", "diabetes", "digits",
           "fashion_mnist", "imdb", "iris", "mnist", "reuters", "wine"]
