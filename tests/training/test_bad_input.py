"""Bad input fails early and clearly: a ValueError or TypeError that names the argument or layer,
the expected and the received, raised before any weight changes."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from harness import assert_rejected

pytestmark = pytest.mark.usefixtures("fresh_session")

N = 12


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 4)).astype("float32"), rng.integers(0, 3, N)


def _model(loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(5, activation="relu"),
                           layers.Dense(3, activation="softmax")], name="clf")
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss=loss, metrics=list(metrics))
    return model


def _two_inputs():
    a, b = dl.Input(shape=(4,), name="a"), dl.Input(shape=(2,), name="b")
    model = dl.Model([a, b], layers.Dense(1, name="out")(layers.Concatenate()([a, b])), name="two")
    model.compile(optimizer="sgd", loss="mse")
    return model


X, Y = _data()


def _with(array, index, value):
    array = array.copy()
    array[index] = value
    return array


# ---- data that does not fit the model -------------------------------------------------------------
@pytest.mark.parametrize("x,fragments", [
    (np.ones((N, 5), "float32"), ["clf", "expected shape (None, 4)", "5)"]),
    (np.ones((N, 4, 1), "float32"), ["clf", "expected shape (None, 4)", "4, 1)"]),
    (np.ones((N,), "float32"), ["clf", "expected shape (None, 4)"]),
], ids=["feature-count", "rank-3", "rank-1"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch", "predict"])
def test_wrong_input_shape(method, x, fragments):
    calls = {"fit": lambda m: m.fit(x, Y, verbose=0), "evaluate": lambda m: m.evaluate(x, Y, verbose=0),
             "train_on_batch": lambda m: m.train_on_batch(x, Y), "predict": lambda m: m.predict(x, verbose=0)}
    assert_rejected(_model(), calls[method], ValueError, *fragments)


def test_wrong_input_shape_in_validation_data():
    assert_rejected(_model(), lambda m: m.fit(X, Y, validation_data=(np.ones((3, 5)), Y[:3]), verbose=0),
                    ValueError, "expected shape (None, 4)", "5)")


@pytest.mark.parametrize("kwargs,fragments", [
    ({"x": X, "y": Y[:-1]}, ["x sizes: 12", "y sizes: 11"]),
    ({"x": X, "y": Y, "sample_weight": np.ones(N - 2)}, ["sample_weight", f"({N},)", f"({N - 2},)"]),
    ({"x": X, "y": Y, "validation_data": (X, Y[:5])}, ["validation_data", "x sizes: 12", "y sizes: 5"]),
], ids=["x-y", "sample_weight", "validation_data"])
def test_length_mismatch(kwargs, fragments):
    assert_rejected(_model(), lambda m: m.fit(verbose=0, **kwargs), ValueError, *fragments)


@pytest.mark.parametrize("y,fragments", [
    (_with(Y, 3, 3), ["[0, 3)", "3 classes", "3]"]),
    (_with(Y, 3, -1), ["[0, 3)", "[-1,"]),
    (Y.astype("float32") + 0.5, ["integer class ids"]),
], ids=["too-large", "negative", "non-integer"])
@pytest.mark.parametrize("method", ["fit", "evaluate", "train_on_batch"])
def test_bad_sparse_labels(method, y, fragments):
    calls = {"fit": lambda m: m.fit(X, y, verbose=0), "evaluate": lambda m: m.evaluate(X, y, verbose=0),
             "train_on_batch": lambda m: m.train_on_batch(X, y)}
    assert_rejected(_model(), calls[method], ValueError, method, *fragments)


def test_one_hot_targets_of_the_wrong_width():
    assert_rejected(_model(loss="categorical_crossentropy"), lambda m: m.fit(X, np.eye(4)[Y % 4], verbose=0),
                    ValueError, f"({N}, 4)", "(None, 3)")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_values(bad):
    assert_rejected(_model(), lambda m: m.fit(_with(X, (2, 1), bad), Y, verbose=0), ValueError,
                    "fit", "`x`", "1 NaN or infinite")
    assert_rejected(_model(), lambda m: m.evaluate(_with(X, (2, 1), bad), Y, verbose=0), ValueError,
                    "evaluate", "`x`")
    assert_rejected(_model(), lambda m: m.train_on_batch(_with(X, (2, 1), bad), Y), ValueError, "`x`")
    assert_rejected(_model(), lambda m: m.fit(X, Y, validation_data=(_with(X, (0, 0), bad), Y), verbose=0),
                    ValueError, "validation_data", "`x`", "NaN or infinite")
    y_one_hot = _with(np.eye(3, dtype="float32")[Y], (5, 0), bad)
    assert_rejected(_model(loss="categorical_crossentropy"), lambda m: m.fit(X, y_one_hot, verbose=0), ValueError,
                    "`y`", "1 NaN or infinite")


def test_nan_sample_weight():
    assert_rejected(_model(), lambda m: m.fit(X, Y, sample_weight=_with(np.ones(N), 0, np.nan), verbose=0),
                    ValueError, "sample_weight", "finite")


def test_empty_arrays():
    assert_rejected(_model(), lambda m: m.fit(np.zeros((0, 4), "float32"), np.zeros((0,), "int64"), verbose=0),
                    ValueError, "empty", "0 samples")
    assert_rejected(_model(), lambda m: m.evaluate(np.zeros((0, 4), "float32"), np.zeros((0,)), verbose=0),
                    ValueError, "empty")
    assert_rejected(_model(), lambda m: m.predict(np.zeros((0, 4), "float32"), verbose=0), ValueError, "no samples")


def test_python_list_of_labels_is_read_as_several_outputs():
    assert_rejected(_model(), lambda m: m.fit(X, Y.tolist(), verbose=0), ValueError, "`y`", "batch dimension",
                    "np.asarray")


def test_non_numeric_and_missing_data():
    assert_rejected(_model(), lambda m: m.fit(np.full((N, 4), "a"), Y, verbose=0), TypeError, "x", "numeric", "<U1")
    assert_rejected(_model(), lambda m: m.fit(X, None, verbose=0), ValueError, "targets", "y=None")
    assert_rejected(_model(), lambda m: m.fit(None, Y, verbose=0), ValueError, "x=None")


# ---- arguments -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,fragments", [
    ({"batch_size": 0}, ["batch_size", "positive integer", "0"]),
    ({"batch_size": -4}, ["batch_size", "-4"]),
    ({"batch_size": 2.5}, ["batch_size", "2.5"]),
    ({"batch_size": True}, ["batch_size", "True"]),
    ({"epochs": -1}, ["epochs", "-1"]),
    ({"epochs": 1.5}, ["epochs", "1.5"]),
    ({"validation_split": 1.5}, ["validation_split", "1.5"]),
    ({"validation_split": -0.1}, ["validation_split", "-0.1"]),
    ({"validation_data": (X,)}, ["validation_data", "tuple"]),
], ids=lambda v: str(v) if not isinstance(v, dict) else "-".join(f"{k}={v[k]!r}"[:24] for k in v))
def test_bad_fit_arguments(kwargs, fragments):
    assert_rejected(_model(), lambda m: m.fit(X, Y, verbose=0, **kwargs), ValueError, *fragments)


@pytest.mark.parametrize("method", ["evaluate", "predict"])
def test_bad_batch_size_elsewhere(method):
    call = (lambda m: m.evaluate(X, Y, batch_size=0, verbose=0)) if method == "evaluate" else \
        (lambda m: m.predict(X, batch_size=-1, verbose=0))
    assert_rejected(_model(), call, ValueError, "batch_size")


def test_unknown_identifiers():
    model = _model()
    with pytest.raises(ValueError, match="Unknown optimizer identifier: 'adamm'"):
        model.compile(optimizer="adamm", loss="mse")
    model = _model(loss="mean_squared_errorr")
    assert_rejected(model, lambda m: m.fit(X, Y, verbose=0), ValueError, "Unknown loss", "'mean_squared_errorr'")
    model = _model(metrics=["acuracy"])
    assert_rejected(model, lambda m: m.fit(X, Y, verbose=0), ValueError, "Unknown metric", "'acuracy'")
    with pytest.raises(ValueError, match="Unknown activation identifier: 'rellu'"):
        layers.Dense(3, activation="rellu")


@pytest.mark.parametrize("units", [-1, 0, 2.5, "3", None])
def test_dense_units_must_be_a_positive_integer(units):
    with pytest.raises((ValueError, TypeError), match="units") as info:
        layers.Dense(units)
    assert repr(units) in str(info.value)


def test_unknown_keyword_argument():
    with pytest.raises(TypeError, match="unitz"):
        layers.Dense(3, unitz=4)


def test_fit_before_compile():
    model = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(3)])
    before = model.get_weights()
    for call in (lambda: model.fit(X, Y, verbose=0), lambda: model.evaluate(X, Y, verbose=0),
                 lambda: model.train_on_batch(X, Y)):
        with pytest.raises(ValueError, match=r"compile\(\)"):
            call()
    for w, w0 in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, w0)
    assert model.predict(X, verbose=0).shape == (N, 3)  # predicting needs no compile


# ---- functional models ---------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs,fragments", [
    ([X], ["'two'", "expects 2 input(s)", "received 1"]),
    (X, ["'two'", "expects 2 input(s)", "received 1"]),
    ([X, X[:, :2], X], ["expects 2 input(s)", "received 3"]),
    ({"a": X}, ["missing", "'b'"]),
    ([X, X], ["Input 'b'", "expected shape (None, 2)", "4)"]),
], ids=["list-of-1", "bare-array", "list-of-3", "dict-missing-key", "second-input-shape"])
@pytest.mark.parametrize("method", ["fit", "predict"])
def test_wrong_inputs_to_a_functional_model(method, inputs, fragments):
    call = (lambda m: m.fit(inputs, np.zeros((N, 1)), verbose=0)) if method == "fit" else \
        (lambda m: m.predict(inputs, verbose=0))
    assert_rejected(_two_inputs(), call, ValueError, *fragments)


def test_wrong_number_of_targets():
    assert_rejected(_two_inputs(), lambda m: m.fit([X, X[:, :2]], [np.zeros((N, 1))] * 2, verbose=0), ValueError,
                    "1 outputs", "2 target arrays")


# ---- set_weights ----------------------------------------------------------------------------------------
def test_set_weights_with_the_wrong_count():
    model = _model()
    weights = model.get_weights()
    assert_rejected(model, lambda m: m.set_weights(weights[:-1]), ValueError, "expects 4 weights", "3 entries")
    assert_rejected(model, lambda m: m.set_weights(weights + [weights[0]]), ValueError, "4 weights", "5 entries")


def test_set_weights_with_a_wrong_shape_changes_nothing():
    model = _model()
    bad = [w + 1 for w in model.get_weights()]
    bad[2] = np.ones((6, 3), "float32")  # the second kernel is (5, 3)
    message = assert_rejected(model, lambda m: m.set_weights(bad), ValueError, "(5, 3)", "(6, 3)")
    assert "dense_1/kernel" in message
    assert_rejected(model.layers[0], lambda layer: layer.set_weights([np.ones((4, 5)), np.ones((4,))]), ValueError,
                    "'dense'", "(5,)", "(4,)")


# ---- predict on bad values: no error, NaN propagates ---------------------------------------------------
def test_predict_with_nan_propagates_nan():
    model = _model()
    x = _with(X, (3, 2), np.nan)
    out = model.predict(x, verbose=0)
    assert np.isnan(out[3]).all()
    rest = np.arange(N) != 3
    assert np.isfinite(out[rest]).all()
    np.testing.assert_allclose(out[rest], model.predict(X, verbose=0)[rest], rtol=1e-6)
    assert np.isnan(model.predict_on_batch(x)[3]).all()
