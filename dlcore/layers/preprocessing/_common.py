"""Helpers shared by the preprocessing layers: reading ``adapt`` data, seeds, argument checks."""
import numbers

import numpy as np

from ...tensor import Tensor
from ...utils.random import generator


def as_array(x):
    """``x`` (a Tensor, array, list or DataFrame) as an ndarray, without copying when possible."""
    if isinstance(x, Tensor):
        return x.value
    if hasattr(x, "to_numpy") and not isinstance(x, np.ndarray):
        return x.to_numpy()
    return np.asarray(x)


def adapt_batches(layer, data, batch_size=None, steps=None):
    """The batches of ``adapt(data)``: one array, or the x part of each item of an iterable
    (a generator or a re-iterable of (x, y) / x batches), stopping after ``steps`` items."""
    if isinstance(data, (np.ndarray, Tensor, list, tuple)) or hasattr(data, "to_numpy"):
        array = as_array(data)
        if array.ndim == 0:
            raise ValueError(f"{layer}: adapt() expects data with a batch dimension, received a scalar")
        if batch_size is None:
            return [array]
        return [array[i:i + batch_size] for i in range(0, len(array), int(batch_size))]
    if data is None or not hasattr(data, "__iter__"):
        raise TypeError(f"{layer}: adapt() expects an array, a list or an iterable of batches, "
                        f"received {type(data).__name__}")
    out = []
    for i, item in enumerate(data):
        if steps is not None and i >= steps:
            break
        out.append(as_array(item[0] if isinstance(item, tuple) else item))
    if not out:
        raise ValueError(f"{layer}: adapt() received no data")
    return out


def check_seed(layer, seed):
    """The validated ``seed`` (None or a non-negative int)."""
    if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"{layer}: `seed` must be None or a non-negative integer, received seed={seed!r}")
    return None if seed is None else int(seed)


def seeded_generator(seed):
    """The layer's own generator for ``seed``, or None to draw from dlcore's global one."""
    return None if seed is None else generator(seed)


def check_choice(layer, name, value, choices):
    if value not in choices:
        raise ValueError(f"{layer}: `{name}` must be one of {sorted(choices)}, received {name}={value!r}")
    return value


def check_real(layer, name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{layer}: `{name}` must be a number, received {name}={value!r}")
    return float(value)
