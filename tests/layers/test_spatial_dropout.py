"""SpatialDropout1D/2D: whole channels dropped in training (one draw per sample and channel),
the identity at inference, the harness, and the config Keras writes."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer

pytestmark = pytest.mark.usefixtures("fresh_session")


@pytest.mark.parametrize("cls,shape", [(layers.SpatialDropout1D, (2, 5, 3)), (layers.SpatialDropout2D, (2, 4, 3, 5))])
def test_harness(cls, shape):
    check_layer(cls, {"rate": 0.5, "seed": 1}, shape, shape, expected_num_trainable_weights=0,
                reference=lambda x, w: x)  # inference: the identity


def test_spatial_dropout2d_drops_whole_feature_maps():
    x = np.ones((8, 5, 4, 6), "float32")
    y = layers.SpatialDropout2D(0.5, seed=3)(x, training=True).value
    per_map = y.reshape(8, 20, 6)
    assert np.all(per_map == per_map[:, :1])  # one value per (sample, channel)
    assert set(np.unique(y)) == {0.0, 2.0}
    cf = layers.SpatialDropout2D(0.5, data_format="channels_first", seed=3)(x.transpose(0, 3, 1, 2), training=True)
    per_map = cf.value.reshape(8, 6, 20)
    assert np.all(per_map == per_map[:, :, :1])


def test_gradient_is_the_scaled_channel_mask():
    x = dl.Tensor(np.random.default_rng(0).standard_normal((3, 2, 2, 4)))
    layer = layers.SpatialDropout2D(0.25, seed=4, dtype="float64")
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = dl.ops.sum(y)
    np.testing.assert_allclose(tape.gradient(loss, x).value, (y.value != 0) / 0.75)


def test_config_and_errors():
    config = layers.SpatialDropout2D(0.3, seed=2).get_config()
    assert config["rate"] == 0.3 and config["seed"] == 2 and config["data_format"] == "channels_last"
    assert "noise_shape" not in config
    assert "data_format" not in layers.SpatialDropout1D(0.3).get_config()
    with pytest.raises(ValueError, match=r"Input 0 of layer 'sd'.*expected ndim=4"):
        layers.SpatialDropout2D(0.5, name="sd")(np.zeros((2, 3, 4), "float32"), training=True)
    with pytest.raises(ValueError, match="rate"):
        layers.SpatialDropout2D(1.5)
