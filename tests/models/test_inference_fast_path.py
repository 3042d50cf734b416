"""The inference plan of Sequential and functional models (``predict_on_batch``, ``predict``,
``model(x, training=False)``) gives exactly the outputs of the general layer-by-layer call, and
follows every change made to a model after its first call."""
import copy

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from dlcore.layers.layer import Layer
from dlcore.tensor import Tensor

pytestmark = pytest.mark.usefixtures("fresh_session")


def _general(model, x, training=False):
    """The reference: ``Layer.__call__`` runs the model's own ``call``, every layer through its
    ``__call__`` and its ops, without the plan."""
    with dl.no_grad():
        return Layer.__call__(model, x, training=training)


def _arrays(out):
    if isinstance(out, dict):
        return {k: _arrays(v) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return [_arrays(v) for v in out]
    return out.value if isinstance(out, Tensor) else np.asarray(out)


def _assert_same(a, b):
    a, b = _arrays(a), _arrays(b)
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for u, v in zip(a, b):
            _assert_same(u, v)
    else:
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)


def _check_all_entry_points(model, x):
    expected = _general(model, x)
    _assert_same(model(x, training=False), expected)
    _assert_same(model(x), expected)
    _assert_same(model.predict_on_batch(x), expected)
    _assert_same(model.predict(x, verbose=0), expected)
    _assert_same(model.predict(x, batch_size=2, verbose=0), _general_in_batches(model, x, 2))
    assert "_plan" in model.__dict__, "the inference plan was not used"
    return expected


def _general_in_batches(model, x, batch_size):
    """The general call on batches of ``batch_size`` (a product's rounding may depend on its rows)."""
    def part(data, start):
        if isinstance(data, dict):
            return {k: part(v, start) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(part(v, start) for v in data)
        return np.asarray(data.value if isinstance(data, Tensor) else data)[start:start + batch_size]

    def merge(parts):
        if isinstance(parts[0], dict):
            return {k: merge([p[k] for p in parts]) for k in parts[0]}
        if isinstance(parts[0], list):
            return [merge([p[i] for p in parts]) for i in range(len(parts[0]))]
        return np.concatenate(parts, axis=0)

    n = len(dl.symbolic.flatten(x)[0])
    return merge([_arrays(_general(model, part(x, start))) for start in range(0, n, batch_size)])


def _rng():
    return np.random.default_rng(0)


def test_sequential_mlp_matches_general_path():
    model = dl.Sequential([dl.Input(shape=(12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                           layers.Dense(8, activation="tanh"), layers.Activation("sigmoid"),
                           layers.Dense(3, activation="softmax")])
    for batch in (1, 5):
        _check_all_entry_points(model, _rng().normal(size=(batch, 12)).astype("float32"))


def test_sequential_cnn_matches_general_path():
    model = dl.Sequential([dl.Input(shape=(10, 10, 2)), layers.Conv2D(4, 3, activation="relu"),
                           layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(6, activation="relu"),
                           layers.Dropout(0.3), layers.Dense(3, activation="softmax")])
    _check_all_entry_points(model, _rng().normal(size=(1, 10, 10, 2)).astype("float32"))
    _check_all_entry_points(model, _rng().normal(size=(3, 10, 10, 2)).astype("float32"))


def test_sequential_lstm_and_masks_match_general_path():
    lstm = dl.Sequential([dl.Input(shape=(6, 3)), layers.LSTM(5), layers.Dense(2, activation="softmax")])
    _check_all_entry_points(lstm, _rng().normal(size=(1, 6, 3)).astype("float32"))

    masked = dl.Sequential([dl.Input(shape=(6,), dtype="int32"), layers.Embedding(10, 4, mask_zero=True),
                            layers.LSTM(5, return_sequences=True), layers.Dense(2)])
    ids = np.array([[3, 4, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]], dtype="int32")
    expected = _check_all_entry_points(masked, ids)
    out = masked(ids, training=False)
    np.testing.assert_array_equal(out.mask, _general(masked, ids).mask)
    assert expected.shape == (2, 6, 2)


def test_float64_and_integer_inputs_are_cast_as_in_the_general_path():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, activation="relu"), layers.Dense(2)])
    x = _rng().normal(size=(2, 4))
    _check_all_entry_points(model, x)
    _check_all_entry_points(model, np.arange(8, dtype="int64").reshape(2, 4))
    assert model.predict_on_batch(x).dtype == np.float32
    _check_all_entry_points(model, Tensor(x.astype("float32")))


def test_functional_multi_input_multi_output_matches_general_path():
    a = dl.Input(shape=(5,), name="a")
    b = dl.Input(shape=(3,), name="b")
    shared = layers.Dense(4, activation="relu")
    h = layers.Concatenate()([shared(layers.Dense(4)(a)), layers.Dense(4)(b)])
    h = layers.Dropout(0.5)(h)
    out1 = layers.Dense(2, activation="softmax", name="cls")(h)
    out2 = layers.Dense(1, name="reg")(shared(layers.Dense(4)(h)))
    xa = _rng().normal(size=(3, 5)).astype("float32")
    xb = _rng().normal(size=(3, 3)).astype("float32")

    as_list = dl.Model([a, b], [out1, out2])
    _check_all_entry_points(as_list, [xa, xb])
    _check_all_entry_points(as_list, (xa, xb))
    _check_all_entry_points(as_list, {"a": xa, "b": xb})

    as_dict = dl.Model({"a": a, "b": b}, {"cls": out1, "reg": out2})
    expected = _check_all_entry_points(as_dict, {"b": xb, "a": xa})
    assert list(expected) == ["cls", "reg"]
    assert list(as_dict.predict_on_batch({"a": xa, "b": xb})) == ["cls", "reg"]


def test_functional_masks_nested_models_and_keyword_calls_match_general_path():
    ids = dl.Input(shape=(5,), dtype="int32")
    emb = layers.Embedding(12, 4, mask_zero=True)(ids)
    seq = layers.LSTM(3, return_sequences=True)(emb)
    last = layers.LSTM(3)(seq, initial_state=None)
    inner = dl.Sequential([dl.Input(shape=(3,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    model = dl.Model(ids, inner(last))
    x = np.array([[1, 2, 0, 0, 0], [5, 6, 7, 8, 9]], dtype="int32")
    _check_all_entry_points(model, x)

    seq_in = dl.Input(shape=(4, 2))
    state_in = dl.Input(shape=(3,))
    h0 = layers.Dense(3, activation="tanh")(state_in)
    with_state = dl.Model([seq_in, state_in], layers.LSTM(3)(seq_in, initial_state=[h0, h0]))
    _check_all_entry_points(with_state, [_rng().normal(size=(2, 4, 2)).astype("float32"),
                                         _rng().normal(size=(2, 3)).astype("float32")])

    inp = dl.Input(shape=(4, 2))
    masked = layers.Masking(0.0)(inp)
    model2 = dl.Model(inp, layers.GRU(3)(masked))
    x2 = _rng().normal(size=(2, 4, 2)).astype("float32")
    x2[0, 2:] = 0.0
    _check_all_entry_points(model2, x2)


class _Residual(dl.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(6, activation="relu")
        self.drop = layers.Dropout(0.5)
        self.out = layers.Dense(6)

    def call(self, x, training=False):
        return x + self.out(self.drop(self.hidden(x), training=training))


def test_subclassed_models_alone_and_inside_sequential_match_general_path():
    x = _rng().normal(size=(2, 6)).astype("float32")
    model = _Residual()
    expected = model(x, training=False)
    _assert_same(expected, _general(model, x))
    h = model.hidden.kernel.value
    reference = x + (np.maximum(x @ h + model.hidden.bias.value, 0) @ model.out.kernel.value + model.out.bias.value)
    np.testing.assert_allclose(expected.value, reference, rtol=1e-5, atol=1e-6)
    _assert_same(model.predict_on_batch(x), expected)
    _assert_same(model.predict(x, verbose=0), expected)

    outer = dl.Sequential([dl.Input(shape=(6,)), _Residual(), layers.Dense(2)])
    _check_all_entry_points(outer, x)


def test_weight_changes_after_the_first_call_are_honoured():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, activation="relu"), layers.Dense(2)])
    x = _rng().normal(size=(1, 4)).astype("float32")
    before = model.predict_on_batch(x)
    weights = [w * 2.0 + 0.5 for w in model.get_weights()]
    model.set_weights(weights)
    after = model.predict_on_batch(x)
    assert not np.array_equal(before, after)
    _assert_same(after, _general(model, x))
    model.layers[1].bias.assign(np.array([10.0, -10.0], dtype="float32"))
    _assert_same(model(x, training=False), _general(model, x))
    model.layers[0].kernel = dl.Variable(np.ones((4, 3), dtype="float32"), name="kernel")
    _assert_same(model.predict_on_batch(x), _general(model, x))


def test_trainable_changes_after_the_first_call_are_honoured():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, activation="relu"),
                           layers.BatchNormalization(), layers.Dense(2)])
    x = _rng().normal(size=(3, 4)).astype("float32")
    first = model.predict_on_batch(x)
    model.trainable = False
    _assert_same(model.predict_on_batch(x), first)
    model.compile(optimizer="sgd", loss="mse")
    model.trainable = True
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.ones((3, 2), "float32"), epochs=2, verbose=0)
    trained = model.predict_on_batch(x)
    assert not np.array_equal(trained, first)
    _assert_same(trained, _general(model, x))


def test_adding_and_popping_layers_after_the_first_call_rebuilds_the_plan():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3, activation="relu")])
    x = _rng().normal(size=(2, 4)).astype("float32")
    assert model.predict_on_batch(x).shape == (2, 3)
    model.add(layers.Dense(5, activation="softmax"))
    out = model.predict_on_batch(x)
    assert out.shape == (2, 5)
    _assert_same(out, _general(model, x))
    model.pop()
    assert model(x, training=False).shape == (2, 3)
    _assert_same(model.predict(x, verbose=0), _general(model, x))

    lazy = dl.Sequential([layers.Dense(3)])
    assert lazy.predict_on_batch(x).shape == (2, 3)  # builds from the data, then plans
    lazy.add(layers.Dense(1))
    _assert_same(lazy.predict_on_batch(x), _general(lazy, x))


def test_layer_configuration_changes_after_the_first_call_are_honoured():
    dense = layers.Dense(3)
    model = dl.Sequential([dl.Input(shape=(4,)), dense])
    x = _rng().normal(size=(2, 4)).astype("float32")
    model.predict_on_batch(x)
    dense.activity_regularizer = dl.regularizers.L1(0.1)
    out = model(x, training=False)
    _assert_same(out, _general(model, x))
    assert len(model.losses) == 1
    np.testing.assert_allclose(float(model.losses[0]), 0.1 * np.abs(out.value).sum(), rtol=1e-5)


def test_deep_copies_run_on_their_own_weights():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3)])
    x = _rng().normal(size=(1, 4)).astype("float32")
    original = model.predict_on_batch(x)
    clone = copy.deepcopy(model)
    clone.layers[0].kernel.assign(np.zeros((4, 3), "float32"))
    np.testing.assert_array_equal(clone.predict_on_batch(x), np.broadcast_to(clone.layers[0].bias.value, (1, 3)))
    _assert_same(model.predict_on_batch(x), original)


def test_training_calls_and_tapes_take_the_general_path():
    model = dl.Sequential([dl.Input(shape=(50,)), layers.Dropout(0.5), layers.Dense(2)])
    x = np.ones((4, 50), dtype="float32")
    dl.utils.set_random_seed(1)
    dropped = model(x, training=True).value
    assert not np.array_equal(dropped, model(x, training=False).value)
    with dl.GradientTape() as tape:
        y = model(x, training=False)
        loss = dl.ops.sum(y)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    np.testing.assert_allclose(grads[1].value, np.full(2, 4.0, "float32"))


def test_bad_inputs_raise_after_the_plan_exists():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3)])
    model.predict_on_batch(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match=r"expected shape \(None, 4\), received \(1, 5\)"):
        model.predict_on_batch(np.zeros((1, 5), "float32"))

    inp = dl.Input(shape=(4,), name="features")
    functional = dl.Model(inp, layers.Dense(2)(inp))
    functional.predict_on_batch(np.zeros((1, 4), "float32"))
    with pytest.raises(ValueError, match=r"Input 'features'.*expected shape \(None, 4\), received \(2, 3\)"):
        functional(np.zeros((2, 3), "float32"), training=False)

    width = {"n": 4}
    cut = dl.Sequential([dl.Input(shape=(6,)), layers.Lambda(lambda t: t[:, :width["n"]]),
                         layers.Dense(3, name="first"), layers.Dense(2)])
    cut.predict_on_batch(np.zeros((1, 6), "float32"))
    width["n"] = 5  # the layers, not the model's input, now see a bad shape
    with pytest.raises(ValueError, match=r"layer 'first'.*axis -1.*value 4.*\(1, 5\)"):
        cut.predict_on_batch(np.zeros((1, 6), "float32"))


def test_layer_shortcuts_match_the_layers_ops():
    x = Tensor(_rng().normal(size=(3, 2, 5)).astype("float32"))
    for layer in (layers.Dense(4, activation="relu"), layers.Dense(3, activation="softmax", use_bias=False),
                  layers.Dense(2, activation="gelu"), layers.Flatten(), layers.Dropout(0.4), layers.Identity()):
        out = layer(x, training=False)
        _assert_same(out, _general(layer, x))
        _assert_same(layer(x), out)
        with dl.GradientTape():
            recorded = layer(x)
        np.testing.assert_allclose(recorded.value, out.value, rtol=1e-6, atol=1e-7)


def test_subclassed_models_record_under_a_tape():
    model = _Residual()
    x = _rng().normal(size=(2, 6)).astype("float32")
    model(x)
    with dl.GradientTape() as tape:
        loss = dl.ops.sum(model(x, training=False))
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == 4 and all(g is not None for g in grads)


def test_concurrent_predictions_from_threads_match():
    from concurrent.futures import ThreadPoolExecutor

    model = dl.Sequential([dl.Input(shape=(8, 8, 1)), layers.Conv2D(3, 3, activation="relu"), layers.MaxPooling2D(2),
                           layers.Flatten(), layers.Dense(4, activation="softmax")])
    inputs = [_rng().normal(size=(1 + i % 3, 8, 8, 1)).astype("float32") for i in range(12)]
    expected = [_arrays(_general(model, x)) for x in inputs]

    def predict_all(_):
        return [model.predict_on_batch(x) for x in inputs for _ in range(5)][::5]

    with ThreadPoolExecutor(4) as pool:
        for outputs in pool.map(predict_all, range(4)):
            for out, ref in zip(outputs, expected):
                np.testing.assert_array_equal(out, ref)


def _transformer_block():
    """keras.io's encoder block (post-norm), functional: MultiHeadAttention(h, h) and Add([..])."""
    inputs = dl.Input(shape=(6,), dtype="int32")
    h = layers.Embedding(11, 8)(inputs)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    h = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([h, layers.Dropout(0.1)(a)]))
    f = layers.Dense(8)(layers.Dense(16, activation="relu")(h))
    h = layers.LayerNormalization(epsilon=1e-6)(layers.Add()([h, f]))
    return dl.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(h)))


def test_multi_input_nodes_run_their_layers_call_directly(monkeypatch):
    """MultiHeadAttention(h, h) and Add([h, a]) nodes run ``call`` without ``Layer.__call__``
    and give the general path's outputs, masks included (those take the general path)."""
    model = _transformer_block()
    x = _rng().integers(1, 11, size=(3, 6)).astype("int32")
    expected = _check_all_entry_points(model, x)
    called = []
    original = Layer.__call__

    def counting(self, *args, **kwargs):
        called.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Layer, "__call__", counting)
    _assert_same(model.predict_on_batch(x), expected)
    assert "MultiHeadAttention" not in called and "Add" not in called, called
    monkeypatch.setattr(Layer, "__call__", original)

    inputs = dl.Input(shape=(6,), dtype="int32")
    h = layers.Embedding(11, 8, mask_zero=True)(inputs)
    h = layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)
    masked = dl.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling1D()(h)))
    xm = x.copy()
    xm[:, -2:] = 0  # padded positions: the masked node takes the general path
    _check_all_entry_points(masked, xm)


def test_multi_input_nodes_cast_and_check_as_the_general_path():
    a = dl.Input(shape=(4,))
    b = dl.Input(shape=(4,))
    model = dl.Model([a, b], layers.Add()([a, b]))
    xa = _rng().normal(size=(2, 4))  # float64 in: cast to the layer's float32, as Layer.__call__
    xb = _rng().normal(size=(2, 4)).astype("float32")
    out = _check_all_entry_points(model, [xa, xb])
    assert _arrays(out).dtype == np.float32
    np.testing.assert_allclose(_arrays(out), xa.astype("float32") + xb)


def test_layers_take_their_inputs_by_calls_first_parameter_name():
    dense = layers.Dense(3)
    x = _rng().normal(size=(2, 4)).astype("float32")
    np.testing.assert_array_equal(_arrays(dense(inputs=x)), _arrays(dense(x)))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=2)
    q = _rng().normal(size=(1, 3, 4)).astype("float32")
    np.testing.assert_array_equal(_arrays(mha(query=q, value=q)), _arrays(mha(q, q)))
    with pytest.raises(ValueError, match="called without inputs"):
        dense(other=x)

def test_conv_pool_pairs_fuse_and_match_general_path():
    # Conv2D + MaxPooling2D(2) pairs run as one fused op (after a first checked call per shape),
    # bit-identical to the layers; pairs the fused op cannot run (elu, strides 2) stay two steps.
    from dlcore.models.inference import ConvPoolStep, LayerStep

    model = dl.Sequential([dl.Input(shape=(22, 24, 3)), layers.Conv2D(5, 3, activation="relu"),
                           layers.MaxPooling2D(2), layers.Conv2D(6, 3, padding="same"), layers.MaxPooling2D(),
                           layers.Conv2D(4, 2, activation="elu"), layers.MaxPooling2D(2),
                           layers.Conv2D(3, 1, strides=2), layers.MaxPooling2D(1), layers.Flatten()])
    for batch in (1, 3, 1, 3):
        x = _rng().normal(size=(batch, 22, 24, 3)).astype("float32")
        _check_all_entry_points(model, x)
    steps = model._inference_plan().steps
    assert [type(s) for s in steps] == [ConvPoolStep] * 4 + [LayerStep]
    assert steps[0].key is not None and steps[1].key is not None
    calls = []
    fused = steps[0].fused_op
    steps[0].fused_op = lambda *a, **k: calls.append(1) or fused(*a, **k)
    x = _rng().normal(size=(5, 22, 24, 3)).astype("float32")
    model.predict_on_batch(x)
    assert calls == []  # a new shape: the two layers' steps first
    _assert_same(model.predict_on_batch(x), _general(model, x))
    assert calls == [1]


def test_conv_pool_configuration_changes_are_honoured():
    conv = layers.Conv2D(4, 3, activation="relu")
    model = dl.Sequential([dl.Input(shape=(8, 8, 2)), conv, layers.MaxPooling2D(2)])
    x = _rng().normal(size=(1, 8, 8, 2)).astype("float32")
    model.predict_on_batch(x)
    model.predict_on_batch(x)
    conv.activity_regularizer = dl.regularizers.L1(0.1)
    out = model(x, training=False)
    _assert_same(out, _general(model, x))
    assert len(model.losses) == 1
    conv.activity_regularizer = None
    model.predict_on_batch(x)
    conv.kernel.assign(np.zeros((3, 3, 2, 4), "float32"))  # weights assigned after the first calls
    np.testing.assert_array_equal(model.predict_on_batch(x),
                                  np.broadcast_to(np.maximum(conv.bias.value, 0), (1, 3, 3, 4)))


def test_a_float_conv_pool_pair_in_a_quantized_model_runs_fused():
    from dlcore.models.inference import ConvPoolStep, Int8ChainStep

    dl.utils.set_random_seed(3)
    model = dl.Sequential([dl.Input(shape=(12, 12, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(2),
                           layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(2), layers.Flatten(),
                           layers.Dense(3)])
    x = _rng().normal(size=(2, 12, 12, 1)).astype("float32")
    with pytest.warns(UserWarning, match="kept in float32"):
        model.quantize("int8", calibration_data=x)  # the 1-channel conv stays float (GEMM depth 9)
    steps = model._inference_plan().steps
    assert [type(s) for s in steps[:2]] == [ConvPoolStep, Int8ChainStep]
    for _ in range(4):
        _assert_same(model.predict_on_batch(x), _general(model, x))
    assert steps[0].key is not None  # the pair ran fused
