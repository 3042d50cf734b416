"""ONNX import handlers for what transformers add (``dlcore.saving.onnx_import``):
LayerNormalization, and GELU as PyTorch exports it (Div, Erf, Add, Mul, Mul) or as opset 20's
Gelu. The attention itself is MatMul, Softmax and the batch-merging reshapes of ``onnx_layout``."""
import numpy as np

from .onnx_import import _build_layer, _Sym, _unsupported


def _layer_norm(b, node, attrs):
    """LayerNormalization over the ONNX axes from ``axis`` on: Keras's over those held axes."""
    v = b.sym(node.input[0], node)
    if len([o for o in node.output if o]) > 1:
        raise _unsupported(node, "the Mean / InvStdDev outputs")
    axes = list(range(attrs.get("axis", -1) % v.rank, v.rank))
    if v.perm[0] in axes:
        raise _unsupported(node, f"normalizing over the batch axis (axis {attrs.get('axis')})")
    order = [a for a in v.perm if a not in axes] + axes  # the normalized axes last, in ONNX order
    x = b.held(v, order)
    shape = [x.shape[i] for i in range(x.ndim - len(axes), x.ndim)]
    if None in shape:
        raise _unsupported(node, "normalized axes of unknown size")
    gamma = np.broadcast_to(b.const(node.input[1], node).astype(np.float32), shape)
    beta = b.const(node.input[2], node).astype(np.float32) if len(node.input) > 2 and node.input[2] \
        else np.zeros(shape, np.float32)
    held_axes = list(range(x.ndim - len(axes), x.ndim))
    layer = b.L.LayerNormalization(axis=held_axes if len(held_axes) > 1 else -1,
                                   epsilon=float(attrs.get("epsilon", 1e-5)))
    weights = [gamma.reshape(shape if len(shape) > 1 else -1), np.broadcast_to(beta, shape).reshape(
        shape if len(shape) > 1 else -1)]
    b.set(node, _Sym(_build_layer(layer, x, weights), order))


def _scalar(b, node, name):
    """The scalar constant ``name`` (None when it is not one)."""
    value = b.values.get(name)
    return float(value.reshape(-1)[0]) if isinstance(value, np.ndarray) and value.size == 1 else None


def _erf(b, node, attrs):
    """Erf inside PyTorch's exact GELU, ``x * 0.5 * (1 + erf(x / sqrt(2)))`` (Div, Erf, Add, Mul,
    Mul in either order): the whole pattern becomes Activation("gelu"); a lone Erf is refused."""
    div = next((n for n in b.nodes if node.input[0] in n.output), None)
    add = b.only_consumer(node.output[0], "Add")
    if div is not None and div.op_type == "Div" and add is not None:
        x, factor = div.input[0], _scalar(b, div, div.input[1])
        one = _scalar(b, add, add.input[1] if add.input[0] == node.output[0] else add.input[0])
        first = b.only_consumer(add.output[0], "Mul")
        second = first and b.only_consumer(first.output[0], "Mul")
        if factor is not None and abs(factor - 2 ** 0.5) < 1e-4 and one == 1.0 and second is not None:
            others = [[i for i in m.input if i != prev][0] if len(set(m.input)) == 2 else None
                      for m, prev in ((first, add.output[0]), (second, first.output[0]))]
            halves = [_scalar(b, m, o) for m, o in zip((first, second), others)]
            if sorted(map(str, others)).count(x) == 1 and 0.5 in halves and isinstance(b.values.get(x), _Sym):
                v = b.values[x]
                for n in (add, first, second):
                    b.skip.add(id(n))
                b.values[second.output[0]] = _Sym(b.L.Activation("gelu")(v.t), v.perm)
                return
    raise _unsupported(node, "Erf outside the exact GELU pattern x * 0.5 * (1 + erf(x / sqrt(2)))")


def _gelu(b, node, attrs):
    if attrs.get("approximate", "none") != "none":
        raise _unsupported(node, f"approximate={attrs['approximate']!r} (the exact GELU is imported)")
    v = b.sym(node.input[0], node)
    b.set(node, _Sym(b.L.Activation("gelu")(v.t), v.perm))


HANDLERS = {"LayerNormalization": _layer_norm, "Erf": _erf, "Gelu": _gelu}
