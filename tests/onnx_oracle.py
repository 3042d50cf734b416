"""The ONNX backend node test cases as an external oracle for dlcore's layers.

ONNX ships, for every operator, small cases (a one-node model, inputs, expected outputs) computed
by its reference implementation. This module loads the cases of the operators dlcore's image
layers cover, maps each case's attributes onto Keras-style layers (NCHW data transposed to NHWC,
conv weights OIHW -> HWIO), runs the layers and compares. A case whose attributes have no Keras
meaning (ceil_mode, dilated pooling, SAME_LOWER padding that differs from Keras's "same", ...) is
out of scope, with the reason.

Cases come from ``onnx/backend/test/data/node/<case>/`` when the installed onnx ships them, else
from the generators in ``onnx.backend.test.case.node`` (the same cases, built in memory).

    python tests/onnx_oracle.py        # prints the table: case, operator, ran / out of scope, why

``plan(case)`` returns a function of the case's inputs that runs dlcore and returns the outputs,
or raises OutOfScope; ``run(case)`` also compares with the expected outputs.
"""
import dataclasses
import importlib
import json
import os
import tempfile
import warnings

import numpy as np

PREFIXES = ("test_maxpool", "test_averagepool", "test_globalaveragepool", "test_globalmaxpool", "test_batchnorm",
            "test_constant_pad", "test_reflect_pad", "test_edge_pad", "test_wrap_pad", "test_basic_conv", "test_conv",
            "test_convtranspose", "test_upsample", "test_resize", "test_layer_normalization", "test_gelu",
            "test_einsum", "test_tril", "test_triu")
# onnx.backend.test.case.node modules that generate those cases
CASE_MODULES = ("maxpool", "averagepool", "globalaveragepool", "globalmaxpool", "batch_normalization", "pad", "conv",
                "convinteger", "convtranspose", "upsample", "resize", "layernormalization", "gelu", "einsum", "trilu")
# ONNX's own tolerances for node cases (onnx.backend.test.case.node.expect): some expected
# outputs are written to 4 decimals in the case generators.
RTOL, ATOL = 1e-3, 1e-7


class OutOfScope(Exception):
    """The case's attributes have no meaning in Keras's layers (the message says which)."""


@dataclasses.dataclass
class Case:
    name: str
    op_type: str
    attrs: dict
    inputs: list  # one entry per node input; None for an omitted optional input
    outputs: list
    source: str


# ---- loading ------------------------------------------------------------------------------------
def _attrs(node):
    from onnx import TensorProto, helper, numpy_helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, TensorProto):  # a Constant node's value (expanded function bodies)
            v = numpy_helper.to_array(v).tolist()
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _wanted(name):
    return name.startswith(PREFIXES)


def data_dir():
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")


def _from_data_dir(root):
    import onnx
    from onnx import numpy_helper

    cases = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not _wanted(name) or not os.path.isfile(os.path.join(path, "model.onnx")):
            continue
        model = onnx.load(os.path.join(path, "model.onnx"))
        node = model.graph.node[0]
        data = os.path.join(path, "test_data_set_0")

        def read(prefix):
            files = sorted((f for f in os.listdir(data) if f.startswith(prefix)),
                           key=lambda f: int(f[len(prefix):-3]))
            arrays = []
            for f in files:
                tensor = onnx.TensorProto()
                with open(os.path.join(data, f), "rb") as fh:
                    tensor.ParseFromString(fh.read())
                arrays.append(numpy_helper.to_array(tensor))
            return arrays

        cases.append(_case(name, node, read("input_"), read("output_"), "onnx data dir"))
    return cases


def _from_generators():
    import onnx.backend.test.case.node as node_pkg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for module in CASE_MODULES:
            importlib.import_module(f"{node_pkg.__name__}.{module}")
    cases, seen = [], set()
    for tc in node_pkg._NodeTestCases:
        if not _wanted(tc.name) or tc.name in seen:
            continue
        seen.add(tc.name)
        inputs, outputs = tc.data_sets[0]
        cases.append(_case(tc.name, tc.model.graph.node[0], list(inputs), list(outputs), "onnx.backend.test.case"))
    return cases


def _case(name, node, present_inputs, outputs, source):
    it = iter(present_inputs)
    inputs = [None if n == "" else np.asarray(next(it)) for n in node.input]
    return Case(name, node.op_type, _attrs(node), inputs, [np.asarray(o) for o in outputs], source)


def load_cases(root=None, cache=True):
    """The cases of PREFIXES, sorted by name: from ``root`` (or onnx's data dir) if it exists,
    else built in memory from onnx's case generators. The generators run ONNX's reference
    implementation (seconds, for the 3-D pooling cases), so their cases are cached in the temp
    directory per onnx version (NumPy arrays + JSON, no pickle)."""
    root = data_dir() if root is None else root
    if os.path.isdir(root):
        return sorted(_from_data_dir(root), key=lambda c: c.name)
    path = _cache_path()
    if cache and os.path.exists(path):
        try:
            return _read_cache(path)
        except (OSError, ValueError, KeyError):
            pass
    cases = sorted(_from_generators(), key=lambda c: c.name)
    if cache:
        _write_cache(path, cases)
    return cases


def _cache_path():
    import onnx

    return os.path.join(tempfile.gettempdir(), f"dlcore-onnx-node-cases-{onnx.__version__}-{len(PREFIXES)}.npz")


def _write_cache(path, cases):
    arrays, meta = {}, []
    for i, c in enumerate(cases):
        for j, a in enumerate(c.inputs):
            if a is not None:
                arrays[f"c{i}_in{j}"] = a
        for j, a in enumerate(c.outputs):
            arrays[f"c{i}_out{j}"] = a
        meta.append({"name": c.name, "op_type": c.op_type, "attrs": c.attrs, "source": c.source,
                     "inputs": [a is not None for a in c.inputs], "n_outputs": len(c.outputs)})
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_cache(path):
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        return [Case(m["name"], m["op_type"], m["attrs"],
                     [data[f"c{i}_in{j}"] if present else None for j, present in enumerate(m["inputs"])],
                     [data[f"c{i}_out{j}"] for j in range(m["n_outputs"])], m["source"])
                for i, m in enumerate(meta)]


# ---- layouts -----------------------------------------------------------------------------------
def to_channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


def to_channels_first(x):
    return np.moveaxis(np.asarray(x), -1, 1)


def _dl():
    import dlcore as dl

    return dl


def _layer(name):
    dl = _dl()
    if not hasattr(dl.layers, name):
        raise OutOfScope(f"dlcore.layers.{name} is not available yet")
    return getattr(dl.layers, name)


def _call(layers, x, weights=None, training=False):
    """Apply ``layers`` in order to the NHWC array ``x``; ``weights`` {index: list} set after build."""
    dl = _dl()
    t = dl.Tensor(np.asarray(x, dtype=np.float32))
    for i, layer in enumerate(layers):
        if weights and i in weights:
            layer.build(tuple(t.shape))
            layer.built = True
            layer.set_weights(weights[i])
        t = layer(t, training=training)
    return t.value


def _float_input(case, x):
    if x.dtype.kind != "f":
        case.note = f"{x.dtype} input cast to float32 (Keras layers compute in floats)"
    return x


def _spatial_rank(case, x, what):
    rank = x.ndim - 2
    if rank not in (1, 2):
        raise OutOfScope(f"{rank}-D {what} (dlcore has 1-D and 2-D image layers)")
    return rank


# ---- pooling -----------------------------------------------------------------------------------
def _keras_same_pads(size, k, s):
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def _explicit_pads(case, spatial, kernel, strides):
    """ONNX pads as [(begin, end)] per spatial axis, from ``pads`` or ``auto_pad``."""
    auto = case.attrs.get("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = []
        for n, k, s in zip(spatial, kernel, strides):
            lo, hi = _keras_same_pads(n, k, s)
            pads.append((lo, hi) if auto == "SAME_UPPER" else (hi, lo))
        return pads, auto
    if auto == "VALID":
        return [(0, 0)] * len(spatial), auto
    flat = list(case.attrs.get("pads", [0] * 2 * len(spatial)))
    r = len(spatial)
    return [(flat[i], flat[i + r]) for i in range(r)], auto


def _pool_plan(case):
    x = case.inputs[0]
    mode = "max" if case.op_type == "MaxPool" else "average"
    rank = _spatial_rank(case, x, "pooling")
    if len(case.outputs) > 1:
        raise OutOfScope("Indices output (MaxPool with argmax): Keras pooling layers return values only")
    if any(d != 1 for d in case.attrs.get("dilations", [1] * rank)):
        raise OutOfScope("dilations in pooling (Keras pooling has no dilation)")
    kernel = list(case.attrs["kernel_shape"])
    strides = list(case.attrs.get("strides", [1] * rank))
    spatial = x.shape[2:]
    pads, auto = _explicit_pads(case, spatial, kernel, strides)
    expected = case.outputs[0].shape[2:]
    floor_out = [(n + lo + hi - k) // s + 1 for n, (lo, hi), k, s in zip(spatial, pads, kernel, strides)]
    if list(expected) != floor_out:
        raise OutOfScope("ceil_mode=1 changes the output size (Keras rounds pooled sizes down)")
    same = [_keras_same_pads(n, k, s) for n, k, s in zip(spatial, kernel, strides)]
    include_pad = case.attrs.get("count_include_pad", 0) == 1
    layers = []
    if all(p == (0, 0) for p in pads):
        padding = "valid"
    elif mode == "average" and include_pad:
        # padded cells counted as zeros: exactly ZeroPadding + valid pooling
        if rank != 2:
            raise OutOfScope("count_include_pad=1 on 1-D input (no ZeroPadding1D in dlcore)")
        layers.append(_layer("ZeroPadding2D")(padding=tuple(pads)))
        padding = "valid"
    elif pads == same:
        padding = "same"
    elif auto == "SAME_LOWER":
        raise OutOfScope("auto_pad=SAME_LOWER with an odd total pad (Keras 'same' puts the extra cell last)")
    else:
        raise OutOfScope(f"explicit pads {case.attrs.get('pads')} other than Keras 'same' "
                         f"({'max pooling pads with -inf' if mode == 'max' else 'count_include_pad=0'})")
    name = ("MaxPooling" if mode == "max" else "AveragePooling") + f"{rank}D"
    layers.append(_layer(name)(pool_size=tuple(kernel), strides=tuple(strides), padding=padding))
    desc = " + ".join(type(l).__name__ for l in layers) + f"(padding={padding!r})"
    return desc, lambda ins: [to_channels_first(_call(layers, to_channels_last(_float_input(case, ins[0]))))]


def _global_pool_plan(case):
    x = case.inputs[0]
    rank = _spatial_rank(case, x, "global pooling")
    name = ("GlobalMaxPooling" if case.op_type == "GlobalMaxPool" else "GlobalAveragePooling") + f"{rank}D"
    layer = _layer(name)(keepdims=True)
    return f"{name}(keepdims=True)", lambda ins: [to_channels_first(_call([layer], to_channels_last(ins[0])))]


# ---- batch normalization -----------------------------------------------------------------------
def _batchnorm_plan(case):
    eps = case.attrs.get("epsilon", 1e-5)
    momentum = case.attrs.get("momentum", 0.9)
    training = bool(case.attrs.get("training_mode", 0))
    layer = _layer("BatchNormalization")(axis=-1, epsilon=eps, momentum=momentum)

    def run(ins):
        x, scale, bias, mean, var = ins
        y = _call([layer], to_channels_last(x), weights={0: [scale, bias, mean, var]}, training=training)
        out = [to_channels_first(y)]
        if training:
            out += [layer.moving_mean.value, layer.moving_variance.value]
        return out

    return f"BatchNormalization(epsilon={eps:g}, momentum={momentum:g}), training={training}", run


# ---- padding -----------------------------------------------------------------------------------
def _pad_plan(case):
    x, pads = case.inputs[0], case.inputs[1]
    mode = case.attrs.get("mode", "constant")
    if mode not in ("constant", "reflect"):
        raise OutOfScope(f"mode={mode!r} has no Keras layer (ZeroPadding2D pads with zeros, dlcore's "
                         "ReflectionPadding2D mirrors)")
    value = case.inputs[2] if len(case.inputs) > 2 and case.inputs[2] is not None else 0
    if mode == "constant" and float(value) != 0:
        raise OutOfScope(f"constant_value={float(value):g} (ZeroPadding2D pads with zeros)")
    axes = list(range(x.ndim)) if len(case.inputs) < 4 or case.inputs[3] is None else \
        [a % x.ndim for a in case.inputs[3]]
    full = [[0, 0] for _ in range(x.ndim)]
    for i, a in enumerate(axes):
        full[a] = [int(pads[i]), int(pads[i + len(axes)])]
    if x.ndim != 4 or full[0] != [0, 0] or full[1] != [0, 0]:
        raise OutOfScope("padding of the batch or channel axis (the 2-D padding layers pad height and width)")
    if any(v < 0 for p in full for v in p):
        raise OutOfScope("negative pads (cropping) in Pad")
    padding = (tuple(full[2]), tuple(full[3]))
    layer = _layer("ZeroPadding2D" if mode == "constant" else "ReflectionPadding2D")(padding=padding)
    return f"{type(layer).__name__}({padding})", \
        lambda ins: [to_channels_first(_call([layer], to_channels_last(_float_input(case, ins[0]))))]


# ---- convolution -------------------------------------------------------------------------------
def _conv_plan(case):
    if case.op_type != "Conv":
        raise OutOfScope(f"{case.op_type}: integer/quantized convolution has no Keras layer")
    x, w = case.inputs[0], case.inputs[1]
    b = case.inputs[2] if len(case.inputs) > 2 else None
    rank = _spatial_rank(case, x, "convolution")
    kernel = list(case.attrs.get("kernel_shape", w.shape[2:]))
    strides = list(case.attrs.get("strides", [1] * rank))
    dilations = list(case.attrs.get("dilations", [1] * rank))
    group = case.attrs.get("group", 1)
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    pads, auto = _explicit_pads(case, x.shape[2:], eff, strides)
    same = [_keras_same_pads(n, k, s) for n, k, s in zip(x.shape[2:], eff, strides)]
    layers = []
    if all(p == (0, 0) for p in pads):
        padding = "valid"
    elif pads == same:
        padding = "same"
    else:  # any other padding: explicit zero padding, then a valid convolution (as in Keras models)
        if rank != 2:
            raise OutOfScope("asymmetric padding of a 1-D convolution (no ZeroPadding1D in dlcore)")
        layers.append(_layer("ZeroPadding2D")(padding=tuple(pads)))
        padding = "valid"
    conv_name = f"Conv{rank}D"
    kwargs = dict(filters=w.shape[0], kernel_size=tuple(kernel), strides=tuple(strides), padding=padding,
                  dilation_rate=tuple(dilations), use_bias=b is not None)
    if group != 1:
        kwargs["groups"] = group
    try:
        conv = _layer(conv_name)(**kwargs)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise OutOfScope(f"{conv_name} does not take {kwargs}: {exc}") from None
    layers.append(conv)
    weights = [np.transpose(w, tuple(range(2, w.ndim)) + (1, 0))] + ([b] if b is not None else [])
    desc = " + ".join(type(l).__name__ for l in layers) + f"(padding={padding!r})"
    return desc, lambda ins: [to_channels_first(_call(layers, to_channels_last(ins[0]),
                                                      weights={len(layers) - 1: weights}))]


def _conv_transpose_plan(case):
    x, w = case.inputs[0], case.inputs[1]
    b = case.inputs[2] if len(case.inputs) > 2 else None
    rank = _spatial_rank(case, x, "transposed convolution")
    if case.attrs.get("group", 1) != 1:
        raise OutOfScope("group > 1 (Keras's Conv2DTranspose has no groups)")
    kernel = list(case.attrs.get("kernel_shape", w.shape[2:]))
    strides = list(case.attrs.get("strides", [1] * rank))
    dilations = list(case.attrs.get("dilations", [1] * rank))
    out_pad = list(case.attrs.get("output_padding", [0] * rank))
    spatial = list(x.shape[2:])
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    full = [(n - 1) * s + e + op for n, s, e, op in zip(spatial, strides, eff, out_pad)]
    auto = case.attrs.get("auto_pad", "NOTSET")
    if "output_shape" in case.attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        target = list(case.attrs["output_shape"]) if "output_shape" in case.attrs else \
            [n * s for n, s in zip(spatial, strides)]
        crops = []
        for i, (f, t) in enumerate(zip(full, target)):
            total = f - t
            if total < 0:  # a larger output: trailing rows, as output_padding gives
                if -total >= strides[i]:
                    raise OutOfScope(f"output_shape {target} exceeds the full output by a stride or more")
                out_pad[i] -= total
                full[i] = t
                total = 0
            lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
            crops.append((lo, total - lo))
    else:
        flat = list(case.attrs.get("pads", [0] * 2 * rank))
        crops = [(flat[i], flat[i + rank]) for i in range(rank)]
    # Conv2DTranspose(valid) gives the full output (k_eff >= stride) or a longer one with trailing
    # zero-input rows; both are then cropped to ONNX's output by Cropping2D.
    op_arg = tuple(out_pad) if any(out_pad) else None
    keras_len = [(n - 1) * s + e + op if op_arg else n * s + max(e - s, 0)
                 for n, s, e, op in zip(spatial, strides, eff, out_pad)]
    crops = [(lo, hi + kl - f) for (lo, hi), kl, f in zip(crops, keras_len, full)]
    if rank == 1:  # a unit height axis: (N, L, C) -> (N, 1, L, C)
        kernel, strides, dilations, crops = [1] + kernel, [1] + strides, [1] + dilations, [(0, 0)] + crops
        op_arg = None if op_arg is None else (0,) + op_arg
    kwargs = dict(filters=w.shape[1], kernel_size=tuple(kernel), strides=tuple(strides), padding="valid",
                  dilation_rate=tuple(dilations), use_bias=b is not None)
    if op_arg is not None:
        kwargs["output_padding"] = op_arg
    try:
        deconv = _layer("Conv2DTranspose")(**kwargs)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise OutOfScope(f"Conv2DTranspose does not take {kwargs}: {exc}") from None
    layers = [deconv]
    if any(c != (0, 0) for c in crops):
        layers.append(_layer("Cropping2D")(cropping=tuple(crops)))
    kernel_w = w if rank == 2 else w[:, :, None, :]
    weights = [np.transpose(kernel_w, (2, 3, 1, 0))] + ([b] if b is not None else [])

    def run(ins):
        xl = to_channels_last(ins[0])
        if rank == 1:
            xl = xl[:, None]
        y = _call(layers, xl, weights={0: weights})
        return [to_channels_first(y[:, 0] if rank == 1 else y)]

    desc = " + ".join(type(l).__name__ for l in layers) + ("" if rank == 2 else " (1-D as a unit height axis)")
    return desc, run


# ---- resizing ----------------------------------------------------------------------------------
def _onnx_nearest_index(n_in, scale, n_out, coord, nearest):
    """Source index of each output position along one axis (ONNX Resize, mode=nearest)."""
    i = np.arange(n_out, dtype=np.float64)
    if coord == "half_pixel":
        src = (i + 0.5) / scale - 0.5
    elif coord == "pytorch_half_pixel":
        src = (i + 0.5) / scale - 0.5 if n_out > 1 else np.zeros_like(i)
    elif coord == "asymmetric":
        src = i / scale
    elif coord == "align_corners":
        src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else np.zeros_like(i)
    elif coord == "tf_half_pixel_for_nn":
        src = (i + 0.5) / scale
    else:
        return None
    if nearest == "round_prefer_floor":
        idx = np.where(src - np.floor(src) == 0.5, np.floor(src), np.round(src))
    elif nearest == "round_prefer_ceil":
        idx = np.where(src - np.floor(src) == 0.5, np.ceil(src), np.round(src))
    elif nearest == "floor":
        idx = np.floor(src)
    else:
        idx = np.ceil(src)
    return np.clip(idx, 0, n_in - 1).astype(np.int64)


def _resize_plan(case):
    x = case.inputs[0]
    if x.ndim != 4:
        raise OutOfScope(f"{x.ndim}-D resize (UpSampling2D takes images)")
    out_shape = case.outputs[0].shape
    if out_shape[:2] != x.shape[:2]:
        raise OutOfScope("resizing the batch or channel axis")
    mode = case.attrs.get("mode", "nearest")
    if case.op_type == "Upsample":  # the deprecated operator: output i reads input floor(i / scale)
        coord, nearest = "asymmetric", "floor"
    else:
        coord = case.attrs.get("coordinate_transformation_mode", "half_pixel")
        nearest = case.attrs.get("nearest_mode", "round_prefer_floor")
    if coord == "tf_crop_and_resize":
        raise OutOfScope("coordinate_transformation_mode='tf_crop_and_resize' (resizes a region of interest)")
    if mode not in ("nearest", "linear"):
        raise OutOfScope(f"mode={mode!r} (UpSampling2D has nearest and bilinear)")
    sizes = []
    for n_in, n_out in zip(x.shape[2:], out_shape[2:]):
        if n_out < n_in:
            raise OutOfScope("downsampling (UpSampling2D only enlarges)")
        if n_out % n_in:
            raise OutOfScope(f"non-integer scale {n_out}/{n_in} (UpSampling2D repeats by integer factors)")
        sizes.append(n_out // n_in)
    if case.attrs.get("antialias", 0):
        raise OutOfScope("antialias=1")
    if mode == "nearest":
        for n_in, s in zip(x.shape[2:], sizes):
            idx = _onnx_nearest_index(n_in, float(s), n_in * s, coord, nearest)
            if idx is None or not np.array_equal(idx, np.arange(n_in * s) // s):
                raise OutOfScope(f"nearest with coordinate_transformation_mode={coord!r}, nearest_mode={nearest!r} "
                                 "does not repeat pixels as UpSampling2D does")
        interpolation = "nearest"
    elif mode == "linear":
        if coord not in ("half_pixel", "pytorch_half_pixel"):
            raise OutOfScope(f"linear with coordinate_transformation_mode={coord!r} (Keras's bilinear upsampling "
                             "uses half-pixel centers)")
        interpolation = "bilinear"
    layer = _layer("UpSampling2D")(size=tuple(sizes), interpolation=interpolation)
    return f"UpSampling2D(size={tuple(sizes)}, interpolation={interpolation!r})", \
        lambda ins: [to_channels_first(_call([layer], to_channels_last(ins[0])))]


# ---- layer normalization, gelu, einsum, trilu (issue 12) ------------------------------------------------
def _layer_norm_plan(case):
    x, scale, bias = (case.inputs + [None] * 3)[:3]
    rank = x.ndim
    axis = case.attrs.get("axis", -1) % rank
    eps = case.attrs.get("epsilon", 1e-5)
    axes = list(range(axis, rank))
    layer = _layer("LayerNormalization")(axis=axes, epsilon=eps, center=bias is not None)

    def run(ins):
        shape = x.shape[axis:]
        weights = [np.broadcast_to(ins[1], shape)] + ([np.broadcast_to(ins[2], shape)] if bias is not None else [])
        out = [_call([layer], ins[0], weights={0: weights})]
        if len(case.outputs) > 1:  # Mean and InvStdDev: the statistics the layer normalizes with
            mean, var = (v.value for v in _dl().ops.moments(ins[0].astype(np.float32), axes=axes, keepdims=True))
            out += [mean, 1.0 / np.sqrt(var + np.float32(eps))][:len(case.outputs) - 1]
        return out

    return f"LayerNormalization(axis={axes}, epsilon={eps:g}, center={bias is not None})", run


def _gelu_plan(case):
    approximate = case.attrs.get("approximate", "none") == "tanh"
    return f"activations.gelu(approximate={approximate})", \
        lambda ins: [_dl().activations.gelu(ins[0], approximate=approximate).value]


def _einsum_plan(case):
    if any(a.dtype.kind != "f" and a.dtype.kind not in "iu" for a in case.inputs):
        raise OutOfScope(f"{case.inputs[0].dtype} inputs (dlcore computes in float32/float64)")
    equation = case.attrs["equation"]
    return f"ops.einsum({equation!r})", lambda ins: [_dl().ops.einsum(equation, *ins).value]


def _trilu_plan(case):
    upper = bool(case.attrs.get("upper", 1))
    k = 0 if len(case.inputs) < 2 or case.inputs[1] is None else int(case.inputs[1])
    fn = "triu" if upper else "tril"
    return f"ops.{fn}(k={k})", lambda ins: [getattr(_dl().ops, fn)(ins[0], k).value]


PLANS = {
    "MaxPool": _pool_plan, "AveragePool": _pool_plan, "GlobalAveragePool": _global_pool_plan,
    "GlobalMaxPool": _global_pool_plan, "BatchNormalization": _batchnorm_plan, "Pad": _pad_plan,
    "Conv": _conv_plan, "ConvInteger": _conv_plan, "ConvTranspose": _conv_transpose_plan,
    "Upsample": _resize_plan, "Resize": _resize_plan, "LayerNormalization": _layer_norm_plan, "Gelu": _gelu_plan,
    "Einsum": _einsum_plan, "Trilu": _trilu_plan,
}


def plan(case):
    """(description, run) for a case in scope; raises OutOfScope with the reason otherwise."""
    case.note = ""
    if "_expanded" in case.name:
        raise OutOfScope("ONNX's function expansion of an operator (a multi-node graph); its unexpanded case runs")
    if case.op_type not in PLANS:
        raise OutOfScope(f"operator {case.op_type} has no mapping here")
    return PLANS[case.op_type](case)


def run(case):
    """Run an in-scope case and compare with ONNX's expected outputs; returns the description."""
    desc, fn = plan(case)
    outputs = fn(case.inputs)
    assert len(outputs) == len(case.outputs), f"{case.name}: {len(outputs)} outputs, expected {len(case.outputs)}"
    for i, (got, want) in enumerate(zip(outputs, case.outputs)):
        got = np.asarray(got)
        assert got.shape == want.shape, f"{case.name} output {i}: shape {got.shape}, expected {want.shape} ({desc})"
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=RTOL, atol=ATOL,
                                   err_msg=f"{case.name} output {i} ({desc})")
    return desc + (f"; {case.note}" if getattr(case, "note", "") else "")


def table(results):
    """Rows (name, op_type, status, detail) as an aligned text table with counts."""
    width = max([len(r[0]) for r in results] + [4])
    lines = [f"{'case':<{width}}  {'operator':<18}  {'status':<12}  detail", "-" * (width + 60)]
    lines += [f"{n:<{width}}  {op:<18}  {st:<12}  {d}" for n, op, st, d in results]
    counts = {}
    for r in results:
        counts[r[2]] = counts.get(r[2], 0) + 1
    lines.append("ONNX node cases: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def run_all(cases=None):
    rows = []
    for case in cases or load_cases():
        try:
            rows.append((case.name, case.op_type, "ran", run(case)))
        except OutOfScope as exc:
            rows.append((case.name, case.op_type, "out of scope", str(exc)))
        except AssertionError as exc:
            rows.append((case.name, case.op_type, "FAILED", str(exc).splitlines()[0]))
    return rows


if __name__ == "__main__":
    print(table(run_all()))
