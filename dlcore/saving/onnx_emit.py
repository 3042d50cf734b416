"""What every ONNX export emitter shares (``dlcore.saving.onnx_export``): the graph being built,
the tensors standing for Keras tensors with their layout, activations, and small node helpers.

A Keras tensor is held in ONNX either as dlcore holds it (``KERAS``) or with its channels moved to
axis 1 (``FIRST``, what ONNX's Conv, pooling and Resize read); ``Graph.layout`` converts through
one cached Transpose, so a CNN has one transpose in and one out. onnx is imported only here and
only when a Graph is made.
"""
import numpy as np

from .. import activations

OPSET = 17
KERAS, FIRST = "keras", "channels_first"  # a tensor's layout: as dlcore holds it, or channels moved to axis 1
INT64_MAX = np.iinfo(np.int64).max
NEG = -1e9  # the score Keras gives a masked attention position


def perm_to_first(rank):
    return [0, rank - 1] + list(range(1, rank - 1))


def perm_to_last(rank):
    return [0] + list(range(2, rank)) + [1]


class Value:
    """An ONNX tensor standing for a Keras tensor: its name, layout and rank, and the name of the
    Keras mask it carries (an int64 (batch, time) tensor of 0/1, from Masking or
    Embedding(mask_zero=True)) or None."""

    __slots__ = ("name", "layout", "rank", "mask")

    def __init__(self, name, layout, rank, mask=None):
        self.name, self.layout, self.rank, self.mask = name, layout, rank, mask

    def axis(self, keras_axis):
        """Where Keras axis ``keras_axis`` of this tensor is in the tensor ONNX holds."""
        axis = keras_axis % self.rank
        if self.layout == KERAS or self.rank < 3 or axis == 0:
            return axis
        return 1 if axis == self.rank - 1 else axis + 1


class Graph:
    """Collects nodes and initializers, naming every tensor uniquely."""

    def __init__(self):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self._count = [], [], 0
        self._transposed = {}

    def fresh(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint):
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, values, hint="shape"):
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def int_scalar(self, number, hint="i"):
        """A rank-0 int64 constant (an axis or a Range bound)."""
        name = self.fresh(hint)
        self.initializers.append(self.numpy_helper.from_array(np.array(number, dtype=np.int64), name))
        return name

    def scalar(self, number, hint="c"):
        return self.const(np.float32(number), hint)

    def node(self, op, inputs, hint=None, outputs=1, **attrs):
        names = [self.fresh(hint or op.lower()) for _ in range(outputs)]
        self.nodes.append(self.helper.make_node(op, list(inputs), names, name=self.fresh(f"n_{op}"), **attrs))
        return names[0] if outputs == 1 else names

    def layout(self, value, layout):
        """``value`` in ``layout``, through one cached Transpose when it is held in the other."""
        if value.layout == layout or value.rank < 3:
            return value.name
        key = (value.name, layout)
        if key not in self._transposed:
            perm = perm_to_first(value.rank) if layout == FIRST else perm_to_last(value.rank)
            self._transposed[key] = self.node("Transpose", [value.name], "transpose", perm=perm)
        return self._transposed[key]

    def keras(self, value):
        """The name of ``value`` in dlcore's layout."""
        return self.layout(value, KERAS)

    def swap_last(self, name, rank):
        return self.node("Transpose", [name], perm=list(range(rank - 2)) + [rank - 1, rank - 2])

    def rsqrt(self, name, epsilon):
        """1 / sqrt(name + epsilon)."""
        return self.node("Reciprocal", [self.node("Sqrt", [self.node("Add", [name, self.scalar(epsilon, "eps")])])])


def arr(variable):
    """A weight's values as float32."""
    return np.asarray(variable.value, dtype=np.float32)


# ---- activations -----------------------------------------------------------------------------------
_SIMPLE = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus", "softsign": "Softsign",
           "exponential": "Exp", "selu": "Selu"}
SEQUENCE_ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}


def activation_name(fn):
    try:
        return activations.serialize(fn)
    except (TypeError, ValueError):
        return None


def activation_supported(fn):
    return activation_name(fn) in ACTIVATIONS


def apply_activation(g, fn, value):
    """``fn`` applied to ``value`` (a Value); returns a Value."""
    return ACTIVATIONS[activation_name(fn)](g, value)


def elementwise(op, **attrs):
    return lambda g, v: Value(g.node(op, [v.name], **attrs), v.layout, v.rank)


def _last_axis(op):
    def emit(g, v):
        return Value(g.node(op, [g.keras(v)], axis=-1), KERAS, v.rank)
    return emit


def _times(inner):
    def emit(g, v):
        return Value(g.node("Mul", [v.name, inner(g, v.name)]), v.layout, v.rank)
    return emit


def _gelu(g, v):
    scaled = g.node("Div", [v.name, g.scalar(np.sqrt(2.0), "sqrt2")])
    erf1 = g.node("Add", [g.node("Erf", [scaled]), g.scalar(1.0, "one")])
    return Value(g.node("Mul", [g.node("Mul", [v.name, g.scalar(0.5, "half")]), erf1]), v.layout, v.rank)


def _relu6(g, v):
    return Value(g.node("Clip", [v.name, g.scalar(0.0, "zero"), g.scalar(6.0, "six")]), v.layout, v.rank)


ACTIVATIONS = {
    "linear": lambda g, v: v,
    **{k: elementwise(op) for k, op in _SIMPLE.items()},
    "elu": elementwise("Elu", alpha=1.0),
    "leaky_relu": elementwise("LeakyRelu", alpha=0.2),
    "hard_sigmoid": elementwise("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "softmax": _last_axis("Softmax"),
    "log_softmax": _last_axis("LogSoftmax"),
    "silu": _times(lambda g, x: g.node("Sigmoid", [x])),
    "mish": _times(lambda g, x: g.node("Tanh", [g.node("Softplus", [x])])),
    "gelu": _gelu,
    "relu6": _relu6,
}
