"""A seeded fuzzer of malformed data for ``predict`` and ``fit`` (issue 10): wrong ranks and sizes,
non-numeric dtypes, NaN/inf, empty and huge broadcast arrays, mismatched lengths, wrong
structures, views, scalars and None, on an MLP, a CNN, an LSTM and a two-input functional model.

Each case either works (and then equals the prediction on a clean contiguous copy) or raises a
ValueError/TypeError whose message says what was expected and what was received, leaving every
weight as it was."""
import re

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")

N = 6  # samples in the clean data
N_BATCHES = 4  # the cases of a model and entry point, in 4 batches: 520 cases in all
# "expected ... received", in the words the messages use
CLEAR = re.compile(r"(expect|must|should|only|not supported|cannot|could not|needs|requires|make sure|the model has)",
                   re.I)
RECEIVED = re.compile(r"(receiv|found|got|given|\bis an? |contains|\d|dtype)", re.I)


def _mlp():
    return dl.Sequential([dl.Input(shape=(5,)), layers.Dense(4, activation="relu"), layers.Dense(3, activation="softmax")])


def _cnn():
    return dl.Sequential([dl.Input(shape=(6, 6, 2)), layers.Conv2D(3, 3, activation="relu"),
                          layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(3, activation="softmax")])


def _lstm():
    return dl.Sequential([dl.Input(shape=(4, 3)), layers.LSTM(4), layers.Dense(3, activation="softmax")])


def _two_inputs():
    a, b = dl.Input(shape=(5,), name="a"), dl.Input(shape=(2, 3), name="b")
    merged = layers.Concatenate()([layers.Dense(4)(a), layers.Flatten()(b)])
    return dl.Model([a, b], layers.Dense(3, activation="softmax")(merged), name="two")


MODELS = {"mlp": _mlp, "cnn": _cnn, "lstm": _lstm, "two_inputs": _two_inputs}


def _compiled(kind):
    model = MODELS[kind]()
    model.compile(optimizer=dl.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    return model


def _clean(model, rng):
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    xs = [rng.normal(size=(N,) + s).astype("float32") for s in shapes]
    return (xs[0] if len(xs) == 1 else xs), rng.integers(0, 3, N)


# ---- malformations of one array ----------------------------------------------------------------------------
def _bad_arrays(a, rng):
    """(name, array or other value, whether predict may accept it) for one clean input array ``a``."""
    n, sample = a.shape[0], a.shape[1:]
    wide = np.repeat(a, 2, axis=-1)
    return [
        ("rank+1", a[..., None], False),
        ("rank-1", a.reshape(n, -1)[:, 0] if a.ndim > 1 else a[0], False),
        ("feature+1", np.concatenate([a, a[..., :1]], axis=-1), False),
        ("feature-1", a[..., :-1], False),
        ("transposed", np.swapaxes(a, 0, -1).copy(), False),
        ("0-d", np.float32(1.5), False),
        ("0-d-array", np.array(2.0), False),
        ("python-scalar", 3, False),
        ("None", None, False),
        ("string", "abc", False),
        ("str-array", a.astype(str), False),
        ("bytes-array", a.astype("S8"), False),
        ("object-array", a.astype(object), False),
        ("complex", a.astype(np.complex64), False),
        ("datetime", np.zeros(a.shape, "datetime64[s]"), False),
        ("timedelta", np.zeros(a.shape, "timedelta64[s]"), False),
        ("ragged-list", [list(range(3)), list(range(2))], False),
        ("empty", a[:0], False),
        ("empty-features", np.zeros((n,) + sample[:-1] + (0,), "float32"), False),
        ("huge-view-features", np.broadcast_to(np.float32(0), (1,) + sample[:-1] + (10 ** 9,)), False),
        ("huge-view-rank", np.broadcast_to(np.int64(0), (2, 10 ** 8) + sample), False),
        ("bool", a > 0, True),
        ("int8", a.astype(np.int8), True),
        ("float16", a.astype(np.float16), True),
        ("float64", a.astype(np.float64), True),
        ("nan", np.where(rng.random(a.shape) < 0.2, np.nan, a).astype("float32"), True),
        ("inf", np.where(rng.random(a.shape) < 0.2, -np.inf, a).astype("float32"), True),
        ("non-contiguous", wide[..., ::2], True),
        ("negative-stride", a[::-1], True),
        ("fortran", np.asfortranarray(a), True),
        ("readonly", _readonly(a), True),
        ("nested-list", a.tolist(), None),  # a list is a structure of inputs: accepted or refused, never a crash
    ]


def _readonly(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _bad_structures(x, rng):
    """Structure-level malformations of the model's inputs ``x`` (an array or a list of them)."""
    xs = x if isinstance(x, list) else [x]
    short = [v[:-1] for v in xs]
    return [
        ("empty-list", [], False),
        ("empty-dict", {}, False),
        ("empty-tuple", (), False),
        ("list-too-long", xs + [xs[0]], False),
        ("list-too-short", xs[:-1] if len(xs) > 1 else [], False),
        ("dict-wrong-names", {f"zz{i}": v for i, v in enumerate(xs)}, False),
        ("nested-dict", {"a": {"b": xs[0]}}, False),
        ("lengths-differ", short[:1] + xs[1:] if len(xs) > 1 else [xs[0], xs[0][:-1]], False),
        ("set", {1, 2}, False),
        ("generator-object", object(), False),
    ]


def _cases(model, rng):
    """Every (name, x, y, predict_may_accept, fit_may_accept) for ``model``."""
    x, y = _clean(model, rng)
    xs = x if isinstance(x, list) else [x]
    out = []
    for i, a in enumerate(xs):
        for name, bad, ok in _bad_arrays(a, rng):
            data = bad if len(xs) == 1 else xs[:i] + [bad] + xs[i + 1:]
            out.append((f"x[{i}]:{name}", data, y, ok, ok and name not in ("nan", "inf")))
    for name, bad, ok in _bad_structures(x, rng):
        out.append((f"x:{name}", bad, y, ok, ok))
    for name, bad_y in [("y-short", y[:-1]), ("y-long", np.concatenate([y, y])), ("y-strings", y.astype(str)),
                        ("y-none", None), ("y-2d", np.stack([y, y], 1)), ("y-negative", -y - 1),
                        ("y-too-large", y + 3), ("y-float", y + 0.5), ("y-nan", np.full(N, np.nan)),
                        ("y-object", y.astype(object)), ("y-complex", y.astype(complex)), ("y-0d", np.int64(1)),
                        ("y-empty-list", []), ("y-list", [y, y]), ("y-huge-view", np.broadcast_to(np.int64(0), (10 ** 9,)))]:
        out.append((name, x, bad_y, True, False))
    return out


def _check_message(exc, name):
    message = str(exc)
    assert isinstance(exc, (ValueError, TypeError)), f"{name}: unclear exception type {type(exc).__name__}: {message}"
    assert CLEAR.search(message) and RECEIVED.search(message) and len(message) > 25, \
        f"{name}: the message does not say what was expected and received: {message!r}"


def _check_entry(kind, entry, batch):
    rng = np.random.default_rng(1000 * batch + len(kind))
    model = _compiled(kind)
    cases = _cases(model, rng)
    assert len(cases) >= 55
    picks = np.random.default_rng(len(kind)).permutation(len(cases))  # one order per model: batches partition it
    chosen = [cases[i] for i in np.array_split(picks, N_BATCHES)[batch]]
    clean_x, clean_y = _clean(model, np.random.default_rng(7))
    for name, x, y, predict_ok, fit_ok in chosen:
        before = model.get_weights()
        try:
            if entry == "predict":
                result = model.predict(x, verbose=0)
            else:
                model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        except Exception as exc:  # every failure must be a clear ValueError/TypeError
            _check_message(exc, f"{kind} {entry} {name}")
            for w, w0 in zip(model.get_weights(), before):
                np.testing.assert_array_equal(w, w0, err_msg=f"{kind} {entry} {name}: weights changed")
            continue
        may_accept = predict_ok if entry == "predict" else fit_ok
        assert may_accept is not False, f"{kind} {entry} {name}: accepted malformed input"
        if entry == "predict" and may_accept:
            xs = x if isinstance(x, list) else [x]
            reference = model.predict([np.ascontiguousarray(v, dtype="float32") for v in xs]
                                      if isinstance(x, list) else np.ascontiguousarray(x, dtype="float32"), verbose=0)
            np.testing.assert_allclose(result, reference, rtol=1e-5, atol=1e-6, err_msg=f"{kind} {name}")
        elif entry == "fit":
            model.fit(clean_x, clean_y, verbose=0)  # still trains


@pytest.mark.parametrize("batch", range(N_BATCHES))
@pytest.mark.parametrize("entry", ["predict", "fit"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_fuzz_malformed_data(kind, entry, batch):
    _check_entry(kind, entry, batch)
