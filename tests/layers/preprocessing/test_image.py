"""Normalization, image and augmentation layers: Keras 3 parity, check_layer cases, seeding."""
import numpy as np
import pytest

import dlcore as dl
from dlcore.layers.preprocessing.image import affine_transform, resize_images
from tests.harness import check_layer

L = dl.layers
X = np.arange(2 * 5 * 4 * 1, dtype="float32").reshape(2, 5, 4, 1)


def test_normalization_adapt_fixture_and_invert():
    layer = L.Normalization()
    layer.adapt(np.array([[0.0, 7.0, 4.0], [2.0, 9.0, 6.0], [0.0, 7.0, 4.0], [2.0, 9.0, 6.0]], "float32"))
    np.testing.assert_allclose(layer(np.array([[1.0, 2.0, 3.0]], "float32")).value, [[0.0, -6.0, -2.0]])
    inverse = L.Normalization(invert=True, mean=[1.0, 8.0, 5.0], variance=[1.0, 1.0, 1.0])
    np.testing.assert_allclose(inverse(np.array([[1.0, 2.0, 3.0]], "float32")).value, [[2.0, 10.0, 8.0]])
    assert [w.shape for w in layer.weights] == [(3,), (3,), ()]


def test_resize_matches_keras_fixture():
    out = resize_images(X, 3, 2, "bilinear")[0, :, :, 0]
    np.testing.assert_allclose(out, [[1.8333333, 3.8333333], [8.5, 10.5], [15.166666, 17.166666]], rtol=1e-6)  # keras 3.15


def test_resize_and_affine_match_keras():
    keras = pytest.importorskip("keras")
    x = np.random.default_rng(0).random((2, 7, 5, 3)).astype("float32")
    for interpolation in ("bilinear", "nearest"):
        for crop in (False, True):
            ours = resize_images(x, 4, 9, interpolation, crop)
            theirs = keras.layers.Resizing(4, 9, interpolation=interpolation, crop_to_aspect_ratio=crop)(x)
            np.testing.assert_allclose(ours, np.asarray(theirs), atol=1e-6)
    t = np.array([[0.9, -0.3, 1.2, 0.3, 0.9, -0.7, 0, 0], [1.1, 0, -2, 0, 0.8, 1.5, 0, 0]], "float32")
    for interpolation in ("bilinear", "nearest"):
        for mode in ("constant", "nearest", "wrap", "reflect"):
            theirs = keras.ops.image.affine_transform(x, t, interpolation=interpolation, fill_mode=mode, fill_value=0.5)
            np.testing.assert_allclose(affine_transform(x, t, interpolation, mode, 0.5), np.asarray(theirs), atol=1e-6)


def test_check_layer_cases():
    check_layer(L.Normalization, {"mean": 0.5, "variance": 4.0}, (2, 3), (2, 3))
    check_layer(L.Rescaling, {"scale": 0.5, "offset": 1.0}, (2, 3), (2, 3))
    for cls, kwargs, shape in ((L.Resizing, {"height": 3, "width": 2}, (2, 3, 2, 1)),
                               (L.CenterCrop, {"height": 3, "width": 2}, (2, 3, 2, 1)),
                               (L.RandomCrop, {"height": 3, "width": 2}, (2, 3, 2, 1)),
                               (L.RandomFlip, {"seed": 1}, (2, 5, 4, 1)),
                               (L.RandomRotation, {"factor": 0.1}, (2, 5, 4, 1)),
                               (L.RandomTranslation, {"height_factor": 0.1, "width_factor": 0.1}, (2, 5, 4, 1)),
                               (L.RandomZoom, {"height_factor": 0.1}, (2, 5, 4, 1)),
                               (L.RandomContrast, {"factor": 0.2}, (2, 5, 4, 1)),
                               (L.RandomBrightness, {"factor": 0.2}, (2, 5, 4, 1))):
        check_layer(cls, kwargs, (2, 5, 4, 1), shape, check_gradients=False, check_fit=False)


def test_augmentation_is_seeded_and_inactive_at_inference():
    for cls, kwargs in ((L.RandomRotation, {"factor": 0.2}), (L.RandomFlip, {}), (L.RandomZoom, {"height_factor": 0.3}),
                        (L.RandomBrightness, {"factor": 0.3})):
        a, b = cls(seed=3, **kwargs), cls(seed=3, **kwargs)
        np.testing.assert_array_equal(a(X, training=True).value, b(X, training=True).value)
        np.testing.assert_array_equal(a(X, training=False).value, X)
        dl.utils.set_random_seed(7)
        first = cls(**kwargs)(X, training=True).value
        dl.utils.set_random_seed(7)
        np.testing.assert_array_equal(cls(**kwargs)(X, training=True).value, first)


def test_model_with_preprocessing_round_trips(tmp_path):
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(1).random((10, 6, 6, 1)).astype("float32"))
    inputs = dl.Input((6, 6, 1))
    x = L.Resizing(4, 4)(L.Rescaling(2.0)(norm(inputs)))
    model = dl.Model(inputs, L.Dense(2)(L.Flatten()(L.RandomFlip()(x))))
    path = str(tmp_path / "prep.dlc")
    model.save(path)
    loaded = dl.models.load_model(path)
    data = np.random.default_rng(2).random((3, 6, 6, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match="height"):
        L.Resizing(0, 3)
    with pytest.raises(ValueError, match="interpolation"):
        L.Resizing(2, 3, interpolation="cubic")
    with pytest.raises(ValueError, match="rank 3"):
        L.CenterCrop(2, 2)(np.zeros((4, 4), "float32"))
    with pytest.raises(ValueError, match="fill_mode"):
        L.RandomRotation(0.1, fill_mode="bogus")
    with pytest.raises(ValueError, match="both `mean` and `variance`"):
        L.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="seed"):
        L.RandomFlip(seed=-1)
