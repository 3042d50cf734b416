"""The inference plan of Sequential and functional models: the layer calls of ``model(x)`` with
``training`` off and no tape recording, resolved once per model, so that a batch-1 predict costs
little more than its kernels.

Each layer runs through a :class:`LayerStep`: ``layer.call`` directly, with the checks of
``Layer.__call__`` done once per input shape, for a mask-free Tensor of the layer's float dtype;
anything else (masks, casts, structures, layers with their own ``__call__``) goes through
``layer(x)``. Layers and ops know nothing of this module: a layer's ``call`` is its only forward,
and an op computes without recording when no tape records.

int8 conv stacks (Sequential models, and the runs of single-input nodes of functional models whose
intermediate tensors feed nothing else): an int8 convolution followed, through ReLU activations,
"valid" channels_last max pooling and dropout layers, by a calibrated int8 convolution (a static
``input_scale``, from ``model.quantize("int8", calibration_data=x)``) runs as an
:class:`Int8ChainStep`: its kernel requantizes its output straight to int8 with the next layer's
scale (a following ReLU folded into it), the pooling runs on int8, and the next convolution takes
the int8 values as they are: no float tensor between the two.
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


_INT8_MODULE = "dlcore.layers.conv"  # read by name: a model without convolutions never imports them


def _is_int8_conv(layer):
    if getattr(layer, "quantization_mode", None) != "int8" or type(layer).__module__ != _INT8_MODULE:
        return False
    from ..layers.conv import _INT8_CONVS

    return any(c.__name__ in _INT8_CONVS and c.__module__ == _INT8_MODULE for c in type(layer).__mro__)


def _relu_layer(layer):
    from .. import activations
    from ..layers.activation import ReLU
    from ..layers.core import Activation

    if type(layer) is Activation:
        return activations.kernel_activation(layer.activation) == ("relu", 0.0)
    return (type(layer) is ReLU and not layer.negative_slope and layer.threshold == 0
            and layer.max_value is None)


class Int8ChainStep:
    """An int8 convolution of a Sequential plan, with what it absorbs when a calibrated int8
    convolution follows (see the module docstring): ``steps`` are the LayerSteps of the convolution
    and the absorbed layers, run as they are when the input is not a plain Tensor or the next
    layer has no static scale (then the output is float, as ever)."""

    __slots__ = ("layer", "steps", "consumer", "relu", "pools", "shape", "_types", "_pool")

    def __init__(self, steps, consumer=None, relu=False, pools=()):
        from ..ops.quantized import QuantizedTensor, int8_max_pool

        self._types = (Tensor, QuantizedTensor)
        self._pool = int8_max_pool
        self.layer = steps[0].layer
        self.steps, self.consumer, self.relu, self.pools = steps, consumer, relu, pools
        self.shape = None

    def __call__(self, x, training):
        layer = self.layer
        if type(x) in self._types and x.mask is None and layer.built:
            scale = float(self.consumer.input_scale.value) if self.consumer is not None else 0.0
            if scale > 0:
                if x.value.shape != self.shape:
                    if layer.input_spec is not None:
                        layer._check_input(x)
                    self.shape = x.value.shape
                y = self._types[1](layer._int8_call(x, out_scale=scale, relu=self.relu).value, scale)
                for pool in self.pools:
                    y = self._pool(y, pool.pool_size, pool.strides)
                return y
            if type(x) is self._types[1]:
                x = Tensor(layer._int8_call(x).value)  # the convolution reads int8; the layers after it float
                for step in self.steps[1:]:
                    x = step(x, training)
                return x
        for step in self.steps:
            x = step(x, training)
        return x


def int8_chain_steps(layers, steps):
    """``steps`` (LayerSteps of ``layers``) with each int8 convolution and the layers it absorbs
    replaced by one Int8ChainStep."""
    if not any(map(_is_int8_conv, layers)):
        return steps
    from ..layers.pooling import MaxPooling1D, MaxPooling2D
    from ..layers.regularization import Dropout

    out, i = [], 0
    while i < len(layers):
        layer = layers[i]
        if not _is_int8_conv(layer):
            out.append(steps[i])
            i += 1
            continue
        relu = layer._kernel_activation == ("relu", 0.0)
        plain = layer._kernel_activation == ("linear", 0.0) or relu
        j, pools = i + 1, []
        while j < len(layers) and plain:
            nxt = layers[j]
            if _relu_layer(nxt):
                relu = True
            elif type(nxt) in (MaxPooling1D, MaxPooling2D) and nxt.padding == "valid" \
                    and nxt.data_format == "channels_last":
                pools.append(nxt)
            elif not isinstance(nxt, Dropout):
                break
            j += 1
        if plain and layer.activity_regularizer is None and j < len(layers) and _is_int8_conv(layers[j]):
            out.append(Int8ChainStep(steps[i:j], layers[j], relu, tuple(pools)))
            i = j
        else:
            out.append(Int8ChainStep(steps[i:i + 1]))
            i += 1
    return out


class SequentialPlan:
    """``Sequential.call`` in inference: the model's layers as LayerSteps, built once per layer list
    (``add``/``pop`` or any change of the list makes a new plan)."""

    __slots__ = ("input_layer", "layers", "steps", "sample_shape")

    def __init__(self, input_layer, layers):
        self.input_layer = input_layer
        self.layers = list(layers)
        self.steps = int8_chain_steps(self.layers, [LayerStep(layer) for layer in layers])
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
        self.nodes = _int8_chains(self.nodes, model._nodes, outputs)

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


class ChainStep:
    """Consecutive single-input nodes of a functional graph run as one step (the steps of
    :func:`int8_chain_steps`), their intermediate tensors used by no other node."""

    __slots__ = ("steps",)

    def __init__(self, steps):
        self.steps = steps

    def __call__(self, x, training):
        for step in self.steps:
            x = step(x, training)
        return x


def _int8_chains(entries, nodes, outputs):
    """The plan's ``entries`` (node, step, input key, output keys) with each run of single-input,
    single-output nodes that holds an int8 convolution merged into one :class:`ChainStep` entry, so a
    functional model hands int8 between calibrated convolutions as a Sequential one does. A run
    continues while a node's one output feeds only the next node and is not a model output."""
    if not any(_is_int8_conv(node.layer) for node in nodes):
        return entries
    uses = {}
    for node in nodes:
        for t in flatten([node.args, list(node.kwargs.values())]):
            if isinstance(t, KerasTensor):
                uses[id(t)] = uses.get(id(t), 0) + 1
    for t in flatten(outputs):
        uses[id(t)] = uses.get(id(t), 0) + 1
    out, i = [], 0
    while i < len(entries):
        j = i
        while (j + 1 < len(entries) and entries[j][1] is not None and entries[j + 1][1] is not None
               and len(entries[j][3]) == 1 and entries[j + 1][2] == entries[j][3][0] and uses.get(entries[j][3][0]) == 1):
            j += 1
        run = entries[i:j + 1]
        if len(run) > 1 and any(_is_int8_conv(e[0].layer) for e in run):
            steps = int8_chain_steps([e[0].layer for e in run], [e[1] for e in run])
            out.append((run[-1][0], ChainStep(steps), run[0][2], run[-1][3]))
        else:
            out.extend(run)
        i = j + 1
    return out


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
