"""The identifier protocol (registry.get / serialize / deserialize), as every family uses it."""
import pytest

import dlcore as dl
from dlcore import registry

FAMILIES = [  # (module, a registered name, its class)
    (dl.initializers, "glorot_uniform", dl.initializers.GlorotUniform),
    (dl.regularizers, "l2", dl.regularizers.L2),
    (dl.constraints, "max_norm", dl.constraints.MaxNorm),
    (dl.losses, "MeanSquaredError", dl.losses.MeanSquaredError),
    (dl.metrics, "AUC", dl.metrics.AUC),
    (dl.optimizers, "adam", dl.optimizers.Adam),
]


@pytest.mark.parametrize("module, name, cls", FAMILIES, ids=lambda v: getattr(v, "__name__", None))
def test_name_dict_instance_round_trip(module, name, cls):
    obj = module.get(name)
    assert isinstance(obj, cls)
    assert module.get(obj) is obj
    config = module.serialize(obj)
    assert config["class_name"] == cls.__name__
    again = module.deserialize(config)
    assert type(again) is cls and again.get_config() == obj.get_config()
    assert isinstance(module.get(config), cls)
    assert module.get(None) is None


@pytest.mark.parametrize("module, name, cls", FAMILIES, ids=lambda v: getattr(v, "__name__", None))
def test_bad_identifiers_name_the_family(module, name, cls):
    with pytest.raises(ValueError, match="Unknown .* identifier: 'no_such_thing'"):
        module.get("no_such_thing")
    with pytest.raises(ValueError, match="Could not (interpret|deserialize)"):
        module.get(42)
    with pytest.raises(ValueError, match="expected .*'class_name'"):
        module.deserialize({"config": {}})


def test_custom_objects_win_and_get_config_round_trip():
    class Scaled(dl.regularizers.Regularizer):
        def __init__(self, factor=1.0):
            self.factor = factor

        def __call__(self, x):
            return self.factor * dl.ops.sum(x)

        def get_config(self):
            return {"factor": self.factor}

    config = dl.regularizers.serialize(Scaled(3.0))
    assert config == {"class_name": "Scaled", "config": {"factor": 3.0}}
    with pytest.raises(ValueError, match="Unknown regularizer identifier: 'Scaled'"):
        dl.regularizers.deserialize(config)
    restored = dl.regularizers.deserialize(config, custom_objects={"Scaled": Scaled})
    assert isinstance(restored, Scaled) and restored.factor == 3.0


def test_functions_keep_their_keras_forms():
    assert dl.losses.get({"class_name": "function", "config": "mse"}) is dl.losses.mean_squared_error
    assert dl.losses.serialize(dl.losses.mean_squared_error) == "mean_squared_error"
    assert dl.activations.get(None) is dl.activations.linear
    assert dl.activations.get({"class_name": "function", "config": "relu"}) is dl.activations.relu
    assert dl.activations.serialize(dl.activations.swish) == "silu"
    wrapped = dl.metrics.get(lambda t, p: t)
    assert isinstance(wrapped, dl.metrics.MeanMetricWrapper)


def test_kind_specific_refusals():
    with pytest.raises(ValueError, match="Could not interpret optimizer identifier"):
        dl.optimizers.get(dl.optimizers.Adam)  # Keras 3: a class is not an optimizer
    with pytest.raises(ValueError, match="Could not serialize optimizer .*expected an instance of Optimizer"):
        dl.optimizers.serialize("adam")
    with pytest.raises(ValueError, match="Could not deserialize schedule: expected a dict"):
        dl.optimizers.schedules.deserialize("ExponentialDecay")
    with pytest.raises(ValueError, match="Could not deserialize layer: expected a dict"):
        dl.layers.deserialize("Dense")


def test_from_config_receives_custom_objects_only_when_it_takes_them():
    seen = {}

    class Takes:
        @classmethod
        def from_config(cls, config, custom_objects=None):
            seen["custom"] = custom_objects
            return cls()

    class Plain:
        def __init__(self, a=0):
            self.a = a

    custom = {"Takes": Takes, "Plain": Plain}
    assert isinstance(registry.deserialize("layer", {"class_name": "Takes", "config": {}}, custom), Takes)
    assert seen["custom"] is custom
    assert registry.deserialize("layer", {"class_name": "Plain", "config": {"a": 2}}, custom).a == 2
