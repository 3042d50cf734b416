"""Keras 3's object registration (dl.saving.register_keras_serializable, get_custom_objects,
custom_object_scope, get_registered_name, get_registered_object): registered classes and
functions are found by load_model (.dlc and .keras) without custom_objects."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import registry


@pytest.fixture(autouse=True)
def clean_registry():
    """Each test's registrations are removed afterwards (the tables are process-global)."""
    objects, names = dict(registry._CUSTOM_OBJECTS), dict(registry._CUSTOM_NAMES)
    yield
    registry._CUSTOM_OBJECTS.clear()
    registry._CUSTOM_OBJECTS.update(objects)
    registry._CUSTOM_NAMES.clear()
    registry._CUSTOM_NAMES.update(names)


def _scale_class(package="KapiTest"):
    @dl.saving.register_keras_serializable(package=package)
    class KapiScale(dl.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return dl.ops.multiply(x, self.factor)

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    return KapiScale


def kapi_mse(y_true, y_pred):
    return dl.ops.mean(dl.ops.square(dl.ops.subtract(y_pred, y_true)), axis=-1)


def test_names_as_keras():
    cls = _scale_class()
    assert dl.saving.get_registered_name(cls) == "KapiTest>KapiScale"
    assert dl.saving.get_registered_name(kapi_mse) == "kapi_mse"  # not registered: __name__
    assert dl.saving.get_custom_objects()["KapiTest>KapiScale"] is cls
    assert dl.saving.get_registered_object("KapiTest>KapiScale") is cls
    assert dl.saving.get_registered_object("nothing") is None
    assert dl.saving.get_registered_object("x", custom_objects={"x": kapi_mse}) is kapi_mse
    dl.saving.register_keras_serializable(package="Pkg", name="renamed")(kapi_mse)
    assert dl.saving.get_registered_name(kapi_mse) == "Pkg>renamed"
    assert dl.utils.register_keras_serializable is dl.saving.register_keras_serializable
    assert dl.utils.get_custom_objects() is dl.saving.get_custom_objects()


@pytest.mark.parametrize("suffix", ["dlc", "keras"])
def test_load_model_finds_registered_objects(tmp_path, suffix):
    cls = _scale_class()
    dl.saving.register_keras_serializable(package="KapiTest")(kapi_mse)
    inputs = dl.layers.Input((3,))
    model = dl.Model(inputs, dl.layers.Dense(2)(cls(3.0)(inputs)))
    model.compile(optimizer="adam", loss=kapi_mse)
    x = np.random.default_rng(0).random((4, 3)).astype("float32")
    model.fit(x, np.zeros((4, 2), "float32"), epochs=1, verbose=0)
    path = tmp_path / f"m.{suffix}"
    model.save(path)
    loaded = dl.saving.load_model(path)
    assert type(loaded.layers[1]) is cls and loaded.layers[1].factor == 3.0
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    loaded.fit(x, np.zeros((4, 2), "float32"), epochs=1, verbose=0)  # the loss resolved too


def test_unregistered_class_is_refused_then_found_in_scope(tmp_path):
    class KapiPlain(dl.layers.Layer):
        def call(self, x):
            return x

    inputs = dl.layers.Input((2,))
    model = dl.Model(inputs, KapiPlain()(inputs))
    path = tmp_path / "plain.dlc"
    model.save(path)
    with pytest.raises(ValueError, match="KapiPlain"):
        dl.saving.load_model(path)
    with dl.saving.custom_object_scope({"KapiPlain": KapiPlain}):
        assert type(dl.saving.load_model(path).layers[1]) is KapiPlain
        assert dl.saving.get_registered_object("KapiPlain") is KapiPlain
        with dl.utils.custom_object_scope({"other": kapi_mse}):  # inner scope replaces (Keras 3)
            assert dl.saving.get_registered_object("KapiPlain") is None
        assert dl.saving.get_registered_object("KapiPlain") is KapiPlain
    assert dl.saving.get_registered_object("KapiPlain") is None
    with pytest.raises(ValueError, match="KapiPlain"):
        dl.saving.load_model(path)


def test_losses_and_metrics_get_see_registered_functions():
    dl.saving.register_keras_serializable(package="KapiTest")(kapi_mse)
    assert dl.losses.get("KapiTest>kapi_mse") is kapi_mse
    assert dl.losses.get("kapi_mse") is kapi_mse
    with dl.saving.custom_object_scope({"sq": kapi_mse}):
        assert dl.losses.get("sq") is kapi_mse


def test_bad_input():
    with pytest.raises(ValueError, match="get_config"):
        dl.saving.register_keras_serializable()(type("NoConfig", (), {}))
    with pytest.raises(TypeError, match="package must be a string"):
        dl.saving.register_keras_serializable(package=3)
    with pytest.raises(TypeError, match="expected a class or a function"):
        dl.saving.register_keras_serializable()(42)
    with pytest.raises(TypeError, match="custom_object_scope expects a dict"):
        dl.saving.custom_object_scope([kapi_mse])
    first, second = _scale_class("PkgA"), _scale_class("PkgB")
    assert dl.saving.get_registered_object("PkgB>KapiScale") is second is not first
    with pytest.raises(ValueError, match="matches several registered custom objects"):
        registry.lookup("layer", "KapiScale")


def test_keras_file_written_by_keras_loads_with_dlcore_registration(tmp_path):
    keras = pytest.importorskip("keras")

    @keras.saving.register_keras_serializable(package="KapiTest")
    class KapiScale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    inputs = keras.Input((3,))
    k_model = keras.Model(inputs, keras.layers.Dense(2)(KapiScale(3.0)(inputs)))
    path = tmp_path / "k.keras"
    k_model.save(path)
    ours = _scale_class()
    loaded = dl.saving.load_model(path, compile=False)
    assert type(loaded.layers[1]) is ours and loaded.layers[1].factor == 3.0
    x = np.random.default_rng(1).random((4, 3)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), k_model.predict(x, verbose=0), rtol=1e-5)
