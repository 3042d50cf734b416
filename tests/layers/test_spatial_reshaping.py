"""2-D reshaping layers (ZeroPadding2D, ReflectionPadding2D, Cropping2D, UpSampling2D): the
layer harness with NumPy references, Keras parity when keras is importable, errors."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer
from reference import pool as ref

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
])
def test_keras_parity(name, kwargs):
    keras = _keras()
    x = np.random.default_rng(5).standard_normal((2, 4, 5, 3)).astype("float32")
    expected = np.asarray(getattr(keras.layers, name)(**kwargs)(x))
    np.testing.assert_allclose(getattr(layers, name)(**kwargs)(x).value, expected, rtol=1e-5, atol=1e-6)
