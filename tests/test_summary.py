"""model.summary() as Keras 3 prints it: the "Connected to" column of non-chain functional
models, real output shapes of subclassed models once built, and Sequential([built_base, ...])
built at once. Expected rows were printed by keras 3.15 for the same models (and are compared
live when keras is installed)."""
import numpy as np
import pytest

import dlcore as dl

# (name (type), output shape, params, connected to), from keras 3.15's summary of _two_tower()
KERAS_TWO_TOWER = {
    "a (InputLayer)": ("(None, 4)", "0", "-"),
    "b (InputLayer)": ("(None, 3)", "0", "-"),
    "pa (Dense)": ("(None, 4)", "20", "a[0][0]"),
    "pb (Dense)": ("(None, 4)", "16", "b[0][0]"),
    "shared (Dense)": ("(None, 5)", "25", "pa[0][0], pb[0][0]"),
    "cat (Concatenate)": ("(None, 10)", "0", "shared[0][0], shared[1][0]"),
    "out (Dense)": ("(None, 2)", "22", "cat[0][0]"),
}


def _two_tower(lib):
    layers = lib.layers
    a, b = lib.Input((4,), name="a"), lib.Input((3,), name="b")
    shared = layers.Dense(5, name="shared")
    x = layers.Concatenate(name="cat")([shared(layers.Dense(4, name="pa")(a)),
                                        shared(layers.Dense(4, name="pb")(b))])
    return lib.Model([a, b], layers.Dense(2, name="out")(x), name="two")


def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


def _rows(text, names):
    """{row label: the cells after it} for the rows whose label is in ``names``."""
    rows = {}
    for line in text.splitlines():
        for name in names:
            if line.startswith(name + " "):
                rest = line[len(name):].strip()
                rows[name] = tuple(cell.strip() for cell in rest.split("  ") if cell.strip())
    return rows


def test_functional_connected_to_matches_keras():
    text = _summary(_two_tower(dl))
    assert "Connected to" in text.splitlines()[2]
    rows = _rows(text, KERAS_TWO_TOWER)
    assert rows == KERAS_TWO_TOWER


def test_functional_connected_to_matches_live_keras(monkeypatch):
    keras = pytest.importorskip("keras")
    monkeypatch.setenv("COLUMNS", "250")
    lines = []
    _two_tower(keras).summary(line_length=160, print_fn=lambda s, **kw: lines.append(s))
    live = {}
    for line in "\n".join(lines).splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) == 4 and cells[0] in KERAS_TWO_TOWER:
            live[cells[0]] = tuple(cells[1:])
    assert live == KERAS_TWO_TOWER


def test_chain_functional_and_sequential_have_no_connected_to():
    x = dl.Input((5,), name="x")
    chain = dl.Model(x, dl.layers.Dense(2, name="d")(dl.layers.Dense(3, name="c")(x)))
    text = _summary(chain)
    assert "Connected to" not in text
    assert _rows(text, ["c (Dense)"])["c (Dense)"][:2] == ("(None, 3)", "18")


def test_subclassed_model_shows_real_output_shapes_after_a_call():
    class Tower(dl.Model):
        def __init__(self):
            super().__init__(name="tower")
            self.hidden = dl.layers.Dense(8, name="hidden")
            self.head = dl.layers.Dense(3, name="head")

        def call(self, x):
            return self.head(self.hidden(x))

    model = Tower()
    assert _rows(_summary(model), ["hidden (Dense)"])["hidden (Dense)"] == ("?", "0 (unbuilt)")
    x = np.random.default_rng(0).random((2, 5)).astype("float32")
    before = model(x)
    rows = _rows(_summary(model), ["hidden (Dense)", "head (Dense)"])
    assert rows == {"hidden (Dense)": ("(None, 8)", "48"), "head (Dense)": ("(None, 3)", "27")}
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(before))  # summary changed nothing
    assert "call" not in model.hidden.__dict__


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_sequential_with_a_built_base_is_built_at_once(kind):
    if kind == "sequential":
        base = dl.Sequential([dl.Input((6,)), dl.layers.Dense(4)], name="base")
    else:
        inputs = dl.Input((6,))
        base = dl.Model(inputs, dl.layers.Dense(4)(inputs), name="base")
    model = dl.Sequential([base, dl.layers.Dense(2, name="top")])
    assert model.built and model.input_shape == (None, 6) and model.output_shape == (None, 2)
    assert model.layers[1].built and len(model.weights) == 4
    rows = _rows(_summary(model), [f"base ({type(base).__name__})", "top (Dense)"])
    assert rows["top (Dense)"] == ("(None, 2)", "10")
    x = np.random.default_rng(1).random((3, 6)).astype("float32")
    expected = np.asarray(model.layers[1](base(x)))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="expected shape"):
        model.predict(np.zeros((2, 5), "float32"), verbose=0)


def test_sequential_with_an_unbuilt_subclassed_first_layer_stays_unbuilt():
    class Block(dl.Model):
        def __init__(self):
            super().__init__()
            self.dense = dl.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = dl.Sequential([Block(), dl.layers.Dense(1)])
    assert not model.built
    assert model(np.zeros((2, 3), "float32")).shape == (2, 1)
