"""Pooling layers: the layer harness (shapes, config round trip, finite-difference gradients, a
fit step) with NumPy references, Keras parity when keras is importable, and errors that name the
layer, the expected and the received."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from dlcore import ops
from harness import check_layer, check_op_gradients
from reference import pooling as ref

pytestmark = pytest.mark.usefixtures("fresh_session")


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


POOL2D = [  # kwargs, input shape, output shape
    ({}, (2, 6, 6, 3), (2, 3, 3, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (1, 7, 5, 2), (1, 4, 3, 2)),
    ({"pool_size": (2, 3), "strides": (1, 2), "padding": "valid"}, (2, 5, 7, 2), (2, 4, 3, 2)),
    ({"pool_size": 2, "strides": 1, "padding": "same"}, (1, 3, 4, 1), (1, 3, 4, 1)),
]


@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling2D, "max"), (layers.AveragePooling2D, "average")])
@pytest.mark.parametrize("kwargs,in_shape,out_shape", POOL2D)
def test_pooling2d(cls, mode, kwargs, in_shape, out_shape):
    kwargs = dict(kwargs)
    if cls is layers.AveragePooling2D:
        kwargs.setdefault("pool_size", 2)
    pool = _pair(kwargs.get("pool_size", 2))
    strides = _pair(kwargs.get("strides") or pool)
    padding = kwargs.get("padding", "valid")
    check_layer(cls, kwargs, in_shape, out_shape, expected_num_trainable_weights=0,
                reference=lambda x, w: ref.pool2d(x, pool, strides, padding, mode))


@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling1D, "max"), (layers.AveragePooling1D, "average")])
@pytest.mark.parametrize("kwargs,in_shape,out_shape", [
    ({"pool_size": 2}, (2, 7, 3), (2, 3, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (1, 7, 2), (1, 4, 2)),
])
def test_pooling1d(cls, mode, kwargs, in_shape, out_shape):
    p, s = kwargs["pool_size"], kwargs.get("strides") or kwargs["pool_size"]
    check_layer(cls, kwargs, in_shape, out_shape, expected_num_trainable_weights=0,
                reference=lambda x, w: ref.pool2d(x[:, None], (1, p), (1, s), kwargs.get("padding", "valid"),
                                                  mode)[:, 0])


@pytest.mark.parametrize("cls,mode", [(layers.MaxPooling3D, "max"), (layers.AveragePooling3D, "average")])
@pytest.mark.parametrize("kwargs,in_shape,out_shape", [
    ({"pool_size": 2}, (2, 4, 5, 4, 2), (2, 2, 2, 2, 2)),
    ({"pool_size": (3, 2, 3), "strides": (2, 1, 2), "padding": "same"}, (1, 5, 3, 4, 2), (1, 3, 3, 2, 2)),
    ({"pool_size": (2, 3, 2), "strides": 1, "padding": "same", "data_format": "channels_first"},
     (1, 2, 3, 4, 3), (1, 2, 3, 4, 3)),
])
def test_pooling3d(cls, mode, kwargs, in_shape, out_shape):
    """Two separable 2-D passes (ops.pooling.PoolPlan) against the direct 3-D windows; "same"
    average counts only the real cells of each box."""
    pool = np.broadcast_to(kwargs["pool_size"], (3,)).tolist()
    strides = np.broadcast_to(kwargs.get("strides") or pool, (3,)).tolist()
    first = kwargs.get("data_format") == "channels_first"

    def reference(x, w):
        x = np.moveaxis(x, 1, -1) if first else x
        y = ref.pool3d(x, pool, strides, kwargs.get("padding", "valid"), mode)
        return np.moveaxis(y, -1, 1) if first else y

    check_layer(cls, kwargs, in_shape, out_shape, expected_num_trainable_weights=0, reference=reference)


@pytest.mark.parametrize("cls,reduce", [
    (layers.GlobalAveragePooling2D, np.mean), (layers.GlobalMaxPooling2D, np.max),
    (layers.GlobalAveragePooling3D, np.mean), (layers.GlobalMaxPooling3D, np.max),
])
@pytest.mark.parametrize("keepdims", [False, True])
def test_global_pooling(cls, reduce, keepdims):
    shape = (2, 4, 5, 3) if cls._rank == 2 else (2, 3, 4, 2, 3)
    axes = tuple(range(1, len(shape) - 1))
    out = (2,) + (1,) * len(axes) + (3,) if keepdims else (2, 3)
    check_layer(cls, {"keepdims": keepdims}, shape, out, expected_num_trainable_weights=0,
                reference=lambda x, w: reduce(x.astype(np.float64), axis=axes, keepdims=keepdims))


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize("shape,keepdims", [((2, 5, 4, 3), False), ((1, 3, 3, 8), True), ((3, 6, 2), False)])
def test_global_pooling_kernels_match_numpy_reductions(shape, keepdims, mode):
    """channels_last global pooling runs the global_* kernels (ops.pooling.global_pool); the NumPy
    reductions (ops.max/mean, which channels_first still uses) give the same values and
    gradients in float64, max ties included; the layers give the op's values."""
    from dlcore.ops.pooling import global_pool

    cls = {("max", 4): layers.GlobalMaxPooling2D, ("average", 4): layers.GlobalAveragePooling2D,
           ("max", 3): layers.GlobalMaxPooling1D, ("average", 3): layers.GlobalAveragePooling1D}[mode, len(shape)]
    axes = tuple(range(1, len(shape) - 1))
    reduce = ops.max if mode == "max" else ops.mean
    x = np.random.default_rng(7).integers(-1, 2, shape).astype("float64")  # ties for the max
    dy = np.random.default_rng(8).standard_normal((shape[0],) + (1,) * len(axes) * keepdims + (shape[-1],))
    results = []
    for fn in (lambda t: global_pool(t, mode, keepdims), lambda t: reduce(t, axis=axes, keepdims=keepdims)):
        t = dl.Tensor(x)
        with dl.GradientTape() as tape:
            tape.watch(t)
            y = fn(t)
            loss = ops.sum(ops.multiply(y, dy))
        results.append((y.value, tape.gradient(loss, t).value))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda t: global_pool(t, mode, keepdims), [np.random.default_rng(9).standard_normal(shape)])
    x32 = x.astype("float32")
    np.testing.assert_array_equal(cls(keepdims=keepdims)(x32).value, global_pool(x32, mode, keepdims).value)


@pytest.mark.parametrize("cls,reduce", [
    (layers.GlobalAveragePooling1D, np.mean), (layers.GlobalMaxPooling1D, np.max),
])
def test_global_pooling1d(cls, reduce):
    check_layer(cls, {}, (2, 5, 3), (2, 3), expected_num_trainable_weights=0,
                reference=lambda x, w: reduce(x.astype(np.float64), axis=1))


def test_global_average_pooling1d_with_mask():
    x = np.random.default_rng(0).standard_normal((2, 4, 3)).astype("float32")
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    t = dl.Tensor(x)
    t.mask = mask
    y = layers.GlobalAveragePooling1D()(t)
    np.testing.assert_allclose(y.value, [x[0, :2].mean(0), x[1].mean(0)], rtol=1e-6)
    assert y.mask is None


def test_channels_first():
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 4)).astype("float32")  # (N, C, H, W)
    y = layers.MaxPooling2D(2, data_format="channels_first")(x).value
    expected = np.transpose(ref.pool2d(np.transpose(x, (0, 2, 3, 1)), (2, 2), (2, 2), "valid", "max"), (0, 3, 1, 2))
    np.testing.assert_allclose(y, expected)
    assert layers.MaxPooling2D(2, data_format="channels_first").compute_output_shape((None, 3, 6, 4)) == \
        (None, 3, 3, 2)
    g = layers.GlobalAveragePooling2D(data_format="channels_first")(x).value
    np.testing.assert_allclose(g, x.mean(axis=(2, 3)), rtol=1e-6)


def test_unknown_spatial_dims():
    layer = layers.MaxPooling2D(2)
    assert layer.compute_output_shape((None, None, 7, 3)) == (None, None, 3, 3)
    out = layer(dl.Input(shape=(None, None, 3)))
    assert out.shape == (None, None, None, 3)


def test_config_defaults():
    config = layers.MaxPooling2D().get_config()
    assert config["pool_size"] == (2, 2) and config["strides"] == (2, 2)
    assert config["padding"] == "valid" and config["data_format"] == "channels_last"
    assert layers.MaxPooling1D().get_config()["pool_size"] == (2,)
    assert layers.MaxPool2D is layers.MaxPooling2D
    assert layers.MaxPooling3D().get_config()["pool_size"] == (2, 2, 2) and layers.AvgPool3D is layers.AveragePooling3D
    assert layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D


def test_errors():
    with pytest.raises(ValueError, match=r"padding.*Received: padding='full'"):
        layers.MaxPooling2D(padding="full")
    with pytest.raises(ValueError, match=r"pool_size.*Received: pool_size=\(2, 0\)"):
        layers.AveragePooling2D((2, 0))
    with pytest.raises(ValueError, match=r"Input 0 of layer 'pool'.*expected ndim=4, found ndim=3"):
        layers.MaxPooling2D(name="pool")(np.zeros((2, 4, 4), "float32"))
    with pytest.raises(ValueError, match=r"Layer 'small'.*\(3, 3\).*received input shape \(1, 2, 2, 1\)"):
        layers.MaxPooling2D(3, name="small")(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(ValueError, match="data_format"):
        layers.GlobalMaxPooling2D(data_format="nhwc")
    with pytest.raises(ValueError, match=r"Input 0 of layer 'p3'.*expected ndim=5, found ndim=4"):
        layers.MaxPooling3D(name="p3")(np.zeros((2, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match=r"Layer 'big3'.*\(3, 2, 2\).*received input shape \(1, 2, 4, 4, 1\)"):
        layers.AveragePooling3D((3, 2, 2), name="big3")(np.zeros((1, 2, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match=r"max_pool: the pool window \(3, 2, 2\).*\(2, 4, 4\)"):
        ops.max_pool(np.zeros((1, 2, 4, 4, 1)), (3, 2, 2))
    with pytest.raises(ValueError, match=r"pool_size.*tuple of 3"):
        layers.MaxPooling3D((2, 2))


# ---- Keras parity (skipped without keras) ---------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name,kwargs,shape", [
    ("MaxPooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 3)),
    ("AveragePooling2D", {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 7, 6, 3)),
    ("AveragePooling2D", {"pool_size": (2, 3), "strides": 1, "padding": "same"}, (1, 5, 5, 2)),
    ("MaxPooling1D", {"pool_size": 2, "padding": "same"}, (2, 7, 3)),
    ("AveragePooling1D", {"pool_size": 4, "strides": 3, "padding": "same"}, (2, 9, 3)),
    ("GlobalAveragePooling2D", {"keepdims": True}, (2, 4, 5, 3)),
    ("GlobalMaxPooling1D", {}, (2, 5, 3)),
    ("MaxPooling3D", {"pool_size": (3, 2, 3), "strides": (2, 1, 2), "padding": "same"}, (2, 5, 4, 7, 3)),
    ("AveragePooling3D", {"pool_size": (3, 2, 3), "strides": (2, 1, 2), "padding": "same"}, (2, 5, 4, 7, 3)),
    ("AveragePooling3D", {"pool_size": 2}, (1, 4, 5, 4, 2)),
    ("GlobalAveragePooling3D", {"keepdims": True}, (2, 3, 4, 2, 3)),
    ("GlobalMaxPooling3D", {}, (2, 3, 4, 2, 3)),
])
def test_keras_parity(name, kwargs, shape):
    keras = _keras()
    x = np.random.default_rng(4).standard_normal(shape).astype("float32")
    expected = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x).value, expected, rtol=1e-5, atol=1e-6)
    assert getattr(layers, name)(**kwargs).compute_output_shape(shape) == expected.shape
    ours = {k: v for k, v in getattr(layers, name)(**kwargs).get_config().items() if k not in ("name", "dtype")}
    theirs = getattr(keras.layers, name)(**kwargs).get_config()
    assert ours == {k: tuple(v) if isinstance(v, list) else v for k, v in theirs.items() if k in ours}, name
    assert set(theirs) - {"name", "dtype"} <= set(ours), name


@pytest.mark.parametrize("name", ["MaxPooling3D", "AveragePooling3D"])
def test_pooling3d_keras_gradient_parity(name):
    keras = _keras()
    import tensorflow as tf

    x = np.random.default_rng(6).standard_normal((2, 5, 4, 5, 2)).astype("float32")
    kwargs = {"pool_size": (3, 2, 2), "strides": (2, 1, 2), "padding": "same"}
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = getattr(keras.layers, name)(**kwargs)(xt)
        r = np.random.default_rng(7).standard_normal(y.shape).astype("float32")
        loss = tf.reduce_sum(y * r)
    expected = tape.gradient(loss, xt)
    xd = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(xd)
        loss = ops.sum(ops.multiply(getattr(layers, name)(**kwargs)(xd), r))
    np.testing.assert_allclose(tape.gradient(loss, xd).value, np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_model_prediction_with_pooling_shortcuts():
    model = dl.Sequential([dl.Input((12, 12, 2)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(2),
                           layers.AveragePooling2D(2, padding="same"), layers.GlobalMaxPooling2D(),
                           layers.Dense(3)])
    x = np.random.default_rng(11).standard_normal((2, 12, 12, 2)).astype("float32")
    expected = dl.Tensor(x)
    for layer in model.layers:
        expected = layer.call(expected)  # the op path
    expected = expected.value
    np.testing.assert_allclose(model.predict_on_batch(x), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
