"""Reshaping layers (Flatten, Reshape, Permute, RepeatVector): the layer harness, NumPy
references, unknown dimensions, and errors naming the layer and the shapes."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer

pytestmark = pytest.mark.usefixtures("fresh_session")


# ---- Flatten ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("input_shape,expected", [
    ((2, 3, 4), (2, 12)),
    ((2, 3, 2, 2), (2, 12)),
    ((2, 5), (2, 5)),
    ((3,), (3, 1)),
])
def test_flatten(input_shape, expected):
    check_layer(layers.Flatten, {}, input_shape, expected, expected_num_trainable_weights=0,
                reference=lambda x, w: x.reshape(x.shape[0], -1))


def test_flatten_channels_first_matches_channels_last_order():
    # (batch, C, H, W) -> the channels_last order (batch, H, W, C), then flattened
    check_layer(layers.Flatten, {"data_format": "channels_first"}, (2, 3, 2, 4), (2, 24),
                reference=lambda x, w: np.transpose(x, (0, 2, 3, 1)).reshape(2, -1))


def test_flatten_unknown_dims():
    assert layers.Flatten().compute_output_shape((None, 3, None)) == (None, None)
    assert layers.Flatten().compute_output_shape((None, 3, 4)) == (None, 12)
    out = layers.Flatten()(dl.Input(shape=(None, 4)))
    assert out.shape == (None, None)


def test_flatten_errors():
    with pytest.raises(ValueError, match="data_format"):
        layers.Flatten(data_format="channels_middle")
    with pytest.raises(ValueError, match="min_ndim=1"):
        layers.Flatten(name="flat")(np.float32(3.0))
    assert layers.Flatten().get_config()["data_format"] == "channels_last"


# ---- Reshape ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target,input_shape,expected", [
    ((3, 4), (2, 12), (2, 3, 4)),
    ((-1, 2), (2, 3, 4), (2, 6, 2)),
    ((4, -1), (2, 3, 4), (2, 4, 3)),
    ((12,), (2, 3, 4), (2, 12)),
    ([2, 3, 2], (2, 12), (2, 2, 3, 2)),
])
def test_reshape(target, input_shape, expected):
    check_layer(layers.Reshape, {"target_shape": target}, input_shape, expected, expected_num_trainable_weights=0,
                reference=lambda x, w: x.reshape((x.shape[0],) + expected[1:]))


def test_reshape_unknown_dims():
    layer = layers.Reshape((-1,))
    assert layer.compute_output_shape((None, None, 4)) == (None, None)
    assert layer.compute_output_shape((None, 3, 4)) == (None, 12)
    out = layers.Reshape((-1, 2))(dl.Input(shape=(None, 4)))
    assert out.shape == (None, None, 2)
    model = dl.Model(out.node.args[0], out)
    for t in (3, 5):  # one model, inputs of different lengths
        x = np.arange(2 * t * 4, dtype="float32").reshape(2, t, 4)
        np.testing.assert_array_equal(model.predict(x, verbose=0), x.reshape(2, -1, 2))


def test_reshape_size_mismatch_names_layer_and_shapes():
    layer = layers.Reshape((5, 2), name="bad_reshape")
    with pytest.raises(ValueError, match=r"bad_reshape.*input_shape=\(3, 4\).*target_shape=\(5, 2\)"):
        layer(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r"cannot be divided.*input_shape=\(3, 4\), target_shape=\(5, -1\)"):
        layers.Reshape((5, -1))(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="total size"):
        layers.Reshape((5,))(dl.Input(shape=(2, 3)))


@pytest.mark.parametrize("target", [(-1, -1), (0, 3), (-2, 3), ("a",), (2.5,), None])
def test_reshape_bad_target_shape(target):
    with pytest.raises(ValueError, match="Reshape.*target_shape"):
        layers.Reshape(target)


def test_reshape_config_is_a_tuple():
    assert layers.Reshape([3, -1]).get_config()["target_shape"] == (3, -1)


# ---- Permute -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dims,input_shape,expected", [
    ((2, 1), (2, 3, 4), (2, 4, 3)),
    ((1, 2), (2, 3, 4), (2, 3, 4)),
    ((3, 1, 2), (2, 3, 4, 5), (2, 5, 3, 4)),
])
def test_permute(dims, input_shape, expected):
    check_layer(layers.Permute, {"dims": dims}, input_shape, expected, expected_num_trainable_weights=0,
                reference=lambda x, w: np.transpose(x, (0,) + tuple(dims)))


@pytest.mark.parametrize("dims", [(1, 3), (0, 1), (2, 2), ("a", 1), 2])
def test_permute_bad_dims(dims):
    with pytest.raises(ValueError, match="Permute.*dims"):
        layers.Permute(dims)


def test_permute_wrong_rank():
    with pytest.raises(ValueError, match="perm.*expected ndim=3, found ndim=2"):
        layers.Permute((2, 1), name="perm")(np.zeros((2, 3), "float32"))


# ---- RepeatVector -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3])
def test_repeat_vector(n):
    check_layer(layers.RepeatVector, {"n": n}, (2, 4), (2, n, 4), expected_num_trainable_weights=0,
                reference=lambda x, w: np.repeat(x[:, None, :], n, axis=1))


def test_repeat_vector_gradient_sums_the_copies():
    x = dl.Tensor(np.random.default_rng(0).standard_normal((2, 3)))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = layers.RepeatVector(4, dtype="float64")(x)
        loss = dl.ops.sum(y)
    np.testing.assert_allclose(tape.gradient(loss, x).value, 4.0)


def test_repeat_vector_errors():
    with pytest.raises(TypeError, match="integer"):
        layers.RepeatVector("3")
    with pytest.raises(ValueError, match="non-negative"):
        layers.RepeatVector(-1)
    with pytest.raises(ValueError, match="rv.*expected ndim=2, found ndim=3"):
        layers.RepeatVector(2, name="rv")(np.zeros((2, 3, 4), "float32"))


# ---- Slice, Gather (dlcore's, for the ONNX importer) ----------------------------------------------------------
@pytest.mark.parametrize("kwargs,input_shape,expected", [
    ({"axes": [1], "starts": [1], "ends": [4]}, (2, 5, 3), (2, 3, 3)),
    ({"axes": [2, 1], "starts": [-2, 0], "ends": [10 ** 9, 5], "steps": [1, 2]}, (2, 5, 3), (2, 3, 2)),
    ({"axes": [1], "starts": [-1], "ends": [-10 ** 9], "steps": [-2]}, (2, 5, 3), (2, 3, 3)),
])
def test_slice(kwargs, input_shape, expected):
    def reference(x, w):
        key = [slice(None)] * x.ndim
        for a, s, e, st in zip(kwargs["axes"], kwargs["starts"], kwargs["ends"], kwargs.get("steps", [1] * 9)):
            key[a] = slice(s, e, st)
        return x[tuple(key)]
    check_layer(layers.Slice, kwargs, input_shape, expected, expected_num_trainable_weights=0, reference=reference)


def test_slice_errors():
    with pytest.raises(ValueError, match="non-batch"):
        layers.Slice(axes=[0], starts=[0], ends=[1])
    with pytest.raises(ValueError, match="nonzero"):
        layers.Slice(axes=[1], starts=[0], ends=[1], steps=[0])
    with pytest.raises(ValueError, match="one entry each"):
        layers.Slice(axes=[1, 2], starts=[0], ends=[1])
    with pytest.raises(ValueError, match="rank > 3"):
        layers.Slice(axes=[3], starts=[0], ends=[1])(np.zeros((2, 3, 4), "float32"))


@pytest.mark.parametrize("indices,axis,input_shape,expected", [
    ([2, 0, 0], 1, (2, 4, 3), (2, 3, 3)),
    ([[1, -1], [0, 2]], 2, (2, 4, 3), (2, 4, 2, 2, )),
    (1, 1, (2, 4, 3), (2, 3)),
])
def test_gather(indices, axis, input_shape, expected):
    check_layer(layers.Gather, {"indices": indices, "axis": axis}, input_shape, expected,
                expected_num_trainable_weights=0, reference=lambda x, w: np.take(x, indices, axis=axis))


def test_gather_errors_and_repeated_gradient():
    with pytest.raises(ValueError, match="non-batch"):
        layers.Gather([0], axis=0)
    with pytest.raises(TypeError, match="integers"):
        layers.Gather([0.5], axis=1)
    with pytest.raises(ValueError, match=r"\[-4, 4\)"):
        layers.Gather([4], axis=1)(np.zeros((2, 4), "float32"))
    x = dl.Tensor(np.ones((1, 3)))
    with dl.GradientTape() as tape:
        tape.watch(x)
        loss = dl.ops.sum(layers.Gather([0, 0, 2], axis=1, dtype="float64")(x))
    np.testing.assert_allclose(tape.gradient(loss, x).value, [[2.0, 0.0, 1.0]])
