"""ONNX operator handlers for ``dlcore.saving.onnx_import``: each maps one node onto dlcore
layers (symbolic inputs) or folds it with NumPy (constant inputs). ``HANDLERS[op_type](builder,
node, attrs)`` stores the node's outputs in ``builder.values``."""
import numpy as np

from . import onnx_layout
from .onnx_import import BATCH, _attrs, _build_layer, _identity, _Merged, _Sym, _to_last, _unsupported
from .onnx_recurrent import HANDLERS as _RECURRENT
from .onnx_transformer import HANDLERS as _TRANSFORMER


def _all_const(b, node):
    return all(not name or isinstance(b.values.get(name), np.ndarray) for name in node.input)


# ---- constants and shape arithmetic ----------------------------------------------------------------
def _constant(b, node, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        b.set(node, numpy_helper.to_array(attrs["value"]))
    elif "value_ints" in attrs or "value_int" in attrs:
        b.set(node, np.asarray(attrs.get("value_ints", attrs.get("value_int")), dtype=np.int64))
    elif "value_floats" in attrs or "value_float" in attrs:
        b.set(node, np.asarray(attrs.get("value_floats", attrs.get("value_float")), dtype=np.float32))
    else:
        raise _unsupported(node, f"attributes {sorted(attrs)}")


def _constant_of_shape(b, node, attrs):
    from onnx import numpy_helper

    value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
    # the batch (BATCH here; 0 before) and merged-in axes broadcast
    shape = [1 if int(d) <= 0 or onnx_layout.is_batch(int(d)) else int(d) for d in b.const(node.input[0], node)]
    if int(np.prod(shape)) > 1 << 26:
        raise _unsupported(node, f"shape {shape} is too large")
    b.set(node, np.full(shape, value.reshape(-1)[0], dtype=value.dtype))


def _shape(b, node, attrs):
    value = b.values[node.input[0]]
    if isinstance(value, np.ndarray):
        b.set(node, np.asarray(value.shape, dtype=np.int64))
        return
    # the batch size is BATCH (times the axes merged with it), unknown sizes 0 ("copy" to Reshape)
    shape = np.asarray(onnx_layout.onnx_shape(value), dtype=np.int64)
    b.set(node, shape[attrs.get("start", 0):attrs.get("end", len(shape))])


_FOLD = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": lambda a, c: (a // c if a.dtype.kind in "iu"
                                                                            else a / c),
    "Cast": None, "Identity": lambda a: a, "Neg": np.negative, "Sqrt": np.sqrt,
    "Mod": lambda a, c: np.mod(a, c) if a.dtype.kind in "iu" else np.fmod(a, c),
}


def _fold(b, node, attrs):
    from onnx import helper

    args = [b.values[n] if n else None for n in node.input]
    op = node.op_type
    if not _all_const(b, node):
        return _on_tensor(b, node, attrs)
    if op == "Cast":
        out = args[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    elif op == "Gather":
        out = np.take(args[0], args[1], axis=attrs.get("axis", 0))
    elif op == "Unsqueeze":
        axes = attrs.get("axes", None if len(args) < 2 else list(args[1]))
        out = args[0]
        for a in sorted(int(x) % (out.ndim + len(axes)) for x in axes):
            out = np.expand_dims(out, a)
    elif op == "Squeeze":
        axes = attrs.get("axes", None if len(args) < 2 or args[1] is None else list(args[1]))
        out = np.squeeze(args[0], axis=None if axes is None else tuple(int(a) for a in axes))
    elif op == "Concat":
        out = np.concatenate([np.atleast_1d(a) for a in args], axis=attrs["axis"])
    elif op == "Reshape":
        out = args[0].reshape([int(d) if d != 0 else args[0].shape[i] for i, d in enumerate(args[1])])
    elif op == "Transpose":
        out = np.transpose(args[0], attrs.get("perm"))
    elif op == "Slice":
        starts, ends = args[1], args[2]
        axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
        steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
        index = [slice(None)] * args[0].ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[int(a)] = slice(int(s), int(e), int(st))
        out = args[0][tuple(index)]
    else:
        out = _FOLD[op](*args)
    b.set(node, np.asarray(out))


_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _on_tensor(b, node, attrs):
    """Cast, Neg, Sqrt and Slice of a computed tensor (their handler folds constants)."""
    from onnx import helper

    v = b.sym(node.input[0], node)
    if node.op_type == "Slice":
        return onnx_layout.slice_tensor(b, node, v)
    if node.op_type == "Neg":
        b.set(node, _Sym(b.L.Rescaling(scale=-1.0)(v.t), v.perm))
    elif node.op_type == "Cast" and np.dtype(helper.tensor_dtype_to_np_dtype(attrs["to"])) in _FLOATS:
        b.set(node, v)  # an imported model computes in floating point already
    else:
        what = "Cast to a type other than float16/32/64" if node.op_type == "Cast" else node.op_type
        raise _unsupported(node, f"{what} of a tensor computed from the model's inputs (only of constants)")


# ---- elementwise and activations -------------------------------------------------------------------
def _activation(name, **kwargs):
    def handle(b, node, attrs):
        v = b.sym(node.input[0], node)
        layer = _ACT_LAYERS[name](b, attrs)
        b.set(node, _Sym(layer(v.t), v.perm))
    return handle


_ACT_LAYERS = {
    "relu": lambda b, a: b.L.Activation("relu"), "sigmoid": lambda b, a: b.L.Activation("sigmoid"),
    "tanh": lambda b, a: b.L.Activation("tanh"),
    "leaky_relu": lambda b, a: b.L.LeakyReLU(negative_slope=float(a.get("alpha", 0.01))),
    "elu": lambda b, a: b.L.ELU(alpha=float(a.get("alpha", 1.0))),
}


def _softmax(b, node, attrs):
    v = b.sym(node.input[0], node)
    default = -1 if (b.opset or 13) >= 13 else 1
    axis = attrs.get("axis", default) % v.rank
    held_axis = v.perm.index(axis)
    if node.op_type == "LogSoftmax":
        if held_axis != v.rank - 1:
            raise _unsupported(node, f"LogSoftmax over axis {axis} that is not the last held axis")
        layer = b.L.Activation("log_softmax")
    else:
        layer = b.L.Softmax(axis=held_axis)
    b.set(node, _Sym(layer(v.t), v.perm))


def _passthrough(b, node, attrs):
    b.set(node, b.values[node.input[0]])


def _dropout(b, node, attrs):
    """Dropout is the identity at inference; training mode (random) and the mask output are refused."""
    training = b.values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    if training is not None and not isinstance(training, np.ndarray):
        raise _unsupported(node, "training_mode computed from the model's inputs")
    ratio = b.values.get(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("ratio", 0.5)
    if training is not None and bool(np.asarray(training).reshape(-1)[0]) and float(np.asarray(ratio).reshape(-1)[0]):
        raise _unsupported(node, "training_mode=True (random dropout; an imported model runs inference)")
    if len(node.output) > 1 and node.output[1]:
        raise _unsupported(node, "the mask output (an imported model runs inference)")
    b.set(node, b.values[node.input[0]])


def _binary(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    x, y = b.values[node.input[0]], b.values[node.input[1]]
    op = node.op_type
    if isinstance(x, _Sym) and isinstance(y, _Sym):
        if x.rank != y.rank:
            raise _unsupported(node, f"tensors of ranks {x.rank} and {y.rank} (both carry the batch axis, so "
                                     "only equal ranks broadcast)")
        if op == "Div" and np.dtype(x.t.dtype).kind in "biu":
            raise _unsupported(node, f"Div of {x.t.dtype} tensors (ONNX truncates; Divide computes in floating point)")
        layer = {"Add": b.L.Add, "Sub": b.L.Subtract, "Mul": b.L.Multiply, "Div": b.L.Divide}[op]()
        b.set(node, _Sym(layer([x.t, b.held(y, x.perm)]), x.perm))
        return
    sym, const = (x, y) if isinstance(x, _Sym) else (y, x)
    const = np.asarray(const, dtype=np.float32)
    if const.ndim > sym.rank:
        raise _unsupported(node, "a constant of higher rank than the tensor")
    full = const.reshape((1,) * (sym.rank - const.ndim) + const.shape)
    if full.shape[0] != 1:
        raise _unsupported(node, f"a constant of shape {const.shape} that varies along the batch axis")
    held = np.transpose(full, sym.perm)[0]  # per-sample broadcastable constant in held order
    if op == "Add":
        scale, offset = 1.0, held
    elif op == "Mul":
        scale, offset = held, 0.0
    elif op == "Sub":
        scale, offset = (1.0, -held) if sym is x else (-1.0, held)
    elif sym is x:
        scale, offset = 1.0 / held, 0.0
    else:
        raise _unsupported(node, "a constant divided by a tensor")
    as_list = lambda v: v.tolist() if isinstance(v, np.ndarray) and v.ndim else float(v)
    layer = b.L.Rescaling(scale=as_list(np.asarray(scale)), offset=as_list(np.asarray(offset)))
    b.set(node, _Sym(layer(sym.t), sym.perm))


# ---- dense and what follows it ----------------------------------------------------------------------
_KERAS_ACTS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def _fusable_activation(b, node, rank, softmax):
    """The Keras activation name equal to ``node`` applied to a layer's output (features on the
    last ONNX axis), or None."""
    attrs = _attrs(node)
    if node.op_type in _KERAS_ACTS:
        return _KERAS_ACTS[node.op_type]
    if node.op_type == "Elu" and float(attrs.get("alpha", 1.0)) == 1.0:
        return "elu"
    if node.op_type == "Softmax" and softmax:
        default = -1 if (b.opset or 13) >= 13 else 1
        if int(attrs.get("axis", default)) % rank == rank - 1:
            return "softmax"
    return None


def _epilogue(b, name, rank, softmax=False, batch_norm=True):
    """What a Dense/Conv layer producing ONNX value ``name`` can absorb from the nodes after it: an
    inference BatchNormalization (folded into the weights when ``b.fold_batch_norm``), then an
    activation. Returns ``(scale, shift, activation, out_name)``: the layer's per-channel
    ``y * scale + shift`` (None when no BatchNormalization), its Keras activation (None) and the
    ONNX value the layer's output stands for; the absorbed nodes are skipped. ``batch_norm``:
    whether ONNX's BatchNormalization channel axis (1) is the layer's output channel axis."""
    scale = shift = activation = None
    node = b.only_consumer(name)
    if (batch_norm and node is not None and node.op_type == "BatchNormalization" and b.fold_batch_norm
            and node.input[0] == name and len([o for o in node.output if o]) == 1
            and not _attrs(node).get("training_mode", 0)
            and all(isinstance(b.values.get(n), np.ndarray) for n in node.input[1:5])):
        gamma, beta, mean, var = (b.values[n].astype(np.float64) for n in node.input[1:5])
        scale = gamma / np.sqrt(var + float(_attrs(node).get("epsilon", 1e-5)))
        shift = beta - mean * scale
        b.skip.add(id(node))
        name = node.output[0]
        node = b.only_consumer(name)
    if node is not None and len(node.input) == 1:
        activation = _fusable_activation(b, node, rank, softmax)
        if activation is not None:
            b.skip.add(id(node))
            name = node.output[0]
    return scale, shift, activation, name


def _folded(kernel, bias, scale, shift, out_axis):
    """``kernel`` and ``bias`` with a following per-channel ``y * scale + shift`` folded in."""
    if scale is None:
        return kernel, bias
    shape = [1] * kernel.ndim
    shape[out_axis] = -1
    kernel = (kernel.astype(np.float64) * scale.reshape(shape)).astype(np.float32)
    bias = np.zeros(scale.shape) if bias is None else bias.astype(np.float64)
    return kernel, (bias * scale + shift).astype(np.float32)


def _dense_from(b, node, v, kernel, bias, out_name):
    """A Dense layer on ``v`` (features on the last ONNX axis) storing its output as ``out_name``
    or as the last node its epilogue absorbs."""
    if isinstance(v, _Merged):
        if v.groups[-1] != (v.t.ndim - 1,):
            raise _unsupported(node, "a Gemm/MatMul whose feature axis is merged with the batch axis")
        x, perm = v.t, None
    elif v.perm[-1] != v.rank - 1:
        x = b.held(v, _identity(v.rank))
        perm = _identity(v.rank)
    else:
        x, perm = v.t, v.perm
    scale, shift, activation, out_name = _epilogue(b, out_name, v.rank, softmax=True, batch_norm=v.rank == 2)
    kernel, bias = _folded(kernel, bias, scale, shift, 1)
    layer = b.L.Dense(kernel.shape[1], activation=activation, use_bias=bias is not None)
    weights = [kernel] + ([np.broadcast_to(bias, (kernel.shape[1],))] if bias is not None else [])
    y = _build_layer(layer, x, weights)
    b.values[out_name] = _Merged(y, v.groups) if perm is None else _Sym(y, perm)


def _dense_kernel(b, node, w):
    """``w`` with its rows in the held feature order of a Flatten that skipped its Permute."""
    rows = b.row_order.get(node.input[0])
    if rows is None:
        return w
    if w.shape[0] != rows.size:
        raise _unsupported(node, f"a weight of {w.shape[0]} rows for {rows.size} input features")
    return w[rows]


def _gemm(b, node, attrs):
    if _all_const(b, node):
        raise _unsupported(node, "constant Gemm")
    v = b.sym(node.input[0], node, merged=True)
    if attrs.get("transA", 0):
        raise _unsupported(node, "transA=1")
    w = b.const(node.input[1], node).astype(np.float32)
    w = (w.T if attrs.get("transB", 0) else w) * np.float32(attrs.get("alpha", 1.0))
    bias = None
    if len(node.input) > 2 and node.input[2]:
        c = b.const(node.input[2], node).astype(np.float32)
        if c.ndim > 2 or c.size not in (1, w.shape[1]):
            raise _unsupported(node, f"bias C of shape {c.shape}: a Dense bias broadcasts one row of "
                                     f"{w.shape[1]} over the batch")
        bias = c.reshape(-1) * np.float32(attrs.get("beta", 1.0))
    _dense_from(b, node, v, _dense_kernel(b, node, w), bias, node.output[0])


def _matmul(b, node, attrs):
    if _all_const(b, node):
        b.set(node, np.matmul(b.values[node.input[0]], b.values[node.input[1]]))
        return
    if isinstance(b.values.get(node.input[1]), _Sym):
        return _matmul_tensors(b, node)
    v = b.sym(node.input[0], node, merged=True)
    w = b.const(node.input[1], node).astype(np.float32)
    if w.ndim != 2:
        raise _unsupported(node, f"a {w.ndim}-D constant weight (a Dense layer takes a matrix)")
    bias, out_name = None, node.output[0]
    add = b.only_consumer(node.output[0], "Add")
    if add is not None:
        other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        c = b.values.get(other)
        if isinstance(c, np.ndarray) and c.size == w.shape[1] and c.ndim <= 1:
            bias = c.astype(np.float32).reshape(-1)
            b.skip.add(id(add))
            out_name = add.output[0]
    _dense_from(b, node, v, _dense_kernel(b, node, w), bias, out_name)


def _matmul_tensors(b, node):
    """MatMul of two computed tensors of the same rank (attention's q @ k^T, p @ v, heads as an
    extra axis): a MatMul layer batched over the leading axes."""
    x, y = b.sym(node.input[0], node), b.sym(node.input[1], node)
    if x.rank != y.rank or x.rank < 3:
        raise _unsupported(node, f"MatMul of computed tensors of ranks {x.rank} and {y.rank} (equal ranks >= 3, "
                                 "batched over the leading axes, are imported)")
    if x.perm[0] != y.perm[0]:
        raise _unsupported(node, f"the batch axes of the two tensors differ (ONNX axes {x.perm[0]} and {y.perm[0]})")
    # the leading axes in x's held order, then the two matrix axes
    order = [a for a in x.perm if a < x.rank - 2] + [x.rank - 2, x.rank - 1]
    b.set(node, _Sym(b.L.MatMul()([b.held(x, order), b.held(y, order)]), order))


# ---- convolution and pooling -----------------------------------------------------------------------
def _pads(attrs, spatial, kernel, strides, dilations, node):
    """[(begin, end)] per spatial axis from pads or auto_pad, and whether they are Keras's "same"."""
    r = len(kernel)
    same = []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        eff = (k - 1) * d + 1
        if n is None:
            same.append(None)
            continue
        total = max((-(-n // s) - 1) * s + eff - n, 0)
        same.append((total // 2, total - total // 2))
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "SAME_UPPER":
        return same, True
    if auto == "SAME_LOWER":
        pads = [None if p is None else (p[1], p[0]) for p in same]
        if None in pads:
            raise _unsupported(node, "auto_pad=SAME_LOWER with unknown spatial sizes")
        return pads, pads == same
    if auto == "VALID":
        return [(0, 0)] * r, False
    flat = list(attrs.get("pads", [0] * 2 * r))
    pads = [(flat[i], flat[i + r]) for i in range(r)]
    return pads, None not in same and pads == same and any(p != (0, 0) for p in pads)


def _zero_pad(b, x, pads, rank):
    layer = b.L.ZeroPadding1D(padding=tuple(pads[0])) if rank == 1 else b.L.ZeroPadding2D(padding=tuple(pads))
    return layer(x)


def _spatial_input(b, node, v):
    rank = v.rank - 2
    if rank not in (1, 2):
        raise _unsupported(node, f"{rank}-D spatial input (1-D and 2-D are imported)")
    perm = _to_last(v.rank)
    x = b.held(v, perm)
    return x, perm, rank, [v.onnx_shape()[a] for a in range(2, v.rank)]


def _conv(b, node, attrs):
    v = b.sym(node.input[0], node)
    x, perm, rank, spatial = _spatial_input(b, node, v)
    w = b.const(node.input[1], node).astype(np.float32)
    bias = b.const(node.input[2], node).astype(np.float32) if len(node.input) > 2 and node.input[2] else None
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    pads, is_same = _pads(attrs, spatial, kernel, strides, dilations, node)
    padding = "same" if is_same else "valid"
    if not is_same and any(p != (0, 0) for p in pads):
        x = _zero_pad(b, x, pads, rank)
    scale, shift, activation, out_name = _epilogue(b, node.output[0], v.rank)
    kernel_hwio, bias = _folded(np.transpose(w, tuple(range(2, w.ndim)) + (1, 0)), bias, scale, shift, -1)
    cls = b.L.Conv1D if rank == 1 else b.L.Conv2D
    layer = cls(w.shape[0], tuple(kernel), strides=tuple(strides), padding=padding, dilation_rate=tuple(dilations),
                groups=int(attrs.get("group", 1)), activation=activation, use_bias=bias is not None)
    weights = [kernel_hwio] + ([bias] if bias is not None else [])
    b.values[out_name] = _Sym(_build_layer(layer, x, weights), perm)


def _conv_transpose(b, node, attrs):
    """ConvTranspose (1-D/2-D, group 1) -> Conv1DTranspose/Conv2DTranspose "valid" with ONNX's
    output_padding, then Cropping of ONNX's pads (explicit, from auto_pad or from output_shape)."""
    v = b.sym(node.input[0], node)
    x, perm, rank, spatial = _spatial_input(b, node, v)
    if int(attrs.get("group", 1)) != 1:
        raise _unsupported(node, f"group={attrs.get('group')} (Keras's Conv{rank}DTranspose has no groups)")
    w = b.const(node.input[1], node).astype(np.float32)  # (in, out, *kernel)
    bias = b.const(node.input[2], node).astype(np.float32) if len(node.input) > 2 and node.input[2] else None
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * rank))
    dilations = list(attrs.get("dilations", [1] * rank))
    extra = list(attrs.get("output_padding", [0] * rank))
    if max(strides) > 1 and max(dilations) > 1:
        raise _unsupported(node, f"strides {strides} with dilations {dilations} (Keras's transposed convolutions "
                                 "take one or the other)")
    if any(p >= s for p, s in zip(extra, strides)) or min(extra, default=0) < 0:
        raise _unsupported(node, f"output_padding {extra} (Keras's must be below the stride {strides})")
    full = [None if n is None else (n - 1) * s + (k - 1) * d + 1 + p
            for n, s, k, d, p in zip(spatial, strides, kernel, dilations, extra)]
    auto, flat = attrs.get("auto_pad", "NOTSET"), list(attrs.get("pads", [0] * 2 * rank))
    if "output_shape" in attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        if None in full:
            raise _unsupported(node, "output_shape or auto_pad with unknown spatial sizes")
        target = list(attrs["output_shape"])[-rank:] if "output_shape" in attrs else \
            [n * s for n, s in zip(spatial, strides)]
        totals = [f - t for f, t in zip(full, target)]
        for i, t in enumerate(totals):  # a larger output_shape adds cells at the end, as output_padding
            if t < 0:
                if extra[i] - t >= strides[i]:
                    raise _unsupported(node, f"output_shape {target} larger than the full output {full} by a stride "
                                             "or more")
                extra[i], totals[i] = extra[i] - t, 0
        upper = auto != "SAME_LOWER"  # SAME_UPPER: the odd cell cropped at the end
        flat = [t - t // 2 if not upper else t // 2 for t in totals] + [t // 2 if not upper else t - t // 2
                                                                        for t in totals]
    elif auto == "VALID":
        flat = [0] * 2 * rank
    pads = [(flat[i], flat[i + rank]) for i in range(rank)]
    if min(flat) < 0:
        raise _unsupported(node, f"negative pads {flat}")
    cls = b.L.Conv1DTranspose if rank == 1 else b.L.Conv2DTranspose
    scale, shift, activation, out_name = _epilogue(b, node.output[0], v.rank, batch_norm=False)
    layer = cls(w.shape[1], tuple(kernel), strides=tuple(strides), padding="valid", output_padding=tuple(extra),
                dilation_rate=tuple(dilations), activation=activation if not any(flat) else None,
                use_bias=bias is not None)
    y = _build_layer(layer, x, [np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))] + ([bias] if bias is not None
                                                                                     else []))
    if any(flat):
        y = (b.L.Cropping1D(pads[0]) if rank == 1 else b.L.Cropping2D(tuple(pads)))(y)
        if activation is not None:
            y = b.L.Activation(activation)(y)
    b.values[out_name] = _Sym(y, perm)


def _pool(b, node, attrs):
    v = b.sym(node.input[0], node)
    x, perm, rank, spatial = _spatial_input(b, node, v)
    if any(d != 1 for d in attrs.get("dilations", [1] * rank)) or len(node.output) > 1:
        raise _unsupported(node, "dilations or an Indices output")
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs.get("strides", [1] * rank))
    pads, is_same = _pads(attrs, spatial, kernel, strides, [1] * rank, node)
    is_max = node.op_type == "MaxPool"
    padding = "valid"
    if attrs.get("ceil_mode", 0) and _ceil_pads(node, spatial, kernel, strides, pads) != pads:
        # the last window overhangs the end: Keras's "same" when its pads are exactly those
        ceil = _ceil_pads(node, spatial, kernel, strides, pads)
        same = [(t // 2, t - t // 2) for t in (max((-(-n // s) - 1) * s + k - n, 0)
                                              for n, k, s in zip(spatial, kernel, strides))]
        if ceil != same or (not is_max and attrs.get("count_include_pad", 0)):
            raise _unsupported(node, f"ceil_mode=1 with pads {pads} (the windows overhang by {ceil}, which is "
                                     "not Keras's 'same'" + ("" if is_max else ", or count_include_pad=1") + ")")
        pads, is_same = same, False
        padding = "same"
    elif is_same:
        if not is_max and attrs.get("count_include_pad", 0):
            x = _zero_pad(b, x, pads, rank)
        else:
            padding = "same"
    elif any(p != (0, 0) for p in pads):
        if is_max or not attrs.get("count_include_pad", 0):
            raise _unsupported(node, f"pads {pads} other than Keras's 'same'")
        x = _zero_pad(b, x, pads, rank)
    name = ("MaxPooling" if is_max else "AveragePooling") + f"{rank}D"
    layer = getattr(b.L, name)(pool_size=tuple(kernel), strides=tuple(strides), padding=padding)
    b.set(node, _Sym(layer(x), perm))


def _ceil_pads(node, spatial, kernel, strides, pads):
    """The (begin, end) pads ceil_mode=1 amounts to: the end pad grown so the last window, which
    must start inside the input or its begin pad, fits."""
    out = []
    for n, k, s, (begin, end) in zip(spatial, kernel, strides, pads):
        if n is None:
            raise _unsupported(node, "ceil_mode=1 with unknown spatial sizes")
        count = -(-(n + begin + end - k) // s) + 1
        if (count - 1) * s >= n + begin:
            count -= 1
        out.append((begin, max(end, (count - 1) * s + k - n - begin)))
    return out


def _global_pool(b, node, attrs):
    v = b.sym(node.input[0], node)
    x, perm, rank, _ = _spatial_input(b, node, v)
    name = ("GlobalMaxPooling" if node.op_type == "GlobalMaxPool" else "GlobalAveragePooling") + f"{rank}D"
    b.set(node, _Sym(getattr(b.L, name)(keepdims=True)(x), perm))


def _reduce_pool(b, node, attrs):
    """ReduceMean/ReduceMax over every axis but the batch and one channel axis: global pooling."""
    v = b.sym(node.input[0], node)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(a) for a in b.const(node.input[1], node)]
    rest = [a for a in range(v.rank) if a not in {x % v.rank for x in axes or []}]
    if axes is None or len(rest) != 2 or rest[0] != v.perm[0] or v.rank - 2 not in (1, 2):
        raise _unsupported(node, f"axes {axes}: only global pooling (all axes but batch and channels) is imported")
    perm = [rest[0]] + [a for a in range(v.rank) if a not in rest] + [rest[1]]
    keep = bool(attrs.get("keepdims", 1))
    name = ("GlobalMaxPooling" if node.op_type == "ReduceMax" else "GlobalAveragePooling") + f"{v.rank - 2}D"
    y = getattr(b.L, name)(keepdims=keep)(b.held(v, perm))
    b.set(node, _Sym(y, perm if keep else [0, 1]))


def _sum(b, node, attrs):
    if _all_const(b, node):
        return b.set(node, np.sum([b.values[n] for n in node.input], axis=0))
    syms = [b.sym(n, node) for n in node.input]
    if len(syms) == 1:
        return b.set(node, syms[0])
    b.set(node, _Sym(b.L.Add()([b.held(s, syms[0].perm) for s in syms]), syms[0].perm))


def _batch_norm(b, node, attrs):
    v = b.sym(node.input[0], node)
    if v.rank >= 3:
        perm = _to_last(v.rank)
        x = b.held(v, perm)
    else:
        perm, x = v.perm, v.t
    gamma, beta, mean, var = (b.const(n, node).astype(np.float32) for n in node.input[1:5])
    layer = b.L.BatchNormalization(axis=-1, epsilon=float(attrs.get("epsilon", 1e-5)),
                                   momentum=float(attrs.get("momentum", 0.9)))
    b.set(node, _Sym(_build_layer(layer, x, [gamma, beta, mean, var]), perm))


# ---- shapes ------------------------------------------------------------------------------------------
def _reshape_to(b, v, onnx_shape):
    """``v`` reshaped (in ONNX's axis order) to ``onnx_shape`` (batch first, other dims known or -1)."""
    x = b.held(v, _identity(v.rank))
    if None in onnx_shape[1:]:
        raise ValueError(f"ONNX import: a Reshape to {list(onnx_shape)} copies an axis of unknown size (None) of a "
                         "tensor held with its batch axis first")
    target = tuple(int(d) for d in onnx_shape[1:])
    if tuple(x.shape[1:]) == target:
        return _Sym(x, _identity(len(onnx_shape)))
    return _Sym(b.L.Reshape(target)(x), _identity(len(onnx_shape)))


def _flatten(b, node, attrs):
    if _all_const(b, node):
        a = b.values[node.input[0]]
        axis = attrs.get("axis", 1)
        return b.set(node, a.reshape(int(np.prod(a.shape[:axis])), -1))
    v = b.sym(node.input[0], node)
    if attrs.get("axis", 1) != 1:
        raise _unsupported(node, f"axis={attrs.get('axis')} (the batch axis must stay axis 0)")
    b.set(node, _flattened(b, node, v))


def _flattened(b, node, v):
    """``v`` flattened to (batch, features). Flattening NHWC-held features for a Gemm/MatMul
    that reads only them skips the Permute back to NCHW: the features stay in held order and
    ``b.row_order`` tells the Dense to permute its weight rows instead (once, at import)."""
    users = b.consumers.get(node.output[0], [])
    held_sample = list(v.t.shape[1:])
    if (v.perm != _identity(v.rank) and v.perm[0] == 0 and None not in held_sample
            and b.only_consumer(node.output[0]) is not None and users[0].op_type in ("Gemm", "MatMul")
            and users[0].input[0] == node.output[0] and not _attrs(users[0]).get("transA", 0)
            and isinstance(b.values.get(users[0].input[1]), np.ndarray)):
        onnx_sample = v.onnx_shape()[1:]
        index = np.arange(int(np.prod(onnx_sample))).reshape(onnx_sample)
        b.row_order[node.output[0]] = np.transpose(index, [a - 1 for a in v.perm[1:]]).reshape(-1)
        return _Sym(b.L.Flatten()(v.t), [0, 1])
    return _Sym(b.L.Flatten()(b.held(v, _identity(v.rank))), [0, 1])


def _reshape(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    v = b.sym(node.input[0], node, merged=True)
    shape = [int(d) for d in b.const(node.input[1], node)]
    allowzero = bool(attrs.get("allowzero", 0))
    if _reshape_merges_batch(v, shape, allowzero):
        return b.set(node, onnx_layout.reshape(b, node, v, shape, allowzero))
    shape = [0 if onnx_layout.is_batch(d) else d for d in shape]  # the batch kept in place
    onnx_shape = v.onnx_shape()
    if v.perm[0] != 0:
        return b.set(node, _reshape_around_batch(b, node, v, shape))
    if shape[0] not in (0, -1) and -1 not in shape[1:]:
        pass  # a concrete batch size baked in by the exporter: the rest fixes the sample shape
    elif shape[0] not in (0, -1):
        raise _unsupported(node, f"shape {shape}: the batch axis must be kept (0 or -1 first)")
    resolved = [onnx_shape[i] if d == 0 and i < len(onnx_shape) else d for i, d in enumerate(shape)]
    if len(resolved) == 2 and v.rank > 2 and None not in onnx_shape[1:] and (
            resolved[1] == -1 or resolved[1] == int(np.prod(onnx_shape[1:]))):
        return b.set(node, _flattened(b, node, v))  # x.view(batch, -1)
    b.set(node, _reshape_to(b, v, [None] + resolved[1:]))


def _reshape_merges_batch(v, shape, allowzero):
    """Whether Reshape to ``shape`` merges or splits the batch axis (or its input has it merged):
    ``onnx_layout.reshape`` builds those (it needs the other sizes known); the rest keep the
    batch axis where it is."""
    if isinstance(v, _Merged):
        return True
    k, sizes = v.perm[0], v.onnx_shape()
    if len(shape) <= k or any(onnx_layout.is_batch(d) for i, d in enumerate(shape) if i != k):
        return True
    if onnx_layout.is_batch(shape[k]):
        return shape[k] != BATCH
    if shape[k] != -1 or -1 in shape[k + 1:] + shape[:k] or None in sizes[:k] + sizes[k + 1:]:
        return False
    rest = [sizes[i] if d == 0 and not allowzero and i < len(sizes) else d for i, d in enumerate(shape) if i != k]
    return int(np.prod(rest)) != int(np.prod(sizes[:k] + sizes[k + 1:]))  # the -1 takes in more than the batch


def _reshape_around_batch(b, node, v, shape):
    """Reshape of a value whose batch axis is ONNX axis ``k`` > 0 (a time-first RNN's output):
    the axes before it must be kept as they are, and the batch axis too (0, or -1 with every
    other size given); the axes after it are reshaped."""
    k, onnx_shape = v.perm[0], v.onnx_shape()
    resolved = [onnx_shape[i] if d == 0 and i < len(onnx_shape) else d for i, d in enumerate(shape)]
    keeps_batch = len(shape) > k and (shape[k] == 0 or (shape[k] == -1 and shape.count(-1) == 1))
    if not keeps_batch or None in onnx_shape[:k] or resolved[:k] != onnx_shape[:k]:
        raise _unsupported(node, f"shape {shape} on a tensor of shape {onnx_shape} whose batch axis is {k}: the "
                                 "batch axis and the axes before it must be kept")
    order = [k] + [a for a in range(v.rank) if a != k]
    x = b.held(v, order)
    target = tuple(int(d) for i, d in enumerate(resolved) if i != k)
    y = x if tuple(x.shape[1:]) == target else b.L.Reshape(target)(x)
    return _Sym(y, [k] + [a for a in range(len(resolved)) if a != k])


def _transpose(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    v = b.sym(node.input[0], node, merged=True)
    p = list(attrs.get("perm", reversed(range(v.rank))))
    b.set(node, onnx_layout.transpose(v, p))


def _squeeze_unsqueeze(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    v = b.sym(node.input[0], node)
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = [int(a) for a in b.const(node.input[1], node)]
    shape = v.onnx_shape()
    if node.op_type == "Squeeze":
        axes = [a % v.rank for a in (axes if axes is not None else [i for i, d in enumerate(shape) if d == 1])]
        if v.perm[0] in axes:
            raise _unsupported(node, "squeezing the batch axis")
        return _drop_unit_axes(b, node, v, axes)
    out_rank = v.rank + len(axes)
    axes = sorted(a % out_rank for a in axes)
    old = [a for a in range(out_rank) if a not in axes]
    perm = [old[a] for a in v.perm] + axes
    _set_reshaped(b, node, v, list(v.t.shape) + [1] * len(axes), perm)


def _drop_unit_axes(b, node, v, axes):
    """``v`` without the unit ONNX ``axes`` (the other axes keep their held order)."""
    keep = [a for a in v.perm if a not in axes]
    renumber = {a: i for i, a in enumerate(sorted(keep))}
    held_shape = [v.t.shape[i] for i, a in enumerate(v.perm) if a not in axes]
    perm = [renumber[a] for a in keep]
    _set_reshaped(b, node, v, held_shape, perm)


def _set_reshaped(b, node, v, held_shape, perm):
    if list(v.t.shape[1:]) == list(held_shape[1:]):
        b.set(node, _Sym(v.t, perm))
    else:
        b.set(node, _Sym(b.L.Reshape(tuple(held_shape[1:]))(v.t), perm))


def _concat(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    syms = [b.values[n] for n in node.input]
    if not all(isinstance(s, _Sym) for s in syms):
        raise _unsupported(node, "a constant concatenated with a tensor")
    perm = syms[0].perm
    axis = attrs["axis"] % syms[0].rank
    layer = b.L.Concatenate(axis=perm.index(axis))
    b.set(node, _Sym(layer([b.held(s, perm) for s in syms]), perm))


def _gather(b, node, attrs):
    if _all_const(b, node):
        return _fold(b, node, attrs)
    data = b.values[node.input[0]]
    index = b.values.get(node.input[1])
    if isinstance(data, np.ndarray):
        return onnx_layout.gather_constant(b, node, data, b.sym(node.input[1], node), attrs.get("axis", 0))
    data = b.sym(node.input[0], node)
    axis = attrs.get("axis", 0) % data.rank
    if not isinstance(index, np.ndarray):
        raise _unsupported(node, "indices computed from the model's inputs into a computed tensor (the output "
                                 "would have two batch axes; constant indices and embedding lookups are imported)")
    if index.ndim == 0 and data.onnx_shape()[axis] == 1 and int(index) in (0, -1) and data.perm[0] != axis:
        return _drop_unit_axes(b, node, data, [axis])  # picking the only entry of a unit axis
    onnx_layout.gather_tensor(b, node, data, index, axis)


HANDLERS = {
    "Constant": _constant, "ConstantOfShape": _constant_of_shape, "Shape": _shape, "Cast": _fold, "Neg": _fold, "Sqrt": _fold, "Slice": _fold, "Mod": _fold,
    "ConvTranspose": _conv_transpose, **_TRANSFORMER,
    "Identity": _passthrough, "Dropout": _dropout,
    "Add": _binary, "Sub": _binary, "Mul": _binary, "Div": _binary,
    "Relu": _activation("relu"), "Sigmoid": _activation("sigmoid"), "Tanh": _activation("tanh"),
    "LeakyRelu": _activation("leaky_relu"), "Elu": _activation("elu"),
    "Softmax": _softmax, "LogSoftmax": _softmax,
    "Sum": _sum, "ReduceMean": _reduce_pool, "ReduceMax": _reduce_pool, "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv, "MaxPool": _pool, "AveragePool": _pool,
    "GlobalAveragePool": _global_pool, "GlobalMaxPool": _global_pool, "BatchNormalization": _batch_norm,
    "Flatten": _flatten, "Reshape": _reshape, "Transpose": _transpose, "Squeeze": _squeeze_unsqueeze,
    "Unsqueeze": _squeeze_unsqueeze, "Concat": _concat, "Gather": _gather, **_RECURRENT,
}
