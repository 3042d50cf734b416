"""The inference plan of Sequential and functional models: the layer calls of ``model(x)`` with
``training`` off and no tape recording, resolved once per model, so that a batch-1 predict costs
little more than its kernels.

Each layer runs through a :class:`LayerStep`: ``layer.call`` directly, with the checks of
``Layer.__call__`` done once per input shape, for a mask-free Tensor of the layer's float dtype;
anything else (masks, casts, structures, layers with their own ``__call__``) goes through
``layer(x)``. Layers and ops know nothing of this module: a layer's ``call`` is its only forward,
and an op computes without recording when no tape records.
"""
import numpy as np

from ..layers.core import InputLayer
from ..layers.layer import Layer, _attach_mask
from ..symbolic import KerasTensor, flatten, map_structure
from ..tensor import Tensor


class LayerStep:
    """``step(x, training)`` computes ``layer(x, training=training)``; the plan runs it while no tape
    records and ``training`` is falsy, with the training context set."""

    __slots__ = ("layer", "call", "direct", "pass_training", "makes_mask", "spec", "shape", "dtype")

    def __init__(self, layer):
        self.layer = layer
        self.call = layer.call
        self.direct = type(layer).__call__ is Layer.__call__ and type(layer)._convert_input is Layer._convert_input
        self.pass_training = layer._call_has_training
        self.makes_mask = layer._makes_mask
        self.spec = self.shape = self.dtype = None  # the input spec, shape and dtype that passed the checks last

    def __call__(self, x, training):
        layer = self.layer
        if self.direct and type(x) is Tensor and x.mask is None and layer.built:
            a = x.value
            if a.dtype is not self.dtype or a.shape != self.shape or layer.input_spec is not self.spec:
                if a.dtype.kind == "f" and a.dtype != layer._float_dtype():
                    return layer(x, training=training)  # the cast of Layer.__call__
                if layer.input_spec is not None:
                    layer._check_input(x)
                self.spec, self.shape, self.dtype = layer.input_spec, a.shape, a.dtype
            if layer._activity_losses:
                layer._activity_losses.clear()
            out = self.call(x, training=training) if self.pass_training else self.call(x)
            if self.makes_mask:
                out = _attach_mask(out, layer.compute_mask(x, None))
            return out
        return layer(x, training=training)

    def call_many(self, xs, training, as_list):
        """``layer(xs)`` for a flat list of tensors (``as_list``) or ``layer(*xs)``: ``layer.call``
        directly when every input is a mask-free Tensor that ``Layer.__call__`` would pass as it is
        (converted: the list's items, or the first positional input), checked once per shapes."""
        layer = self.layer
        if self.direct and layer.built:
            key = []
            for x in xs:
                if type(x) is not Tensor or x.mask is not None:
                    return self._full(xs, training, as_list)
                key.append(x.value.shape)
                key.append(x.value.dtype)
            key = tuple(key)
            if key != self.shape or layer.input_spec is not self.spec:
                float_dtype = layer._float_dtype()
                for x in (xs if as_list else xs[:1]):
                    dtype = x.value.dtype
                    if dtype.kind == "f" and dtype != float_dtype:
                        return self._full(xs, training, as_list)  # the cast of Layer.__call__
                if layer.input_spec is not None:
                    layer._check_input(list(xs) if as_list else xs[0])
                self.spec, self.shape = layer.input_spec, key
            if layer._activity_losses:
                layer._activity_losses.clear()
            args = (list(xs),) if as_list else xs
            out = self.call(*args, training=training) if self.pass_training else self.call(*args)
            if self.makes_mask:
                out = _attach_mask(out, layer.compute_mask(args[0], None))
            return out
        return self._full(xs, training, as_list)

    def _full(self, xs, training, as_list):
        if as_list:
            return self.layer(list(xs), training=training)
        return self.layer(*xs, training=training)


class SequentialPlan:
    """``Sequential.call`` in inference: the model's layers as LayerSteps, built once per layer list
    (``add``/``pop`` or any change of the list makes a new plan)."""

    __slots__ = ("input_layer", "layers", "steps", "sample_shape")

    def __init__(self, input_layer, layers):
        self.input_layer = input_layer
        self.layers = list(layers)
        self.steps = [LayerStep(layer) for layer in layers]
        sample_shape = tuple(input_layer.batch_shape[1:])
        self.sample_shape = None if None in sample_shape else sample_shape

    def run(self, model, x, training):
        if type(x) is Tensor:
            if x.mask is not None:
                return None
        elif type(x) is not np.ndarray:
            return None
        shape = x.shape
        if len(shape) < 1 or shape[1:] != self.sample_shape:
            model._check_sequential_input(x)  # before a cast copies the data
        x = self.input_layer._convert_input(Layer._convert_input(model, x))
        for step in self.steps:
            x = step(x, training)
        return x


def _plain_inputs(data):
    """Whether ``data`` is an ndarray or a mask-free Tensor, or a flat list, tuple or dict of them:
    the inputs the inference plan takes."""
    if type(data) is np.ndarray:
        return True
    if type(data) is Tensor:
        return data.mask is None
    if type(data) is dict:
        data = data.values()
    elif type(data) is not list and type(data) is not tuple:
        return False
    return all(type(x) is np.ndarray or (type(x) is Tensor and x.mask is None) for x in data)


def _tensor_keys(struct):
    """The ids of the KerasTensors of a flat list or tuple of them, else None."""
    if type(struct) in (list, tuple) and all(isinstance(t, KerasTensor) for t in struct):
        return [id(t) for t in struct]
    return None


class FunctionalPlan:
    """``Functional.call`` in inference: the graph's nodes resolved once. A node called on one
    tensor without keyword arguments runs as an LayerStep, one called on a flat list of
    tensors gets that list from precomputed keys, any other node is called as in ``call``. The
    graph of a functional model never changes, so the plan lives as long as the model."""

    def __init__(self, model):
        self.inputs = []
        for t in model._flat_inputs:
            layer = t.node.layer if t.node is not None else None
            sample_shape = tuple(t.shape[1:])
            self.inputs.append((id(t), t, layer if isinstance(layer, InputLayer) else None,
                                None if None in sample_shape else sample_shape))
        self.nodes = []  # (node, LayerStep or None, input keys or None, as_list, output keys)
        for node in model._nodes:
            single = len(node.args) == 1 and isinstance(node.args[0], KerasTensor) and not node.kwargs
            if single:
                keys, as_list = id(node.args[0]), None
            elif node.kwargs or not node.args:
                keys, as_list = None, None
            elif len(node.args) == 1:  # a flat list of tensors, as merges take
                keys, as_list = _tensor_keys(node.args[0]), True
            else:  # several positional tensors, as MultiHeadAttention(query, value)
                keys, as_list = _tensor_keys(node.args), False
            self.nodes.append((node, LayerStep(node.layer) if keys is not None else None, keys, as_list,
                               [id(t) for t in flatten(node.outputs)]))
        outputs = model._output_struct
        self.single_output = id(outputs) if isinstance(outputs, KerasTensor) else None
        self.output_keys = _tensor_keys(outputs)
        self.output_type = type(outputs)

    def _input_values(self, model, data):
        """{id(input KerasTensor): Tensor} for the data, as ``call`` converts and checks it."""
        if type(data) is list or type(data) is tuple:
            flat = data if len(data) == len(self.inputs) else model._bind_inputs(data)
        else:
            flat = model._bind_inputs(data if type(data) is dict else [data])
        values = {}
        for (key, t, layer, sample_shape), x in zip(self.inputs, flat):
            if layer is not None:
                shape = x.shape
                if len(shape) < 1 or shape[1:] != sample_shape:
                    check_input_shape(model, layer, t, x)  # before a cast copies the data
            x = model._convert_input(x)
            if layer is not None:
                x = layer._convert_input(x)
            values[key] = x
        return values

    def run(self, model, data, training):
        if not _plain_inputs(data):
            return None
        values = self._input_values(model, data)
        for node, step, input_keys, as_list, output_keys in self.nodes:
            if as_list is None and step is not None:
                out = step(values[input_keys], training)
            elif step is not None:
                out = step.call_many([values[k] for k in input_keys], training, as_list)
            else:
                out = call_node(node, values, training)
            if len(output_keys) == 1 and type(out) is Tensor:
                values[output_keys[0]] = out
            else:
                for key, o in zip(output_keys, flatten(out)):
                    values[key] = o
        if self.single_output is not None:
            return values[self.single_output]
        if self.output_keys is not None:
            return self.output_type(values[k] for k in self.output_keys)
        return map_structure(lambda t: values[id(t)], model._output_struct)


def check_input_shape(model, layer, t, x):
    shape = getattr(x, "shape", None)
    if shape is None:
        return
    expected = t.shape
    if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
        raise ValueError(f"Input '{layer.name}' of model '{model.name}' is incompatible: expected shape "
                         f"{expected}, received {tuple(shape)}")


def call_node(node, values, training):
    """``node``'s layer called as in the graph, on the values (by id) of its KerasTensor arguments."""
    def resolve(a):
        return values[id(a)] if isinstance(a, KerasTensor) else a

    kwargs = {k: map_structure(resolve, v) for k, v in node.kwargs.items()}
    kwargs["training"] = training
    return node.layer(*map_structure(resolve, node.args), **kwargs)
