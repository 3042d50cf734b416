"""dlcore.utils.plot_history: one panel per metric with training and validation curves, saved to
PNG; matplotlib imported only by the call, with an install hint when it is missing."""
import builtins

import numpy as np
import pytest

import dlcore as dl

pytestmark = pytest.mark.usefixtures("fresh_session")


def _history(epochs=3):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model.fit(x, y, epochs=epochs, batch_size=20, validation_split=0.25, verbose=0)


def test_plot_history_writes_a_png_with_one_panel_per_metric(tmp_path):
    pytest.importorskip("matplotlib")
    history = _history()
    path = tmp_path / "curves.png"
    fig = dl.utils.plot_history(history, path=str(path))
    assert path.exists() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2  # loss, accuracy
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    for ax in fig.axes:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["training", "validation"]
        assert all(len(line.get_xdata()) == 3 for line in ax.get_lines())
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), history.history["loss"])
    np.testing.assert_allclose(fig.axes[0].get_lines()[1].get_ydata(), history.history["val_loss"])


def test_plot_history_selected_metrics_and_plain_dicts(tmp_path):
    pytest.importorskip("matplotlib")
    fig = dl.utils.plot_history({"loss": [1.0, 0.5], "mae": [0.9, 0.4]}, metrics=["mae"])
    assert len(fig.axes) == 1 and fig.axes[0].get_title() == "mae"
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["training"]
    fig = dl.utils.plot_history({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}, metrics="loss",
                                path=tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0
    with pytest.raises(ValueError, match="no values for"):
        dl.utils.plot_history({"loss": [1.0]}, metrics=["accuracy"])
    with pytest.raises(TypeError, match="History"):
        dl.utils.plot_history([1.0, 0.5])


def test_plot_history_does_not_touch_pyplot_state(tmp_path):
    plt = pytest.importorskip("matplotlib.pyplot")
    before = plt.get_fignums()
    dl.utils.plot_history({"loss": [1.0, 0.5]}, path=tmp_path / "a.png")
    assert plt.get_fignums() == before  # a standalone Agg figure, not registered with pyplot


def test_missing_matplotlib_raises_with_install_hint(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        dl.utils.plot_history({"loss": [1.0, 0.5]})


# ---- plot_confusion_matrix -------------------------------------------------------------------------
Y_TRUE = np.array([0, 0, 1, 1, 1, 2, 2, 2, 2])
Y_PRED = np.array([0, 1, 1, 1, 2, 2, 2, 0, 2])
COUNTS = np.array([[1, 1, 0], [0, 2, 1], [1, 0, 3]])  # rows true, columns predicted (by hand)


def test_confusion_matrix_counts_and_normalizations():
    from dlcore.utils.plotting import confusion_matrix

    np.testing.assert_array_equal(confusion_matrix(Y_TRUE, Y_PRED), COUNTS)
    np.testing.assert_allclose(confusion_matrix(Y_TRUE, Y_PRED, normalize="true"), COUNTS / COUNTS.sum(1, keepdims=True))
    np.testing.assert_allclose(confusion_matrix(Y_TRUE, Y_PRED, normalize="pred"), COUNTS / COUNTS.sum(0, keepdims=True))
    np.testing.assert_allclose(confusion_matrix(Y_TRUE, Y_PRED, normalize="all"), COUNTS / 9)
    # one-hot targets and predicted scores are argmaxed; a class never seen gives a zero row/column
    scores = np.eye(4)[Y_PRED] * 0.9 + 0.01
    cm = confusion_matrix(np.eye(3)[Y_TRUE], scores, num_classes=4, normalize="true")
    np.testing.assert_allclose(cm[:3, :3], COUNTS / COUNTS.sum(1, keepdims=True))
    assert not cm[3].any() and not cm[:, 3].any()


def test_confusion_matrix_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    from dlcore.utils.plotting import confusion_matrix

    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
    for normalize in (None, "true", "pred", "all"):
        np.testing.assert_allclose(confusion_matrix(t, p, normalize=normalize),
                                   metrics.confusion_matrix(t, p, normalize=normalize))


def test_plot_confusion_matrix_draws_every_cell(tmp_path):
    pytest.importorskip("matplotlib")
    fig = dl.utils.plot_confusion_matrix(Y_TRUE, Y_PRED, class_names=["cat", "dog", "owl"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(v) for v in COUNTS.ravel()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog", "owl"]
    np.testing.assert_array_equal(ax.images[0].get_array(), COUNTS)
    fig.savefig(tmp_path / "cm.png")
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    fig = dl.utils.plot_confusion_matrix(Y_TRUE, Y_PRED, normalize="true")
    assert fig.axes[0].texts[0].get_text() == "0.50"


def test_plot_confusion_matrix_on_a_given_axes():
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot(1, 2, 2)
    assert dl.utils.plot_confusion_matrix(Y_TRUE, Y_PRED, ax=ax) is fig
    assert len(ax.images) == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(y_true=[0, 1], y_pred=[0]), "y_true has 2 samples, y_pred 1"),
    (dict(y_true=[0, 1.5], y_pred=[0, 1]), "non-negative integer"),
    (dict(y_true=[0, 3], y_pred=[0, 1], class_names=["a", "b"]), "class id 3 but only 2 class names"),
    (dict(y_true=[0, 1], y_pred=[0, 1], normalize="rows"), "normalize must be one of"),
    (dict(y_true=np.zeros((2, 2, 2)), y_pred=[0, 1]), "received shape"),
])
def test_plot_confusion_matrix_rejects_bad_input(kwargs, match):
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match=match):
        dl.utils.plot_confusion_matrix(**kwargs)
