"""Conv ops: forward against tests/reference/conv.py and tape gradients against central finite
differences (float64), across strides, paddings (valid / same / causal / reflect), dilations,
groups, odd sizes and batch 1; backward computes only what is needed; errors name the op."""
import sys
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import kernels
from dlcore.ops.conv import conv, conv2d_bias_act, conv_transpose, conv_transpose_bias, depthwise_conv, separable_conv
from harness import check_op_gradients

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import conv as ref  # noqa: E402
from reference import elementwise as ref_act  # noqa: E402


def rand(shape, seed):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape)


def pads_of(spatial, kernel, strides, padding, dilation):
    return tuple(ref.pads(n, k, padding, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation))


# (input shape, kernel shape, strides, padding, dilation)
CONV_CASES = [
    ((2, 5, 6, 3), (3, 3, 3, 4), (1, 1), "same", (1, 1)),
    ((1, 7, 5, 2), (3, 2, 2, 3), (2, 1), "valid", (1, 1)),
    ((2, 6, 6, 2), (3, 3, 2, 2), (2, 2), "same", (1, 1)),
    ((1, 7, 7, 2), (3, 3, 2, 2), (1, 1), "same", (2, 2)),
    ((1, 6, 5, 4), (3, 3, 2, 4), (1, 1), "same", (1, 1)),          # groups = 2
    ((2, 5, 5, 3), (3, 3, 1, 6), (1, 1), "valid", (1, 1)),          # groups = 3 (depthwise x2)
    ((1, 5, 6, 3), (3, 3, 3, 2), (1, 1), "reflect", (1, 1)),
    ((1, 6, 7, 2), (3, 3, 2, 3), (2, 2), "reflect", (1, 1)),
    ((2, 4, 4, 3), (1, 1, 3, 5), (1, 1), "valid", (1, 1)),          # pointwise
    ((2, 7, 3), (3, 3, 2), (1,), "causal", (2,)),                   # 1-D
    ((1, 8, 2), (4, 2, 3), (3,), "same", (1,)),
    ((2, 6, 4), (3, 2, 4), (1,), "valid", (1,)),                    # 1-D groups = 2
    ((1, 7, 2), (3, 2, 2), (1,), "reflect", (1,)),
]


@pytest.mark.parametrize("xs,ks,strides,padding,dilation", CONV_CASES)
def test_conv_forward_and_gradients(xs, ks, strides, padding, dilation):
    x, k = rand(xs, 1), rand(ks, 2)
    rank = len(xs) - 2
    groups = xs[-1] // ks[-2]
    pads = pads_of(xs[1:-1], ks[:rank], strides, padding, dilation)
    if rank == 1:
        xr = ref.reflect_pad(x[:, None], (0, 0), pads[0])[:, 0] if padding == "reflect" else x
        expected = ref.conv1d(xr, k, strides[0], (0, 0) if padding == "reflect" else pads[0], dilation[0], groups)
    else:
        xr = ref.reflect_pad(x, *pads) if padding == "reflect" else x
        expected = ref.conv2d(xr, k, strides, ((0, 0), (0, 0)) if padding == "reflect" else pads, dilation, groups)
    y = conv(x, k, strides, padding, dilation_rate=dilation)
    np.testing.assert_allclose(y.value, expected, rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda a, b: conv(a, b, strides, padding, dilation_rate=dilation), [x, k])


@pytest.mark.parametrize("activation", ["relu", "relu6", "tanh", "sigmoid", "elu", "selu", "exponential",
                                        "softmax", "leaky_relu", "gelu", "silu"])
def test_conv2d_bias_act_gradients(activation):
    # relu ... exponential: training keeps the fused forward (derivative read off y); the others keep z
    x, k, b = rand((2, 5, 5, 2), 1), rand((3, 3, 2, 3), 2), rand((3,), 3)
    alpha = {"leaky_relu": 0.1, "elu": 0.7}.get(activation, 0.0)

    def fn(a, w, bias):
        return conv2d_bias_act(a, w, bias, 1, "same", activation=activation, alpha=alpha)

    z = ref.conv2d(x, k, 1, ((1, 1), (1, 1)), bias=b)
    expected = ref_act.softmax(z) if activation == "softmax" else ref_act.FORWARD[activation](z, alpha)
    np.testing.assert_allclose(fn(x, k, b).value, expected, rtol=1e-12, atol=1e-12)
    with dl.GradientTape():  # recording: z kept, activation applied unfused
        np.testing.assert_allclose(fn(dl.Variable(x), k, b).value, expected, rtol=1e-12, atol=1e-12)
    check_op_gradients(fn, [x, k, b])


@pytest.mark.parametrize("xs,ks,strides,padding,output_padding,dilation", [
    ((2, 3, 4, 3), (3, 3, 2, 3), (2, 2), "same", None, (1, 1)),
    ((1, 3, 3, 2), (3, 3, 2, 2), (2, 2), "valid", None, (1, 1)),
    ((1, 4, 3, 2), (3, 2, 3, 2), (2, 3), "same", (1, 2), (1, 1)),
    ((1, 3, 3, 2), (3, 3, 2, 2), (1, 1), "same", None, (2, 2)),
    ((2, 4, 3), (3, 2, 3), (2,), "valid", (1,), (1,)),
])
def test_conv_transpose_forward_and_gradients(xs, ks, strides, padding, output_padding, dilation):
    x, k = rand(xs, 1), rand(ks, 2)
    rank = len(xs) - 2
    out = [ref.deconv_output_length(n, kk, padding, None if output_padding is None else output_padding[i],
                                    strides[i], dilation[i])
           for i, (n, kk) in enumerate(zip(xs[1:-1], ks[:rank]))]
    y = conv_transpose(x, k, strides, padding, output_padding, dilation_rate=dilation)
    assert y.shape == (xs[0],) + tuple(out) + (ks[-2],)
    # the transposed convolution is the adjoint of conv: <conv_transpose(x), v> == <x, conv(v)>
    v = rand(y.shape, 3)
    pad_tl = []
    for i, (n, kk) in enumerate(zip(xs[1:-1], ks[:rank])):
        eff = (kk - 1) * dilation[i] + 1
        pad_tl.append(max((n - 1) * strides[i] + eff - out[i], 0) // 2 if padding == "same" else 0)
    if rank == 1:
        expected = ref.conv2d_transpose(x[:, None], k[None], (1, out[0]), (1,) + strides, (0, pad_tl[0]),
                                        (1,) + dilation)[:, 0]
    else:
        expected = ref.conv2d_transpose(x, k, out, strides, pad_tl, dilation)
    np.testing.assert_allclose(y.value, expected, rtol=1e-12, atol=1e-12)
    assert np.isclose(np.sum(y.value * v), np.sum(x * _conv_of(v, k, strides, pad_tl, out, xs, dilation)))
    check_op_gradients(lambda a, b: conv_transpose(a, b, strides, padding, output_padding, dilation_rate=dilation),
                       [x, k])


@pytest.mark.parametrize("xs,ks,strides,padding", [((2, 3, 4, 3), (3, 3, 2, 3), (2, 2), "same"),
                                                   ((2, 4, 3), (3, 2, 3), (2,), "valid")])
def test_conv_transpose_bias_is_conv_transpose_plus_bias(xs, ks, strides, padding):
    """conv_transpose_bias (the Conv*DTranspose layers' op) equals conv_transpose + the bias per
    output channel, and its float64 finite-difference gradients hold for x, kernel and bias."""
    x, k, b = rand(xs, 1), rand(ks, 2), rand((ks[-2],), 4)
    y = conv_transpose_bias(x, k, b, strides, padding)
    np.testing.assert_allclose(y.value, conv_transpose(x, k, strides, padding).value + b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv_transpose_bias(x, k, None, strides, padding).value,
                               conv_transpose(x, k, strides, padding).value, rtol=0, atol=0)
    check_op_gradients(lambda a, c, d: conv_transpose_bias(a, c, d, strides, padding), [x, k, b])


def _conv_of(v, k, strides, pad_tl, out, xs, dilation):
    """The forward conv whose input gradient conv_transpose is: its output has the shape of x."""
    rank = len(xs) - 2
    if rank == 1:
        v, k, strides, dilation, pad_tl = v[:, None], k[None], (1,) + strides, (1,) + dilation, [0] + pad_tl
        xs = (xs[0], 1) + xs[1:]
    pads = [(p, max(0, (n - 1) * s + (kk - 1) * d + 1 - p - o))
            for p, n, s, kk, d, o in zip(pad_tl, xs[1:-1], strides, k.shape[:2], dilation, v.shape[1:-1])]
    y = ref.conv2d(v, k, strides, pads, dilation)[:, :xs[1], :xs[2]]
    return y[:, 0] if rank == 1 else y


@pytest.mark.parametrize("xs,ks,strides,padding,dilation", [
    ((2, 5, 5, 3), (3, 3, 3, 2), (1, 1), "same", (1, 1)),
    ((1, 6, 7, 2), (3, 3, 2, 1), (2, 2), "valid", (1, 1)),
    ((1, 7, 7, 2), (3, 3, 2, 1), (1, 1), "same", (2, 2)),
    ((2, 7, 3), (3, 3, 2), (1,), "causal", (1,)),
])
def test_depthwise_conv_forward_and_gradients(xs, ks, strides, padding, dilation):
    x, k = rand(xs, 1), rand(ks, 2)
    rank = len(xs) - 2
    pads = pads_of(xs[1:-1], ks[:rank], strides, padding, dilation)
    if rank == 1:
        expected = ref.depthwise_conv2d(x[:, None], k[None], (1,) + strides, ((0, 0),) + pads, (1,) + dilation)[:, 0]
    else:
        expected = ref.depthwise_conv2d(x, k, strides, pads, dilation)
    y = depthwise_conv(x, k, strides, padding, dilation_rate=dilation)
    np.testing.assert_allclose(y.value, expected, rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda a, b: depthwise_conv(a, b, strides, padding, dilation_rate=dilation), [x, k])


def test_separable_conv_forward_and_gradients():
    x, dk, pk = rand((2, 5, 6, 3), 1), rand((3, 3, 3, 2), 2), rand((1, 1, 6, 4), 3)
    pads = pads_of((5, 6), (3, 3), (2, 2), "same", (1, 1))
    y = separable_conv(x, dk, pk, 2, "same")
    np.testing.assert_allclose(y.value, ref.separable_conv2d(x, dk, pk, 2, pads), rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda a, b, c: separable_conv(a, b, c, 2, "same"), [x, dk, pk])


def test_float32_inputs_follow_the_kernel_dtype():
    x = rand((1, 4, 4, 2), 1).astype(np.float32)
    y = conv(x, rand((3, 3, 2, 2), 2).astype(np.float32), padding="same")
    assert y.dtype == np.float32
    y64 = conv(x, rand((3, 3, 2, 2), 2), padding="same")  # float64 kernel: float64 compute
    assert y64.dtype == np.float64


def _counting(monkeypatch):
    calls = {}
    table = kernels._load_table()
    for name in ("conv2d_forward", "conv2d_backward_input", "conv2d_backward_weight", "sum_axis0"):
        original = table[name]

        def spy(*args, _name=name, _original=original):
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args)

        monkeypatch.setitem(table, name, spy)
    return calls


def test_backward_computes_only_what_is_needed(monkeypatch):
    calls = _counting(monkeypatch)
    x = dl.Tensor(rand((2, 5, 5, 3), 1))
    frozen = dl.Variable(rand((3, 3, 3, 4), 2), trainable=False)
    bias = dl.Variable(np.zeros(4))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = conv2d_bias_act(x, frozen, bias, padding="same")
        loss = dl.ops.sum(y)
    gx, gb = tape.gradient(loss, [x, bias])
    assert gx is not None and gb is not None
    assert calls.get("conv2d_backward_weight", 0) == 0 and calls["conv2d_backward_input"] == 1
    np.testing.assert_allclose(gb.value, np.full(4, 50.0))  # db by sum_axis0 when dW is not needed
    calls.clear()
    trainable = dl.Variable(rand((3, 3, 3, 4), 2))
    with dl.GradientTape() as tape:
        loss = dl.ops.sum(conv2d_bias_act(x, trainable, None, padding="same"))  # x is data
    (gk,) = tape.gradient(loss, [trainable])
    assert gk is not None
    assert calls.get("conv2d_backward_input", 0) == 0 and calls["conv2d_backward_weight"] == 1


def test_errors_name_the_op():
    x = rand((1, 5, 5, 3), 1)
    with pytest.raises(ValueError, match=r"conv: the input channels \(3\).*kernel shape \(3, 3, 2, 4\)"):
        conv(x, rand((3, 3, 2, 4), 2))
    with pytest.raises(ValueError, match=r"conv: the kernel .*larger than the padded input.*\(1, 5, 5, 3\)"):
        conv(x, rand((7, 7, 3, 4), 2))
    with pytest.raises(ValueError, match="channels_first"):
        conv(x, rand((3, 3, 3, 4), 2), data_format="channels_first")
    with pytest.raises(ValueError, match="padding"):
        conv(x, rand((3, 3, 3, 4), 2), padding="full")
    with pytest.raises(ValueError, match="causal"):
        conv(x, rand((3, 3, 3, 4), 2), padding="causal")
    with pytest.raises(ValueError, match=r"rank 4.*received shape \(5, 5, 3\)"):
        conv(x[0], rand((3, 3, 3, 4), 2))
    with pytest.raises(ValueError, match=r"depthwise_conv: expected inputs with 2 channels"):
        depthwise_conv(x, rand((3, 3, 2, 1), 2))
    with pytest.raises(ValueError, match=r"conv_transpose: expected inputs with 4 channels"):
        conv_transpose(x, rand((3, 3, 2, 4), 2))
    with pytest.raises(ValueError, match="reflect"):
        conv(rand((1, 2, 2, 1), 1), rand((5, 5, 1, 1), 2), padding="reflect")


# (input shape, kernel shape, strides, padding, dilation, activation): rank 3 as one 2-D kernel call
# over the N * D_out depth-stacked images (ops.conv.ConvPlan.x4)
CONV3D_CASES = [
    ((2, 4, 5, 4, 3), (2, 3, 2, 3, 4), (1, 1, 1), "valid", (1, 1, 1), "linear"),
    ((1, 5, 4, 5, 4), (3, 2, 2, 2, 4), (2, 1, 2), "same", (1, 1, 1), "relu"),   # groups = 2
    ((2, 6, 4, 3, 2), (2, 2, 2, 2, 3), (1, 1, 1), "same", (2, 1, 1), "tanh"),
    ((1, 4, 5, 5, 2), (3, 3, 3, 2, 2), (1, 2, 1), "reflect", (1, 1, 1), "linear"),
    ((1, 5, 3, 4, 3), (2, 2, 2, 1, 3), (3, 1, 1), "same", (1, 1, 1), "sigmoid"),  # depthwise
]


@pytest.mark.parametrize("xshape,kshape,strides,padding,dilation,activation", CONV3D_CASES)
def test_conv3d_forward_and_gradients(xshape, kshape, strides, padding, dilation, activation):
    x, w, b = rand(xshape, 1), rand(kshape, 2), rand(kshape[-1], 3)
    groups = xshape[-1] // kshape[-2]
    pads = pads_of(xshape[1:4], kshape[:3], strides, padding, dilation)
    xr = np.pad(x, ((0, 0),) + pads + ((0, 0),), mode="reflect") if padding == "reflect" else x
    z = ref.conv3d(xr, w, strides, ((0, 0),) * 3 if padding == "reflect" else pads, dilation, groups, b)
    y = conv2d_bias_act(x, w, b, strides, padding, dilation, None, activation).value
    np.testing.assert_allclose(y, getattr(ref_act, activation)(z), rtol=1e-10, atol=1e-10)
    check_op_gradients(lambda x, w, b: conv2d_bias_act(x, w, b, strides, padding, dilation, None, activation),
                       [x, w, b])


def test_conv3d_frozen_kernel_skips_the_weight_kernel(monkeypatch):
    table = kernels._load_table()
    called = []
    monkeypatch.setitem(table, "conv2d_backward_weight", lambda *a: called.append(1))
    x, w = dl.Tensor(rand((1, 3, 4, 4, 2), 4)), rand((2, 2, 2, 2, 3), 5)
    with dl.GradientTape() as tape:
        tape.watch(x)
        loss = dl.ops.sum(conv(x, w))
    dx = tape.gradient(loss, x).value
    assert not called
    np.testing.assert_allclose(dx.sum(), np.sum(w.sum(axis=-1)) * 2 * 3 * 3, rtol=1e-10)


def test_batch1_convolutions_run_on_the_team(monkeypatch):
    # With two threads configured, a convolution under TEAM_MIN_MACS stays on one thread; the
    # batch-1 layers of the runner's CNN (0.26-3.1 M multiply-adds) get both, and their kernel
    # splits them over the thread team (never OpenMP, whose barrier waits for a descheduled
    # member); a batch of 16 of the 3.1 M one (50 M) gets both too.
    from dlcore.kernels import _team

    calls = []
    real_get = kernels.get

    def spy(name, device="cpu"):
        fn = real_get(name, device)
        if name != "conv2d_forward":
            return fn
        return lambda *args: calls.append(args[-1]) or fn(*args)

    original = kernels.num_threads()
    dl.config.set_num_threads(2)
    guard = _team.set_load_guard(False)
    monkeypatch.setattr(kernels, "get", spy)
    try:
        conv2d_bias_act(rand((1, 5, 5, 4), 0).astype(np.float32), rand((3, 3, 4, 8), 1).astype(np.float32))
        k = rand((3, 3, 32, 64), 1).astype(np.float32)
        jobs = _team.stats()[0]
        conv2d_bias_act(rand((1, 15, 15, 32), 0).astype(np.float32), k, activation="relu")
        assert _team.stats()[0] == jobs + 1
        conv2d_bias_act(rand((16, 15, 15, 32), 0).astype(np.float32), k, activation="relu")
    finally:
        _team.set_load_guard(guard)
        dl.config.set_num_threads(original)
    assert calls == [1, 2, 2]
