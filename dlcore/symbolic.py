"""Symbolic tensors for the functional API: ``dl.Input`` and layers called on them.

A :class:`KerasTensor` has a shape (batch dimension None) and a dtype but no data; it remembers
the :class:`CallNode` (layer + inputs) that produced it, so ``dl.Model(inputs, outputs)`` can
walk from the outputs back to the inputs.
"""
import numpy as np

from ._tree import flatten, map_structure  # noqa: F401  (re-exported: models and layers use them here)


class KerasTensor:
    """A placeholder: shape, dtype and the layer call that produced it."""

    __slots__ = ("shape", "dtype", "node", "index", "name")

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = np.dtype(dtype).name
        self.node = node
        self.index = index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __hash__(self):
        return id(self)

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor has no value: it cannot be used in a Python condition. "
                        "Build the model, then call it on data.")

    def __array__(self, dtype=None, copy=None):
        raise TypeError("A symbolic KerasTensor has no value; call the model on NumPy data instead.")

    # Arithmetic on symbolic tensors becomes a layer call, as in Keras (x + y, x * 2, ...).
    def _op(self, other, fn, reverse=False):
        from .layers.core import Lambda

        args = (other, self) if reverse else (self, other)
        if isinstance(other, KerasTensor):
            return Lambda(lambda xs: fn(xs[0], xs[1]), name=None)(list(args))
        return Lambda(lambda x: fn(x, other) if not reverse else fn(other, x))(self)

    def __add__(self, other):
        from . import ops
        return self._op(other, ops.add)

    def __radd__(self, other):
        from . import ops
        return self._op(other, ops.add, reverse=True)

    def __sub__(self, other):
        from . import ops
        return self._op(other, ops.subtract)

    def __rsub__(self, other):
        from . import ops
        return self._op(other, ops.subtract, reverse=True)

    def __mul__(self, other):
        from . import ops
        return self._op(other, ops.multiply)

    def __rmul__(self, other):
        from . import ops
        return self._op(other, ops.multiply, reverse=True)

    def __truediv__(self, other):
        from . import ops
        return self._op(other, ops.divide)

    def __matmul__(self, other):
        from . import ops
        return self._op(other, ops.matmul)

    def __neg__(self):
        from . import ops
        from .layers.core import Lambda
        return Lambda(ops.negative)(self)

    def __getitem__(self, key):
        from . import ops
        from .layers.core import Lambda
        return Lambda(lambda x: ops.getitem(x, key))(self)


class CallNode:
    """One call of a layer on symbolic inputs: ``layer(*args, **kwargs) -> outputs``."""

    __slots__ = ("layer", "args", "kwargs", "outputs", "parents")

    def __init__(self, layer, args, kwargs, outputs):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = outputs
        self.parents = [t for t in flatten((args, kwargs)) if isinstance(t, KerasTensor)]


def is_symbolic(x):
    return any(isinstance(t, KerasTensor) for t in flatten(x))
