"""The inference plan's memory plan (models/inference.py): per input shape and thread, one arena
sized by liveness; a steady-state predict allocates only its returned output (tracemalloc sees
numpy's allocations)."""
import tracemalloc

import numpy as np
import pytest

import dlcore as dl
from dlcore.models.inference import Arena, _Trace, planned_memory
from harness import run_in_threads

L = dl.layers


def _cnn():
    dl.utils.set_random_seed(0)
    return dl.Sequential([dl.Input((28, 28, 1)), L.Conv2D(16, 3, activation="relu"), L.MaxPooling2D(),
                          L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(), L.Flatten(), L.Dropout(0.5),
                          L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])


def _residual():
    dl.utils.set_random_seed(1)
    inp = dl.Input((12, 12, 8))
    a = L.Conv2D(8, 3, padding="same", activation="relu")(inp)
    b = L.Conv2D(8, 3, padding="same", activation="relu")(a)
    c = L.Conv2D(8, 3, padding="same")(b)
    s = L.Add()([a, c])  # a stays live across b and c
    head = dl.Sequential([L.GlobalAveragePooling2D(), L.Dense(5)])  # a nested plan
    return dl.Model(inp, [head(s), L.Activation("tanh")(s)])


def _unplanned(model, x):
    """The layers called one by one through Layer.__call__ (no plan, fresh arrays)."""
    if isinstance(model, dl.Sequential):
        for layer in model.layers:
            x = layer(x)
        return x.value
    return model.predict_on_batch(x)  # replaced below where a graph is needed


# calls of one input shape before its steady state: plain (per-shape checks), traced, traced again
# when a step's first-call path ended (ConvPoolStep fuses from its second direct call), twice from
# the arena with no weight written, and captured (models/replay.py)
WARM_CALLS = 6


def _steady_peak(call, calls=20):
    """Bytes above the start that ``calls`` calls of ``call()`` held at their peak."""
    tracemalloc.start()
    try:
        call()
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(calls):
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start


def test_steady_state_predict_allocates_only_its_output():
    model = _cnn()
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    for _ in range(WARM_CALLS):  # plain, traced (ConvPoolStep unfused), traced again (fused), arena, captured
        model.predict_on_batch(x)
    largest = 4 * 13 * 13 * 16 * 4  # the first conv + pool block's output, 43 KB (the fused conv's is never written)
    peak = _steady_peak(lambda: model.predict_on_batch(x))
    assert peak < 16 << 10 < largest, peak
    peak_call = _steady_peak(lambda: model(x))
    assert peak_call < 16 << 10, peak_call
    planned, total, live = planned_memory(model)[((4, 28, 28, 1), np.dtype(np.float32))]
    assert largest <= live <= planned < total


def test_planned_results_equal_the_unplanned_path_and_are_not_overwritten():
    model = _cnn()
    rng = np.random.default_rng(1)
    x1, x2 = (rng.random((3, 28, 28, 1), dtype=np.float32) for _ in range(2))
    ref1, ref2 = _unplanned(model, x1), _unplanned(model, x2)
    outs = [model.predict_on_batch(x) for x in (x1, x2, x1, x2, x1)]  # trace, then arena
    for out, ref in zip(outs, [ref1, ref2, ref1, ref2, ref1]):
        np.testing.assert_array_equal(out, ref)
    assert not np.shares_memory(outs[2], outs[4])  # each call returns fresh memory
    t1, t2 = model(x1), model(x2)  # a Tensor returned by model(x) is not overwritten either
    np.testing.assert_array_equal(t1.value, ref1)
    np.testing.assert_array_equal(t2.value, ref2)


def test_each_input_shape_gets_its_own_plan():
    model = _cnn()
    rng = np.random.default_rng(2)
    for batch in (1, 5, 2) * WARM_CALLS:
        x = rng.random((batch, 28, 28, 1), dtype=np.float32)
        np.testing.assert_array_equal(model.predict_on_batch(x), _unplanned(model, x))
    assert sorted(k[0][0] for k in planned_memory(model)) == [1, 2, 5]
    for batch in range(3, 20):  # more shapes than the plan keeps: the set starts over, bounded
        model.predict_on_batch(rng.random((batch, 28, 28, 1), dtype=np.float32))
    assert len(planned_memory(model)) <= 8


def test_functional_with_a_skip_connection_and_a_nested_model():
    model = _residual()
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((2, 12, 12, 8)).astype(np.float32) for _ in range(3)]
    with dl.GradientTape():  # recording: the plan (and its arena) is not used
        refs = [[t.value.copy() for t in model(x)] for x in xs]
    for _ in range(2):
        for x, ref in zip(xs, refs):
            out = model.predict_on_batch(x)
            for o, r in zip(out, ref):
                np.testing.assert_allclose(o, r, rtol=1e-6, atol=1e-6)
    planned, total, live = next(iter(planned_memory(model).values()))
    assert 0 < live <= planned < total
    assert _steady_peak(lambda: model.predict_on_batch(xs[0])) < 16 << 10


def test_concurrent_threads_use_their_own_arenas():
    model = _cnn()
    rng = np.random.default_rng(4)
    xs = [rng.random((2, 28, 28, 1), dtype=np.float32) for _ in range(4)]
    refs = [_unplanned(model, x) for x in xs]

    def worker(k):
        for _ in range(30):
            np.testing.assert_array_equal(model.predict_on_batch(xs[k]), refs[k])

    run_in_threads(worker, [(k,) for k in range(4)])


def test_arena_shares_bytes_only_between_disjoint_live_ranges():
    trace = _Trace()
    for step, last in [(0, 1), (1, 2), (2, 3), (1, 3)]:  # a skip buffer born at 1 read at 3
        trace.step = step
        a = trace.take((1000,), np.float32)
        trace.last[-1] = last
    arena = Arena(trace)
    def bounds(b):
        lo = b.__array_interface__["data"][0]
        return lo, lo + b.nbytes

    spans = [(bounds(b), trace.born[i], trace.last[i]) for i, b in enumerate(arena.buffers)]
    for i, ((lo1, hi1), b1, l1) in enumerate(spans):
        for (lo2, hi2), b2, l2 in spans[i + 1:]:
            if b1 <= l2 and b2 <= l1:
                assert hi1 <= lo2 or hi2 <= lo1
    assert arena.nbytes == 3 * 4032  # buffers 0 and 2 share; 1 and 3 live beside them
    assert arena.take((1000,), np.float32) is arena.buffers[0]
    fresh = arena.take((7,), np.float64)  # not what the trace recorded: a fresh array
    assert arena.missed and fresh.shape == (7,) and not np.shares_memory(fresh, arena.memory)
    del a


@pytest.mark.parametrize("layer", [L.LSTM(6, return_sequences=True), L.BatchNormalization(),
                                   L.LayerNormalization()], ids=lambda layer: type(layer).__name__)
def test_other_planned_ops_match_the_unplanned_path(layer):
    dl.utils.set_random_seed(5)
    model = dl.Sequential([dl.Input((7, 4)), layer, L.Dense(3)])
    x = np.random.default_rng(5).standard_normal((2, 7, 4)).astype(np.float32)
    ref = _unplanned(model, x)
    for _ in range(3):
        np.testing.assert_allclose(model.predict_on_batch(x), ref, rtol=1e-6, atol=1e-6)
