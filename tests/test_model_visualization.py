"""dl.utils.model_to_dot / plot_model (Keras 3's): the DOT source of a model's layer graph (needs
pydot) and its rendering to PNG (needs Graphviz's `dot`; skipped with the reason when missing)."""
import shutil
import sys

import numpy as np
import pytest

import dlcore as dl

pytestmark = pytest.mark.usefixtures("fresh_session")


def _branchy():
    inp = dl.Input((4,), name="features")
    a = dl.layers.Dense(3, activation="relu", name="left")(inp)
    b = dl.layers.Dense(3, name="right")(inp)
    return dl.Model(inp, dl.layers.Add(name="sum")([a, b]), name="branchy")


def _edges(dot):
    nodes = list(dot.get_nodes()) + [n for sub in dot.get_subgraphs() for n in sub.get_nodes()]
    names = {n.get_name(): n.get("label").strip('"').split("\\n")[0] for n in nodes if n.get("label")}
    edges = list(dot.get_edges()) + [e for sub in dot.get_subgraphs() for e in sub.get_edges()]
    return names, sorted((names[e.get_source()], names[e.get_destination()]) for e in edges)


def test_model_to_dot_nodes_edges_and_labels():
    pytest.importorskip("pydot")
    dot = dl.utils.model_to_dot(_branchy(), show_shapes=True, show_dtype=True, show_layer_activations=True,
                                show_trainable=True, rankdir="LR", dpi=96)
    names, edges = _edges(dot)
    assert sorted(names.values()) == ["features (InputLayer)", "left (Dense)", "right (Dense)", "sum (Add)"]
    assert edges == [("features (InputLayer)", "left (Dense)"), ("features (InputLayer)", "right (Dense)"),
                     ("left (Dense)", "sum (Add)"), ("right (Dense)", "sum (Add)")]
    source = dot.to_string()
    assert "rankdir=LR" in source and "dpi=96" in source
    for text in ("Activation: relu", "Input shape: (None, 3), (None, 3)", "Output shape: (None, 3)",
                 "Output dtype: float32", "Trainable: True"):
        assert text in source, text
    plain = dl.utils.model_to_dot(_branchy(), show_layer_names=False).to_string()
    assert "Output shape" not in plain and "Dense" in plain and "left" not in plain


def test_model_to_dot_sequential_shared_and_nested():
    pytest.importorskip("pydot")
    seq = dl.Sequential([dl.layers.Dense(2, name="d1"), dl.layers.Dense(1, name="d2")])
    seq(np.ones((1, 3), "float32"))  # built from data: a chain of layers
    _, edges = _edges(dl.utils.model_to_dot(seq))
    assert ("d1 (Dense)", "d2 (Dense)") in edges
    shared = dl.layers.Dense(2, name="shared")
    x1, x2 = dl.Input((2,), name="x1"), dl.Input((2,), name="x2")
    names, edges = _edges(dl.utils.model_to_dot(dl.Model([x1, x2], dl.layers.Add()([shared(x1), shared(x2)]))))
    assert list(names.values()).count("shared (Dense)") == 1  # one node, two inbound edges
    assert ("x1 (InputLayer)", "shared (Dense)") in edges and ("x2 (InputLayer)", "shared (Dense)") in edges
    inner = _branchy()
    x = dl.Input((4,), name="outer_in")
    outer = dl.Model(x, dl.layers.Dense(1, name="head")(inner(x)))
    names, edges = _edges(dl.utils.model_to_dot(outer))
    assert ("branchy (Functional)", "head (Dense)") in edges and "left (Dense)" not in names.values()
    dot = dl.utils.model_to_dot(outer, expand_nested=True)
    names, edges = _edges(dot)
    assert len(dot.get_subgraphs()) == 1
    assert ("outer_in (InputLayer)", "features (InputLayer)") in edges and ("sum (Add)", "head (Dense)") in edges


def test_model_to_dot_rejects_bad_arguments():
    pytest.importorskip("pydot")
    with pytest.raises(ValueError, match="rankdir must be one of"):
        dl.utils.model_to_dot(_branchy(), rankdir="XY")
    with pytest.raises(ValueError, match="has not yet been built"):
        dl.utils.model_to_dot(dl.Sequential([dl.layers.Dense(2)]))
    with pytest.raises(TypeError, match="expects a dlcore Model"):
        dl.utils.model_to_dot(dl.layers.Dense(2))


def test_missing_pydot_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)  # import pydot -> ImportError
    with pytest.raises(ImportError, match="pip install pydot"):
        dl.utils.plot_model(_branchy(), to_file="unused.png")


def test_missing_graphviz_names_the_install(monkeypatch, tmp_path):
    pydot = pytest.importorskip("pydot")

    def no_dot(*args, **kwargs):
        raise FileNotFoundError("dot not found")

    monkeypatch.setattr(pydot.Dot, "create", no_dot)
    with pytest.raises(ImportError, match="install Graphviz"):
        dl.utils.plot_model(_branchy(), to_file=str(tmp_path / "m.png"))
    assert not (tmp_path / "m.png").exists()


def test_plot_model_writes_a_png(tmp_path):
    pytest.importorskip("pydot")
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's `dot` is not installed (apt-get install graphviz)")
    path = tmp_path / "model.png"
    dl.utils.plot_model(_branchy(), to_file=str(path), show_shapes=True, dpi=72)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    dl.utils.plot_model(_branchy(), to_file=str(tmp_path / "model"), dpi=72)  # no extension: PNG
    assert (tmp_path / "model").read_bytes()[:4] == b"\x89PNG"
