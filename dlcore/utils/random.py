"""dlcore's random state: one seeded NumPy generator behind initializers, dropout and shuffling."""
import random as _py_random

import numpy as np

_generator = np.random.default_rng()


def set_random_seed(seed):
    """Seed everything dlcore draws from (and Python's and NumPy's global generators, as Keras
    does), so two runs with the same seed are bit-identical on one machine."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed expects a non-negative integer, received {seed!r}")
    _generator = np.random.default_rng(int(seed))
    _py_random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))


def generator(seed=None):
    """The global generator (seed None), ``seed`` itself if it is a Generator, else a new one."""
    if seed is None:
        return _generator
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
