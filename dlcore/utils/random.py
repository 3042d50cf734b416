"""dlcore's random state: one seeded NumPy generator behind initializers, dropout and shuffling."""
import threading

import numpy as np

_creating = threading.Lock()
_generator = None  # made on first use: numpy.random costs ~10-18 ms of a deployment's cold start


def set_random_seed(seed):
    """Seed everything dlcore draws from (and Python's and NumPy's global generators, as Keras
    does), so two runs with the same seed are bit-identical on one machine."""
    import random as py_random

    global _generator
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"set_random_seed expects a non-negative integer, received {seed!r}")
    _generator = np.random.default_rng(int(seed))
    py_random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))


def generator(seed=None):
    """The global generator (seed None), ``seed`` itself if it is a Generator, else a new one."""
    global _generator
    if seed is None:
        if _generator is None:
            with _creating:
                if _generator is None:
                    _generator = np.random.default_rng()
        return _generator
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def generator_created():
    """Whether the global generator exists yet (it is made on first use)."""
    return _generator is not None
