"""Captured inference calls (models/replay.py): after a shape's arena serves, a call is captured
and later calls replay its kernel calls; the replay must equal the layers' own computation on
every input, refuse what it cannot replay, and follow weight and thread changes."""

import numpy as np
import pytest

import dlcore as dl
from harness import run_in_threads

L = dl.layers
WARM = 8  # plain, traced, (traced again), twice from the arena (steady), captured: replayed after


def _programs(model):
    arenas = model._inference_plan().memory.arenas()
    return [a.program for a in arenas.values() if hasattr(a, "program")]


def _general(model, x):
    """A Sequential model's layers called one by one (no plan, no replay)."""
    for layer in model.layers:
        x = layer(x)
    return x.value


def _inputs(shape, seeds, dtype=np.float32):
    return [np.random.default_rng(s).standard_normal(shape).astype(dtype) for s in seeds]


def _mlp():
    dl.utils.set_random_seed(0)
    return dl.Sequential([dl.Input((12,)), L.Dense(16, activation="relu"), L.Dropout(0.3),
                          L.Dense(8, activation="tanh"), L.Dense(3, activation="softmax")])


def test_mlp_is_replayed_and_equals_the_layers_on_new_inputs():
    model = _mlp()
    for x in _inputs((2, 12), range(WARM)):
        model.predict_on_batch(x)
    programs = _programs(model)
    assert len(programs) == 1 and programs[0] is not None
    for x in _inputs((2, 12), range(100, 105)):
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
        np.testing.assert_array_equal(model(x, training=False).value, _general(model, x))


def test_a_returned_output_is_never_overwritten():
    model = _mlp()
    xs = _inputs((1, 12), range(WARM + 3))
    outs = [model.predict_on_batch(x) for x in xs]
    for x, out in zip(xs, outs):
        np.testing.assert_array_equal(out, _general(model, x))


def test_weight_changes_and_thread_count_changes_capture_again():
    model = _mlp()
    x = _inputs((3, 12), [1])[0]
    for _ in range(WARM):
        model.predict_on_batch(x)
    first = _programs(model)[0]
    assert first is not None
    model.layers[0].set_weights([w * 0.5 for w in model.layers[0].get_weights()])
    np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
    model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(x, np.zeros((3, 3), np.float32))
    for _ in range(WARM):
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
    assert _programs(model)[0] is not None and _programs(model)[0] is not first
    before = dl.config.get_num_threads() if hasattr(dl.config, "get_num_threads") else None
    program = _programs(model)[0]
    dl.config.set_num_threads(1 if program.threads != 1 else 2)
    try:
        for _ in range(WARM):
            np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
        assert _programs(model)[0] is not program
    finally:
        dl.config.set_num_threads(program.threads if before is None else before)


def test_recurrent_zero_state_is_zeroed_on_every_replay():
    dl.utils.set_random_seed(2)
    model = dl.Sequential([dl.Input((5, 4)), L.LSTM(6), L.Dense(2)])
    gru = dl.Sequential([dl.Input((5, 4)), L.GRU(3, return_sequences=True), L.SimpleRNN(2)])
    for m in (model, gru):
        for x in _inputs((2, 5, 4), range(WARM)):
            m.predict_on_batch(x)
        assert _programs(m)[0] is not None
        for x in _inputs((2, 5, 4), range(50, 54)):
            np.testing.assert_array_equal(m.predict_on_batch(x), _general(m, x))


def test_functional_residual_and_broadcast_add_are_replayed():
    dl.utils.set_random_seed(3)
    dense, mha, norm = L.Dense(8), L.MultiHeadAttention(num_heads=2, key_dim=4), L.LayerNormalization()
    pool, head, add = L.GlobalAveragePooling1D(), L.Dense(3), L.Add()

    def layers_in_turn(x):
        h = dense(x)
        return head(pool(norm(add([h, mha(h, h)]))))

    inp = dl.Input((6, 8))
    model = dl.Model(inp, layers_in_turn(inp))
    for x in _inputs((1, 6, 8), range(WARM)):
        model.predict_on_batch(x)
    assert _programs(model)[0] is not None
    for x in _inputs((1, 6, 8), range(20, 23)):
        np.testing.assert_array_equal(model.predict_on_batch(x), layers_in_turn(dl.Tensor(x)).value)


class _ScaleByMax(L.Layer):
    """A custom layer computing in NumPy on the input's values: a replay would go stale."""

    def call(self, x):
        return x * float(np.abs(x.value).max())


class _Counting(L.Layer):
    calls = 0

    def call(self, x):
        _Counting.calls += 1
        return dl.ops.relu(x)


def test_python_work_on_values_is_never_replayed():
    dl.utils.set_random_seed(4)
    model = dl.Sequential([dl.Input((4,)), L.Dense(4), _ScaleByMax(), L.Dense(2)])
    for x in _inputs((2, 4), range(WARM + 2)):
        model.predict_on_batch(x)
    assert _programs(model) == [None]
    for x in _inputs((2, 4), range(30, 33)):
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))


def test_custom_layers_replay_only_inside_predict():
    dl.utils.set_random_seed(5)
    model = dl.Sequential([dl.Input((4,)), L.Dense(4), _Counting(), L.Dense(2)])
    xs = _inputs((2, 4), range(WARM + 3))
    _Counting.calls = 0
    for x in xs:
        model(x, training=False)
    assert _Counting.calls == len(xs)  # model(x) runs a custom layer's Python every call
    for x in xs:
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
    assert _programs(model)[0] is not None
    _Counting.calls = 0
    model(xs[0], training=False)
    assert _Counting.calls == 1


def test_an_out_of_range_id_after_capture_raises_the_layers_error():
    dl.utils.set_random_seed(6)
    model = dl.Sequential([dl.Input((5,), dtype="int32"), L.Embedding(10, 3), L.Flatten(), L.Dense(2)])
    ids = [np.random.default_rng(s).integers(0, 10, (1, 5)).astype(np.int32) for s in range(WARM + 2)]
    for x in ids:
        model.predict_on_batch(x)
    assert _programs(model)[0] is not None
    bad = ids[0].copy()
    bad[0, 2] = 10
    with pytest.raises(ValueError, match="token ids must be in"):
        model.predict_on_batch(bad)
    for x in ids[:3]:
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))


def test_threads_keep_their_own_programs():
    model = _mlp()
    xs = _inputs((1, 12), range(40))
    expected = [_general(model, x) for x in xs]

    def work(offset):
        for _ in range(3):
            for i in range(offset, len(xs), 2):
                np.testing.assert_array_equal(model.predict_on_batch(xs[i]), expected[i])

    run_in_threads(work, [(0,), (1,)])


def test_int8_models_are_replayed():
    dl.utils.set_random_seed(7)
    lstm = dl.Sequential([dl.Input((5, 4)), L.LSTM(6), L.Dense(3)])
    mlp = dl.Sequential([dl.Input((12,)), L.Dense(16, activation="relu"), L.Dense(3)])
    for model, shape in ((lstm, (1, 5, 4)), (mlp, (2, 12))):
        model.quantize("int8")
        for x in _inputs(shape, range(WARM)):
            model.predict_on_batch(x)
        assert _programs(model)[0] is not None
        for x in _inputs(shape, range(60, 63)):
            np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))


def test_a_loop_that_trains_between_predicts_never_captures():
    model = _mlp()
    model.compile(optimizer="sgd", loss="mse")
    x, y = _inputs((4, 12), [8])[0], np.zeros((4, 3), np.float32)
    for _ in range(12):  # as a DQN or GAN loop: predict, then one training step
        np.testing.assert_array_equal(model.predict_on_batch(x), _general(model, x))
        model.train_on_batch(x, y)
    arenas = model._inference_plan().memory.arenas()
    assert all(getattr(a, "captures", 0) == 0 for a in arenas.values())


def test_masks_made_from_the_input_are_never_captured():
    # An input with no padding makes an all-True mask for the real and the perturbed call alike:
    # a capture would keep that mask for later inputs that have padding.
    dl.utils.set_random_seed(9)
    masked = dl.Sequential([dl.Input((6,), dtype="int32"), L.Embedding(12, 4, mask_zero=True), L.LSTM(3), L.Dense(2)])
    masking = dl.Sequential([dl.Input((6, 2)), L.Masking(0.0), L.GRU(3)])
    full = [np.random.default_rng(s).integers(1, 12, (2, 6)).astype(np.int32) for s in range(WARM + 2)]
    for x in full:
        masked.predict_on_batch(x)
        masking.predict_on_batch(x[..., None].repeat(2, -1).astype(np.float32))
    assert _programs(masked) == [None] and _programs(masking) == [None]
    padded = full[0].copy()
    padded[:, 3:] = 0
    np.testing.assert_array_equal(masked.predict_on_batch(padded), _general(masked, padded))
    xf = padded[..., None].repeat(2, -1).astype(np.float32)
    np.testing.assert_array_equal(masking.predict_on_batch(xf), _general(masking, xf))


class _ZeroIds(L.Layer):
    """A custom layer whose NumPy result changes only where an id is 0 (a padding rule)."""

    def call(self, ids):
        return dl.Tensor((np.asarray(ids.value) != 0).astype(np.float32))


def test_a_padding_rule_in_custom_python_is_caught_by_the_perturbation():
    dl.utils.set_random_seed(10)
    model = dl.Sequential([dl.Input((6,), dtype="int32"), _ZeroIds(), L.Dense(2)])
    full = [np.random.default_rng(s).integers(1, 9, (2, 6)).astype(np.int32) for s in range(WARM + 2)]
    for x in full:
        model.predict_on_batch(x)
    assert _programs(model) == [None]
    padded = full[0].copy()
    padded[:, 4:] = 0
    np.testing.assert_array_equal(model.predict_on_batch(padded), _general(model, padded))
