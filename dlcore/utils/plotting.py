"""plot_history (training curves from ``model.fit``'s History) and plot_confusion_matrix, with matplotlib.

matplotlib is imported when a plot is made, never by ``import dlcore``. Without ``show``, the
figure is drawn on its own Agg canvas (no pyplot, no global backend change), so saving works on
a machine without a display and leaves the user's matplotlib settings alone.
"""

import numpy as np

_HINT = ("{} needs matplotlib, which is not installed: run `pip install matplotlib` "
         "(or `pip install dlcore[examples]`).")
_NORMALIZE = (None, "true", "pred", "all")


def _import_matplotlib(what="plot_history"):
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_HINT.format(what)) from exc
    return Figure, FigureCanvasAgg


def _history_dict(history):
    if hasattr(history, "history") and isinstance(history.history, dict):
        return history.history, list(getattr(history, "epoch", []) or [])
    if isinstance(history, dict):
        return history, []
    raise TypeError(f"plot_history expects a History (returned by model.fit) or a dict of lists, received "
                    f"{type(history).__name__}")


def plot_history(history, metrics=None, path=None, show=False):
    """Plot training and validation curves, one panel per metric.

    Args:
        history: the History returned by ``model.fit`` (or its ``.history`` dict: metric name ->
            list of per-epoch values; ``val_<name>`` entries are drawn in the same panel).
        metrics: the metric names to plot (without ``val_``), in panel order; default: every
            training metric, loss first.
        path: when given, the figure is saved there (PNG unless the suffix says otherwise).
        show: display the figure with ``matplotlib.pyplot.show()``.

    Returns:
        The matplotlib ``Figure``.
    """
    Figure, FigureCanvasAgg = _import_matplotlib()
    logs, epochs = _history_dict(history)
    if metrics is None:
        metrics = [k for k in logs if not k.startswith("val_")]
        metrics += [k[4:] for k in logs if k.startswith("val_") and k[4:] not in logs]
        metrics.sort(key=lambda k: k != "loss")  # loss first, the others in logged order
    elif isinstance(metrics, str):
        metrics = [metrics]
    else:
        metrics = list(metrics)
    if not metrics:
        raise ValueError("plot_history: the history holds no metrics to plot")
    missing = [m for m in metrics if m not in logs and f"val_{m}" not in logs]
    if missing:
        raise ValueError(f"plot_history: no values for {missing} in the history; it has {sorted(logs)}")

    n = len(metrics)
    size = (4.5 * n, 3.5)
    if show:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size)
    else:
        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, name in zip(axes, metrics):
        for key, label, style in ((name, "training", "-o"), (f"val_{name}", "validation", "-s")):
            values = logs.get(key)
            if not values:
                continue
            xs = [e + 1 for e in epochs] if len(epochs) == len(values) else list(range(1, len(values) + 1))
            ax.plot(xs, [float(v) for v in values], style, markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return fig


def _labels(y, what):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot targets or predicted probabilities
        y = y.argmax(axis=1)
    elif y.ndim == 2:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"plot_confusion_matrix: {what} must be class ids (N,) or scores (N, classes), "
                         f"received shape {y.shape}")
    if y.size and (y.dtype.kind not in "biuf" or np.any(np.mod(y, 1) != 0) or y.min() < 0):
        raise ValueError(f"plot_confusion_matrix: {what} must hold non-negative integer class ids")
    return y.astype(np.int64)


def confusion_matrix(y_true, y_pred, num_classes=None, normalize=None):
    """(num_classes, num_classes) matrix: row = true class, column = predicted class; counts, or
    fractions of each row (``normalize="true"``), column (``"pred"``) or of the total (``"all"``)."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"plot_confusion_matrix: y_true has {t.shape[0]} samples, y_pred {p.shape[0]}")
    if normalize not in _NORMALIZE:
        raise ValueError(f"plot_confusion_matrix: normalize must be one of {list(_NORMALIZE)}, received {normalize!r}")
    seen = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    n = seen if num_classes is None else int(num_classes)
    if seen > n:
        raise ValueError(f"plot_confusion_matrix: class id {seen - 1} but only {n} class names")
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    if normalize is None:
        return cm
    axis = {"true": 1, "pred": 0, "all": None}[normalize]
    total = cm.sum(axis=axis, keepdims=axis is not None).astype(np.float64)
    return np.divide(cm, total, out=np.zeros((n, n)), where=total > 0)


def plot_confusion_matrix(y_true, y_pred, class_names=None, normalize=None, ax=None):
    """Draw the confusion matrix of class ids (or one-hot / score arrays, argmaxed) as a heat map with
    the value in each cell; rows are true classes, columns predicted ones.

    Args:
        y_true, y_pred: (N,) class ids, or (N, classes) one-hot targets / predicted scores.
        class_names: tick labels, one per class (their number sets the matrix size).
        normalize: None (counts), "true" (rows sum to 1), "pred" (columns) or "all".
        ax: a matplotlib Axes to draw on; default: a new Figure on its own Agg canvas.

    Returns:
        The matplotlib ``Figure``.
    """
    Figure, FigureCanvasAgg = _import_matplotlib("plot_confusion_matrix")
    names = None if class_names is None else [str(c) for c in class_names]
    cm = confusion_matrix(y_true, y_pred, None if names is None else len(names), normalize)
    n = cm.shape[0]
    names = names if names is not None else [str(i) for i in range(n)]
    if ax is None:
        fig = Figure(figsize=(1.0 + 0.6 * n, 0.8 + 0.6 * n))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
    else:
        fig = ax.figure
    image = ax.imshow(cm, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax)
    ax.set_xticks(range(n), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(n), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix" + ("" if normalize is None else f" (normalized: {normalize})"))
    threshold = cm.max() / 2 if cm.size else 0
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:d}" if normalize is None else f"{cm[i, j]:.2f}"
            ax.text(j, i, text, ha="center", va="center", color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    return fig
