"""clone_model (Keras 3): same config, fresh weights, clone_function, shared layers stay shared."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

X = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")


def _sequential():
    return dl.Sequential([dl.Input((4,)), layers.Dense(6, activation="relu", name="hidden"),
                          layers.Dropout(0.2), layers.Dense(2, name="out")], name="seq")


def _functional():
    a, b = dl.Input((4,), name="a"), dl.Input((4,), name="b")
    shared = layers.Dense(3, name="shared")
    merged = layers.Concatenate()([shared(a), shared(b)])
    return dl.Model({"a": a, "b": b}, layers.Dense(1, name="head")(merged), name="two_tower")


@pytest.mark.parametrize("make", [_sequential, _functional])
def test_clone_has_the_same_config_and_fresh_weights(make):
    model = make()
    clone = dl.models.clone_model(model)
    assert type(clone) is type(model) and clone is not model
    assert clone.get_config() == model.get_config()
    assert [w.shape for w in clone.get_weights()] == [w.shape for w in model.get_weights()]
    kernels_equal = [np.array_equal(a, b) for a, b in zip(model.get_weights(), clone.get_weights()) if a.ndim == 2]
    assert not any(kernels_equal)  # re-initialized
    assert not set(map(id, clone.weights)) & set(map(id, model.weights))
    clone.set_weights(model.get_weights())
    data = X if make is _sequential else {"a": X, "b": X[::-1].copy()}
    np.testing.assert_allclose(clone.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)


def test_shared_layer_stays_shared_in_the_clone():
    clone = dl.models.clone_model(_functional())
    assert sum(layer.name == "shared" for layer in clone.layers) == 1
    assert len(clone.get_weights()) == 4


def test_clone_function_changes_layers():
    def widen(layer):
        config = layer.get_config()
        if isinstance(layer, layers.Dense) and layer.name == "hidden":
            config["units"] = 9
        return type(layer).from_config(config)

    clone = dl.models.clone_model(_sequential(), clone_function=widen)
    assert clone.get_layer("hidden").units == 9 and clone.predict(X, verbose=0).shape == (5, 2)
    seen = []
    dl.models.clone_model(_functional(), clone_function=lambda layer: seen.append(layer.name) or
                          type(layer).from_config(layer.get_config()))
    assert seen.count("shared") == 1 and "head" in seen


def test_input_tensors_and_call_function():
    new_input = dl.Input((4,), name="fresh")
    clone = dl.models.clone_model(_sequential(), input_tensors=new_input)
    assert clone.inputs[0] is new_input and clone.predict(X, verbose=0).shape == (5, 2)
    calls = []

    def call(layer, *args, **kwargs):
        calls.append(layer.name)
        return layer(*args, **kwargs)

    dl.models.clone_model(_functional(), call_function=call)
    assert calls == ["shared", "shared", calls[2], "head"]


def test_clone_trains_independently():
    model = _sequential()
    model.compile("sgd", "mse")
    clone = dl.models.clone_model(model)
    clone.compile("sgd", "mse")
    before = [w.copy() for w in model.get_weights()]
    clone.fit(X, np.zeros((5, 2), "float32"), verbose=0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_clone_model_bad_input():
    with pytest.raises(TypeError, match="expected a dlcore Model"):
        dl.models.clone_model(layers.Dense(2))
    with pytest.raises(TypeError, match="`clone_function` must return a Layer"):
        dl.models.clone_model(_sequential(), clone_function=lambda layer: None)
    with pytest.raises(TypeError, match="must be callable"):
        dl.models.clone_model(_sequential(), clone_function=3)
    with pytest.raises(ValueError, match="2 symbolic tensors"):
        dl.models.clone_model(_functional(), input_tensors=[dl.Input((4,))])
    with pytest.raises(ValueError, match="unexpected keyword"):
        dl.models.clone_model(_sequential(), bogus=1)
