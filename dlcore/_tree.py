"""Nested structures (lists, tuples, dicts of leaves): the two helpers autograd, symbolic
tensors, models and training share. Imports nothing from dlcore, so any tier may use it."""


def flatten(x):
    """Leaves of a nested list/tuple/dict structure, dict values in key order."""
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in flatten(item)]
    if isinstance(x, dict):
        return [leaf for key in x for leaf in flatten(x[key])]
    return [x]


def map_structure(fn, x):
    """The same structure with ``fn`` applied to every leaf."""
    if isinstance(x, list):
        return [map_structure(fn, item) for item in x]
    if isinstance(x, tuple):
        return tuple(map_structure(fn, item) for item in x)
    if isinstance(x, dict):
        return {key: map_structure(fn, item) for key, item in x.items()}
    return fn(x)
