"""Functional models: a graph of layer calls from symbolic inputs to symbolic outputs."""

from ..layers.core import InputLayer
from ..registry import register
from ..symbolic import KerasTensor, flatten, is_symbolic, map_structure
from .inference import FunctionalPlan, call_node, check_input_shape
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


@register("layer")
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
                    raise ValueError(f"Model '{self.name}': missing input {key!r}; expected the keys "
                                     f"{list(self._input_struct)}, received keys {list(data)}")
                flat.append(data[key])
        elif isinstance(data, dict):
            missing = [t.name for t in self._flat_inputs if t.name not in data]
            if missing:
                raise ValueError(f"Model '{self.name}': missing inputs {missing}; expected the keys "
                                 f"{self.input_names}, received keys {list(data)}")
            flat = [data[t.name] for t in self._flat_inputs]
        else:
            flat = flatten(data) if isinstance(data, (list, tuple)) else [data]
        if len(flat) != len(self._flat_inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self._flat_inputs)} input(s), but it received "
                             f"{len(flat)} input tensors.")
        return flat

    def _check_data_shapes(self, data):
        for t, x in zip(self._flat_inputs, self._bind_inputs(data)):
            layer = t.node.layer if t.node is not None else None
            if isinstance(layer, InputLayer) and hasattr(x, "shape"):
                check_input_shape(self, layer, t, x)

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and (not kwargs or (len(kwargs) == 1 and "training" in kwargs)):
            out = self._call_inference(args[0], kwargs.get("training"))
            if out is not None:
                return out
        if args and not is_symbolic(args[0]):
            self._check_data_shapes(args[0])  # before the inputs are converted (copied)
        return super().__call__(*args, **kwargs)

    def _inference_plan(self):
        if type(self).call is not Functional.call:
            return None
        plan = self.__dict__.get("_plan")
        if plan is None:
            plan = FunctionalPlan(self)
            self.__dict__["_plan"] = plan
        return plan

    def call(self, inputs, training=None):
        values = {}
        for t, x in zip(self._flat_inputs, self._bind_inputs(inputs)):
            layer = t.node.layer if t.node is not None else None
            if isinstance(layer, InputLayer):
                x = layer._convert_input(x)
                check_input_shape(self, layer, t, x)
            values[id(t)] = x
        for node in self._nodes:
            out = call_node(node, values, training)
            for t, o in zip(flatten(node.outputs), flatten(out)):
                values[id(t)] = o
        return map_structure(lambda t: values[id(t)], self._output_struct)


    # configuration (Keras's functional config) ---------------------------------------------------
    def get_config(self):
        """``{"name", "trainable", "layers", "input_layers", "output_layers"}``, as Keras: each
        layer's entry is its ``{"class_name", "config"}`` plus ``name`` and ``inbound_nodes``, one
        ``{"args", "kwargs"}`` per call of the layer in this model, where a tensor is
        ``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history":
        [layer name, node index, tensor index]}}``; ``input_layers``/``output_layers`` hold such
        ``[layer name, node index, tensor index]`` refs in the structure of the inputs/outputs."""
        from .. import layers as layers_module

        by_name = {}
        for layer in self._layers:
            if by_name.setdefault(layer.name, layer) is not layer:
                raise ValueError(f"Model '{self.name}': two layers are named '{layer.name}'; layer names "
                                 "must be unique within a model to serialize it")
        own = {id(node) for node in self._nodes}
        for t in self._flat_inputs:
            if t.node is None or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"Model '{self.name}': input {t!r} does not come from dl.Input, so the "
                                 "model cannot be serialized")
            own.add(id(t.node))
        nodes_of, node_index = {}, {}
        for layer in self._layers:
            nodes = [node for node in layer._inbound_nodes if id(node) in own]
            nodes_of[id(layer)] = nodes
            for k, node in enumerate(nodes):
                node_index[id(node)] = k

        def history(t):
            if t.node is None or id(t.node) not in node_index:
                raise ValueError(f"Model '{self.name}': tensor {t!r} is not produced inside the model")
            return [t.node.layer.name, node_index[id(t.node)], int(t.index)]

        def encode(value):
            if isinstance(value, KerasTensor):
                return {"class_name": "__keras_tensor__",
                        "config": {"shape": list(value.shape), "dtype": value.dtype,
                                   "keras_history": history(value)}}
            if isinstance(value, (list, tuple)):
                return [encode(v) for v in value]
            if isinstance(value, dict):
                return {k: encode(v) for k, v in value.items()}
            return value

        entries = []
        for layer in self._layers:
            entry = layers_module.serialize(layer)
            entry["name"] = layer.name
            entry["inbound_nodes"] = ([] if isinstance(layer, InputLayer) else
                                      [{"args": encode(list(node.args)), "kwargs": encode(dict(node.kwargs))}
                                       for node in nodes_of[id(layer)]])
            entries.append(entry)
        return {"name": self.name, "trainable": self.trainable, "layers": entries,
                "input_layers": map_structure(history, self._input_struct),
                "output_layers": map_structure(history, self._output_struct)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild the graph of ``get_config``: create each layer (registered classes and
        ``custom_objects`` only), then replay its calls in node order once their inputs exist."""
        from .. import layers as layers_module

        if not isinstance(config, dict) or not isinstance(config.get("layers"), list) \
                or "input_layers" not in config or "output_layers" not in config:
            raise ValueError("Functional.from_config expects a dict with 'layers', 'input_layers' and "
                             "'output_layers'")
        created, order, pending = {}, [], {}
        for entry in config["layers"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("inbound_nodes", []), list):
                raise ValueError(f"Functional.from_config: invalid layer entry {entry!r:.200}")
            layer = layers_module.deserialize({"class_name": entry.get("class_name"),
                                               "config": entry.get("config", {})}, custom_objects=custom_objects)
            name = entry.get("name", layer.name)
            if not isinstance(name, str) or name in created:
                raise ValueError(f"Functional.from_config: layer name {name!r} is invalid or repeated")
            created[name] = layer
            order.append(name)
            pending[name] = list(entry.get("inbound_nodes", []))
        outputs = {}  # (layer name, node index) -> the node's flat output tensors
        for name, layer in created.items():
            if isinstance(layer, InputLayer):
                outputs[(name, 0)] = [layer.output]

        class NotReady(Exception):
            pass

        def tensor(ref):
            if not (isinstance(ref, (list, tuple)) and len(ref) == 3 and isinstance(ref[0], str)
                    and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ref[1:])):
                raise ValueError(f"Functional.from_config: invalid tensor reference {ref!r}")
            name, node, index = ref
            if name not in created:
                raise ValueError(f"Functional.from_config: reference to unknown layer {name!r}")
            if (name, node) not in outputs:
                raise NotReady
            flat = outputs[(name, node)]
            if index >= len(flat):
                raise ValueError(f"Functional.from_config: layer {name!r} node {node} has no output {index}")
            return flat[index]

        def decode(value):
            if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
                cfg = value.get("config")
                return tensor(cfg.get("keras_history") if isinstance(cfg, dict) else None)
            if isinstance(value, list):
                return [decode(v) for v in value]
            if isinstance(value, dict):
                return {k: decode(v) for k, v in value.items()}
            return value

        done = {name: 0 for name in order}
        remaining = sum(len(nodes) for nodes in pending.values())
        while remaining:
            progressed = False
            for name in order:
                nodes = pending[name]
                while done[name] < len(nodes):
                    data = nodes[done[name]]
                    if not isinstance(data, dict):
                        raise ValueError(f"Functional.from_config: invalid inbound node of {name!r}")
                    try:
                        args = decode(data.get("args", []))
                        kwargs = decode(data.get("kwargs", {}))
                    except NotReady:
                        break
                    if not isinstance(args, list) or not isinstance(kwargs, dict) or not args:
                        raise ValueError(f"Functional.from_config: invalid inbound node of {name!r}")
                    out = created[name](*args, **kwargs)
                    outputs[(name, done[name])] = flatten(out)
                    done[name] += 1
                    remaining -= 1
                    progressed = True
            if not progressed:
                raise ValueError("Functional.from_config: the inbound nodes reference tensors that no layer "
                                 "call produces (a cycle or a missing layer call)")

        def refs(struct):
            if isinstance(struct, list) and struct and isinstance(struct[0], str):
                try:
                    return tensor(struct)
                except NotReady:
                    raise ValueError(f"Functional.from_config: {struct!r} is not produced by the graph") from None
            if isinstance(struct, list):
                return [refs(s) for s in struct]
            if isinstance(struct, dict):
                return {k: refs(v) for k, v in struct.items()}
            raise ValueError(f"Functional.from_config: invalid input/output reference {struct!r}")

        return cls(refs(config["input_layers"]), refs(config["output_layers"]), name=config.get("name"),
                   trainable=config.get("trainable", True))
