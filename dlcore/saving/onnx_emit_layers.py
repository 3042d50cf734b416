"""ONNX emitters of the feed-forward layers (``dlcore.saving.onnx_export``): core, reshaping,
spatial reshaping (padding, cropping, upsampling -> Pad, Slice, Resize), convolutions (Conv*D,
grouped, depthwise and separable -> Conv; Conv*DTranspose -> ConvTranspose), pooling,
normalization, merging, embedding.

Each emitter is ``emit(g, layer, ins, node) -> [Value]``: ``ins`` the Values of the call's input
tensors, ``node`` the call (its input shapes and keyword arguments).
"""
import numpy as np

from ..ops.conv import transpose_output_length
from .onnx_emit import ACTIVATIONS, FIRST, INT64_MAX, KERAS, Value, apply_activation, arr, elementwise


def _channels_first_layer(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_first"


def _in_shape(node, i=0):
    return tuple(node.parents[i].shape)


def _spatial_of(layer, shape):
    return list(shape[2:]) if _channels_first_layer(layer) else list(shape[1:-1])


def _bias(g, variable):
    return [] if variable is None else [g.const(arr(variable), "bias")]


# ---- core --------------------------------------------------------------------------------------------
def dense(g, layer, ins, node):
    v = ins[0]
    x = g.keras(v)
    kernel = g.const(arr(layer.kernel), "kernel")
    if v.rank == 2 and layer.bias is not None:
        y = g.node("Gemm", [x, kernel, g.const(arr(layer.bias), "bias")])
    else:
        y = g.node("MatMul", [x, kernel])
        if layer.bias is not None:
            y = g.node("Add", [y, g.const(arr(layer.bias), "bias")])
    return [apply_activation(g, layer.activation, Value(y, KERAS, v.rank))]


def identity(g, layer, ins, node):
    return [ins[0]]


def activation_layer(g, layer, ins, node):
    return [apply_activation(g, layer.activation, ins[0])]


def activation_class(g, layer, ins, node):
    """ReLU, LeakyReLU, ELU and Softmax layers."""
    kind, v = type(layer).__name__, ins[0]
    if kind == "ReLU":
        if layer.max_value is None and not layer.negative_slope and not layer.threshold:
            return [ACTIVATIONS["relu"](g, v)]
        raise ValueError(f"ReLU '{layer.name}': max_value/negative_slope/threshold do not export")
    if kind == "LeakyReLU":
        return [elementwise("LeakyRelu", alpha=float(layer.negative_slope))(g, v)]
    if kind == "ELU":
        return [elementwise("Elu", alpha=float(layer.alpha))(g, v)]
    axis = layer.axis if isinstance(layer.axis, int) else layer.axis[-1]
    if axis % v.rank != v.rank - 1:
        raise ValueError(f"Softmax '{layer.name}': only the last axis exports (received axis={layer.axis})")
    return [ACTIVATIONS["softmax"](g, v)]


def prelu(g, layer, ins, node):
    """PReLU -> PRelu with alpha (the input's shape without the batch axis) broadcast, Keras layout."""
    v = ins[0]
    return [Value(g.node("PRelu", [g.keras(v), g.const(arr(layer.alpha), "alpha")]), KERAS, v.rank)]


def repeat_vector(g, layer, ins, node):
    """RepeatVector: (batch, features) -> (batch, n, features) by Unsqueeze and Expand."""
    x = g.node("Unsqueeze", [ins[0].name, g.ints([1])])
    return [Value(g.node("Expand", [x, g.ints([1, layer.n, 1])]), KERAS, 3)]


def rescaling(g, layer, ins, node):
    v = ins[0]
    y = g.node("Mul", [g.keras(v), g.const(np.asarray(layer.scale, np.float32), "scale")])
    y = g.node("Add", [y, g.const(np.asarray(layer.offset, np.float32), "offset")])
    return [Value(y, KERAS, v.rank)]


def flatten(g, layer, ins, node):
    if _channels_first_layer(layer):
        raise ValueError(f"Flatten '{layer.name}': data_format='channels_first' is not exported")
    return [Value(g.node("Flatten", [g.keras(ins[0])], axis=1), KERAS, 2)]


def reshape(g, layer, ins, node):
    shape = g.ints([0] + list(layer.target_shape))
    return [Value(g.node("Reshape", [g.keras(ins[0]), shape]), KERAS, len(layer.target_shape) + 1)]


def permute(g, layer, ins, node):
    v = ins[0]
    return [Value(g.node("Transpose", [g.keras(v)], perm=[0] + list(layer.dims)), KERAS, v.rank)]


# ---- spatial reshaping -----------------------------------------------------------------------------
def padding(g, layer, ins, node):
    """ZeroPadding1D/2D/3D and ReflectionPadding2D -> Pad, in whichever layout the input is held."""
    v = ins[0]
    begins, ends = [0] * v.rank, [0] * v.rank
    for axis, (lo, hi) in zip(layer._axes, layer._widths):
        begins[v.axis(axis)], ends[v.axis(axis)] = lo, hi
    y = g.node("Pad", [v.name, g.ints(begins + ends)], mode="reflect" if layer.mode == "reflect" else "constant")
    return [Value(y, v.layout, v.rank)]


def cropping(g, layer, ins, node):
    """Cropping1D/2D/3D -> Slice, in whichever layout the input is held."""
    v = ins[0]
    layer._check(_in_shape(node))
    axes = [v.axis(a) for a in layer._axes]
    starts = [lo for lo, _ in layer._widths]
    ends = [-hi if hi else INT64_MAX for _, hi in layer._widths]
    y = g.node("Slice", [v.name, g.ints(starts), g.ints(ends), g.ints(axes)])
    return [Value(y, v.layout, v.rank)]


def upsampling(g, layer, ins, node):
    """UpSampling1D/2D/3D -> Resize: "nearest" repeats (asymmetric, floor), "bilinear" samples at
    half-pixel centers (TensorFlow's and PyTorch's align_corners=False), channels at axis 1."""
    v = ins[0]
    layout = KERAS if _channels_first_layer(layer) else FIRST
    scales = g.const(np.asarray([1.0, 1.0] + [float(s) for s in layer._size], np.float32), "scales")
    if layer.interpolation == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    return [Value(g.node("Resize", [g.layout(v, layout), "", scales], **attrs), layout, v.rank)]


# ---- convolutions and pooling ----------------------------------------------------------------------
def _same_pads(spatial, kernel, strides, dilations):
    """Keras's "same" pads [begins..., ends...] for known spatial sizes, or None."""
    if any(n is None for n in spatial):
        return None
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        eff = (k - 1) * d + 1
        total = max((-(-n // s) - 1) * s + eff - n, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends


def _padded(g, x, layer, spatial, kernel, strides, dilations):
    """(x, attrs): the pads attributes of a Conv or pool on ``x`` (channels at axis 1) for the
    layer's ``padding``; "reflect" pads ``x`` itself with a mirror Pad first."""
    n = len(kernel)
    mode = layer.padding
    if mode == "valid":
        return x, {"pads": [0] * (2 * n)}
    if mode == "causal":
        return x, {"pads": [(kernel[0] - 1) * dilations[0], 0]}
    pads = _same_pads(spatial, kernel, strides, dilations)
    if mode == "reflect":
        if pads is None:
            raise ValueError(f"{type(layer).__name__} '{layer.name}': padding='reflect' exports only with known "
                             f"spatial sizes, received {spatial}")
        x = g.node("Pad", [x, g.ints([0, 0] + pads[:n] + [0, 0] + pads[n:])], mode="reflect")
        return x, {"pads": [0] * (2 * n)}
    return x, ({"pads": pads} if pads is not None else {"auto_pad": "SAME_UPPER"})


def _conv_node(g, v, layer, node, weight, bias, group):
    """A Conv of ``v`` (moved to channels first) with the layer's kernel size, strides, dilations
    and padding; ``weight`` (out, in // group, *kernel) and ``bias`` initializer names."""
    x, attrs = _padded(g, g.layout(v, FIRST), layer, _spatial_of(layer, _in_shape(node)), layer.kernel_size,
                       layer.strides, layer.dilation_rate)
    return g.node("Conv", [x, weight] + bias, kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
                  dilations=list(layer.dilation_rate), group=int(group), **attrs)


def _onnx_kernel(kernel, rank):
    """Keras (*kernel_size, in, out) -> ONNX (out, in, *kernel_size)."""
    return np.transpose(kernel, (rank + 1, rank) + tuple(range(rank)))


def _depthwise_kernel(kernel, rank):
    """Keras depthwise (*kernel_size, C, M) -> ONNX grouped (C * M, 1, *kernel_size): output
    channel c * M + m reads channel c, as Keras orders them."""
    flat = kernel.reshape(kernel.shape[:rank] + (-1,))
    return np.moveaxis(flat, -1, 0)[:, None]


def conv(g, layer, ins, node):
    """Conv1D/2D/3D (groups, dilation, valid/same/causal/reflect) -> Conv."""
    rank = layer.rank
    w = g.const(_onnx_kernel(arr(layer.kernel), rank), "kernel")
    y = _conv_node(g, ins[0], layer, node, w, _bias(g, layer.bias), layer.groups)
    return [apply_activation(g, layer.activation, Value(y, FIRST, ins[0].rank))]


def depthwise_conv(g, layer, ins, node):
    """DepthwiseConv1D/2D -> Conv with one group per input channel."""
    rank, kernel = layer.rank, arr(layer.kernel)
    w = g.const(_depthwise_kernel(kernel, rank), "depthwise_kernel")
    y = _conv_node(g, ins[0], layer, node, w, _bias(g, layer.bias), kernel.shape[rank])
    return [apply_activation(g, layer.activation, Value(y, FIRST, ins[0].rank))]


def separable_conv(g, layer, ins, node):
    """SeparableConv1D/2D -> a depthwise Conv (no bias), then a 1x1 Conv with the bias."""
    rank, depthwise = layer.rank, arr(layer.depthwise_kernel)
    w = g.const(_depthwise_kernel(depthwise, rank), "depthwise_kernel")
    y = _conv_node(g, ins[0], layer, node, w, [], depthwise.shape[rank])
    pointwise = g.const(_onnx_kernel(arr(layer.pointwise_kernel), rank), "pointwise_kernel")
    y = g.node("Conv", [y, pointwise] + _bias(g, layer.bias), kernel_shape=[1] * rank, pads=[0] * (2 * rank))
    return [apply_activation(g, layer.activation, Value(y, FIRST, ins[0].rank))]


def conv_transpose(g, layer, ins, node):
    """Conv1DTranspose/Conv2DTranspose -> ConvTranspose. Keras crops ``before`` cells from the
    front of the full (L - 1) * s + k_eff output and keeps its output length; the cells it cuts
    at the end become ONNX pads, the cells it adds (output_padding, stride > kernel) ONNX's
    output_padding. Both are the same for every input length, so unknown lengths export too."""
    rank = layer.rank
    begins, ends, extra = [], [], []
    for i, (k, s, d) in enumerate(zip(layer.kernel_size, layer.strides, layer.dilation_rate)):
        eff = (k - 1) * d + 1
        n = eff + s  # any length gives the same crops; one whose output length is positive
        out_pad = None if layer.output_padding is None else layer.output_padding[i]
        total = (n - 1) * s + eff - transpose_output_length(n, k, s, d, layer.padding, out_pad)
        before = max(total, 0) // 2 if layer.padding == "same" else 0
        begins.append(before)
        ends.append(max(total - before, 0))
        extra.append(max(before - total, 0))
    w = g.const(_onnx_kernel(arr(layer.kernel), rank), "kernel")  # (*k, out, in) -> ONNX's (in, out, *k)
    y = g.node("ConvTranspose", [g.layout(ins[0], FIRST), w] + _bias(g, layer.bias),
               kernel_shape=list(layer.kernel_size), strides=list(layer.strides),
               dilations=list(layer.dilation_rate), pads=begins + ends, output_padding=extra)
    return [apply_activation(g, layer.activation, Value(y, FIRST, ins[0].rank))]


def pool(g, layer, ins, node):
    v = ins[0]
    layout = KERAS if _channels_first_layer(layer) else FIRST
    op = "MaxPool" if layer.pool_mode == "max" else "AveragePool"
    size, strides = list(layer.pool_size), list(layer.strides)
    x, attrs = _padded(g, g.layout(v, layout), layer, _spatial_of(layer, _in_shape(node)), size, strides,
                       [1] * len(size))
    return [Value(g.node(op, [x], kernel_shape=size, strides=strides, **attrs), layout, v.rank)]


def global_pool(g, layer, ins, node):
    """Global pooling -> ReduceMax/ReduceMean over the spatial axes, in the layout held."""
    v = ins[0]
    first = 2 if _channels_first_layer(layer) else 1
    axes = sorted(v.axis(a) for a in range(first, first + v.rank - 2))
    op = "ReduceMax" if "Max" in type(layer).__name__ else "ReduceMean"
    y = g.node(op, [v.name], axes=axes, keepdims=int(layer.keepdims))
    return [Value(y, v.layout, v.rank) if layer.keepdims else Value(y, KERAS, 2)]


# ---- normalization ---------------------------------------------------------------------------------
def batch_norm(g, layer, ins, node):
    v = ins[0]
    axis = layer.axis % v.rank
    mean, var = arr(layer.moving_mean), arr(layer.moving_variance)
    gamma = arr(layer.gamma) if layer.gamma is not None else np.ones_like(mean)
    beta = arr(layer.beta) if layer.beta is not None else np.zeros_like(mean)
    if v.axis(axis) == 1 and v.rank >= 2:
        y = g.node("BatchNormalization", [v.name, g.const(gamma, "gamma"), g.const(beta, "beta"),
                                          g.const(mean, "mean"), g.const(var, "var")], epsilon=layer.epsilon)
        return [Value(y, v.layout, v.rank)]
    scale = (gamma / np.sqrt(var + np.float32(layer.epsilon))).astype(np.float32)
    shift = (beta - mean * scale).astype(np.float32)
    shape = [1] * v.rank
    shape[v.axis(axis)] = -1
    y = g.node("Add", [g.node("Mul", [v.name, g.const(scale.reshape(shape), "scale")]),
                       g.const(shift.reshape(shape), "shift")])
    return [Value(y, v.layout, v.rank)]


def _axes_of(layer, rank):
    return sorted(a % rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]))


def _param(g, variable, axes, rank, hint):
    """A weight over the normalized ``axes``, shaped to broadcast against a rank-``rank`` tensor."""
    values = arr(variable)
    shape = [1] * rank
    for a, n in zip(axes, values.shape if values.ndim == len(axes) else [values.size]):
        shape[a] = n
    return g.const(values.reshape(shape), hint)


def _normalized(g, x, axes, epsilon, center=True):
    """(x - mean) / sqrt(var + epsilon) over ``axes`` (x / sqrt(mean(x^2) + epsilon) without center)."""
    d = g.node("Sub", [x, g.node("ReduceMean", [x], axes=axes, keepdims=1)]) if center else x
    return g.node("Mul", [d, g.rsqrt(g.node("ReduceMean", [g.node("Mul", [d, d])], axes=axes, keepdims=1), epsilon)])


def layer_norm(g, layer, ins, node):
    """LayerNormalization -> the ONNX op over trailing axes, else composed (any axes, rms_scaling)."""
    v = ins[0]
    axes = _axes_of(layer, v.rank)
    x = g.keras(v)
    if axes == list(range(axes[0], v.rank)) and not layer.rms_scaling and layer.gamma is not None:
        inputs = [x, g.const(arr(layer.gamma), "gamma")] + _bias(g, layer.beta)
        return [Value(g.node("LayerNormalization", inputs, axis=axes[0], epsilon=layer.epsilon), KERAS, v.rank)]
    if layer.rms_scaling:  # Keras's deprecated form: x / sqrt(var + epsilon) * gamma
        d = g.node("Sub", [x, g.node("ReduceMean", [x], axes=axes, keepdims=1)])
        var = g.node("ReduceMean", [g.node("Mul", [d, d])], axes=axes, keepdims=1)
        y = g.node("Mul", [x, g.rsqrt(var, layer.epsilon)])
    else:
        y = _normalized(g, x, axes, layer.epsilon)
    if layer.gamma is not None:
        y = g.node("Mul", [y, _param(g, layer.gamma, axes, v.rank, "gamma")])
    if layer.beta is not None:
        y = g.node("Add", [y, _param(g, layer.beta, axes, v.rank, "beta")])
    return [Value(y, KERAS, v.rank)]


def rms_norm(g, layer, ins, node):
    """RMSNormalization: x / sqrt(mean(x^2) + epsilon) * scale."""
    v = ins[0]
    axes = _axes_of(layer, v.rank)
    y = _normalized(g, g.keras(v), axes, layer.epsilon, center=False)
    return [Value(g.node("Mul", [y, _param(g, layer.scale, axes, v.rank, "scale")]), KERAS, v.rank)]


def group_norm(g, layer, ins, node):
    """GroupNormalization, composed in the layout held: the channel axis split into (groups,
    channels // groups) with shapes read at run time, moments over all but batch and group."""
    v = ins[0]
    axis = v.axis(layer.axis)
    channels, groups = _in_shape(node)[layer.axis], layer.groups
    shape = g.node("Shape", [v.name])
    grouped_shape = g.node("Concat", [g.node("Shape", [v.name], start=0, end=axis),
                                      g.ints([groups, channels // groups]),
                                      g.node("Shape", [v.name], start=axis + 1)], axis=0)
    x = g.node("Reshape", [v.name, grouped_shape])
    y = _normalized(g, x, [a for a in range(1, v.rank + 1) if a != axis], layer.epsilon)
    param_shape = [1] * (v.rank + 1)
    param_shape[axis], param_shape[axis + 1] = groups, channels // groups
    if layer.gamma is not None:
        y = g.node("Mul", [y, g.const(arr(layer.gamma).reshape(param_shape), "gamma")])
    if layer.beta is not None:
        y = g.node("Add", [y, g.const(arr(layer.beta).reshape(param_shape), "beta")])
    return [Value(g.node("Reshape", [y, shape]), v.layout, v.rank)]


# ---- merging and embedding -------------------------------------------------------------------------
def merge(op):
    def emit(g, layer, ins, node):
        same_rank = all(v.rank == ins[0].rank for v in ins)
        layout = ins[0].layout if same_rank else KERAS
        return [Value(g.node(op, [g.layout(v, layout) for v in ins]), layout, ins[0].rank)]
    return emit


def concatenate(g, layer, ins, node):
    rank = ins[0].rank
    if all(v.layout == FIRST for v in ins) and rank >= 3:
        return [Value(g.node("Concat", [v.name for v in ins], axis=ins[0].axis(layer.axis)), FIRST, rank)]
    return [Value(g.node("Concat", [g.keras(v) for v in ins], axis=layer.axis % rank), KERAS, rank)]


def embedding(g, layer, ins, node):
    """Gather; with ``mask_zero`` the output carries the mask ``ids != 0`` (for the RNNs after it)."""
    v = ins[0]
    idx = g.node("Cast", [v.name], to=7)  # int64
    y = g.node("Gather", [g.const(arr(layer.embeddings), "embeddings"), idx], axis=0)
    mask = g.node("Cast", [g.node("Not", [g.node("Equal", [idx, g.ints(0)])])], to=7) if layer.mask_zero else None
    return [Value(y, KERAS, v.rank + 1, mask)]


def masking(g, layer, ins, node):
    """Masking: steps whose features all equal ``mask_value`` become zeros; the output carries the mask."""
    v = ins[0]
    x = g.keras(v)
    keep = g.node("Not", [g.node("Equal", [x, g.const(np.asarray(layer.mask_value, np.float32), "mask_value")])])
    step = g.node("ReduceMax", [g.node("Cast", [keep], to=7)], axes=[-1], keepdims=1)  # any, per step
    y = g.node("Where", [g.node("Cast", [step], to=9), x, g.scalar(0.0, "zero")])
    return [Value(y, KERAS, v.rank, g.node("Squeeze", [step, g.ints([-1])]))]


def _l2_normalized(g, x, axes, floor):
    """x / sqrt(max(sum(x^2, axes), floor))."""
    square_sum = g.node("ReduceSum", [g.node("Mul", [x, x]), g.ints(axes)], keepdims=1)
    return g.node("Mul", [x, g.node("Reciprocal", [g.node("Sqrt", [g.node("Max", [square_sum,
                                                                                g.scalar(floor, "floor")])])])])


def unit_norm(g, layer, ins, node):
    """UnitNormalization: x * rsqrt(max(sum(x^2, axis), 1e-24)) (its 1e-12 norm floor, squared)."""
    v = ins[0]
    axes = sorted(a % v.rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]))
    return [Value(_l2_normalized(g, g.keras(v), axes, 1e-24), KERAS, v.rank)]


def dot(g, layer, ins, node):
    """Dot: one Einsum contracting the two axes per sample (inputs L2-normalized first with
    ``normalize=True``); a scalar per sample comes out as (batch, 1), as Keras."""
    shapes = [_in_shape(node, 0), _in_shape(node, 1)]
    a1, a2 = layer._resolved_axes(*shapes)
    x1, x2 = g.keras(ins[0]), g.keras(ins[1])
    if layer.normalize:
        x1, x2 = _l2_normalized(g, x1, [a1], 1e-12), _l2_normalized(g, x2, [a2], 1e-12)
    letters = iter("cdefghijklmnopqrstuvwxyz")
    s1 = ["b"] + [next(letters) for _ in shapes[0][1:]]
    s2 = ["b"] + [s1[a1] if i == a2 else next(letters) for i in range(1, len(shapes[1]))]
    out = [c for i, c in enumerate(s1) if i != a1] + [c for i, c in enumerate(s2) if i not in (0, a2)]
    y = g.node("Einsum", [x1, x2], equation=f"{''.join(s1)},{''.join(s2)}->{''.join(out)}")
    if len(out) == 1:
        y = g.node("Unsqueeze", [y, g.ints([1])])
    return [Value(y, KERAS, max(len(out), 2))]


EMITTERS = {
    "Dense": dense, "Activation": activation_layer, "Rescaling": rescaling, "Flatten": flatten, "Reshape": reshape,
    "Permute": permute, "RepeatVector": repeat_vector, "PReLU": prelu, "Dropout": identity,
    "GaussianNoise": identity, "GaussianDropout": identity,
    "SpatialDropout1D": identity, "SpatialDropout2D": identity, "Identity": identity,
    "ActivityRegularization": identity,
    "ReLU": activation_class, "Softmax": activation_class, "ELU": activation_class, "LeakyReLU": activation_class,
    "ZeroPadding1D": padding, "ZeroPadding2D": padding, "ZeroPadding3D": padding, "ReflectionPadding2D": padding,
    "Cropping1D": cropping, "Cropping2D": cropping, "Cropping3D": cropping,
    "UpSampling1D": upsampling, "UpSampling2D": upsampling, "UpSampling3D": upsampling,
    "Conv1D": conv, "Conv2D": conv, "Conv3D": conv, "DepthwiseConv1D": depthwise_conv,
    "DepthwiseConv2D": depthwise_conv, "SeparableConv1D": separable_conv, "SeparableConv2D": separable_conv,
    "Conv1DTranspose": conv_transpose, "Conv2DTranspose": conv_transpose,
    "MaxPooling1D": pool, "MaxPooling2D": pool, "MaxPooling3D": pool,
    "AveragePooling1D": pool, "AveragePooling2D": pool, "AveragePooling3D": pool,
    **{f"Global{kind}Pooling{r}D": global_pool for kind in ("Average", "Max") for r in (1, 2, 3)},
    "BatchNormalization": batch_norm, "LayerNormalization": layer_norm, "RMSNormalization": rms_norm,
    "GroupNormalization": group_norm,
    "Add": merge("Sum"), "Subtract": merge("Sub"), "Multiply": merge("Mul"), "Average": merge("Mean"),
    "Maximum": merge("Max"), "Minimum": merge("Min"), "Concatenate": concatenate, "Embedding": embedding,
    "Masking": masking, "Divide": merge("Div"), "Dot": dot, "UnitNormalization": unit_norm,
}
