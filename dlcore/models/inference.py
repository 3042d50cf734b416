"""The inference plan of Sequential and functional models: the layer calls of ``model(x)`` with
``training`` off and no tape recording, resolved once per model, so that a batch-1 predict costs
little more than its kernels.

Each layer runs through a :class:`LayerStep`: ``layer.call`` directly, with the checks of
``Layer.__call__`` done once per input shape, for a mask-free Tensor of the layer's float dtype;
anything else (masks, casts, structures, layers with their own ``__call__``) goes through
``layer(x)``. In a Sequential model a Conv2D followed by 2x2 max pooling runs as one fused op
(:class:`ConvPoolStep`). Layers and ops know nothing of this module: a layer's ``call`` is its only forward,
and an op computes without recording when no tape records.
"""
import sys

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


def _is_layer(layer, module, name):
    """Whether ``layer`` is exactly the class ``name`` of ``module`` (a family that has not been
    imported has no instance, and is not imported here: cold start)."""
    family = sys.modules.get(module)
    return family is not None and type(layer) is getattr(family, name)


class ConvPoolStep:
    """A Conv2D (stride 1, no dilation, one group, "valid" or "same", linear or relu, no activity
    regularizer) followed by MaxPooling2D((2, 2)) as one fused op call that never writes the
    convolution's output. Each new input shape, dtype or input spec first runs as the two
    LayerSteps, so the two layers' checks are made as without the fusion."""

    __slots__ = ("conv", "pool", "conv_step", "pool_step", "key", "fused_op")

    def __init__(self, conv, pool):
        from ..ops.pooling import conv2d_bias_act_max_pool

        self.conv, self.pool = conv, pool
        self.conv_step, self.pool_step = LayerStep(conv), LayerStep(pool)
        self.key = None  # (shape, dtype, conv spec, pool spec) the two steps checked last
        self.fused_op = conv2d_bias_act_max_pool

    @staticmethod
    def fuses(conv, pool):
        """Whether the pair is a Conv2D and a MaxPooling2D (fixed) configured as the fused op needs
        (checked on every call: a configuration may change after the first call)."""
        return (conv.strides == (1, 1) and conv.dilation_rate == (1, 1) and conv.groups == 1
                and conv.padding in ("valid", "same") and conv._fused is not None
                and conv._kernel_activation[0] in ("linear", "relu") and conv.activity_regularizer is None
                and pool.pool_size == (2, 2) and pool.strides == (2, 2) and pool.padding == "valid"
                and pool.data_format == "channels_last"
                and getattr(pool, "activity_regularizer", None) is None)

    def __call__(self, x, training):
        conv = self.conv
        if type(x) is Tensor and x.mask is None:
            a = x.value
            key = self.key
            if (key is not None and a.shape == key[0] and a.dtype is key[1] and conv.input_spec is key[2]
                    and self.pool.input_spec is key[3] and self.fuses(conv, self.pool)):
                return self.fused_op(a, conv.kernel, conv.bias, conv.padding, *conv._kernel_activation,
                                     _who=conv._who)
        y = self.conv_step(x, training)
        out = self.pool_step(y, training)
        if (type(x) is Tensor and self.conv_step.shape == x.value.shape and self.conv_step.dtype is x.value.dtype
                and type(y) is Tensor and self.pool_step.shape == y.value.shape):  # both ran direct: checked
            self.key = (x.value.shape, x.value.dtype, conv.input_spec, self.pool.input_spec)
        return out


def _steps(layers):
    """LayerSteps for the layers, a ConvPoolStep for each fusable Conv2D + MaxPooling2D pair."""
    steps, i = [], 0
    while i < len(layers):
        if (i + 1 < len(layers) and _is_layer(layers[i], "dlcore.layers.conv", "Conv2D")
                and _is_layer(layers[i + 1], "dlcore.layers.pooling", "MaxPooling2D")):
            steps.append(ConvPoolStep(layers[i], layers[i + 1]))
            i += 2
        else:
            steps.append(LayerStep(layers[i]))
            i += 1
    return steps


class SequentialPlan:
    """``Sequential.call`` in inference: the model's layers as LayerSteps, built once per layer list
    (``add``/``pop`` or any change of the list makes a new plan)."""

    __slots__ = ("input_layer", "layers", "steps", "sample_shape")

    def __init__(self, input_layer, layers):
        self.input_layer = input_layer
        self.layers = list(layers)
        self.steps = _steps(self.layers)
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
        self.nodes = []
        for node in model._nodes:
            single = len(node.args) == 1 and isinstance(node.args[0], KerasTensor) and not node.kwargs
            list_keys = _tensor_keys(node.args[0]) if len(node.args) == 1 and not node.kwargs else None
            self.nodes.append((node, LayerStep(node.layer) if single else None,
                               id(node.args[0]) if single else list_keys,
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
        for node, step, input_keys, output_keys in self.nodes:
            if step is not None:
                out = step(values[input_keys], training)
            elif input_keys is not None:
                out = node.layer([values[k] for k in input_keys], training=training)
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
