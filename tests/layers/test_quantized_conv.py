"""int8 convolutions (dlcore's extension of Keras 3 ``quantize("int8")`` to Conv1D/Conv2D and
DepthwiseConv1D/2D) and static calibration (``model.quantize("int8", calibration_data=x)``): variables,
outputs equal to the NumPy int8 reference (tests/reference/quantized.py), the int8 conv stacks of the
inference plan, errors, .dlc round trips, and the accuracy bound on the digits CNN."""
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from dlcore.models.inference import Int8ChainStep

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import quantized as ref  # noqa: E402


def _x(shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _built(layer, shape):
    dl.utils.set_random_seed(9)
    model = dl.Sequential([dl.Input(shape), layer])
    model.build((None,) + shape)
    return model


@pytest.mark.parametrize("make,shape,pads,out_hw", [
    (lambda: layers.Conv2D(7, 3, padding="same", activation="relu"), (6, 5, 3), (1, 1), (6, 5)),
    (lambda: layers.Conv2D(5, (3, 2), strides=2), (7, 8, 4), (0, 0), (3, 4)),
    (lambda: layers.Conv2D(4, 3, dilation_rate=2, use_bias=False), (9, 9, 2), (0, 0), (5, 5)),
    (lambda: layers.Conv2D(6, 1), (4, 4, 8), (0, 0), (4, 4)),
])
def test_conv2d_quantize_matches_int8_reference(make, shape, pads, out_hw):
    model = _built(make(), shape)
    conv = model.layers[0]
    kernel = conv.kernel.value.copy()
    model.quantize("int8", conv_min_depth=0)
    assert [(w.name, w.dtype, w.shape) for w in conv.weights if w.name != "bias"] == [
        ("kernel", np.int8, kernel.shape), ("kernel_scale", np.float32, (kernel.shape[-1],)),
        ("input_scale", np.float32, ())]
    assert conv.dtype_policy.name == "int8_from_float32" and conv.get_config()["dtype"] == "int8_from_float32"
    q_ref, scale_ref = ref.quantize_rows(kernel.reshape(-1, kernel.shape[-1]).T)  # per output channel
    np.testing.assert_array_equal(conv.kernel.value, q_ref.T.reshape(kernel.shape))
    np.testing.assert_array_equal(conv.kernel_scale.value, scale_ref)
    x = _x((3,) + shape)
    q, x_scale = ref.quantize_samples(x)  # dynamic: one scale per sample
    bias = None if conv.bias is None else conv.bias.value
    expected = ref.int8_conv2d(q, x_scale, conv.kernel.value, conv.kernel_scale.value, bias, conv.strides, pads,
                               conv.dilation_rate, out_hw, relu=conv.activation is dl.activations.relu)
    np.testing.assert_array_equal(model.predict(x, verbose=0), expected)
    np.testing.assert_array_equal(conv(x).value, expected)


def test_depthwise_and_1d_quantize_match_reference():
    model = _built(layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (5, 6, 3))
    dw = model.layers[0]
    kernel = dw.kernel.value.copy()
    model.quantize("int8", conv_min_depth=0)
    assert dw.kernel.dtype == np.int8 and dw.kernel_scale.shape == (6,)
    x = _x((2, 5, 6, 3), 1)
    q, s = ref.quantize_samples(x)
    expected = ref.int8_conv2d(q, s, dw.kernel.value.reshape(3, 3, 1, 6), dw.kernel_scale.value, dw.bias.value,
                               (1, 1), (1, 1), (1, 1), (5, 6), groups=3)
    np.testing.assert_array_equal(dw(x).value, expected)
    # the float model is close (per-channel scales of the depthwise kernel: (C, DM) flattened)
    np.testing.assert_allclose(dw.kernel.value / dw.kernel_scale.value.reshape(3, 2), kernel, atol=0.01)

    for layer, shape in [(layers.Conv1D(4, 3, padding="causal"), (9, 3)), (layers.DepthwiseConv1D(2), (7, 4)),
                         (layers.Conv2D(3, 3, padding="reflect"), (6, 6, 2))]:
        m = _built(layer, shape)
        x = _x((2,) + shape, 2)
        y_float = m.predict(x, verbose=0)
        m.quantize("int8", conv_min_depth=0)
        y = m.predict(x, verbose=0)
        assert m.layers[0].quantization_mode == "int8"
        assert np.abs(y - y_float).max() < 0.03 * np.abs(y_float).max()


def test_conv_quantize_errors_and_layers_left_in_float():
    with pytest.raises(ValueError, match="isn't yet built"):
        layers.Conv2D(3, 3).quantize("int8")
    model = _built(layers.Conv2D(4, 3), (5, 5, 2))
    with pytest.raises(ValueError, match="invalid quantization mode"):
        model.layers[0].quantize("int4")

    class MyConv(layers.Conv2D):
        pass

    sub = _built(MyConv(2, 1), (3, 3, 2)).layers[0]
    with pytest.raises(TypeError, match="subclass MyConv"):
        sub.quantize("int8")
    model.quantize("int8", conv_min_depth=0)
    with pytest.raises(ValueError, match="already quantized"):
        model.layers[0].quantize("int8")
    with pytest.raises(ValueError, match="expected axis -1 of input shape to have value 2"):
        model.layers[0](np.zeros((1, 5, 5, 3), np.float32))
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="is quantized \\(int8\\) and runs inference only"):
        model.fit(_x((2, 5, 5, 2)), np.zeros((2, 3, 3, 4), np.float32), epochs=1, verbose=0)

    mixed = dl.Sequential([dl.Input((6, 6, 4)), layers.Conv2D(4, 3, groups=2), layers.SeparableConv2D(3, 1),
                           layers.Conv2DTranspose(2, 2), layers.Flatten(), layers.Dense(2)])
    mixed.build((None, 6, 6, 4))
    with pytest.warns(UserWarning, match="left in float32"):
        mixed.quantize("int8", conv_min_depth=0)
    assert mixed.float_layers == [mixed.layers[i].name for i in range(3)]
    assert mixed.layers[-1].quantization_mode == "int8"
    conv3d = _built(layers.Conv3D(2, 2), (3, 3, 3, 1))
    with pytest.warns(UserWarning, match="no int8 kernel for Conv3D"):
        conv3d.quantize("int8", conv_min_depth=0)
    assert conv3d.float_layers == [conv3d.layers[0].name]


def _stack():
    dl.utils.set_random_seed(7)
    return dl.Sequential([dl.Input((10, 10, 2)), layers.Conv2D(8, 3), layers.Activation("relu"),
                          layers.MaxPooling2D(2), layers.Dropout(0.2), layers.Conv2D(6, 3, padding="same", activation="relu"),
                          layers.Conv2D(5, 1), layers.Flatten(), layers.Dense(3)])


def test_calibrated_stack_runs_int8_between_convs_and_matches_reference(tmp_path):
    model = _stack()
    x = _x((5, 10, 10, 2), 3)
    y_float = model.predict(x, verbose=0)
    c1, _, _, _, c2, c3, _, dense = model.layers
    h1 = layers.Activation("relu")(c1(x))
    h2 = c2(layers.MaxPooling2D(2)(h1))
    model.quantize("int8", calibration_data=x, conv_min_depth=0)
    scales = [float(c.input_scale.value) for c in (c1, c2, c3)]
    for scale, seen in zip(scales, (x, layers.MaxPooling2D(2)(h1).value, h2.value)):  # max-abs calibration
        assert scale == np.float32(127.0) / (np.float32(np.abs(seen).max()) + np.float32(1e-7))
    steps = model._inference_plan().steps
    assert [type(s).__name__ for s in steps] == ["Int8ChainStep"] * 3 + ["LayerStep"] * 2
    assert [len(s.steps) for s in steps[:3]] == [4, 1, 1] and steps[0].relu and steps[0].pools == (model.layers[2],)
    y = model.predict(x, verbose=0)
    # reference: static quantization, int8 requantized outputs with the next scale, ReLU folded, int8 pooling
    s1, s2, s3 = scales
    h = ref.int8_conv2d(ref.quantize_static(x, s1), np.full(5, s1, np.float32), c1.kernel.value, c1.kernel_scale.value,
                        c1.bias.value, (1, 1), (0, 0), (1, 1), (8, 8), relu=True, out_scale=s2)
    h = h.reshape(5, 4, 2, 4, 2, 8).max(axis=(2, 4))
    h = ref.int8_conv2d(h, np.full(5, s2, np.float32), c2.kernel.value, c2.kernel_scale.value, c2.bias.value,
                        (1, 1), (1, 1), (1, 1), (4, 4), relu=True, out_scale=s3)
    h = ref.int8_conv2d(h, np.full(5, s3, np.float32), c3.kernel.value, c3.kernel_scale.value, c3.bias.value,
                        (1, 1), (0, 0), (1, 1), (4, 4))
    expected = ref.int8_dense(h.reshape(5, -1), dense.kernel.value, dense.kernel_scale.value, dense.bias.value)
    np.testing.assert_array_equal(y, expected)
    assert np.abs(y - y_float).max() < 0.05 * np.abs(y_float).max()
    # a layer called on its own returns float32 (static input quantization, no requantization)
    out = c2(np.maximum(_x((1, 4, 4, 8), 4), 0))
    assert out.value.dtype == np.float32
    path = tmp_path / "calibrated.dlc"
    model.save(path)
    loaded = dl.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), y)
    assert [float(layer.input_scale.value) for layer in (loaded.layers[0], loaded.layers[4], loaded.layers[5])] == scales


def test_dynamic_stack_keeps_float_between_convs_and_round_trips(tmp_path):
    model = _stack()
    x = _x((4, 10, 10, 2), 5)
    model.quantize("int8", conv_min_depth=0)
    assert float(model.layers[0].input_scale.value) == 0.0
    y = model.predict(x, verbose=0)
    # each convolution quantizes its float input per sample: the same as calling the layers one by one
    h = x
    for layer in model.layers:
        h = layer(h)
    np.testing.assert_array_equal(h.value, y)
    path = tmp_path / "dynamic.dlc"
    model.save(path)
    np.testing.assert_array_equal(dl.saving.load_model(path).predict(x, verbose=0), y)


def test_calibration_errors():
    model = _stack()
    with pytest.raises(ValueError, match="invalid quantization mode"):
        model.quantize("int4", calibration_data=_x((2, 10, 10, 2)))
    with pytest.raises(ValueError, match="at least one sample"):
        model.quantize("int8", calibration_data=np.zeros((0, 10, 10, 2), np.float32))
    with pytest.raises(ValueError, match="expected shape"):
        model.quantize("int8", calibration_data=_x((2, 9, 10, 2)))
    assert all(getattr(layer, "quantization_mode", None) is None for layer in model.layers)
    assert all("call" not in layer.__dict__ for layer in model.layers)  # the recorders are gone
    np.testing.assert_array_equal(model.predict(_x((1, 10, 10, 2)), verbose=0),
                                  model(_x((1, 10, 10, 2))).value)


def test_functional_model_calibrates_without_int8_chains():
    dl.utils.set_random_seed(8)
    inputs = dl.Input((8, 8, 1))
    h = layers.Conv2D(4, 3, activation="relu")(inputs)
    outputs = layers.Conv2D(2, 3)(h)
    model = dl.Model(inputs, outputs)
    x = _x((3, 8, 8, 1), 6)
    y_float = model.predict(x, verbose=0)
    model.quantize("int8", calibration_data=x, conv_min_depth=0)
    assert all(float(layer.input_scale.value) > 0 for layer in model.layers[1:])
    y = model.predict(x, verbose=0)
    assert np.abs(y - y_float).max() < 0.05 * np.abs(y_float).max()


@pytest.mark.slow
def test_digits_cnn_accuracy_within_half_a_point():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input((8, 8, 1)), layers.Conv2D(16, 3), layers.Activation("relu"),
                           layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                           layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0)
    acc_float = np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test)
    weights = model.get_weights()
    model.quantize("int8")
    acc_dynamic = np.mean(model.predict(x_test, verbose=0).argmax(1) == y_test)
    accuracies = []
    for method in ("minmax", "percentile"):
        model2 = dl.Sequential([dl.Input((8, 8, 1)), layers.Conv2D(16, 3), layers.Activation("relu"),
                                layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                                layers.Dense(10, activation="softmax")])
        model2.build((None, 8, 8, 1))
        model2.set_weights(weights)
        model2.quantize("int8", calibration_data=x_train[:256], calibration_method=method)
        assert model2.float_layers == [model2.layers[0].name]  # 1 channel, 3x3: GEMM depth 9 < 32
        assert any(isinstance(step, Int8ChainStep) for step in model2._inference_plan().steps)
        accuracies.append(np.mean(model2.predict(x_test, verbose=0).argmax(1) == y_test))
    acc_static, acc_percentile = accuracies
    assert acc_float > 0.9
    print("digits CNN holdout accuracy: float32 %.4f, int8 dynamic %.4f, int8 calibrated minmax %.4f, percentile %.4f"
          % (acc_float, acc_dynamic, acc_static, acc_percentile))
    assert max(abs(acc - acc_float) for acc in (acc_dynamic, acc_static, acc_percentile)) <= 0.005, \
        (acc_float, acc_dynamic, acc_static, acc_percentile)


def test_int8_conv_op_errors_and_quantized_tensors():
    from dlcore.ops import quantized as qops

    w = np.ones((3, 3, 2, 4), np.int8)
    packed = qops.pack_int8(w.reshape(-1, 4))
    x = _x((1, 5, 5, 2))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        qops.int8_conv(_x((1, 4, 4, 4, 2)), packed, (2, 2, 2, 2, 4), np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"expected w_scale of shape \(4,\)"):
        qops.int8_conv(x, packed, w.shape, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="no fused kernel"):
        qops.int8_conv(x, packed, w.shape, np.ones(4, np.float32), activation="mish")
    with pytest.raises(ValueError, match="expected inputs with 2 channels"):
        qops.int8_conv(_x((1, 5, 5, 3)), packed, w.shape, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="expected int8 inputs"):
        qops.int8_max_pool(x, 2)
    # a QuantizedTensor is read as its int8 values and scale; a plain int8 Tensor is a number
    q = qops.QuantizedTensor(np.full((1, 5, 5, 2), 10, np.int8), 5.0)
    y_q = qops.int8_conv(q, packed, w.shape, np.full(4, 127.0, np.float32)).value
    np.testing.assert_allclose(y_q, np.full((1, 3, 3, 4), 18 * 10 / (127.0 * 5.0), np.float32), rtol=1e-6)
    y_n = qops.int8_conv(dl.Tensor(np.full((1, 5, 5, 2), 2, np.int8)), packed, w.shape,
                         np.full(4, 127.0, np.float32)).value
    np.testing.assert_allclose(y_n, np.full((1, 3, 3, 4), 36 / 127.0, np.float32), rtol=1e-6)
    pooled = qops.int8_max_pool(q, (2, 2))
    assert type(pooled) is qops.QuantizedTensor and pooled.scale == 5.0 and pooled.value.shape == (1, 2, 2, 2)


def test_calibrated_functional_stack_runs_int8_between_convs():
    """A functional model's chain of single-input nodes runs as the Sequential stack does (int8 between
    the calibrated convolutions, the same outputs); a branch point ends a chain."""
    seq = _stack()
    inputs = dl.Input((10, 10, 2))
    h = inputs
    for layer in seq.layers:
        h = layer(h)
    func = dl.Model(inputs, h)
    x = _x((5, 10, 10, 2), 3)
    func.quantize("int8", calibration_data=x, conv_min_depth=0)
    seq2 = _stack()  # the same seeded weights, quantized apart
    seq2.quantize("int8", calibration_data=x, conv_min_depth=0)
    np.testing.assert_array_equal(func.predict(x, verbose=0), seq2.predict(x, verbose=0))
    chains = [e[1] for e in func._inference_plan().nodes if type(e[1]).__name__ == "ChainStep"]
    assert len(chains) == 1 and [type(s).__name__ for s in chains[0].steps] == ["Int8ChainStep"] * 3 + ["LayerStep"] * 2
    assert chains[0].steps[0].consumer is seq.layers[4]
    # a tensor used twice (a branch) is not chained through
    dl.utils.set_random_seed(7)
    inp = dl.Input((10, 10, 2))
    a = layers.Conv2D(4, 3, activation="relu")(inp)
    b = layers.Conv2D(4, 1)(a)
    branched = dl.Model(inp, layers.Add()([a, b]))
    y_float = branched.predict(x, verbose=0)
    branched.quantize("int8", calibration_data=x, conv_min_depth=0)
    assert not any(type(e[1]).__name__ == "ChainStep" for e in branched._inference_plan().nodes)
    assert np.abs(branched.predict(x, verbose=0) - y_float).max() < 0.05 * np.abs(y_float).max()


def _percentile_range(values, percentile, bins=2048):
    """ONNX Runtime's symmetric percentile range (HistogramCalibrater, method "percentile"), written apart."""
    a = np.abs(np.asarray(values, np.float64)).ravel()
    hist, edges = np.histogram(a, bins=bins, range=(0.0, float(a.max())))
    cdf = np.cumsum(hist / hist.sum())
    return edges[np.searchsorted(cdf, percentile / 100.0)]


def test_percentile_calibration_clips_outliers():
    """One outlier pixel (60 sigma) among 16384 calibration values: max-abs ("minmax") stretches the first
    conv's scale by it, "percentile" at 99.99 (ORT's CalibrationMethod.Percentile) ignores it (the default
    99.999 keeps the top 0.16 values, so here it still reaches the outlier's bin). On clean inputs
    percentile is the more accurate; on the outlier sample it saturates, as intended."""
    def build():
        dl.utils.set_random_seed(3)
        return dl.Sequential([dl.Input((8, 8, 4)), layers.Conv2D(8, 3, activation="relu"), layers.Conv2D(6, 3),
                              layers.Flatten(), layers.Dense(3)])
    calib = _x((64, 8, 8, 4), 11)
    calib[5, 3, 3, 1] = 60.0
    clean = _x((16, 8, 8, 4), 12)
    outlier = calib[5:6]
    y_clean, y_outlier = build().predict(clean, verbose=0), build().predict(outlier, verbose=0)
    errors, scales = {}, {}
    for method in ("minmax", "percentile"):
        model = build()
        model.quantize("int8", calibration_data=calib, calibration_method=method,
                       **({"calibration_percentile": 99.99} if method == "percentile" else {}))
        scales[method] = float(model.layers[0].input_scale.value)
        errors[method] = (np.abs(model.predict(clean, verbose=0) - y_clean).max(),
                          np.abs(model.predict(outlier, verbose=0) - y_outlier).max())
    assert scales["minmax"] == np.float32(127.0) / (np.float32(60.0) + np.float32(1e-7))
    for percentile, scale in ((99.99, scales["percentile"]), (99.999, None), (99.0, None)):
        if scale is None:
            model = build()
            model.quantize("int8", calibration_data=calib, calibration_method="percentile",
                           **({} if percentile == 99.999 else {"calibration_percentile": percentile}))
            scale = float(model.layers[0].input_scale.value)
        expected = np.float32(127.0) / (np.float32(_percentile_range(calib, percentile)) + np.float32(1e-7))
        np.testing.assert_allclose(scale, expected, rtol=1e-6)
    assert scales["percentile"] > 8 * scales["minmax"]
    print("max |int8 - float32| on clean / outlier inputs:", errors)
    assert errors["percentile"][0] < 0.5 * errors["minmax"][0], errors  # clean data: finer steps
    assert errors["percentile"][1] > errors["minmax"][1], errors  # the outlier saturates at 127


@pytest.mark.parametrize("kwargs,match", [
    ({"calibration_method": "entropy"}, "invalid calibration_method.*'minmax', 'percentile'"),
    ({"calibration_method": "percentile", "calibration_percentile": 0}, r"calibration_percentile must be .*\(0, 100\]"),
    ({"calibration_method": "percentile", "calibration_percentile": 100.5}, "Received: calibration_percentile=100.5"),
    ({"calibration_method": "percentile", "calibration_percentile": "99"}, "must be a number"),
    ({"calibration_percentile": 99.0}, "applies to calibration_method='percentile' only"),
])
def test_percentile_calibration_errors(kwargs, match):
    model = _stack()
    with pytest.raises(ValueError, match=match):
        model.quantize("int8", calibration_data=_x((2, 10, 10, 2)), **kwargs)
    with pytest.raises(ValueError, match="need calibration_data"):
        model.quantize("int8", **kwargs)
    assert all(getattr(layer, "quantization_mode", None) is None for layer in model.layers)


def test_quantize_keeps_shallow_convolutions_in_float():
    """model.quantize keeps convolutions whose int8 GEMM depth (kh * kw * in_channels) is under 32 in float32
    (measured slower in int8: the runner's 1-channel first conv); ``conv_min_depth`` moves the bound (0: none
    kept), ``layer.quantize`` quantizes any of them, depthwise convolutions (no GEMM) are not concerned."""
    def build():
        dl.utils.set_random_seed(4)
        return dl.Sequential([dl.Input((12, 12, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                              layers.Conv2D(4, 3, activation="relu"), layers.DepthwiseConv2D(1), layers.Flatten(),
                              layers.Dense(3)])
    x = _x((6, 12, 12, 1), 21)
    model = build()
    y_float = model.predict(x, verbose=0)
    assert [layer._int8_depth() for layer in model.layers[:4:3]] == [9, None] and model.layers[2]._int8_depth() == 72
    with pytest.warns(UserWarning, match=rf"convolutions kept in float32.*conv_min_depth=32\): {model.layers[0].name}$"):
        model.quantize("int8", calibration_data=x)
    first, second, depthwise = model.layers[0], model.layers[2], model.layers[3]
    assert model.float_layers == [first.name]
    assert first.quantization_mode is None and first.kernel.dtype == np.float32
    assert second.quantization_mode == depthwise.quantization_mode == "int8" and float(second.input_scale.value) > 0
    assert any(isinstance(step, Int8ChainStep) for step in model._inference_plan().steps)
    y = model.predict(x, verbose=0)
    assert np.abs(y - y_float).max() < 0.05 * np.abs(y_float).max()
    # the same model with the first conv applied in float32 by hand, the rest quantized alone
    h = layers.MaxPooling2D(2)(first(x))
    rest = dl.Sequential([dl.Input((5, 5, 8))] + model.layers[2:])
    np.testing.assert_allclose(rest.predict(h.value, verbose=0), y, rtol=1e-6, atol=1e-6)
    for depth, kept in ((0, ()), (10, (0,)), (100, (0, 2))):
        other = build()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            other.quantize("int8", conv_min_depth=depth)
        assert other.float_layers == [other.layers[i].name for i in kept]
    lone = build()
    lone.layers[0].quantize("int8")
    assert lone.layers[0].quantization_mode == "int8"
    for bad in (-1, 2.5, True, "32"):
        with pytest.raises(ValueError, match="conv_min_depth must be an integer >= 0"):
            build().quantize("int8", conv_min_depth=bad)
