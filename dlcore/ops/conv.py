"""Convolutions: ``conv``, ``conv_transpose``, ``depthwise_conv``, ``separable_conv`` (keras.ops
names and semantics: channels_last inputs, kernels (*kernel_size, C_in/groups, C_out)) and the
fused ``conv2d_bias_act`` the layers use. Rank 1 runs through the 2-D kernels with H = 1; rank 3
too: each output depth slice is a 2-D convolution of its kd input depth slices laid side by side
in channels (a depth-only im2col, batched as N * D_out images, costing KD copies of the input),
so one fused 2-D kernel call computes a 3-D convolution, and the backward kernels serve it the
same way (see ConvPlan).

Padding modes: "valid" and "same" (TF's rule: the smaller half of the padding first), "causal"
(rank 1: (k - 1) * dilation zeros before), and dlcore's extension "reflect": NumPy "reflect" mirror
padding of the same amounts as "same" (output size as "same").

Backward computes only the gradients asked for: a frozen kernel gets no weight-gradient kernel
call, an input that is data gets no input-gradient call.
"""
import functools
from typing import NamedTuple

import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from .core import (Tensor, cast, compute_precision, contiguous, device_of, empty_on, float_array, out_buffer,
                   round_array, value)
from .elementwise import ACTIVATIONS
from .shape import pad as _pad

_PADDINGS = ("valid", "same", "causal", "reflect")
_SPATIAL = {1: "length", 2: "height, width", 3: "depth, height, width"}


# ---- argument normalization --------------------------------------------------------------------
def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def normalize_tuple(v, rank, name, who="conv", minimum=None):
    """``v`` (an int or a sequence of ``rank`` ints) as a tuple of ``rank`` Python ints, each at
    least ``minimum`` when given."""
    items = (v,) * rank if _is_int(v) else tuple(v) if isinstance(v, (list, tuple, np.ndarray)) else ()
    if len(items) != rank or not all(map(_is_int, items)) or (minimum is not None and min(items) < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise ValueError(f"{who}: `{name}` must be an integer or a tuple of {rank} integers{bound}. "
                         f"Received: {name}={v!r}")
    return tuple(int(e) for e in items)


def normalize_padding(padding, who="conv", allowed=_PADDINGS):
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in allowed:
        raise ValueError(f"{who}: `padding` must be one of {', '.join(repr(a) for a in allowed)}, "
                         f"received padding={padding!r}")
    return mode


def check_data_format(data_format, who="conv"):
    """dlcore is channels_last only: None / "channels_last" pass, "channels_first" is refused."""
    if data_format is None or data_format == "channels_last":
        return "channels_last"
    if data_format == "channels_first":
        raise ValueError(f"{who}: data_format='channels_first' is not supported: dlcore's convolutions "
                         "are channels_last (N, ..., C) only. Transpose the inputs to channels_last.")
    raise ValueError(f"{who}: `data_format` must be 'channels_last' or 'channels_first', "
                     f"received {data_format!r}")


def axis_pads(length, kernel, stride, dilation, mode):
    """(before, after) zero padding of one spatial axis for ``mode`` (None for unknown lengths)."""
    effective = (kernel - 1) * dilation + 1
    if mode == "valid":
        return 0, 0
    if mode == "causal":
        return effective - 1, 0
    if length is None:
        return None
    out = -(-length // stride)
    total = max((out - 1) * stride + effective - length, 0)
    return total // 2, total - total // 2


def output_length(length, kernel, stride, dilation, mode):
    """Keras's conv output length (None for None): ceil(L / s) for same / causal / reflect."""
    if length is None:
        return None
    if mode in ("same", "causal", "reflect"):
        return -(-length // stride)
    return (length - ((kernel - 1) * dilation + 1)) // stride + 1


def transpose_output_length(length, kernel, stride, dilation, mode, output_padding=None):
    """Keras's Conv*Transpose output length (None for None)."""
    if length is None:
        return None
    kernel = (kernel - 1) * dilation + 1
    if output_padding is None:
        return length * stride + max(kernel - stride, 0) if mode == "valid" else length * stride
    pad = kernel // 2 if mode == "same" else 0
    return (length - 1) * stride + kernel - 2 * pad + output_padding


# ---- the ops -----------------------------------------------------------------------------------
def _as_float(x, dtype):
    """``x`` in the kernel's dtype: Tensors through the differentiable cast, anything else as an array."""
    if isinstance(x, Tensor):
        return x if x.value.dtype == dtype else cast(x, dtype)
    if not isinstance(x, np.ndarray) or x.dtype != dtype:
        return float_array(x, dtype=dtype)
    return x


def _threads(y_size, k):
    """Threads for a convolution kernel of y_size outputs of k multiply-adds each."""
    return kernels.threads_for_macs(y_size * max(k, 1))


def _forward_threads(y_size, k):
    """Threads for a forward convolution: its kernel splits batch-1 sizes (from TEAM_MIN_MACS to
    TEAM_MAX_MACS) over the thread team, larger ones over OpenMP."""
    return kernels.team_threads_for_macs(y_size * max(k, 1))


# Activations whose derivative activation_backward computes correctly with the output y passed
# for the input z (the sign tests z > 0, 0 < z < 6 hold for y too; sigmoid, tanh, exponential,
# elu and selu read y): training keeps the fused forward and no copy of z for them.
_FROM_OUTPUT = {"linear", "relu", "relu6", "sigmoid", "tanh", "exponential", "selu"}


def _derivative_from_output(activation, alpha):
    return activation in _FROM_OUTPUT or (activation in ("elu", "leaky_relu") and alpha > 0)


class ConvPlan(NamedTuple):
    """A checked convolution, in the kernels' terms (cached per shapes and arguments)."""

    rank: int  # 1, 2 or 3
    kernel4: tuple  # (KH, KW, C_in/groups, C_out); rank 3: (KH, KW, KD * C_in/groups, C_out)
    out4: tuple  # (N, OH, OW, C_out); rank 3: (N * OD, OH, OW, C_out)
    args: tuple  # (stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups)
    reflect: tuple  # NumPy pad widths of the "reflect" pre-padding, or None
    depth: tuple = None  # rank 3: (KD, stride_d, (pad_before, pad_after), dilation_d, OD)

    def x4(self, x):
        """The kernels' (N', H, W, C') input: rank 1 as H = 1; rank 3 as (N * OD, H, W, G * KD * CG),
        output depth o reading the depth slices o * stride_d + t * dilation_d, t < KD."""
        if self.rank < 3:
            if type(x) is not np.ndarray:  # a GPU array: contiguous, viewed by reshape
                return x if self.rank == 2 else x.reshape((x.shape[0], 1) + tuple(x.shape[1:]))
            return contiguous(x if self.rank == 2 else x[:, None])
        kd, sd, (lo, _), dd, od = self.depth
        n, _, h, w, c = x.shape
        g = self.args[-1]
        device = "cpu" if type(x) is np.ndarray else "cuda"
        cols = empty_on(device, (n * od, h, w, g * kd * (c // g)), x.dtype)
        kernels.get("depth_columns", device)(x, kd, sd, lo, dd, g, cols)
        return cols

    def dx(self, dx4, shape):
        """The gradient of ``x4``'s input of ``shape`` from the gradient of its output."""
        if self.rank < 3:
            return dx4.reshape(shape)
        kd, sd, (lo, _), dd, _ = self.depth
        device = "cpu" if type(dx4) is np.ndarray else "cuda"
        dx = empty_on(device, shape, dx4.dtype)
        kernels.get("depth_columns_backward", device)(dx4, kd, sd, lo, dd, self.args[-1], dx)
        return dx

    def w4(self, w):
        """The kernel as the kernels' (KH, KW, C', C_out): rank 3 moves KD next to C_in/groups."""
        if self.rank < 3:
            return (contiguous(w) if type(w) is np.ndarray else w).reshape(self.kernel4)
        device = "cpu" if type(w) is np.ndarray else "cuda"
        w4 = empty_on(device, self.kernel4, w.dtype)
        kernels.get("kernel_depth_to_channels", device)(w, w4)
        return w4

    def dw(self, dw4, shape):
        if self.rank < 3:
            return dw4.reshape(shape)
        device = "cpu" if type(dw4) is np.ndarray else "cuda"
        dw = empty_on(device, shape, dw4.dtype)
        kernels.get("kernel_channels_to_depth", device)(dw4, dw)
        return dw

    def y(self, y4):
        if self.rank == 1 and type(y4) is not np.ndarray:
            return y4.reshape((y4.shape[0],) + tuple(y4.shape[2:]))
        return y4 if self.rank == 2 else y4[:, 0] if self.rank == 1 else y4.reshape((-1, self.depth[4]) + y4.shape[1:])


def _pointwise_bf16(x4, w4, b, stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups, code, alpha, y4,
                    threads):
    """conv2d_forward's signature for a 1x1, stride-1, one-group convolution, on the bf16 GEMM."""
    kernels.get("dense_forward_bf16")(x4.reshape(-1, x4.shape[3]), w4.reshape(w4.shape[2], w4.shape[3]), b, code,
                                      alpha, y4.reshape(-1, y4.shape[3]), threads)


class Conv(Function):
    """y = act(conv(x, w) + b) for (N, L, C), (N, H, W, C) or (N, D, H, W, C) inputs.

    w: the kernel (*kernel_size, C_in/groups, C_out) (depthwise kernels (*kernel_size, C, M) are
    (*kernel_size, 1, C*M)), seen by the kernels as ``plan.w4(w)``; b: (C_out,) or None.
    Inference runs one fused kernel; training keeps z = conv + b for the activation's backward.
    """

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, w, b, plan, activation, alpha, recording):
        # under a bfloat16 policy the layer rounded x and the kernel is read rounded too (Keras
        # autocasts it): the float32 tiles then sum exact bf16 products in float32, as the bf16 GEMM
        # does; a pointwise convolution is a GEMM and runs on the bf16 tiles themselves
        bf16 = type(w) is np.ndarray and w.dtype == np.float32 and compute_precision() == "bfloat16"
        if bf16:
            w = round_array(w, "bfloat16")
        if type(w) is np.ndarray:
            device = "cpu"
            if plan.rank == 2 and x.flags.c_contiguous and w.flags.c_contiguous:
                x4, w4 = x, w  # the kernels' layouts already
            else:
                x4, w4 = plan.x4(x), plan.w4(w)
            y4 = out_buffer(plan.out4, w4.dtype)
        else:
            device = device_of(w)
            x4, w4 = plan.x4(_on_gpu(x, w, plan)), plan.w4(w)
            y4 = empty_on(device, plan.out4, w4.dtype)
        code = ACTIVATIONS[activation]  # checked by the op
        kh, kw, cg, o = plan.kernel4
        threads = _forward_threads(y4.size, kh * kw * cg)
        forward = kernels.get("conv2d_forward", device)
        if bf16 and (kh, kw) == (1, 1) and plan.args[:4] == (1, 1, 0, 0) and plan.args[6] == 1:
            forward, threads = _pointwise_bf16, _threads(y4.size, cg)
        if not recording or _derivative_from_output(activation, alpha):
            forward(x4, w4, b, *plan.args, code, alpha, y4, threads)
            z4 = y4  # the activation's derivative is read off y (see _derivative_from_output)
        else:
            z4 = empty_on(device, y4.shape, y4.dtype)
            forward(x4, w4, b, *plan.args, 0, 0.0, z4, threads)
            z2, y2 = z4.reshape(-1, o), y4.reshape(-1, o)
            if activation in ("softmax", "log_softmax"):
                kernels.get(activation + "_forward", device)(z2, y2, kernels.threads_for(z2.size))
            else:
                kernels.get("activation_forward", device)(code, z2.reshape(-1), alpha, y2.reshape(-1),
                                                          kernels.threads_for(z2.size))
        if recording:
            ctx.save(x4, w4, z4, y4)
            ctx.plan, ctx.x_shape, ctx.w_shape = plan, x.shape, w.shape
            ctx.code, ctx.alpha, ctx.activation, ctx.has_bias = code, alpha, activation, b is not None
        return y4 if plan.rank == 2 else plan.y(y4)

    @staticmethod
    def backward(ctx, dy, needs):
        x4, w4, z4, y4 = ctx.saved
        plan = ctx.plan
        o = y4.shape[3]
        device = "cpu" if type(w4) is np.ndarray else device_of(w4)
        if device == "cpu":
            dy4 = contiguous(dy.astype(w4.dtype, copy=False).reshape(y4.shape))
        else:
            dy4 = devices.to_device(dy).reshape(y4.shape)
        if ctx.activation == "linear":
            dz = dy4
        elif ctx.activation in ("softmax", "log_softmax"):
            dz = empty_on(device, y4.shape, y4.dtype)
            kernels.get(ctx.activation + "_backward", device)(y4.reshape(-1, o), dy4.reshape(-1, o),
                                                              dz.reshape(-1, o))
        else:
            dz = empty_on(device, y4.shape, y4.dtype)
            kernels.get("activation_backward", device)(ctx.code, z4.reshape(-1), y4.reshape(-1), dy4.reshape(-1),
                                                       ctx.alpha, dz.reshape(-1))
        threads = _threads(dz.size, w4.shape[0] * w4.shape[1] * w4.shape[2])
        dx = dw = db = None
        if needs[0]:
            dx4 = empty_on(device, x4.shape, x4.dtype)
            kernels.get("conv2d_backward_input", device)(dz, w4, *plan.args, dx4, threads)
            dx = plan.dx(dx4, ctx.x_shape)
        want_db = ctx.has_bias and needs[2]
        if needs[1]:
            dw4 = empty_on(device, w4.shape, w4.dtype)
            db = empty_on(device, o, w4.dtype) if want_db else None
            kernels.get("conv2d_backward_weight", device)(x4, dz, *plan.args, dw4, db, threads)
            dw = plan.dw(dw4, ctx.w_shape)
        elif want_db:
            db = empty_on(device, o, w4.dtype)
            kernels.get("sum_axis0", device)(dz.reshape(-1, o), db, kernels.threads_for(dz.size))
        return dx, dw, db


def _on_gpu(x, w, plan):
    """The input of a convolution whose kernel is on the GPU, on the GPU (a batch enters here)."""
    if plan.reflect is not None:
        raise ValueError("conv on the GPU: convolutions with padding='reflect' run on the CPU only (build the "
                         "model outside dl.device('gpu'))")
    return _device_input(x, w)


def _device_input(x, w):
    """``x`` on the GPU in the dtype of ``w`` (a host batch copied in; another device dtype refused)."""
    if not devices.is_device_array(x):
        return devices.to_device(float_array(x, dtype=w.dtype))
    if x.dtype != w.dtype:
        raise TypeError(f"conv: the input on the GPU has dtype {x.dtype}; the kernel has {w.dtype}")
    return x


def _as_4d(a, rank):
    """(N, H, W, C) view of a rank-1 (N, L, C) or rank-2 array on either device (H = 1 for rank 1)."""
    if rank == 2:
        return a if type(a) is not np.ndarray else contiguous(a)
    if type(a) is np.ndarray:
        return contiguous(a[:, None])
    return a.reshape((a.shape[0], 1) + tuple(a.shape[1:]))


def _from_4d(a4, rank):
    if rank == 2:
        return a4
    return a4[:, 0] if type(a4) is np.ndarray else a4.reshape((a4.shape[0],) + tuple(a4.shape[2:]))


class ConvTranspose(Function):
    """y = conv_transpose(x, w) + b: x (N, H, W, C) or (N, L, C); w (KH, KW, C_out, C) as Keras
    (``kernel4`` gives the 4-D view); b (C_out,) or None. The forward is conv2d_backward_input
    (then add_bias_channels), the input gradient is conv2d_forward, the kernel gradient
    conv2d_backward_weight with the roles of x and y swapped, the bias gradient sum_axis0 of dy.
    Runs on the device the kernel lives on."""

    runs_on_gpu = True

    @staticmethod
    def forward(ctx, x, w, b, kernel4, strides, pad_top_left, out_hw, dilation):
        rank = len(x.shape) - 2
        if type(w) is np.ndarray:
            device, x4, w4 = "cpu", _as_4d(x, rank), contiguous(w).reshape(kernel4)
        else:
            device, x4, w4 = device_of(w), _as_4d(_device_input(x, w), rank), w.reshape(kernel4)
        y4 = empty_on(device, (x4.shape[0],) + tuple(out_hw) + (kernel4[2],), w4.dtype)
        args = (strides[0], strides[1], pad_top_left[0], pad_top_left[1], dilation[0], dilation[1], 1)
        threads = _threads(x4.size, kernel4[0] * kernel4[1] * kernel4[2])
        kernels.get("conv2d_backward_input", device)(x4, w4, *args, y4, threads)
        if b is not None:
            kernels.get("add_bias_channels", device)(y4.reshape(y4.size // kernel4[2], kernel4[2]), b)
        if ctx is not None:
            ctx.save(x4, w4)
            ctx.args, ctx.rank, ctx.w_shape, ctx.device = args, rank, w.shape, device
        return _from_4d(y4, rank)

    @staticmethod
    def backward(ctx, dy, needs):
        x4, w4 = ctx.saved
        device = ctx.device
        if device == "cpu":
            dy4 = _as_4d(np.asarray(dy).astype(w4.dtype, copy=False), ctx.rank)
        else:
            dy4 = _as_4d(_device_input(dy, w4), ctx.rank)
        threads = _threads(x4.size, w4.shape[0] * w4.shape[1] * w4.shape[2])
        dx = dw = db = None
        if needs[0]:
            dx4 = empty_on(device, x4.shape, w4.dtype)
            kernels.get("conv2d_forward", device)(dy4, w4, None, *ctx.args, 0, 0.0, dx4, threads)
            dx = _from_4d(dx4, ctx.rank)
        if needs[1]:
            dw4 = empty_on(device, w4.shape, w4.dtype)
            kernels.get("conv2d_backward_weight", device)(dy4, x4, *ctx.args, dw4, None, threads)
            dw = dw4.reshape(ctx.w_shape)
        if len(needs) > 2 and needs[2]:
            c_out = w4.shape[2]
            db = empty_on(device, (c_out,), w4.dtype)
            kernels.get("sum_axis0", device)(dy4.reshape(dy4.size // c_out, c_out), db, threads)
        return dx, dw, db


# ---- shape checking ------------------------------------------------------------------------------
def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


@functools.lru_cache(maxsize=256)
def _plan(xshape, kshape, strides, padding, dilation_rate, groups, who):
    """Check a convolution (rank, channels vs kernel, groups, paddings, output size) and return
    its ConvPlan. ``kshape``: the kernel shape as (*kernel_size, C/groups, C_out). Cached: layers
    call it with the same arguments on every batch."""
    rank = len(kshape) - 2
    if rank not in (1, 2, 3):
        raise ValueError(f"{who}: only 1-D, 2-D and 3-D convolutions are supported (a kernel of rank 3, 4 or "
                         f"5), received a kernel of shape {kshape}")
    if len(xshape) != rank + 2:
        raise ValueError(f"{who}: expected inputs of rank {rank + 2} (batch, {_SPATIAL[rank]}, channels), "
                         f"received shape {xshape}")
    strides = normalize_tuple(strides, rank, "strides", who, minimum=1)
    dilation = normalize_tuple(dilation_rate, rank, "dilation_rate", who, minimum=1)
    mode = normalize_padding(padding, who)
    if mode == "causal" and rank != 1:
        raise ValueError(f"{who}: padding='causal' is for 1-D convolutions only, received a rank-{rank} kernel")
    c, cg = xshape[-1], kshape[-2]
    if groups is None:
        if cg <= 0 or c % cg != 0:
            raise ValueError(f"{who}: the input channels ({c}) must be a multiple of the kernel's input "
                             f"channels (kernel shape {kshape}, axis -2); received inputs of shape {xshape}")
        groups = c // cg
    elif c != cg * groups:
        raise ValueError(f"{who}: expected inputs with {cg * groups} channels (kernel shape {kshape}, "
                         f"groups={groups}), received inputs of shape {xshape}")
    if kshape[-1] % groups != 0:
        raise ValueError(f"{who}: the output channels ({kshape[-1]}) must be divisible by groups ({groups})")
    spatial = xshape[1:-1]
    pads = [axis_pads(n, k, s, d, "same" if mode == "reflect" else mode)
            for n, k, s, d in zip(spatial, kshape[:rank], strides, dilation)]
    reflect = None
    if mode == "reflect":
        for n, (lo, hi) in zip(spatial, pads):
            if max(lo, hi) >= n:
                raise ValueError(f"{who}: padding='reflect' needs each padding smaller than the input: "
                                 f"padding {(lo, hi)} for inputs of shape {xshape}")
        reflect = ((0, 0),) + tuple(pads) + ((0, 0),)
        spatial = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads))
        pads = [(0, 0)] * rank
    out = []
    for n, k, s, d, (lo, hi) in zip(spatial, kshape[:rank], strides, dilation, pads):
        length = (n + lo + hi - (k - 1) * d - 1) // s + 1
        if length <= 0:
            raise ValueError(
                f"{who}: the kernel (size {kshape[:rank]}, dilation {dilation}) is larger than the padded "
                f"input: expected at least {(k - 1) * d + 1 - lo - hi} along each spatial axis with "
                f"padding={padding!r}, received inputs of shape {xshape}")
        out.append(length)
    batch, depth = xshape[0], None
    if rank == 1:
        strides, dilation, pads, out, kshape = (1,) + strides, (1,) + dilation, [(0, 0)] + pads, [1] + out, (1,) + kshape
    elif rank == 3:  # see ConvPlan.x4
        depth, batch = (kshape[0], strides[0], pads[0], dilation[0], out[0]), batch * out[0]
        strides, dilation, pads, out = strides[1:], dilation[1:], pads[1:], out[1:]
        kshape = kshape[1:3] + (kshape[0] * kshape[3], kshape[4])
    args = (strides[0], strides[1], pads[0][0], pads[1][0], dilation[0], dilation[1], groups)
    return ConvPlan(rank, kshape, (batch,) + tuple(out) + (kshape[-1],), args, reflect, depth)


def conv2d_bias_act(inputs, kernel, bias=None, strides=1, padding="valid", dilation_rate=1, groups=None,
                    activation="linear", alpha=0.0, data_format=None, depthwise=False, _who="conv"):
    """act(conv(inputs, kernel) + bias) with one fused kernel at inference.

    inputs: (N, *spatial, C) with 1 to 3 spatial axes; kernel: (*kernel_size, C/groups, C_out),
    or with ``depthwise=True`` a depthwise kernel (*kernel_size, C, depth_multiplier) (groups = C);
    bias: (C_out,) or None; activation: a kernel activation name ("relu", ...). ``groups`` defaults
    to C // kernel.shape[-2], as keras.ops.conv infers it.
    """
    if data_format is not None:
        check_data_format(data_format, _who)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{_who}: activation {activation!r} has no fused kernel")
    kv = kernel.value if isinstance(kernel, Tensor) else kernel
    kshape = kv.shape if type(kv) is np.ndarray else tuple(np.shape(kv))
    xv = inputs.value if type(inputs) is Tensor else value(inputs)
    xshape = xv.shape if type(xv) is np.ndarray else tuple(np.shape(xv))
    if depthwise:
        if len(kshape) < 3 or kshape[-2] != xshape[-1]:
            raise ValueError(f"{_who}: expected inputs with {kshape[-2] if len(kshape) >= 3 else '?'} channels "
                             f"(depthwise kernel shape {kshape}), received inputs of shape {xshape}")
        kshape, groups = kshape[:-2] + (1, kshape[-2] * kshape[-1]), xshape[-1]
    plan = _plan(xshape, kshape, strides if type(strides) is tuple else _hashable(strides), padding,
                 dilation_rate if type(dilation_rate) is tuple else _hashable(dilation_rate), groups, _who)
    on_gpu = type(kv) is not np.ndarray and devices.is_device_array(kv)
    if not is_recording():  # nothing to record: the forward on the arrays, without a graph node
        b = bias.value if isinstance(bias, Tensor) else bias
        if on_gpu:
            return Tensor(Conv.forward(None, xv, kv, b, plan, activation, float(alpha), False))
        if type(xv) is not np.ndarray or xv.dtype != kv.dtype:
            xv = float_array(xv, dtype=kv.dtype)
        if plan.reflect is not None:
            xv = np.pad(xv, plan.reflect, mode="reflect")
        if b is not None and (type(b) is not np.ndarray or b.dtype != kv.dtype):
            b = np.ascontiguousarray(float_array(b, dtype=kv.dtype))
        return Tensor(Conv.forward(None, xv, kv, b, plan, activation, float(alpha), False))
    if on_gpu:  # Conv.forward moves a host batch in and refuses what the GPU does not run
        return Conv.apply(inputs, kernel, bias, plan=plan, activation=activation, alpha=float(alpha), recording=True)
    x = _as_float(inputs, kv.dtype)
    if plan.reflect is not None:
        x = _pad(x, plan.reflect, mode="reflect")
    if isinstance(bias, Tensor):
        if bias.value.dtype != kv.dtype:
            bias = cast(bias, kv.dtype)
    elif bias is not None:
        bias = np.ascontiguousarray(float_array(bias, dtype=kv.dtype))
    return Conv.apply(x, kernel, bias, plan=plan, activation=activation, alpha=float(alpha), recording=True)


def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """keras.ops.conv: N-D convolution (N = 1, 2 or 3), channels_last; groups = C // kernel.shape[-2]."""
    return conv2d_bias_act(inputs, kernel, None, strides, padding, dilation_rate, data_format=data_format)


def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """keras.ops.depthwise_conv: kernel (*kernel_size, C, depth_multiplier); output channel
    c * depth_multiplier + m sees input channel c only."""
    return conv2d_bias_act(inputs, kernel, None, strides, padding, dilation_rate, data_format=data_format,
                           depthwise=True, _who="depthwise_conv")


def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """keras.ops.separable_conv: depthwise_conv, then a 1x1 conv with ``pointwise_kernel``
    (*1s, C * depth_multiplier, C_out)."""
    check_data_format(data_format, "separable_conv")
    y = depthwise_conv(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv(y, pointwise_kernel, 1, "valid")


def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """keras.ops.conv_transpose: kernel (*kernel_size, C_out, C_in); output length per axis
    (L - 1) * s + k_eff - 2 * pad + output_padding (Keras's formula; see transpose_output_length)."""
    return conv_transpose_bias(inputs, kernel, None, strides, padding, output_padding, data_format, dilation_rate)


def conv_transpose_bias(inputs, kernel, bias=None, strides=1, padding="valid", output_padding=None, data_format=None,
                        dilation_rate=1):
    """conv_transpose(inputs, kernel, ...) + bias (C_out,) in one op (the Conv*DTranspose layers' call),
    on the device the kernel lives on (a host batch is copied in)."""
    who = "conv_transpose"
    check_data_format(data_format, who)
    kv = value(kernel)
    kshape = tuple(np.shape(kv))
    rank = len(kshape) - 2
    if rank not in (1, 2):
        raise ValueError(f"{who}: only 1-D and 2-D transposed convolutions are supported, received a kernel "
                         f"of shape {kshape}")
    shape = tuple(np.shape(value(inputs)))
    if len(shape) != rank + 2:
        raise ValueError(f"{who}: expected inputs of rank {rank + 2} (a kernel of shape {kshape}), received "
                         f"shape {shape}")
    if shape[-1] != kshape[-1]:
        raise ValueError(f"{who}: expected inputs with {kshape[-1]} channels (kernel shape {kshape}, axis -1), "
                         f"received inputs of shape {tuple(shape)}")
    strides = normalize_tuple(strides, rank, "strides", who)
    dilation = normalize_tuple(dilation_rate, rank, "dilation_rate", who)
    mode = normalize_padding(padding, who, ("valid", "same"))
    out_pad = (None,) * rank if output_padding is None else normalize_tuple(output_padding, rank, "output_padding", who)
    out, before = [], []
    for n, k, s, d, op in zip(shape[1:-1], kshape[:rank], strides, dilation, out_pad):
        length = transpose_output_length(n, k, s, d, mode, op)
        if length <= 0:
            raise ValueError(f"{who}: non-positive output length {length} for input spatial shape "
                             f"{tuple(shape[1:-1])}, kernel {kshape[:rank]}, padding={padding!r}")
        effective = (k - 1) * d + 1
        before.append(max((n - 1) * s + effective - length, 0) // 2 if mode == "same" else 0)
        out.append(length)
    on_gpu = type(kv) is not np.ndarray and devices.is_device_array(kv)
    x = inputs if on_gpu else _as_float(inputs, kv.dtype)  # the forward moves a host batch to the GPU
    if bias is not None:
        bshape = tuple(np.shape(value(bias)))
        if bshape != (kshape[-2],):
            raise ValueError(f"{who}: bias must have shape {(kshape[-2],)} (the kernel's output channels), "
                             f"received {bshape}")
        if not on_gpu and not isinstance(bias, Tensor):
            bias = np.ascontiguousarray(float_array(bias, dtype=kv.dtype))
        elif not on_gpu and bias.value.dtype != kv.dtype:
            bias = cast(bias, kv.dtype)
    if rank == 1:
        strides, dilation, before, out, kernel4 = (1,) + strides, (1,) + dilation, [0] + before, [1] + out, (1,) + kshape
    else:
        kernel4 = kshape
    return ConvTranspose.apply(x, kernel, bias, kernel4=kernel4, strides=strides, pad_top_left=tuple(before),
                               out_hw=tuple(out), dilation=dilation)


__all__ = ["conv", "conv_transpose", "conv_transpose_bias", "depthwise_conv", "separable_conv", "conv2d_bias_act"]
