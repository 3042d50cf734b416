"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) and their
functional helpers: the layer harness, NumPy references, Keras's numbers, shape errors."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import check_layer

pytestmark = pytest.mark.usefixtures("fresh_session")


def _f64(xs):
    return [np.asarray(x, dtype=np.float64) for x in xs]


def _expand(xs):
    """Keras's rank rule: a lower-rank input gets axes inserted after the batch axis."""
    top = max(x.ndim for x in xs)
    return [x.reshape(x.shape[:1] + (1,) * (top - x.ndim) + x.shape[1:]) for x in _f64(xs)]


REFERENCES = {
    layers.Add: lambda xs: np.sum(np.broadcast_arrays(*_expand(xs)), axis=0),
    layers.Subtract: lambda xs: _expand(xs)[0] - _expand(xs)[1],
    layers.Multiply: lambda xs: np.prod(np.broadcast_arrays(*_expand(xs)), axis=0),
    layers.Average: lambda xs: np.mean(np.broadcast_arrays(*_expand(xs)), axis=0),
    layers.Maximum: lambda xs: np.max(np.broadcast_arrays(*_expand(xs)), axis=0),
    layers.Minimum: lambda xs: np.min(np.broadcast_arrays(*_expand(xs)), axis=0),
}
ELEMENTWISE = list(REFERENCES)
SHAPES = {
    "two-equal": ([(2, 3, 4), (2, 3, 4)], (2, 3, 4)),
    "three-equal": ([(2, 5), (2, 5), (2, 5)], (2, 5)),
    "broadcast-size-1": ([(2, 3, 4), (2, 1, 4)], (2, 3, 4)),
    "lower-rank": ([(2, 3, 4), (2, 4)], (2, 3, 4)),
}


@pytest.mark.parametrize("cls,shape_id", [
    (cls, shape_id) for cls in ELEMENTWISE for shape_id in sorted(SHAPES)
    if cls is not layers.Subtract or len(SHAPES[shape_id][0]) == 2  # Subtract takes exactly two
], ids=lambda v: v if isinstance(v, str) else v.__name__)
def test_elementwise_merge(cls, shape_id):
    input_shapes, output_shape = SHAPES[shape_id]
    check_layer(cls, {}, input_shapes, output_shape, expected_num_trainable_weights=0,
                reference=lambda xs, w: REFERENCES[cls](xs))


@pytest.mark.parametrize("axis,shapes,expected", [
    (-1, [(2, 3, 4), (2, 3, 2)], (2, 3, 6)),
    (1, [(2, 1, 4), (2, 3, 4), (2, 2, 4)], (2, 6, 4)),
    (-2, [(2, 1, 4), (2, 3, 4)], (2, 4, 4)),
    (0, [(2, 3), (3, 3)], (5, 3)),
])
def test_concatenate(axis, shapes, expected):
    kwargs = {"axis": axis}
    if axis == 0:  # joining batches: shapes only (a model cannot be built on mismatched batches)
        layer = layers.Concatenate(**kwargs)
        xs = [np.ones(s, "float32") for s in shapes]
        assert layer(xs).shape == expected
        return
    check_layer(layers.Concatenate, kwargs, shapes, expected, expected_num_trainable_weights=0,
                reference=lambda xs, w: np.concatenate(_f64(xs), axis=axis))


def dot_ref(x1, x2, axes, normalize=False):
    x1, x2 = _f64([x1, x2])
    a1, a2 = axes
    if normalize:
        x1 = x1 / np.sqrt(np.maximum(np.sum(x1 ** 2, axis=a1, keepdims=True), 1e-12))
        x2 = x2 / np.sqrt(np.maximum(np.sum(x2 ** 2, axis=a2, keepdims=True), 1e-12))
    out = np.stack([np.tensordot(x1[i], x2[i], axes=(a1 - 1, a2 - 1)) for i in range(x1.shape[0])])
    return out.reshape(out.shape[0], -1) if out.ndim == 1 else out


@pytest.mark.parametrize("axes,normalize,shapes,expected,resolved", [
    (-1, False, [(2, 4), (2, 4)], (2, 1), (1, 1)),
    (1, True, [(2, 4), (2, 4)], (2, 1), (1, 1)),
    ((1, 2), False, [(2, 3, 4), (2, 5, 3)], (2, 4, 5), (1, 2)),
    ([2, 1], False, [(2, 3, 4), (2, 4)], (2, 3), (2, 1)),
    (-1, True, [(2, 3, 4), (2, 5, 4)], (2, 3, 5), (2, 2)),
])
def test_dot(axes, normalize, shapes, expected, resolved):
    check_layer(layers.Dot, {"axes": axes, "normalize": normalize}, shapes, expected,
                expected_num_trainable_weights=0,
                reference=lambda xs, w: dot_ref(xs[0], xs[1], resolved, normalize))


def test_dot_keras_docstring_values():
    x = np.arange(10).reshape(1, 5, 2)
    y = np.arange(10, 20).reshape(1, 2, 5)
    out = layers.Dot(axes=(1, 2))([x, y])
    np.testing.assert_allclose(out.value, [[[260, 360], [320, 445]]])


def test_dot_normalize_is_cosine_similarity():
    x = np.array([[3.0, 4.0], [1.0, 0.0]], "float32")
    y = np.array([[4.0, 3.0], [0.0, 2.0]], "float32")
    out = layers.Dot(axes=1, normalize=True)([x, y]).value
    np.testing.assert_allclose(out, [[24 / 25], [0.0]], rtol=1e-6)


def test_merge_by_hand_numbers():
    a = np.array([[1.0, -2.0, 3.0]], "float32")
    b = np.array([[4.0, 5.0, -6.0]], "float32")
    np.testing.assert_allclose(layers.Add()([a, b]).value, [[5, 3, -3]])
    np.testing.assert_allclose(layers.Subtract()([a, b]).value, [[-3, -7, 9]])
    np.testing.assert_allclose(layers.Multiply()([a, b]).value, [[4, -10, -18]])
    np.testing.assert_allclose(layers.Average()([a, b]).value, [[2.5, 1.5, -1.5]])
    np.testing.assert_allclose(layers.Maximum()([a, b]).value, [[4, 5, 3]])
    np.testing.assert_allclose(layers.Minimum()([a, b]).value, [[1, -2, -6]])
    np.testing.assert_allclose(layers.Concatenate()([a, b]).value, [[1, -2, 3, 4, 5, -6]])


def test_concatenate_keras_docstring_values():
    x = np.arange(20).reshape(2, 2, 5)
    y = np.arange(20, 30).reshape(2, 1, 5)
    out = layers.Concatenate(axis=1)([x, y])
    np.testing.assert_allclose(out.value, np.concatenate([x, y], axis=1))


# ---- functional helpers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("helper,cls,kwargs", [
    (layers.merging.add, layers.Add, {}),
    (layers.merging.subtract, layers.Subtract, {}),
    (layers.merging.multiply, layers.Multiply, {}),
    (layers.merging.average, layers.Average, {}),
    (layers.merging.maximum, layers.Maximum, {}),
    (layers.merging.minimum, layers.Minimum, {}),
    (layers.merging.concatenate, layers.Concatenate, {"axis": 1}),
    (layers.merging.dot, layers.Dot, {"axes": 1}),
])
def test_functional_helpers(helper, cls, kwargs):
    a, b = dl.Input(shape=(3,)), dl.Input(shape=(3,))
    out = helper([a, b], **kwargs)
    assert isinstance(out.node.layer, cls)
    model = dl.Model([a, b], out)
    xs = [np.random.default_rng(i).standard_normal((2, 3)).astype("float32") for i in range(2)]
    np.testing.assert_allclose(model.predict(xs, verbose=0), cls(**kwargs)(xs).value, rtol=1e-6)


def test_helpers_exported_from_layers():
    assert layers.add is layers.merging.add
    assert layers.concatenate is layers.merging.concatenate
    x = [np.ones((2, 2), "float32"), np.ones((2, 2), "float32")]
    np.testing.assert_array_equal(layers.add(x).value, 2.0)
    assert layers.concatenate(x, axis=0).shape == (4, 2)


def test_merge_in_a_trained_functional_model():
    inp = dl.Input(shape=(4,))
    left = layers.Dense(3)(inp)
    right = layers.Dense(3)(inp)
    out = layers.Dense(1)(layers.Concatenate()([layers.Add()([left, right]), layers.Multiply()([left, right])]))
    model = dl.Model(inp, out)
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, 4)).astype("float32")
    history = model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


# ---- errors --------------------------------------------------------------------------------------------
def _arrays(*shapes):
    return [np.zeros(s, "float32") for s in shapes]


@pytest.mark.parametrize("cls", ELEMENTWISE + [layers.Concatenate], ids=lambda c: c.__name__)
def test_merge_needs_a_list_of_at_least_two(cls):
    layer = cls(name="merge_under_test")
    with pytest.raises(ValueError, match="merge_under_test.*at least 2 inputs. Got 1"):
        layer(_arrays((2, 3)))
    with pytest.raises(ValueError, match="merge_under_test.*list of inputs"):
        cls(name="merge_under_test_2")(np.zeros((2, 3), "float32"))


def test_subtract_needs_exactly_two_inputs():
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()(_arrays((2, 3), (2, 3), (2, 3)))


@pytest.mark.parametrize("cls", ELEMENTWISE, ids=lambda c: c.__name__)
def test_mismatched_shapes(cls):
    layer = cls(name="bad_merge")
    with pytest.raises(ValueError, match=r"bad_merge.*incompatible shapes. Received shapes \(3,\) and \(4,\)"):
        layer(_arrays((2, 3), (2, 4)))


def test_mismatched_shapes_after_build_and_symbolic():
    layer = layers.Add()
    layer(_arrays((2, 3), (2, 3)))
    with pytest.raises(ValueError, match="incompatible shapes"):
        layer(_arrays((2, 3), (2, 5)))
    with pytest.raises(ValueError, match="incompatible shapes"):
        layers.Add()([dl.Input(shape=(3, 2)), dl.Input(shape=(4, 2))])


def test_different_batch_sizes():
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Add()(_arrays((2, 3), (3, 3)))


def test_concatenate_shape_errors():
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate(axis=1)(_arrays((2, 3, 4), (2, 3, 5)))
    with pytest.raises(ValueError, match="matching shapes except for the concatenation axis"):
        layers.Concatenate()(_arrays((2, 3, 4), (2, 4)))
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        layers.Concatenate(axis=3)(_arrays((2, 3), (2, 3)))
    with pytest.raises(ValueError, match="axis"):
        layers.Concatenate(axis="last")


def test_dot_errors():
    with pytest.raises(ValueError, match=r"axis values 3 \(at axis 1\) != 4 \(at axis 1\)"):
        layers.Dot(axes=1)(_arrays((2, 3), (2, 4)))
    with pytest.raises(ValueError, match="list of 2 inputs"):
        layers.Dot(axes=1)(_arrays((2, 3), (2, 3), (2, 3)))
    with pytest.raises(ValueError, match="non-batch axis"):
        layers.Dot(axes=0)(_arrays((2, 3), (2, 3)))
    with pytest.raises(ValueError, match="two elements"):
        layers.Dot(axes=(1, 2, 3))
    with pytest.raises(ValueError, match="integers"):
        layers.Dot(axes=(1, "a"))
    with pytest.raises(TypeError, match="list or an int"):
        layers.Dot(axes="1")


def test_compute_output_shape_with_unknown_dims():
    assert layers.Add().compute_output_shape([(None, 3, None), (None, 1, 4)]) == (None, 3, None)
    assert layers.Add().compute_output_shape([(5, 3), (None, 3)]) == (5, 3)
    assert layers.Concatenate(axis=1).compute_output_shape([(None, None, 2), (None, 3, 2)]) == (None, None, 2)
    assert layers.Dot(axes=(1, 1)).compute_output_shape([(None, 3, 4), (None, 3, 5)]) == (None, 4, 5)


def test_merge_get_config():
    assert layers.Concatenate(axis=2).get_config()["axis"] == 2
    config = layers.Dot(axes=[1, 2], normalize=True).get_config()
    assert config["axes"] == [1, 2] and config["normalize"] is True
    assert set(layers.Add(name="a").get_config()) == {"name", "trainable", "dtype"}


@pytest.mark.parametrize("shapes,expected", [([(2, 3, 4), (2, 3, 4)], (2, 3, 4)),
                                             ([(2, 3, 4), (2, 1, 4)], (2, 3, 4))])
def test_divide(shapes, expected):
    """Divide (dlcore's, for the ONNX importer's Div of two tensors): the harness, and exactly two inputs."""
    check_layer(layers.Divide, {}, shapes, expected, expected_num_trainable_weights=0,
                reference=lambda xs, w: _expand(xs)[0] / _expand(xs)[1], check_gradients=False)
    x, y = dl.Input((3,)), dl.Input((3,))
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Divide()([x, y, x])
    a = np.array([[1.0, -6.0, 3.0]], np.float32)
    model = dl.Model([x, y], layers.Divide()([x, y]))
    np.testing.assert_allclose(model([a, np.array([[2.0, 3.0, -4.0]], np.float32)]), [[0.5, -2.0, -0.75]])


@pytest.mark.parametrize("shapes,expected", [([(2, 3, 4), (2, 4, 5)], (2, 3, 5)),
                                             ([(2, 2, 3, 4), (2, 2, 4, 1)], (2, 2, 3, 1)),
                                             ([(2, 1, 3, 4), (2, 3, 4, 2)], (2, 3, 3, 2))])
def test_matmul(shapes, expected):
    """MatMul (dlcore's, for the ONNX importer's batched MatMul of two tensors)."""
    check_layer(layers.MatMul, {}, shapes, expected, expected_num_trainable_weights=0,
                reference=lambda xs, w: np.matmul(*_f64(xs)))
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.MatMul()([dl.Input((3, 3))] * 3)
    with pytest.raises(ValueError, match="second-to-last"):
        layers.MatMul()([dl.Input((3, 4)), dl.Input((3, 4))])
    with pytest.raises(ValueError, match="rank >= 3"):
        layers.MatMul()([dl.Input((3,)), dl.Input((3,))])


def test_merge_masks_follow_keras():
    """Masks from Embedding(mask_zero=True) through merges (values computed by Keras 3.15): the
    elementwise merges OR the masks, Concatenate concatenates them along its axis (any() over the
    last axis), and a masked pooling after them runs (it failed on a list of masks)."""
    ids = np.array([[1, 2, 0, 0], [3, 0, 0, 0]])
    e = dl.layers.Embedding(10, 3, mask_zero=True)(ids)
    want = np.array([[True, True, False, False], [True, False, False, False]])
    np.testing.assert_array_equal(dl.layers.Add()([e, e]).mask, want)
    np.testing.assert_array_equal(dl.layers.Concatenate()([e, e]).mask, want)
    np.testing.assert_array_equal(dl.layers.Concatenate(axis=1)([e, e]).mask, np.concatenate([want, want], axis=1))
    unmasked = dl.Tensor(np.ones((2, 4, 3), np.float32))
    assert dl.layers.Add()([e, unmasked]).mask is None  # an input without a mask: none (Keras)
    np.testing.assert_array_equal(dl.layers.Concatenate(axis=1)([e, unmasked]).mask,
                                  np.concatenate([want, np.ones((2, 4), bool)], axis=1))
    pooled = dl.layers.GlobalAveragePooling1D()(dl.layers.Add()([e, e]))
    np.testing.assert_allclose(pooled.numpy()[1], 2 * e.numpy()[1, 0], rtol=1e-6)
