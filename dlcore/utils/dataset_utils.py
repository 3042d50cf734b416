"""Data utilities as in ``keras.utils``: ``split_dataset`` and ``normalize``."""
import random

import numpy as np


def _split_size(name, size, total):
    """``size`` (None, an int count or a float fraction in (0, 1)) as a count of samples, or None."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float, np.integer, np.floating)):
        raise TypeError(f"split_dataset: `{name}` must be an int, a float or None, received {type(size).__name__} "
                        f"({size!r})")
    if isinstance(size, (float, np.floating)):
        if not 0 < size < 1:
            raise ValueError(f"split_dataset: `{name}` as a fraction must be in (0, 1), received {name}={size}")
        return round(size * total)
    if not 0 < size < total:
        raise ValueError(f"split_dataset: `{name}` as a count must be a positive integer smaller than the dataset's "
                         f"length {total}, received {name}={size}")
    return int(size)


def split_dataset(dataset, left_size=None, right_size=None, shuffle=False, seed=None):
    """Split an array, or a tuple / list of arrays of one length (``(x, y)``), into a left and a
    right part: ``(left, right)``, each of the input's structure (so ``fit`` takes them directly;
    Keras returns tf.data Datasets of the same samples). Sizes are counts or fractions (rounded),
    one may be None (the rest); ``shuffle`` permutes the samples first with Python's
    ``random.Random(seed)``, the permutation Keras draws for the same seed."""
    if isinstance(dataset, (tuple, list)):
        if not dataset:
            raise ValueError("split_dataset: `dataset` is an empty tuple; expected arrays of one length")
        arrays = [np.asarray(a) for a in dataset]
    elif isinstance(dataset, np.ndarray) or hasattr(dataset, "__array__"):
        arrays = [np.asarray(dataset)]
    else:
        raise TypeError("split_dataset: `dataset` must be an array or a tuple / list of arrays, received "
                        f"{type(dataset).__name__}")
    if any(a.ndim == 0 for a in arrays):
        raise ValueError("split_dataset: `dataset` arrays must have a sample axis, received a scalar")
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"split_dataset: the arrays of `dataset` must have one length, received lengths "
                         f"{[len(a) for a in arrays]}")
    total = lengths.pop()
    if left_size is None and right_size is None:
        raise ValueError("split_dataset: at least one of `left_size` or `right_size` must be given, received "
                         "left_size=None and right_size=None")
    if left_size == 0 and right_size == 0:
        raise ValueError("split_dataset: `left_size` and `right_size` are both zero")
    both_fractions = isinstance(left_size, float) and isinstance(right_size, float)
    if both_fractions and left_size + right_size > 1:
        raise ValueError(f"split_dataset: left_size + right_size must be at most 1, received {left_size} + "
                         f"{right_size}")
    left, right = _split_size("left_size", left_size, total), _split_size("right_size", right_size, total)
    left = total - right if left is None else left
    right = total - left if right is None else right
    if left + right > total:
        raise ValueError(f"split_dataset: left_size + right_size ({left} + {right}) is larger than the dataset's "
                         f"length {total}")
    if left <= 0 or right <= 0:
        raise ValueError(f"split_dataset: with a dataset of length {total}, left_size={left} and right_size={right} "
                         "leave one side empty")
    order = list(range(total))
    if shuffle:
        random.Random(random.randint(0, int(1e6)) if seed is None else seed).shuffle(order)
    order = np.asarray(order)
    left_idx, right_idx = order[:left], order[total - right:]
    parts = ([a[left_idx] for a in arrays], [a[right_idx] for a in arrays])
    if isinstance(dataset, (tuple, list)):
        return tuple(type(dataset)(p) for p in parts)
    return parts[0][0], parts[1][0]


def normalize(x, axis=-1, order=2):
    """``x`` divided by its ``order``-norm along ``axis`` (zero norms left as 1), as Keras."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"normalize: `x` must be numeric, received dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError("normalize: `x` must have at least one axis, received a scalar")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"normalize: `axis` must be an integer axis of an array of rank {x.ndim}, received "
                         f"axis={axis!r}")
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)
