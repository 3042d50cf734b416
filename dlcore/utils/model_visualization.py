"""plot_model and model_to_dot: a model's layer graph drawn with pydot + Graphviz, as in Keras 3.

pydot (``pip install pydot``) and Graphviz's ``dot`` program (``apt-get install graphviz``,
``brew install graphviz``, ...) are optional and imported by the call, never by ``import dlcore``.
``model_to_dot`` needs pydot only (it builds the DOT source); ``plot_model`` also needs ``dot`` to
render. Each node is one layer (id of the layer, so a shared layer is one node with several
inbound edges); each edge is one tensor passed from a layer's call to another's.
"""
import os

_PYDOT_HINT = "You must install pydot (`pip install pydot`) for model_to_dot and plot_model to work."
_GRAPHVIZ_HINT = ("You must install Graphviz and its `dot` program must be on the PATH for plot_model to work "
                  "(`apt-get install graphviz`, `brew install graphviz` or https://graphviz.org/download/).")
_RANKDIRS = ("TB", "LR", "BT", "RL")


def _import_pydot():
    try:
        import pydot
    except ImportError as exc:
        raise ImportError(_PYDOT_HINT) from exc
    return pydot


def _check_graphviz(pydot):
    try:
        pydot.Dot.create(pydot.Dot())  # runs `dot` on an empty graph
    except Exception as exc:  # noqa: BLE001  (pydot raises OSError or its own types, by version)
        raise ImportError(_GRAPHVIZ_HINT) from exc


def _graph(model):
    """(input tensors, call nodes in order) of a built model; (None, layers) for a Sequential built
    from data without a symbolic input."""
    from ..models.functional import _graph_nodes

    if not model.built:
        raise ValueError(f"model_to_dot: model '{model.name}' has not yet been built. Build the model first by "
                         "calling build() or by calling the model on a batch of data.")
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except AttributeError:
        return None, list(model.layers)
    from ..symbolic import flatten

    inputs, outputs = flatten(inputs), flatten(outputs)
    return inputs, _graph_nodes(inputs, outputs)


def _fmt_shape(shapes):
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return ", ".join(_fmt_shape(s) for s in shapes) if len(shapes) > 1 else _fmt_shape(shapes[0])
    return str(tuple(shapes)).replace(",)", ")") if shapes is not None else "?"


def _label(layer, node, opts):
    from ..symbolic import flatten

    cls = type(layer).__name__
    lines = [f"{layer.name} ({cls})" if opts["show_layer_names"] else cls]
    if opts["show_layer_activations"] and getattr(layer, "activation", None) is not None:
        act = layer.activation
        lines.append(f"Activation: {getattr(act, '__name__', act)}")
    outs = flatten(node.outputs) if node is not None else []
    if opts["show_dtype"]:
        dtype = outs[0].dtype if outs else getattr(layer, "dtype", "?")
        lines.append(f"Output dtype: {dtype}")
    if opts["show_shapes"]:
        if node is not None and node.parents:
            lines.append(f"Input shape: {_fmt_shape([tuple(p.shape) for p in node.parents])}")
        lines.append(f"Output shape: {_fmt_shape([tuple(o.shape) for o in outs]) if outs else '?'}")
    if opts["show_trainable"]:
        lines.append(f"Trainable: {'True' if layer.trainable else 'False'}")
    return "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in lines)


def _add_model(pydot, graph, model, opts):
    """Add ``model``'s layers to ``graph``; returns {id(layer): (entry node ids, exit node ids)}."""
    from ..models.model import Model

    inputs, nodes = _graph(model)
    ends = {}

    def add_layer(layer, node):
        if id(layer) in ends:
            return
        if opts["expand_nested"] and isinstance(layer, Model):
            cluster = pydot.Cluster(str(id(layer)), label=f"{layer.name} ({type(layer).__name__})",
                                    style="dashed")
            inner = _add_model(pydot, cluster, layer, opts)
            graph.add_subgraph(cluster)
            inner_inputs, inner_nodes = _graph(layer)
            first = [inner[id(t.node.layer)][0][0] for t in inner_inputs] if inner_inputs else \
                [inner[id(inner_nodes[0])][0][0]]
            last_layers = [t.node.layer for t in layer.outputs] if inner_inputs else [inner_nodes[-1]]
            ends[id(layer)] = (first, [inner[id(lay)][1][0] for lay in last_layers])
            return
        name = str(id(layer))
        graph.add_node(pydot.Node(name, label=_label(layer, node, opts), shape="record"))
        ends[id(layer)] = ([name], [name])

    if inputs is None:  # a Sequential built from data: a chain of layers
        previous = None
        for layer in nodes:
            add_layer(layer, None)
            if previous is not None:
                for src in ends[id(previous)][1]:
                    for dst in ends[id(layer)][0]:
                        graph.add_edge(pydot.Edge(src, dst))
            previous = layer
        return ends
    for t in inputs:
        if t.node is not None:
            add_layer(t.node.layer, t.node)
    for node in nodes:
        add_layer(node.layer, node)
        for parent in node.parents:
            if parent.node is None:
                continue
            for src in ends[id(parent.node.layer)][1]:
                for dst in ends[id(node.layer)][0]:
                    graph.add_edge(pydot.Edge(src, dst))
    return ends


def model_to_dot(model, show_shapes=False, show_dtype=False, show_layer_names=True, rankdir="TB",
                 expand_nested=False, dpi=200, subgraph=False, show_layer_activations=False,
                 show_trainable=False, **kwargs):
    """The model's layer graph as a ``pydot.Dot`` (a ``pydot.Cluster`` when ``subgraph``), as
    ``keras.utils.model_to_dot``: one node per layer labelled ``name (Class)``, optionally with its
    input/output shapes, output dtype, activation and trainable flag; ``expand_nested`` draws a
    nested model's layers in a dashed cluster. Needs pydot."""
    from ..models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"model_to_dot expects a dlcore Model, received {type(model).__name__}")
    if rankdir not in _RANKDIRS:
        raise ValueError(f"model_to_dot: rankdir must be one of {list(_RANKDIRS)}, received {rankdir!r}")
    if kwargs:
        raise TypeError(f"model_to_dot: unknown arguments {sorted(kwargs)}")
    pydot = _import_pydot()
    if subgraph:
        dot = pydot.Cluster(str(id(model)), label=model.name, style="dashed")
    else:
        dot = pydot.Dot(graph_type="digraph")
        dot.set("rankdir", rankdir)
        dot.set("concentrate", True)
        dot.set("dpi", dpi)
        dot.set_node_defaults(shape="record")
    opts = {"show_shapes": show_shapes, "show_dtype": show_dtype, "show_layer_names": show_layer_names,
            "show_layer_activations": show_layer_activations, "show_trainable": show_trainable,
            "expand_nested": expand_nested}
    _add_model(pydot, dot, model, opts)
    return dot


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False, show_layer_names=True,
               rankdir="TB", expand_nested=False, dpi=200, show_layer_activations=False, show_trainable=False,
               **kwargs):
    """Draw the model's layer graph to ``to_file`` (format from its extension, PNG without one), as
    ``keras.utils.plot_model``. Needs pydot and Graphviz (ImportError naming what to install).
    Returns an ``IPython.display.Image`` of a .png/.jpg file when IPython is installed, else None."""
    dot = model_to_dot(model, show_shapes=show_shapes, show_dtype=show_dtype, show_layer_names=show_layer_names,
                       rankdir=rankdir, expand_nested=expand_nested, dpi=dpi,
                       show_layer_activations=show_layer_activations, show_trainable=show_trainable, **kwargs)
    pydot = _import_pydot()
    _check_graphviz(pydot)
    to_file = os.fspath(to_file)
    extension = os.path.splitext(to_file)[1][1:] or "png"
    dot.write(to_file, format=extension)
    if extension not in ("png", "jpg", "jpeg") or not os.path.splitext(to_file)[1]:
        return None
    try:
        from IPython import display
    except ImportError:
        return None
    return display.Image(filename=to_file)
