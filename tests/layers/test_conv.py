"""Convolution layers: the layer harness (shapes, config round trips, finite-difference gradients
in float64, a fit step) with NumPy references, Keras's arguments and weight layouts, bad-input
errors, and parity with Keras (weights copied with set_weights) when keras is importable."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import conv as ref  # noqa: E402

pytestmark = pytest.mark.usefixtures("fresh_session")
SMALL_BIAS = {"bias_initializer": dl.initializers.RandomNormal(stddev=0.5)}


def _pads(spatial, kernel, strides, padding, dilation):
    return tuple(ref.pads(n, k, padding, s, d) for n, k, s, d in zip(spatial, kernel, strides, dilation))


def conv2d_ref(strides=(1, 1), padding="valid", dilation=(1, 1), groups=1, activation=None):
    def reference(x, weights):
        pads = _pads(x.shape[1:3], weights[0].shape[:2], strides, padding, dilation)
        if padding == "reflect":
            x, pads = ref.reflect_pad(x, *pads), ((0, 0), (0, 0))
        y = ref.conv2d(x, weights[0], strides, pads, dilation, groups, weights[1] if len(weights) > 1 else None)
        return np.maximum(y, 0) if activation == "relu" else y

    return reference


@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    ({"filters": 3, "kernel_size": 3}, (2, 6, 5, 2), (2, 4, 3, 3)),
    ({"filters": 4, "kernel_size": (3, 2), "strides": (2, 1), "padding": "same", "activation": "relu"},
     (1, 7, 5, 2), (1, 4, 5, 4)),
    ({"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2, "groups": 2}, (2, 6, 6, 4), (2, 6, 6, 4)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "reflect"}, (1, 7, 6, 3), (1, 4, 3, 2)),
    ({"filters": 3, "kernel_size": 1, "use_bias": False}, (2, 3, 4, 5), (2, 3, 4, 3)),
])
def test_conv2d(kwargs, input_shape, output_shape):
    kwargs = {**kwargs, **(SMALL_BIAS if kwargs.get("use_bias", True) else {})}
    reference = conv2d_ref(*(np.broadcast_to(kwargs.get(a, d), (2,)).tolist() if a != "padding" else kwargs.get(a, d)
                             for a, d in (("strides", 1), ("padding", "valid"), ("dilation_rate", 1))),
                           groups=kwargs.get("groups", 1), activation=kwargs.get("activation"))
    n_weights = 2 if kwargs.get("use_bias", True) else 1
    layer, _, _ = check_layer(layers.Conv2D, kwargs, input_shape, output_shape,
                              expected_num_trainable_weights=n_weights, expected_num_non_trainable_weights=0,
                              reference=reference, reference_tol=dict(rtol=1e-5, atol=1e-5))
    kh, kw = layer.kernel_size
    assert layer.kernel.shape == (kh, kw, input_shape[-1] // kwargs.get("groups", 1), kwargs["filters"])
    assert [v.name for v in layer.weights] == ["kernel", "bias"][:n_weights]


@pytest.mark.parametrize("padding,strides,dilation,output_len", [
    ("causal", 1, 2, 7), ("same", 2, 1, 4), ("valid", 1, 1, 5), ("reflect", 1, 1, 7)])
def test_conv1d(padding, strides, dilation, output_len):
    def reference(x, weights):
        pads = ref.pads(x.shape[1], 3, padding, strides, dilation)
        if padding == "reflect":
            x, pads = ref.reflect_pad(x[:, None], (0, 0), pads)[:, 0], (0, 0)
        return ref.conv1d(x, weights[0], strides, pads, dilation) + weights[1]

    kwargs = {"filters": 2, "kernel_size": 3, "strides": strides, "padding": padding, "dilation_rate": dilation,
              **SMALL_BIAS}
    check_layer(layers.Conv1D, kwargs, (2, 7, 3), (2, output_len, 2), expected_num_trainable_weights=2,
                reference=reference, reference_tol=dict(rtol=1e-5, atol=1e-5))


def test_conv1d_causal_sees_only_the_past():
    layer = layers.Conv1D(1, 3, padding="causal", use_bias=False, kernel_initializer="ones")
    x = np.zeros((1, 6, 1), np.float32)
    x[0, 3, 0] = 1.0
    np.testing.assert_array_equal(layer(x).value[0, :, 0], [0, 0, 0, 1, 1, 1])


@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    ({"kernel_size": 3, "depth_multiplier": 2, "padding": "same"}, (2, 5, 5, 3), (2, 5, 5, 6)),
    ({"kernel_size": (3, 2), "strides": 2, "activation": "relu"}, (1, 7, 6, 2), (1, 3, 3, 2)),
])
def test_depthwise_conv2d(kwargs, input_shape, output_shape):
    strides = np.broadcast_to(kwargs.get("strides", 1), (2,)).tolist()
    padding = kwargs.get("padding", "valid")

    def reference(x, weights):
        pads = _pads(x.shape[1:3], weights[0].shape[:2], strides, padding, (1, 1))
        y = ref.depthwise_conv2d(x, weights[0], strides, pads) + weights[1]
        return np.maximum(y, 0) if kwargs.get("activation") == "relu" else y

    layer, _, _ = check_layer(layers.DepthwiseConv2D, {**kwargs, **SMALL_BIAS}, input_shape, output_shape,
                              expected_num_trainable_weights=2, reference=reference,
                              reference_tol=dict(rtol=1e-5, atol=1e-5))
    assert layer.kernel.shape == layer.kernel_size + (input_shape[-1], kwargs.get("depth_multiplier", 1))


def test_separable_conv2d():
    def reference(x, weights):
        pads = _pads(x.shape[1:3], (3, 3), (2, 2), "same", (1, 1))
        return ref.separable_conv2d(x, weights[0], weights[1], 2, pads) + weights[2]

    layer, _, _ = check_layer(layers.SeparableConv2D, {"filters": 4, "kernel_size": 3, "strides": 2,
                                                       "padding": "same", "depth_multiplier": 2, **SMALL_BIAS},
                              (2, 5, 6, 3), (2, 3, 3, 4), expected_num_trainable_weights=3, reference=reference,
                              reference_tol=dict(rtol=1e-5, atol=1e-5))
    assert [v.name for v in layer.weights] == ["depthwise_kernel", "pointwise_kernel", "bias"]
    assert layer.pointwise_kernel.shape == (1, 1, 6, 4)


@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    ({"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 3), (2, 6, 8, 2)),
    ({"filters": 3, "kernel_size": 3, "strides": 2}, (1, 3, 3, 2), (1, 7, 7, 3)),
    ({"filters": 2, "kernel_size": (3, 2), "strides": (2, 3), "padding": "same", "output_padding": (1, 2)},
     (1, 3, 2, 2), (1, 6, 5, 2)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "activation": "relu"}, (1, 3, 3, 2), (1, 7, 7, 2)),
])
def test_conv2d_transpose(kwargs, input_shape, output_shape):
    strides = tuple(np.broadcast_to(kwargs.get("strides", 1), (2,)).tolist())
    dilation = tuple(np.broadcast_to(kwargs.get("dilation_rate", 1), (2,)).tolist())

    def reference(x, weights):
        pad_tl = []
        for i in range(2):
            eff = (weights[0].shape[i] - 1) * dilation[i] + 1
            total = (x.shape[1 + i] - 1) * strides[i] + eff - output_shape[1 + i]
            pad_tl.append(max(total, 0) // 2 if kwargs.get("padding") == "same" else 0)
        y = ref.conv2d_transpose(x, weights[0], output_shape[1:3], strides, pad_tl, dilation) + weights[1]
        return np.maximum(y, 0) if kwargs.get("activation") == "relu" else y

    layer, _, _ = check_layer(layers.Conv2DTranspose, {**kwargs, **SMALL_BIAS}, input_shape, output_shape,
                              expected_num_trainable_weights=2, reference=reference,
                              reference_tol=dict(rtol=1e-5, atol=1e-5))
    assert layer.kernel.shape == layer.kernel_size + (kwargs["filters"], input_shape[-1])


@pytest.mark.parametrize("kwargs,input_shape,output_shape", [
    ({"filters": 3, "kernel_size": 2}, (2, 4, 5, 3, 2), (2, 3, 4, 2, 3)),
    ({"filters": 4, "kernel_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same", "activation": "relu",
      "groups": 2}, (1, 5, 4, 5, 4), (1, 3, 4, 3, 4)),
    ({"filters": 2, "kernel_size": (2, 3, 2), "dilation_rate": (2, 1, 1), "padding": "same", "use_bias": False},
     (2, 5, 4, 3, 3), (2, 5, 4, 3, 2)),
])
def test_conv3d(kwargs, input_shape, output_shape):
    kwargs = {**kwargs, **(SMALL_BIAS if kwargs.get("use_bias", True) else {})}
    strides, dilation = (np.broadcast_to(kwargs.get(a, 1), (3,)).tolist() for a in ("strides", "dilation_rate"))
    kernel = np.broadcast_to(kwargs["kernel_size"], (3,)).tolist()

    def reference(x, weights):
        y = ref.conv3d(x, weights[0], strides, _pads(x.shape[1:4], kernel, strides, kwargs.get("padding", "valid"),
                                                     dilation), dilation, kwargs.get("groups", 1),
                       weights[1] if len(weights) > 1 else None)
        return np.maximum(y, 0) if kwargs.get("activation") == "relu" else y

    n_weights = 2 if kwargs.get("use_bias", True) else 1
    layer, _, _ = check_layer(layers.Conv3D, kwargs, input_shape, output_shape,
                              expected_num_trainable_weights=n_weights, reference=reference,
                              reference_tol=dict(rtol=1e-5, atol=1e-5))
    assert layer.kernel.shape == tuple(kernel) + (input_shape[-1] // kwargs.get("groups", 1), kwargs["filters"])
    assert layers.Convolution3D is layers.Conv3D


def test_conv3d_errors():
    with pytest.raises(ValueError, match=r"layer 'v'.*expected ndim=5, found ndim=4"):
        layers.Conv3D(2, 2, name="v")(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match=r"Conv3D 'k'.*larger than the padded input.*\(1, 2, 5, 5, 1\)"):
        layers.Conv3D(1, 3, name="k")(np.zeros((1, 2, 5, 5, 1), np.float32))
    with pytest.raises(ValueError, match="channels_first"):
        layers.Conv3D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match=r"kernel_size.*tuple of 3 integers"):
        layers.Conv3D(4, (3, 3))
    with pytest.raises(ValueError, match=r"conv: expected inputs of rank 5 \(batch, depth, height, width, channels\)"):
        dl.ops.conv(np.zeros((1, 4, 4, 1)), np.zeros((2, 2, 2, 1, 1)))


def test_one_dimensional_variants():
    check_layer(layers.DepthwiseConv1D, {"kernel_size": 3, "padding": "causal", "depth_multiplier": 2},
                (2, 6, 2), (2, 6, 4), expected_num_trainable_weights=2)
    check_layer(layers.SeparableConv1D, {"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 6, 2), (2, 6, 3),
                expected_num_trainable_weights=3)
    check_layer(layers.Conv1DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2}, (2, 4, 3), (2, 9, 2),
                expected_num_trainable_weights=2)


def test_keras_arguments_and_config():
    layer = layers.Conv2D(8, 3)
    config = layer.get_config()
    assert config["kernel_size"] == (3, 3) and config["strides"] == (1, 1) and config["padding"] == "valid"
    assert config["data_format"] == "channels_last" and config["dilation_rate"] == (1, 1) and config["groups"] == 1
    assert config["activation"] == "linear" and config["use_bias"] is True
    assert config["kernel_initializer"]["class_name"] == "GlorotUniform"
    assert layers.Conv2D.from_config(config).get_config() == config
    assert layers.Conv2D(8, 3, padding="SAME").padding == "same"
    frozen = layers.Conv2D(2, 3, trainable=False)
    frozen(np.zeros((1, 4, 4, 1), np.float32))
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 2


def test_unfused_activation_and_regularizers():
    layer = layers.Conv2D(2, 3, activation=dl.activations.mish, kernel_regularizer="l2",
                          activity_regularizer="l1", padding="same")
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3)).astype(np.float32)
    y = layer(x)
    z = ref.conv2d(x, layer.kernel.value, 1, ((1, 1), (1, 1)), bias=layer.bias.value)
    np.testing.assert_allclose(y.value, z * np.tanh(np.logaddexp(0, z)), rtol=1e-5, atol=1e-6)
    assert len(layer.losses) == 2


def test_errors_name_layer_expected_and_received():
    with pytest.raises(ValueError, match=r"Conv2D 'c'.*filters must be evenly divisible.*groups=3, filters=4"):
        layers.Conv2D(4, 3, groups=3, name="c")
    with pytest.raises(ValueError, match="channels_first"):
        layers.Conv2D(4, 3, data_format="channels_first")
    with pytest.raises(ValueError, match="padding"):
        layers.Conv2D(4, 3, padding="causal")
    with pytest.raises(ValueError, match="dilation_rate > 1"):
        layers.Conv2D(4, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="filters"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match=r"Conv2D 'k'.*larger than the padded input.*\(1, 2, 2, 1\)"):
        layers.Conv2D(1, 3, name="k")(np.zeros((1, 2, 2, 1), np.float32))
    with pytest.raises(ValueError, match=r"Conv2D 'g'.*divisible by the number of groups.*\(1, 4, 4, 3\)"):
        layers.Conv2D(4, 3, groups=2, name="g")(np.zeros((1, 4, 4, 3), np.float32))
    built = layers.Conv2D(2, 3, name="built")
    built(np.zeros((1, 5, 5, 3), np.float32))
    # channels_first data (1, 3, 5, 5) on a layer built for 3 channels: the channel axis mismatches
    with pytest.raises(ValueError, match=r"layer 'built'.*axis -1.*value 3.*\(1, 3, 5, 5\)"):
        built(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"layer 'built'.*expected ndim=4, found ndim=3"):
        built(np.zeros((5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="output padding"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"Conv2D 'r'.*reflect"):
        layers.Conv2D(1, 5, padding="reflect", name="r")(np.zeros((1, 2, 2, 1), np.float32))


def test_unknown_spatial_sizes_stay_symbolic():
    inputs = dl.Input(shape=(None, None, 3))
    y = layers.Conv2D(4, 3)(inputs)
    z = layers.Conv2DTranspose(2, 3, strides=2)(y)
    out = layers.SeparableConv2D(2, 3, padding="same")(z)
    assert (y.shape, z.shape, out.shape) == ((None, None, None, 4), (None, None, None, 2), (None, None, None, 2))
    model = dl.Model(inputs, out)
    assert model.predict(np.zeros((1, 9, 7, 3), np.float32), verbose=0).shape == (1, 15, 11, 2)
    assert layers.Conv1D(3, 3, padding="causal")(dl.Input(shape=(None, 2))).shape == (None, None, 3)


def test_cnn_trains():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype(np.int64)
    model = dl.Sequential([dl.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, padding="same", activation="relu"),
                           layers.SeparableConv2D(4, 3, strides=2, activation="relu"), layers.Flatten(),
                           layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


# ---- Keras parity ------------------------------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name,kwargs,shape", [
    ("Conv2D", {"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same", "activation": "relu"}, (2, 7, 6, 3)),
    ("Conv2D", {"filters": 4, "kernel_size": (3, 2), "dilation_rate": 2, "groups": 2}, (1, 8, 7, 4)),
    ("Conv1D", {"filters": 3, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 9, 2)),
    ("Conv3D", {"filters": 4, "kernel_size": (3, 2, 3), "strides": (2, 1, 2), "padding": "same",
                "activation": "relu"}, (2, 5, 4, 6, 3)),
    ("Conv3D", {"filters": 4, "kernel_size": 2, "dilation_rate": (1, 2, 1), "groups": 2}, (1, 4, 5, 3, 4)),
    ("Conv1D", {"filters": 3, "kernel_size": 4, "strides": 3, "padding": "same"}, (2, 10, 2)),
    ("DepthwiseConv2D", {"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "strides": 2}, (2, 7, 7, 3)),
    ("SeparableConv2D", {"filters": 5, "kernel_size": 3, "padding": "same", "depth_multiplier": 2}, (2, 6, 5, 3)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 4, 5, 2)),
    ("Conv2DTranspose", {"filters": 3, "kernel_size": 3, "strides": 2, "padding": "valid"}, (1, 4, 4, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same", "output_padding": 1},
     (1, 3, 4, 2)),
    ("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 3, "padding": "valid", "output_padding": 2},
     (1, 3, 3, 2)),
])
def test_keras_parity(name, kwargs, shape):
    keras = _keras()
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    theirs = getattr(keras.layers, name)(**kwargs)
    expected = np.asarray(theirs(x))
    ours = getattr(layers, name)(**kwargs)
    ours(x)
    weights = [np.asarray(w) for w in theirs.get_weights()]
    weights[-1] = np.random.default_rng(2).standard_normal(weights[-1].shape).astype(np.float32)  # a non-zero bias
    theirs.set_weights(weights)
    ours.set_weights(weights)
    expected = np.asarray(theirs(x))
    assert [tuple(w.shape) for w in ours.get_weights()] == [w.shape for w in weights]
    np.testing.assert_allclose(ours(x).value, expected, rtol=1e-4, atol=1e-5)
    assert ours.compute_output_shape((None,) + shape[1:]) == tuple(theirs.compute_output_shape((None,) + shape[1:]))
    config = {k: v for k, v in theirs.get_config().items() if k not in ("name", "trainable", "dtype", "lora_rank")}
    ours_config = ours.get_config()
    for key, value in config.items():
        if key.endswith(("initializer", "regularizer", "constraint")):
            continue
        assert key in ours_config, key
        assert ours_config[key] == (tuple(value) if isinstance(value, list) else value), key


def test_conv3d_keras_gradient_parity():
    keras = _keras()
    import tensorflow as tf

    x = np.random.default_rng(3).standard_normal((2, 5, 4, 6, 3)).astype(np.float32)
    kwargs = {"filters": 4, "kernel_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same", "activation": "tanh"}
    theirs, ours = keras.layers.Conv3D(**kwargs), layers.Conv3D(**kwargs)
    theirs(x)
    ours(x)
    weights = [np.asarray(w) for w in theirs.get_weights()]
    weights[-1] = np.random.default_rng(4).standard_normal(weights[-1].shape).astype(np.float32)
    theirs.set_weights(weights)
    ours.set_weights(weights)
    r = np.random.default_rng(5).standard_normal(ours.compute_output_shape(x.shape)).astype(np.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(theirs(xt) * r)
    expected = tape.gradient(loss, [xt] + theirs.trainable_weights)
    xd = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(xd)
        loss = dl.ops.sum(dl.ops.multiply(ours(xd), r))
    got = tape.gradient(loss, [xd] + ours.trainable_weights)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.value, np.asarray(e), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                                  "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose"])
def test_keras_signatures(name):
    """The rank comes from the class: each layer still takes Keras's arguments in Keras's order,
    with defaults of the same meaning (1 for (1, 1, 1))."""
    import inspect

    keras = _keras()
    theirs = inspect.signature(getattr(keras.layers, name).__init__).parameters
    ours = inspect.signature(getattr(layers, name).__init__).parameters
    assert list(ours) == list(theirs)
    for key, p in theirs.items():
        default = ours[key].default
        assert p.default == default or (isinstance(p.default, tuple) and set(p.default) == {default}), key
