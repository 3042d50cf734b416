"""ONNX export: every exported layer passes onnx.checker, and onnx's reference evaluator (needs only
``onnx``) and ONNX Runtime (when installed) reproduce dlcore's predictions at rtol 1e-4."""
import numpy as np
import pytest

import dlcore as dl

onnx = pytest.importorskip("onnx")
from onnx.reference import ReferenceEvaluator  # noqa: E402

try:
    import onnxruntime as ort
except ImportError:  # the reference evaluator still checks every case
    ort = None

L = dl.layers
RNG = np.random.default_rng(0)


def _randomize(model, rng):
    """Random weights (positive variances), so that no weight is left at a neutral value."""
    for w in model.weights:
        values = rng.normal(size=w.shape) * 0.5
        if "variance" in w.path:
            values = np.abs(values) + 0.5
        w.assign(values.astype("float32"))


def _as_list(y):
    return [np.asarray(v) for v in (y if isinstance(y, (list, tuple)) else [y])]


def _check(model, xs, tmp_path, name="m", reference=True):
    """Export ``model``, check the file and compare its outputs on ``xs`` with dlcore's (onnx's
    reference evaluator too unless ``reference=False``: it ignores an RNN's sequence_lens)."""
    xs = xs if isinstance(xs, list) else [xs]
    path = tmp_path / f"{name}.onnx"
    model.export(str(path), format="onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    want = _as_list(model.predict(xs if len(xs) > 1 else xs[0], verbose=0))
    feed = {i.name: x for i, x in zip(proto.graph.input, xs)}
    runs = [ReferenceEvaluator(proto).run(None, feed)] if reference else []
    if ort is not None:
        runs.append(ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed))
    for got in runs:
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return [n.op_type for n in proto.graph.node]


def _x(*shape):
    return RNG.normal(size=shape).astype("float32")


def test_mlp_softmax(tmp_path):
    m = dl.Sequential([dl.Input((8,)), L.Dense(16, activation="relu"), L.Dropout(0.5), L.Dense(4, activation="gelu"),
                       L.Activation("softmax")])
    _check(m, _x(3, 8), tmp_path)


def test_cnn_one_transpose_each_way(tmp_path):
    rng = np.random.default_rng(1)
    m = dl.Sequential([dl.Input((24, 24, 3)), L.Conv2D(8, 3, padding="same", activation="relu"),
                       L.BatchNormalization(), L.MaxPooling2D(2),
                       L.Conv2D(8, 3, strides=2, padding="same", groups=2), L.AveragePooling2D(2, padding="same"),
                       L.Conv2D(4, 2, dilation_rate=2, activation="silu"), L.Flatten(), L.Dense(5)])
    _randomize(m, rng)
    ops = _check(m, rng.normal(size=(2, 24, 24, 3)).astype("float32"), tmp_path)
    assert ops.count("Transpose") == 2 and "BatchNormalization" in ops


def test_conv1d_causal_and_global_pooling(tmp_path):
    m = dl.Sequential([dl.Input((10, 4)), L.Conv1D(6, 3, padding="causal", dilation_rate=2),
                       L.Conv1D(6, 3, padding="same"), L.GlobalAveragePooling1D()])
    _check(m, _x(2, 10, 4), tmp_path)


@pytest.mark.parametrize("cls,kwargs", [("LSTM", {}), ("GRU", {}), ("GRU", {"reset_after": False}),
                                        ("SimpleRNN", {}), ("LSTM", {"return_sequences": True, "go_backwards": True})])
def test_recurrent_gate_orders(tmp_path, cls, kwargs):
    rng = np.random.default_rng(3)
    m = dl.Sequential([dl.Input((5, 3)), getattr(L, cls)(7, **kwargs)])
    _randomize(m, rng)
    _check(m, rng.normal(size=(2, 5, 3)).astype("float32"), tmp_path)


def test_embedding_and_functional_merges(tmp_path):
    rng = np.random.default_rng(4)
    m = dl.Sequential([dl.Input((6,), dtype="int32"), L.Embedding(20, 4), L.LSTM(5), L.Dense(2)])
    _check(m, rng.integers(0, 20, size=(3, 6)).astype("int32"), tmp_path, "emb")
    a = dl.Input((8, 8, 3))
    b = L.Conv2D(4, 3, padding="same")(a)
    c = L.Conv2D(4, 1)(a)
    d = L.Concatenate()([L.Add()([b, c]), c])
    e = L.LayerNormalization()(L.Multiply()([d, d]))
    model = dl.Model(a, L.GlobalMaxPooling2D()(e))
    assert "LayerNormalization" in _check(model, _x(2, 8, 8, 3), tmp_path, "f")


# ---- spatial reshaping, convolutions -------------------------------------------------------------
_SPATIAL = {
    "zero_padding_2d_cropping_2d": ((6, 7, 3), lambda: [L.ZeroPadding2D(((1, 2), (0, 3))), L.Conv2D(4, 3),
                                                        L.ZeroPadding2D(1), L.Cropping2D(((1, 0), (2, 1)))]),
    "zero_padding_1d_cropping_1d_upsampling_1d": ((9, 3), lambda: [L.ZeroPadding1D((2, 1)), L.Cropping1D((1, 3)),
                                                                   L.UpSampling1D(3)]),
    "padding_cropping_upsampling_3d": ((4, 5, 6, 3), lambda: [
        L.ZeroPadding3D(((1, 0), (0, 2), (1, 1))), L.Cropping3D(((0, 1), (1, 1), (2, 0))), L.UpSampling3D((1, 2, 2))]),
    "upsampling_2d_nearest": ((6, 7, 3), lambda: [L.UpSampling2D((2, 3))]),
    "upsampling_2d_bilinear": ((6, 7, 3), lambda: [L.Conv2D(4, 1), L.UpSampling2D((2, 3), interpolation="bilinear"),
                                                   L.Conv2D(2, 1)]),
    "channels_first_spatial": ((6, 7, 3), lambda: [
        L.ZeroPadding2D(1, data_format="channels_first"), L.Cropping2D(((1, 0), (0, 1)), data_format="channels_first"),
        L.UpSampling2D(2, data_format="channels_first")]),
    "reflection_padding_and_conv": ((6, 7, 3), lambda: [L.ReflectionPadding2D((1, 2)),
                                                        L.Conv2D(3, 3, padding="reflect")]),
    "depthwise_conv_2d": ((6, 7, 3), lambda: [
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", strides=2, activation="relu"),
        L.DepthwiseConv2D(2, dilation_rate=2)]),
    "depthwise_conv_1d": ((9, 3), lambda: [L.DepthwiseConv1D(3, depth_multiplier=3, padding="causal")]),
    "separable_conv_2d": ((6, 7, 3), lambda: [
        L.SeparableConv2D(5, 3, depth_multiplier=2, padding="same", activation="tanh"),
        L.SeparableConv2D(4, 2, strides=2, use_bias=False)]),
    "separable_conv_1d": ((9, 3), lambda: [L.SeparableConv1D(5, 3, padding="same")]),
    "conv_3d_pooling_3d": ((4, 5, 6, 3), lambda: [L.Conv3D(4, 2, padding="same"), L.MaxPooling3D(2),
                                                  L.GlobalAveragePooling3D()]),
    "prelu_repeat_vector": ((6,), lambda: [L.PReLU(), L.RepeatVector(3), L.PReLU(shared_axes=[1])]),
}


@pytest.mark.parametrize("name", sorted(_SPATIAL))
def test_spatial_and_conv_layers(tmp_path, name):
    shape, make = _SPATIAL[name]
    model = dl.Sequential([dl.Input(shape)] + make())
    _randomize(model, RNG)
    _check(model, _x(2, *shape), tmp_path, name)


# (kernel, strides, padding, output_padding, dilation): the cases where Keras's crop and ONNX's pads differ
_TRANSPOSED = [(3, 2, "same", None, 1), (3, 2, "valid", None, 1), (2, 3, "valid", None, 1), (2, 3, "same", None, 1),
               (3, 2, "same", 1, 1), (4, 2, "same", 1, 1), (3, 2, "valid", 1, 1), (3, 1, "same", None, 2),
               (5, 3, "same", 2, 1)]


@pytest.mark.parametrize("kernel,strides,padding,output_padding,dilation", _TRANSPOSED)
def test_conv_transpose_pads_and_output_padding(tmp_path, kernel, strides, padding, output_padding, dilation):
    args = dict(strides=strides, padding=padding, output_padding=output_padding, dilation_rate=dilation)
    m2 = dl.Sequential([dl.Input((5, 6, 3)), L.Conv2DTranspose(4, kernel, **args)])
    m1 = dl.Sequential([dl.Input((7, 3)), L.Conv1DTranspose(2, kernel, activation="relu", **args)])
    for model, x, name in ((m2, _x(2, 5, 6, 3), "t2"), (m1, _x(2, 7, 3), "t1")):
        _randomize(model, RNG)
        assert "ConvTranspose" in _check(model, x, tmp_path, name)


# ---- normalization, attention, recurrent wrappers ------------------------------------------------
_NORMS = {
    "group_norm": ((6, 7, 4), lambda: [L.GroupNormalization(2), L.Conv2D(4, 1), L.GroupNormalization(4, epsilon=1e-2)]),
    "instance_norm": ((5, 8), lambda: [L.GroupNormalization(-1)]),
    "layer_norm_two_axes": ((5, 8), lambda: [L.LayerNormalization(axis=[1, 2])]),
    "layer_norm_inner_axis": ((5, 8), lambda: [L.LayerNormalization(axis=1, center=False)]),
    "layer_norm_rms_scaling": ((5, 8), lambda: [L.LayerNormalization(rms_scaling=True)]),
    "layer_norm_no_scale": ((5, 8), lambda: [L.LayerNormalization(scale=False)]),
    "rms_norm": ((5, 8), lambda: [L.RMSNormalization()]),
    "einsum_dense_heads": ((5, 8), lambda: [L.EinsumDense("abc,cde->abde", (5, 3, 2), bias_axes="de",
                                                          activation="relu")]),
    "einsum_dense_ellipsis": ((5, 8), lambda: [L.EinsumDense("...b,bc->...c", 4, bias_axes="c")]),
    "einsum_dense_bias_on_time": ((5, 8), lambda: [L.EinsumDense("abc,cd->abd", (5, 4), bias_axes="b")]),
}


@pytest.mark.parametrize("name", sorted(_NORMS))
def test_normalization_and_einsum_dense(tmp_path, name):
    shape, make = _NORMS[name]
    model = dl.Sequential([dl.Input(shape)] + make())
    _randomize(model, RNG)
    _check(model, _x(2, *shape), tmp_path, name)


def test_multi_head_attention(tmp_path):
    q, v, k = dl.Input((5, 8)), dl.Input((6, 8)), dl.Input((6, 3))
    xq, xv, xk = _x(2, 5, 8), _x(2, 6, 8), _x(2, 6, 3)
    cases = [
        (dl.Model(q, L.MultiHeadAttention(2, 4)(q, q)), [xq]),
        (dl.Model(q, L.MultiHeadAttention(2, 4, use_bias=False, output_shape=6)(q, q, use_causal_mask=True)), [xq]),
        (dl.Model(q, L.MultiHeadAttention(2, 4, sliding_window=2)(q, q, use_causal_mask=True)), [xq]),
        (dl.Model([q, v, k], list(L.MultiHeadAttention(3, 4, value_dim=2, use_gate=True)(
            q, v, key=k, return_attention_scores=True))), [xq, xv, xk]),
    ]
    for i, (model, xs) in enumerate(cases):
        _randomize(model, RNG)
        ops = _check(model, xs, tmp_path, f"mha{i}")
        assert "Softmax" in ops and "Einsum" in ops


def test_attention_and_additive_attention(tmp_path):
    q, v = dl.Input((5, 8)), dl.Input((6, 8))
    out, scores = L.Attention(use_scale=True, score_mode="concat")([q, v, v], return_attention_scores=True)
    cases = [dl.Model([q, v], L.Attention()([q, v])),
             dl.Model([q, v], L.Attention(use_scale=True)([q, L.Dense(8)(q)], use_causal_mask=True)),
             dl.Model([q, v], [out, scores]),
             dl.Model([q, v], L.AdditiveAttention()([q, v])),
             dl.Model([q, v], L.AdditiveAttention(use_scale=False)([q, v], use_causal_mask=True))]
    for i, model in enumerate(cases):
        _randomize(model, RNG)
        _check(model, [_x(2, 5, 8), _x(2, 6, 8)], tmp_path, f"att{i}")


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_merge_modes(tmp_path, merge_mode):
    q = dl.Input((5, 4))
    for cls in ("LSTM", "GRU"):
        layer = getattr(L, cls)(3, return_sequences=merge_mode in ("sum", None))
        model = dl.Model(q, L.Bidirectional(layer, merge_mode=merge_mode)(q))
        _randomize(model, RNG)
        _check(model, _x(2, 5, 4), tmp_path, cls)


def test_bidirectional_states_and_own_backward_layer(tmp_path):
    q = dl.Input((5, 4))
    model = dl.Model(q, L.Bidirectional(L.LSTM(3, return_sequences=True, return_state=True))(q))
    _randomize(model, RNG)
    _check(model, _x(2, 5, 4), tmp_path, "states")
    backward = L.SimpleRNN(3, go_backwards=True, use_bias=False)
    model = dl.Model(q, L.Bidirectional(L.SimpleRNN(3), backward_layer=backward)(q))
    _randomize(model, RNG)
    _check(model, _x(2, 5, 4), tmp_path, "own")


# ---- nested models -----------------------------------------------------------------------------------
def test_nested_sequential_and_shared_functional_models_are_inlined(tmp_path):
    inner = dl.Sequential([L.Dense(5, activation="relu"), L.Dense(4)])
    model = dl.Sequential([dl.Input((6,)), inner, L.Dense(2)])
    _randomize(model, RNG)
    _check(model, _x(3, 6), tmp_path, "seq")
    a, b = dl.Input((4,)), dl.Input((4,))
    block = dl.Model([a, b], L.Concatenate()([L.Dense(3)(a), L.Multiply()([a, b])]))
    i = dl.Input((6,))
    h = L.Dense(4)(i)
    y = L.Concatenate()([block([h, h]), block([L.Dense(4)(i), h])])  # the block called twice
    deep = dl.Sequential([dl.Input((14,)), dl.Sequential([dl.Input((14,)), L.Dense(3)])])
    model = dl.Model(i, deep(y))
    _randomize(model, RNG)
    ops = _check(model, _x(3, 6), tmp_path, "func")
    assert ops.count("Gemm") == 2 + 2 * 1 + 1  # both calls of the block inlined


def test_nested_cnn_keeps_one_transpose_each_way(tmp_path):
    encoder = dl.Sequential([dl.Input((8, 8, 3)), L.Conv2D(4, 3, padding="same"), L.MaxPooling2D()])
    decoder = dl.Sequential([dl.Input((4, 4, 4)), L.Conv2DTranspose(3, 3, strides=2, padding="same")])
    model = dl.Sequential([dl.Input((8, 8, 3)), encoder, decoder])
    _randomize(model, RNG)
    ops = _check(model, _x(2, 8, 8, 3), tmp_path)
    assert ops == ["Transpose", "Conv", "MaxPool", "ConvTranspose", "Transpose", "Identity"]


# ---- refusals ------------------------------------------------------------------------------------------
def test_unsupported_layers_are_all_listed_nested_ones_included(tmp_path):
    inner = dl.Sequential([dl.Input((4, 2)), L.Lambda(lambda t: t * 2)])
    m = dl.Sequential([dl.Input((4, 2)), inner, L.TimeDistributed(dl.Sequential([dl.Input((2,)), L.Dense(2)])),
                       L.Flatten(), L.Dense(1)])
    with pytest.raises(ValueError, match=r"does not support: Lambda, TimeDistributed\(Sequential\)"):
        m.export(str(tmp_path / "x.onnx"), format="onnx")
    with pytest.raises(ValueError, match="format"):
        m.export(str(tmp_path / "x.tf"), format="tf_saved_model")


def test_masks_and_unsupported_call_arguments_are_refused(tmp_path):
    q = dl.Input((5, 8))
    mask = dl.Input((5, 5), dtype="bool")
    model = dl.Model([q, mask], L.MultiHeadAttention(2, 4)(q, q, attention_mask=mask))
    with pytest.raises(ValueError, match=r"MultiHeadAttention .*\['attention_mask'\] are not exported"):
        model.export(str(tmp_path / "x.onnx"), format="onnx")
    q4 = dl.Input((3, 4, 8))
    model = dl.Model(q4, L.MultiHeadAttention(2, 4)(q4, q4))
    with pytest.raises(ValueError, match="only rank-3 inputs"):
        model.export(str(tmp_path / "y.onnx"), format="onnx")


# ---- Divide, Dot, UnitNormalization, TimeDistributed, masks into recurrent layers ------------------------
def test_divide_dot_unit_normalization(tmp_path):
    a, b, c = dl.Input((3, 4)), dl.Input((3, 4)), dl.Input((5, 4))
    divided = L.Divide()([a, L.Activation("softplus")(b)])
    model = dl.Model([a, b, c], [divided, L.Dot(axes=(2, 2), normalize=True)([a, c]), L.Dot(axes=(1, 1))([b, a]),
                                 L.UnitNormalization(axis=[1, 2])(a), L.UnitNormalization()(c)])
    ops = _check(model, [_x(2, 3, 4), _x(2, 3, 4), _x(2, 5, 4)], tmp_path, "ddu")
    assert "Div" in ops and "Einsum" in ops
    v, w = dl.Input((4,)), dl.Input((4,))
    _check(dl.Model([v, w], L.Dot(axes=1)([v, w])), [_x(3, 4), _x(3, 4)], tmp_path, "dot_vectors")  # (batch, 1)


def test_time_distributed(tmp_path):
    x = dl.Input((5, 6, 6, 2))
    y = L.TimeDistributed(L.Conv2D(3, 3, activation="relu"))(x)
    y = L.TimeDistributed(L.Flatten())(y)
    model = dl.Model(x, L.TimeDistributed(L.Dense(4, activation="tanh"))(y))
    _randomize(model, np.random.default_rng(5))
    _check(model, _x(2, 5, 6, 6, 2), tmp_path, "td")


def _masked_ids():
    return np.array([[1, 2, 0, 0, 0], [0, 3, 0, 4, 5], [0, 0, 0, 0, 0], [5, 4, 3, 2, 1]], "int32")


@pytest.mark.parametrize("cls", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("kwargs", [{"return_sequences": True}, {"return_sequences": True, "go_backwards": True},
                                    {"return_state": True}])
def test_embedding_mask_into_recurrent_layers(tmp_path, cls, kwargs):
    """Embedding(mask_zero=True): any mask (padding first, inside, last, everything) as Keras
    computes it: the unmasked steps moved first, ONNX's sequence_lens, outputs put back."""
    if not kwargs.get("return_sequences") and ort is None:
        pytest.skip("onnx's reference evaluator ignores sequence_lens; ONNX Runtime checks this case")
    x = dl.Input((5,), dtype="int32")
    y = getattr(L, cls)(3, **kwargs)(L.Dense(4)(L.Embedding(6, 4, mask_zero=True)(x)))
    model = dl.Model(x, y)
    _randomize(model, np.random.default_rng(6))
    _check(model, _masked_ids(), tmp_path, "masked", reference=bool(kwargs.get("return_sequences")))


@pytest.mark.parametrize("merge_mode", ["concat", None])
def test_masking_into_bidirectional(tmp_path, merge_mode):
    x = dl.Input((4, 2))
    y = L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode=merge_mode)(L.Masking(0.0)(x))
    model = dl.Model(x, y)
    _randomize(model, np.random.default_rng(7))
    xs = _x(3, 4, 2)
    xs[0, 2:], xs[1, 0], xs[2] = 0.0, 0.0, 0.0
    _check(model, xs, tmp_path, "bimask")


def test_masks_read_by_other_layers_are_refused(tmp_path):
    x = dl.Input((4, 2))
    model = dl.Model(x, L.GlobalAveragePooling1D()(L.Masking(0.0)(x)))
    with pytest.raises(ValueError, match="GlobalAveragePooling1D .* reads or combines the mask"):
        model.export(str(tmp_path / "x.onnx"), format="onnx")
    model = dl.Model(x, L.Dense(2)(L.Masking(0.0)(x)))  # a mask nothing reads: dropped at the output
    _check(model, _x(2, 4, 2), tmp_path, "unread")
