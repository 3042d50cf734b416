"""Spatial reshaping layers (ZeroPadding, ReflectionPadding2D, Cropping, UpSampling 1-D to 3-D): the
layer harness with NumPy references, Keras parity when keras is importable, errors."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer
from reference import pooling as ref

pytestmark = pytest.mark.usefixtures("fresh_session")


@pytest.mark.parametrize("padding,pairs", [
    (1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((0, 2), (1, 3)), ((0, 2), (1, 3))),
])
def test_zero_padding2d(padding, pairs):
    (t, b), (l, r) = pairs
    check_layer(layers.ZeroPadding2D, {"padding": padding}, (2, 3, 4, 2), (2, 3 + t + b, 4 + l + r, 2),
                expected_num_trainable_weights=0,
                reference=lambda x, w: np.pad(x, ((0, 0), (t, b), (l, r), (0, 0))))
    assert layers.ZeroPadding2D(padding).get_config()["padding"] == pairs


@pytest.mark.parametrize("padding,pairs", [(1, ((1, 1), (1, 1))), (((2, 0), (1, 3)), ((2, 0), (1, 3)))])
def test_reflection_padding2d(padding, pairs):
    (t, b), (l, r) = pairs
    check_layer(layers.ReflectionPadding2D, {"padding": padding}, (1, 3, 5, 2), (1, 3 + t + b, 5 + l + r, 2),
                expected_num_trainable_weights=0, reference=lambda x, w: ref.reflect_pad(x, pairs))


def test_reflection_padding_mirrors_without_repeating_the_edge():
    x = np.arange(3, dtype="float32").reshape(1, 1, 3, 1) + 1  # [1, 2, 3]
    y = layers.ReflectionPadding2D(((0, 0), (2, 2)))(x).value
    np.testing.assert_array_equal(y.ravel(), [3, 2, 1, 2, 3, 2, 1])


@pytest.mark.parametrize("cropping,pairs", [(1, ((1, 1), (1, 1))), (((0, 2), (1, 0)), ((0, 2), (1, 0)))])
def test_cropping2d(cropping, pairs):
    (t, b), (l, r) = pairs
    check_layer(layers.Cropping2D, {"cropping": cropping}, (2, 5, 4, 2), (2, 5 - t - b, 4 - l - r, 2),
                expected_num_trainable_weights=0, reference=lambda x, w: x[:, t:5 - b, l:4 - r])


@pytest.mark.parametrize("size", [(2, 2), (3, 1), (1, 2)])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_upsampling2d(size, interpolation):
    reference = ref.upsample_nearest if interpolation == "nearest" else ref.upsample_bilinear
    check_layer(layers.UpSampling2D, {"size": size, "interpolation": interpolation}, (2, 3, 4, 2),
                (2, 3 * size[0], 4 * size[1], 2), expected_num_trainable_weights=0,
                reference=lambda x, w: reference(x, size))


@pytest.mark.parametrize("padding,pair", [(2, (2, 2)), ((0, 3), (0, 3))])
def test_zero_padding1d(padding, pair):
    check_layer(layers.ZeroPadding1D, {"padding": padding}, (2, 4, 3), (2, 4 + sum(pair), 3),
                expected_num_trainable_weights=0, reference=lambda x, w: np.pad(x, ((0, 0), pair, (0, 0))))
    assert layers.ZeroPadding1D(padding).get_config()["padding"] == pair


@pytest.mark.parametrize("padding,pairs", [(1, ((1, 1),) * 3), ((1, 0, 2), ((1, 1), (0, 0), (2, 2))),
                                           (((0, 1), (2, 0), (1, 1)), ((0, 1), (2, 0), (1, 1)))])
def test_zero_padding3d(padding, pairs):
    grown = tuple(n + sum(p) for n, p in zip((2, 3, 2), pairs))
    check_layer(layers.ZeroPadding3D, {"padding": padding}, (1, 2, 3, 2, 2), (1,) + grown + (2,),
                expected_num_trainable_weights=0, reference=lambda x, w: np.pad(x, ((0, 0),) + pairs + ((0, 0),)))


@pytest.mark.parametrize("cropping,pair", [(1, (1, 1)), ((2, 0), (2, 0))])
def test_cropping1d(cropping, pair):
    check_layer(layers.Cropping1D, {"cropping": cropping}, (2, 6, 3), (2, 6 - sum(pair), 3),
                expected_num_trainable_weights=0, reference=lambda x, w: x[:, pair[0]:6 - pair[1]])
    assert "data_format" not in layers.Cropping1D(cropping).get_config()


@pytest.mark.parametrize("cropping,pairs", [(1, ((1, 1),) * 3), (((0, 1), (2, 0), (1, 2)), ((0, 1), (2, 0), (1, 2)))])
def test_cropping3d(cropping, pairs):
    (a, b), (c, d), (e, f) = pairs
    check_layer(layers.Cropping3D, {"cropping": cropping}, (1, 4, 5, 5, 2), (1, 4 - a - b, 5 - c - d, 5 - e - f, 2),
                expected_num_trainable_weights=0, reference=lambda x, w: x[:, a:4 - b, c:5 - d, e:5 - f])


def test_upsampling1d_and_3d():
    check_layer(layers.UpSampling1D, {"size": 3}, (2, 4, 2), (2, 12, 2), expected_num_trainable_weights=0,
                reference=lambda x, w: np.repeat(x, 3, axis=1))
    check_layer(layers.UpSampling3D, {"size": (2, 1, 3)}, (1, 2, 3, 2, 2), (1, 4, 3, 6, 2),
                expected_num_trainable_weights=0,
                reference=lambda x, w: np.repeat(np.repeat(np.repeat(x, 2, axis=1), 1, axis=2), 3, axis=3))
    assert layers.UpSampling1D().get_config()["size"] == 2 and "data_format" not in layers.UpSampling1D().get_config()
    assert layers.UpSampling3D().get_config()["size"] == (2, 2, 2)


def test_channels_first_3d():
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4, 3)).astype("float32")  # (N, C, D, H, W)
    last = np.moveaxis(x, 1, -1)
    for layer, fn in [(layers.UpSampling3D(2, data_format="channels_first"),
                       lambda a: np.repeat(np.repeat(np.repeat(a, 2, 1), 2, 2), 2, 3)),
                      (layers.ZeroPadding3D(1, data_format="channels_first"),
                       lambda a: np.pad(a, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))),
                      (layers.Cropping3D(1, data_format="channels_first"), lambda a: a[:, 1:-1, 1:-1, 1:-1])]:
        np.testing.assert_allclose(layer(x).value, np.moveaxis(fn(last), -1, 1), rtol=1e-6)
    assert layers.ZeroPadding3D(1)(dl.Input(shape=(None, 5, 2, 1))).shape == (None, None, 7, 4, 1)


def test_channels_first_and_unknown_dims():
    x = np.random.default_rng(0).standard_normal((1, 2, 3, 4)).astype("float32")  # (N, C, H, W)
    for layer, fn in [(layers.UpSampling2D(2, data_format="channels_first"), lambda a: ref.upsample_nearest(a, (2, 2))),
                      (layers.ZeroPadding2D(1, data_format="channels_first"),
                       lambda a: np.pad(a, ((0, 0), (1, 1), (1, 1), (0, 0)))),
                      (layers.Cropping2D(1, data_format="channels_first"), lambda a: a[:, 1:-1, 1:-1])]:
        expected = np.transpose(fn(np.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))
        np.testing.assert_allclose(layer(x).value, expected, rtol=1e-6)
    assert layers.UpSampling2D((2, 3)).compute_output_shape((None, None, 4, 1)) == (None, None, 12, 1)
    assert layers.ZeroPadding2D(1)(dl.Input(shape=(None, 5, 2))).shape == (None, None, 7, 2)


def test_errors():
    with pytest.raises(ValueError, match=r"padding.*Received: padding=\(1, 2, 3\)"):
        layers.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match="non-negative"):
        layers.Cropping2D(-1)
    with pytest.raises(ValueError, match=r"Layer 'crop'.*smaller than 3.*\(1, 3, 3, 1\)"):
        layers.Cropping2D(((1, 2), (0, 0)), name="crop")(np.zeros((1, 3, 3, 1), "float32"))
    with pytest.raises(ValueError, match=r"Layer 'mirror'.*smaller than the padded dimension.*\(1, 2, 5, 1\)"):
        layers.ReflectionPadding2D(2, name="mirror")(np.zeros((1, 2, 5, 1), "float32"))
    with pytest.raises(ValueError, match="interpolation"):
        layers.UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match=r"Input 0 of layer 'up'.*expected ndim=4"):
        layers.UpSampling2D(name="up")(np.zeros((1, 2, 2), "float32"))
    with pytest.raises(ValueError, match=r"ZeroPadding1D: `padding` should be an int or a tuple of 2 ints.*\(1, 2, 3\)"):
        layers.ZeroPadding1D((1, 2, 3))
    with pytest.raises(ValueError, match=r"ZeroPadding3D: `padding`.*tuple of 3 ints.*Received: padding=\(1, 2\)"):
        layers.ZeroPadding3D((1, 2))
    with pytest.raises(ValueError, match=r"Layer 'c3' \(Cropping3D\).*smaller than 2.*\(1, 2, 4, 4, 1\)"):
        layers.Cropping3D(1, name="c3")(np.zeros((1, 2, 4, 4, 1), "float32"))
    with pytest.raises(ValueError, match=r"Layer 'c1' \(Cropping1D\).*smaller than 3"):
        layers.Cropping1D((2, 1), name="c1")(np.zeros((1, 3, 1), "float32"))
    with pytest.raises(ValueError, match=r"UpSampling3D: `size` must be positive.*size=0"):
        layers.UpSampling3D(0)
    with pytest.raises(ValueError, match=r"Input 0 of layer 'up3'.*expected ndim=5, found ndim=4"):
        layers.UpSampling3D(name="up3")(np.zeros((1, 2, 2, 1), "float32"))
    with pytest.raises(TypeError):
        layers.UpSampling1D(2, data_format="channels_first")


# ---- Keras parity (skipped without keras) ---------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name,kwargs", [
    ("ZeroPadding2D", {"padding": ((1, 2), (0, 3))}),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}),
    ("UpSampling2D", {"size": (2, 3)}),
    ("UpSampling2D", {"size": (2, 2), "interpolation": "bilinear"}),
    ("UpSampling2D", {"size": (3, 2), "interpolation": "bilinear"}),
    ("ZeroPadding1D", {"padding": (1, 3)}),
    ("ZeroPadding1D", {}),
    ("Cropping1D", {"cropping": (2, 1)}),
    ("UpSampling1D", {"size": 3}),
    ("ZeroPadding3D", {"padding": ((1, 0), (0, 2), (1, 1))}),
    ("ZeroPadding3D", {"padding": 1, "data_format": "channels_first"}),
    ("Cropping3D", {"cropping": ((1, 0), (1, 2), (0, 1))}),
    ("Cropping3D", {}),
    ("UpSampling3D", {"size": (2, 1, 3)}),
])
def test_keras_parity(name, kwargs):
    keras = _keras()
    rank = int(name[-2])
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 3, 3)[:rank + 1] + (3,)).astype("float32")
    theirs, ours = getattr(keras.layers, name)(**kwargs), getattr(layers, name)(**kwargs)
    expected = np.asarray(theirs(x))
    np.testing.assert_allclose(ours(x).value, expected, rtol=1e-5, atol=1e-6)
    assert ours.compute_output_shape(x.shape) == expected.shape
    config = {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")}
    their_config = {k: v for k, v in theirs.get_config().items() if k not in ("name", "dtype")}
    assert config == {k: tuple(v) if isinstance(v, list) else v for k, v in their_config.items()}


@pytest.mark.parametrize("name", ["ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
                                  "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D"])
def test_keras_signatures(name):
    """Keras's arguments in Keras's order; ZeroPadding's default 1 means Keras's (1, 1) / ((1, 1),) * 3."""
    import inspect

    keras = _keras()
    theirs = inspect.signature(getattr(keras.layers, name).__init__).parameters
    ours = inspect.signature(getattr(layers, name).__init__).parameters
    assert list(ours) == list(theirs)
    for key, p in theirs.items():
        if key != "padding":
            assert ours[key].default == p.default, key
    keras_defaults = {k: p.default for k, p in theirs.items() if p.default is not inspect.Parameter.empty}
    assert getattr(layers, name)(name="a").get_config() == getattr(layers, name)(name="a", **keras_defaults).get_config()
