"""plot_history: training curves from ``model.fit``'s History, with matplotlib.

matplotlib is imported when a plot is made, never by ``import dlcore``. Without ``show``, the
figure is drawn on its own Agg canvas (no pyplot, no global backend change), so saving works on
a machine without a display and leaves the user's matplotlib settings alone.
"""

_HINT = ("plot_history needs matplotlib, which is not installed: run `pip install matplotlib` "
         "(or `pip install dlcore[examples]`).")


def _import_matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(_HINT) from exc
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
