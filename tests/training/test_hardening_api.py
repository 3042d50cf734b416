"""Issue 10 (hardening) of the training/inference API, one test per reported case: step and epoch
arguments, non-numeric data in every entry point, C-int layer arguments, shapes checked before
any copy, empty input structures, failed calls that leave the model unchanged, and the lazy build
under concurrent first calls."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

from harness import assert_rejected

pytestmark = pytest.mark.usefixtures("fresh_session")

N = 12
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, 4)).astype("float32")
Y = RNG.integers(0, 3, N)


def _model(*hidden):
    model = dl.Sequential([dl.Input(shape=(4,)), *hidden, layers.Dense(3, activation="softmax")], name="clf")
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# ---- step, epoch and batch arguments ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["steps_per_epoch", "validation_steps", "validation_batch_size", "batch_size",
                                  "validation_freq"])
@pytest.mark.parametrize("value", [-3, 0, 1.5, True])
def test_fit_refuses_non_positive_steps(name, value):
    kwargs = {name: value}
    if name.startswith("validation"):
        kwargs["validation_data"] = (X, Y)
    assert_rejected(_model(), lambda m: m.fit(X, Y, verbose=0, **kwargs), ValueError, f"`{name}`",
                    "positive integer", repr(value))


@pytest.mark.parametrize("name,value", [("epochs", -1), ("initial_epoch", -1), ("initial_epoch", 0.5)])
def test_fit_refuses_negative_epochs(name, value):
    assert_rejected(_model(), lambda m: m.fit(X, Y, verbose=0, **{name: value}), ValueError, f"`{name}`",
                    "non-negative integer", repr(value))


@pytest.mark.parametrize("method", ["evaluate", "predict"])
@pytest.mark.parametrize("steps", [-3, 0, 2.0])
def test_evaluate_and_predict_refuse_bad_steps(method, steps):
    call = (lambda m: m.evaluate(X, Y, steps=steps, verbose=0)) if method == "evaluate" else \
        (lambda m: m.predict(X, steps=steps, verbose=0))
    assert_rejected(_model(), call, ValueError, "`steps`", "positive integer", repr(steps))


def test_steps_are_honoured_and_capped_at_the_data():
    model = _model()
    assert model.predict(X, batch_size=4, steps=2, verbose=0).shape == (8, 3)
    assert model.predict(X, batch_size=4, steps=50, verbose=0).shape == (N, 3)
    full = model.evaluate(X, Y, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(model.evaluate(X, Y, batch_size=4, steps=50, verbose=0, return_dict=True)["loss"],
                               full["loss"], rtol=1e-6)
    history = model.fit(X, Y, batch_size=4, steps_per_epoch=1, epochs=1, validation_data=(X, Y),
                        validation_steps=1, verbose=0).history
    assert history["loss"][0] > 0 and history["val_loss"][0] > 0


# ---- strings and other non-numbers in every entry point ----------------------------------------------
@pytest.mark.parametrize("data", [np.full((2, 4), "1.5"), np.full((2, 4), 1 + 2j), np.full((2, 4), None),
                                  np.zeros((2, 4), "datetime64[s]")], ids=["str", "complex", "object", "datetime"])
@pytest.mark.parametrize("entry", ["predict", "predict_on_batch", "call", "call-training", "call-list"])
def test_non_numeric_input_is_refused_everywhere(entry, data):
    calls = {"predict": lambda m: m.predict(data, verbose=0), "predict_on_batch": lambda m: m.predict_on_batch(data),
             "call": lambda m: m(data), "call-training": lambda m: m(data, training=True),
             "call-list": lambda m: m(data.tolist())}
    message = assert_rejected(_model(), calls[entry], TypeError, "expected numeric data (bool, int or float)")
    assert str(data.dtype) in message or "Python objects" in message
    if entry in ("predict", "predict_on_batch"):
        assert message.startswith(f"{entry} (x):")
    elif entry != "call-list":
        assert "'clf'" in message


# ---- layer arguments that reach a C int ---------------------------------------------------------------
BIG = 2 ** 31


@pytest.mark.parametrize("make,argument", [
    (lambda: layers.Conv2D(2, 3, strides=BIG), "strides"),
    (lambda: layers.Conv1D(2, 3, dilation_rate=BIG), "dilation_rate"),
    (lambda: layers.Conv2D(2, (3, BIG)), "kernel_size"),
    (lambda: layers.Conv2D(BIG, 3), "filters"),
    (lambda: layers.DepthwiseConv2D(3, depth_multiplier=BIG), "depth_multiplier"),
    (lambda: layers.SeparableConv1D(2, 3, strides=BIG), "strides"),
    (lambda: layers.Conv2DTranspose(2, 3, dilation_rate=(1, BIG)), "dilation_rate"),
    (lambda: layers.MaxPooling2D(BIG), "pool_size"),
    (lambda: layers.AveragePooling1D(2, strides=BIG), "strides"),
    (lambda: layers.ZeroPadding2D(BIG), "padding"),
    (lambda: layers.ReflectionPadding2D(((0, 0), (1, 2 ** 40))), "padding=((0, 0), (1, 1099511627776))"),
    (lambda: layers.Cropping2D(((0, BIG), (0, 0))), "cropping"),
    (lambda: layers.UpSampling2D((1, BIG)), "size"),
])
def test_arguments_over_the_c_int_range(make, argument):
    with pytest.raises(ValueError) as info:
        make()
    message = str(info.value)
    name = argument.split("=")[0]
    assert f"`{name}` must be at most 2147483647" in message
    assert (argument if "=" in argument else str(BIG)) in message


def test_largest_c_int_is_accepted_and_runs():
    x = np.ones((1, 5, 5, 1), "float32")
    assert layers.Conv2D(2, 3, strides=BIG - 1)(x).shape == (1, 1, 1, 2)
    assert layers.MaxPooling2D(2, strides=BIG - 1)(x).shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="output spatial shape .* over 2147483647"):
        layers.Conv2DTranspose(2, 2, strides=BIG - 1)(x)


# ---- shapes and dtypes are checked before anything is copied ------------------------------------------
def _huge_view(dtype):
    return np.broadcast_to(np.zeros((), dtype), (1, 10 ** 9))  # 1e9 values in 8 bytes


@pytest.mark.parametrize("dtype", ["int64", "float64", "float32", "bool"])
@pytest.mark.parametrize("entry", ["predict", "predict_on_batch", "call", "fit", "evaluate", "train_on_batch"])
def test_huge_broadcast_view_is_refused_before_a_copy(entry, dtype):
    tracemalloc = pytest.importorskip("tracemalloc")
    x = _huge_view(dtype)
    calls = {"predict": lambda m: m.predict(x, verbose=0), "predict_on_batch": lambda m: m.predict_on_batch(x),
             "call": lambda m: m(x), "fit": lambda m: m.fit(x, Y[:1], verbose=0),
             "evaluate": lambda m: m.evaluate(x, Y[:1], verbose=0), "train_on_batch": lambda m: m.train_on_batch(x, Y[:1])}
    model = _model()
    tracemalloc.start()
    try:
        assert_rejected(model, calls[entry], ValueError, "'clf'", "expected shape (None, 4)", "1000000000")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB allocated before the error"


def test_huge_view_to_a_functional_model():
    a, b = dl.Input(shape=(4,), name="a"), dl.Input(shape=(2,), name="b")
    model = dl.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b])), name="two")
    model.compile(optimizer="sgd", loss="mse")
    huge = _huge_view("int64")
    for call in (lambda m: m.predict([X[:1], huge], verbose=0), lambda m: m([X[:1], huge]),
                 lambda m: m([X[:1], huge], training=True), lambda m: m.fit([X[:1], huge], Y[:1], verbose=0)):
        assert_rejected(model, call, ValueError, "Input 'b'", "expected shape (None, 2)", "1000000000")


# ---- empty structures ------------------------------------------------------------------------------------
@pytest.mark.parametrize("x", [{}, [], ()], ids=["dict", "list", "tuple"])
@pytest.mark.parametrize("method", ["predict", "predict_on_batch", "fit", "evaluate"])
def test_empty_structure(method, x):
    calls = {"predict": lambda m: m.predict(x, verbose=0), "predict_on_batch": lambda m: m.predict_on_batch(x),
             "fit": lambda m: m.fit(x, Y, verbose=0), "evaluate": lambda m: m.evaluate(x, Y, verbose=0)}
    assert_rejected(_model(), calls[method], ValueError, method, f"empty {type(x).__name__}",
                    "expected an array of shape (None, 4)")


def test_empty_structure_for_two_inputs_and_empty_targets():
    a, b = dl.Input(shape=(4,), name="a"), dl.Input(shape=(2,), name="b")
    model = dl.Model([a, b], layers.Dense(1)(layers.Concatenate()([a, b])), name="two")
    model.compile(optimizer="sgd", loss="mse")
    assert_rejected(model, lambda m: m.predict({}, verbose=0), ValueError, "empty dict",
                    "2 arrays (one per model input, of shapes (None, 4), (None, 2))")
    assert_rejected(_model(), lambda m: m.fit(X, [], verbose=0), ValueError, "y is an empty list",
                    "one target array per model output")


# ---- a call that raises leaves the model as it was ---------------------------------------------------------
def _state(model):
    """Everything a training step may change: weights (moving statistics included), metric states,
    the optimizer's step count, stateful RNN states."""
    metrics = [np.array(s) for m in model.metrics for s in m.variables]
    rnn = [s.copy() for layer in model.layers for s in (getattr(layer, "states", None) or [])]
    iterations = int(model.optimizer.iterations) if model.optimizer.built else None
    return model.get_weights(), metrics, rnn, iterations


def _assert_same_state(before, after):
    for group, (a, b) in enumerate(zip(before[:3], after[:3])):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y, err_msg=f"state group {group} changed")
    assert before[3] == after[3]


@pytest.mark.parametrize("method", ["fit", "train_on_batch"])
def test_sparse_targets_of_the_wrong_shape_leave_batch_norm_unchanged(method):
    model = _model(layers.BatchNormalization())
    model.fit(X, Y, verbose=0)  # metrics and optimizer built
    before = _state(model)
    bad = np.zeros((N, 2), "int64")
    call = (lambda: model.fit(X, bad, verbose=0)) if method == "fit" else (lambda: model.train_on_batch(X, bad))
    with pytest.raises(ValueError, match=r"sparse categorical targets .* of shape \(12,\) .* received targets of "
                                         r"shape \(12, 2\)"):
        call()
    _assert_same_state(before, _state(model))


def _raising(where):
    def fail(*args, **kwargs):
        raise ValueError(f"{where} refused the batch")
    fail.__name__ = "sparse_categorical_crossentropy"  # the target checks read it as the sparse loss
    return fail


@pytest.mark.parametrize("where", ["loss", "metric"])
def test_a_step_that_raises_after_the_forward_pass_changes_nothing(where):
    """The general mechanism: state updates made during the forward pass (BatchNormalization's
    moving statistics) apply only when the whole step completes; metric states are restored."""
    model = dl.Sequential([dl.Input(shape=(4,)), layers.BatchNormalization(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, verbose=0)
    before = _state(model)
    if where == "loss":
        model._compiled_losses[0] = _raising("loss")
    else:
        model._metric_objects[0][1].update_state = _raising("metric")
    with pytest.raises(ValueError, match=f"{where} refused the batch"):
        model.train_on_batch(X, Y)
    with pytest.raises(ValueError, match=f"{where} refused the batch"):
        model.fit(X, Y, batch_size=4, verbose=0)
    _assert_same_state(before, _state(model))


def test_a_direct_call_that_raises_keeps_the_moving_statistics_and_rnn_states():
    bn = layers.BatchNormalization()
    fail = layers.Lambda(lambda t: t if t.shape[0] < 100 else _raising("layer")())
    inputs = dl.Input(shape=(3, 4))
    rnn = layers.LSTM(2, stateful=True)
    model = dl.Model(inputs, fail(rnn(bn(inputs))))
    seq = RNG.normal(size=(4, 3, 4)).astype("float32")
    model(seq, training=True)
    mean, states = bn.moving_mean.value.copy(), [s.copy() for s in rnn.states]
    with pytest.raises(ValueError, match="layer refused the batch"):
        model(np.ones((100, 3, 4), "float32") * 3, training=True)
    np.testing.assert_array_equal(bn.moving_mean.value, mean)
    assert [s.shape for s in rnn.states] == [(4, 2), (4, 2)]
    for s, s0 in zip(rnn.states, states):
        np.testing.assert_array_equal(s, s0)
    model(seq * 3, training=True)  # a call that completes applies them
    assert not np.array_equal(bn.moving_mean.value, mean)
    assert not all(np.array_equal(s, s0) for s, s0 in zip(rnn.states, states))


def test_evaluate_that_raises_keeps_the_metric_states():
    model = _model()
    model.fit(X, Y, verbose=0)
    before = _state(model)
    model._metric_objects[0][1].update_state = _raising("metric")
    with pytest.raises(ValueError, match="metric refused"):
        model.evaluate(X, Y, verbose=0)
    _assert_same_state(before, _state(model))


# ---- the lazy build under concurrent first calls ------------------------------------------------------------
def _unbuilt_model():
    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    return dl.Sequential([layers.Dense(16, activation="relu"), layers.BatchNormalization(), layers.Dense(3)])


@pytest.mark.parametrize("entry", ["predict", "call"])
def test_concurrent_first_calls_build_once(entry):
    import threading

    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    serial_model = _unbuilt_model()
    serial = serial_model.predict(x, verbose=0)
    n_weights = len(serial_model.weights)
    for trial in range(5):
        model = _unbuilt_model()
        outputs, errors = [None] * 8, []
        barrier = threading.Barrier(8)

        def work(i):
            try:
                barrier.wait()
                out = model.predict(x, verbose=0) if entry == "predict" else model(x).value
                outputs[i] = out
            except Exception as exc:  # reported below, with the trial
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors, f"trial {trial}: {errors!r}"
        assert len(model.weights) == n_weights == 8, f"trial {trial}: built {len(model.weights)} weights"
        for out in outputs:
            np.testing.assert_array_equal(out, serial, err_msg=f"trial {trial}")
        assert model.input.shape == (None, 4)  # the symbolic graph was set once
