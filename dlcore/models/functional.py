"""Functional models: a graph of layer calls from symbolic inputs to symbolic outputs."""
from ..layers.core import InputLayer
from ..symbolic import KerasTensor, flatten, map_structure
from .model import Model


def _graph_nodes(inputs, outputs):
    """The call nodes between ``inputs`` and ``outputs``, each after the nodes it reads from."""
    sources = {id(t) for t in inputs}
    order, seen, visiting = [], set(), set()
    stack = [(t, False) for t in reversed(outputs)]
    while stack:
        tensor, expanded = stack.pop()
        node = tensor.node
        if id(tensor) in sources or node is None:
            continue
        if expanded:
            visiting.discard(id(node))
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
            continue
        if id(node) in seen:
            continue
        if isinstance(node.layer, InputLayer):
            raise ValueError(f"Functional model: output depends on input '{node.layer.name}', which is "
                             "not among the model's inputs.")
        stack.append((tensor, True))
        for parent in reversed(node.parents):
            if parent.node is not None and id(parent.node) not in seen and id(parent) not in sources:
                stack.append((parent, False))
    return order


class Functional(Model):
    """``Model(inputs, outputs)``: inputs/outputs are KerasTensors, or lists or dicts of them."""

    def __init__(self, inputs, outputs, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        for what, struct in (("inputs", inputs), ("outputs", outputs)):
            for t in flatten(struct):
                if not isinstance(t, KerasTensor):
                    raise TypeError(f"Model {what} must be symbolic tensors (from dl.Input and layer calls), "
                                    f"received {type(t).__name__}")
        self._input_struct = inputs
        self._output_struct = outputs
        self._flat_inputs = flatten(inputs)
        self._flat_outputs = flatten(outputs)
        self._nodes = _graph_nodes(self._flat_inputs, self._flat_outputs)
        layers = []
        for t in self._flat_inputs:
            if t.node is not None and isinstance(t.node.layer, InputLayer):
                layers.append(t.node.layer)
        for node in self._nodes:
            if all(node.layer is not layer for layer in layers):
                layers.append(node.layer)
        object.__setattr__(self, "_layers", layers)
        self.built = True

    @property
    def inputs(self):
        return list(self._flat_inputs)

    @property
    def outputs(self):
        return list(self._flat_outputs)

    @property
    def input(self):
        return self._input_struct

    @property
    def output(self):
        return self._output_struct

    @property
    def input_names(self):
        return [t.name for t in self._flat_inputs]

    @property
    def output_names(self):
        return [t.node.layer.name if t.node is not None else t.name for t in self._flat_outputs]

    def _bind_inputs(self, data):
        """Map the model's input tensors to data given as one array, a list, or a dict by name."""
        if isinstance(self._input_struct, dict) and isinstance(data, dict):
            flat = []
            for key, t in self._input_struct.items():
                if key not in data:
                    raise ValueError(f"Model '{self.name}': missing input {key!r}; received keys {sorted(data)}")
                flat.append(data[key])
        elif isinstance(data, dict):
            missing = [t.name for t in self._flat_inputs if t.name not in data]
            if missing:
                raise ValueError(f"Model '{self.name}': missing inputs {missing}; received keys {sorted(data)}")
            flat = [data[t.name] for t in self._flat_inputs]
        else:
            flat = flatten(data) if isinstance(data, (list, tuple)) else [data]
        if len(flat) != len(self._flat_inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._flat_inputs)} input(s), but it received "
                             f"{len(flat)} input tensors.")
        return flat

    def call(self, inputs, training=None):
        values = {}
        for t, x in zip(self._flat_inputs, self._bind_inputs(inputs)):
            layer = t.node.layer if t.node is not None else None
            if isinstance(layer, InputLayer):
                x = layer._convert_input(x)
                _check_input_shape(self, layer, t, x)
            values[id(t)] = x
        for node in self._nodes:
            args = map_structure(lambda a: values[id(a)] if isinstance(a, KerasTensor) else a, node.args)
            kwargs = {k: map_structure(lambda a: values[id(a)] if isinstance(a, KerasTensor) else a, v)
                      for k, v in node.kwargs.items()}
            kwargs["training"] = training
            out = node.layer(*args, **kwargs)
            for t, o in zip(flatten(node.outputs), flatten(out)):
                values[id(t)] = o
        return map_structure(lambda t: values[id(t)], self._output_struct)


def _check_input_shape(model, layer, t, x):
    shape = getattr(x, "shape", None)
    if shape is None:
        return
    expected = t.shape
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
        raise ValueError(f"Input '{layer.name}' of model '{model.name}' is incompatible: expected shape "
                         f"{expected}, received {tuple(shape)}")
