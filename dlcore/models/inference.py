"""The inference plan of Sequential and functional models: the layer calls of ``model(x)`` with
``training`` off and no tape recording, resolved once per model, so that a batch-1 predict costs
little more than its kernels.

Each layer runs through a :class:`LayerStep`: ``layer.call`` directly, with the checks of
``Layer.__call__`` done once per input shape, for a mask-free Tensor of the layer's float dtype;
anything else (masks, casts, structures, layers with their own ``__call__``) goes through
``layer(x)``. In a Sequential model a Conv2D followed by 2x2 max pooling runs as one fused op
(:class:`ConvPoolStep`). Layers and ops know nothing of this module: a layer's ``call`` is its only forward,
and an op computes without recording when no tape records.

int8 conv stacks (Sequential models, and the runs of single-input nodes of functional models whose
intermediate tensors feed nothing else): an int8 convolution followed, through ReLU activations,
"valid" channels_last max pooling and dropout layers, by a calibrated int8 convolution (a static
``input_scale``, from ``model.quantize("int8", calibration_data=x)``) runs as an
:class:`Int8ChainStep`: its kernel requantizes its output straight to int8 with the next layer's
scale (a following ReLU folded into it), the pooling runs on int8, and the next convolution takes
the int8 values as they are: no float tensor between the two.

Memory plan: per thread and per input shape, the second call runs with a :class:`_Trace` installed
as the ops' output allocator (``ops.core.out_buffer``): it records each output allocation, the step
that made it and the last step that reads it (a step reads a buffer when one of its inputs is a
view of it). :class:`Arena` then lays these buffers out in one block, two buffers sharing bytes
only when their live step ranges are disjoint, and later calls of that shape take their outputs
from it in the same order: a steady-state call allocates no activation memory. A buffer the
returned output lives in is not planned: each call hands a fresh array there, so the next call
never overwrites what a caller holds.
"""
import sys
import threading

import numpy as np

from ..layers.core import InputLayer
from ..layers.layer import Layer, _attach_mask, _context
from ..ops.core import allocator
from ..symbolic import KerasTensor, flatten, map_structure
from ..tensor import Tensor, Variable
from . import replay


class LayerStep:
    """``step(x, training)`` computes ``layer(x, training=training)``; the plan runs it while no tape
    records and ``training`` is falsy, with the training context set."""

    __slots__ = ("layer", "call", "direct", "pass_training", "makes_mask", "spec", "shape", "dtype")

    def __init__(self, layer):
        self.layer = layer
        self.call = layer.call
        self.direct = (type(layer).__call__ is Layer.__call__ and type(layer)._convert_input is Layer._convert_input
                       and (layer._precision is None or not layer._rounds_to_policy))  # else Layer.__call__ rounds
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
        return (conv.quantization_mode is None and conv.strides == (1, 1) and conv.dilation_rate == (1, 1)
                and conv.groups == 1
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


def _paired(steps):
    """``steps`` with each LayerStep of a Conv2D followed by one of a MaxPooling2D as a ConvPoolStep
    (which runs the pair as the two steps where the fused op does not apply: an int8 convolution)."""
    out, i = [], 0
    while i < len(steps):
        step, after = steps[i], steps[i + 1] if i + 1 < len(steps) else None
        if (type(step) is LayerStep and type(after) is LayerStep
                and _is_layer(step.layer, "dlcore.layers.conv", "Conv2D")
                and _is_layer(after.layer, "dlcore.layers.pooling", "MaxPooling2D")):
            out.append(ConvPoolStep(step.layer, after.layer))
            i += 2
        else:
            out.append(step)
            i += 1
    return out


class SequentialPlan:
    """``Sequential.call`` in inference: the model's layers as LayerSteps, built once per layer list
    (``add``/``pop`` or any change of the list makes a new plan)."""

    __slots__ = ("input_layer", "layers", "steps", "sample_shape", "memory", "capturable")

    def __init__(self, input_layer, layers):
        self.input_layer = input_layer
        self.layers = list(layers)
        steps = [LayerStep(layer) for layer in layers]
        if any(map(_is_int8_conv, self.layers)):
            steps = int8_chain_steps(self.layers, steps)  # a float first convolution stays a LayerStep
        self.steps = _paired(steps)
        sample_shape = tuple(input_layer.batch_shape[1:])
        self.sample_shape = None if None in sample_shape else sample_shape
        self.memory = _Memory()
        self.capturable = replay.capturable(self.layers)  # True, "predict" or False: see _Memory.run

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
        a = x.value
        return self.memory.run((a.shape, a.dtype), self._steps, [a], self.capturable, training)

    def replayed(self, x, predicting=False):
        """The captured call's replay for an ndarray ``x`` of its shape and dtype, or None."""
        return self.memory.replayed(x, self.capturable, predicting)

    def _steps(self, trace, arrays, training):
        x = Tensor(arrays[0])
        if trace is None:
            for step in self.steps:
                x = step(x, training)
            return x
        for i, step in enumerate(self.steps):
            trace.step = i
            trace.read(x, i)
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
        self.nodes = _int8_chains(self.nodes, model._nodes, outputs)
        self.reads = [_entry_reads(entry) for entry in self.nodes]  # for the memory plan's trace
        self.memory = _Memory()
        self.capturable = replay.capturable([node.layer for node in model._nodes])

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
        arrays = [x.value if type(x) is Tensor else x for x in values.values()]
        key = tuple((getattr(a, "shape", None), getattr(a, "dtype", None)) for a in arrays)
        keys = [(k, type(x) is Tensor) for k, x in values.items()]
        return self.memory.run(key, self._steps, arrays, self.capturable, model, keys, training)

    def replayed(self, x, predicting=False):
        """The captured call's replay for an ndarray ``x`` (a one-input model), or None."""
        if len(self.inputs) != 1:
            return None
        return self.memory.replayed(x, self.capturable, predicting)

    def _steps(self, trace, arrays, model, keys, training):
        values = {k: Tensor(a) if tensor else a for (k, tensor), a in zip(keys, arrays)}
        for i, (node, step, input_keys, as_list, output_keys) in enumerate(self.nodes):
            if trace is not None:
                trace.step = i
                trace.read([values[k] for k in self.reads[i]], i)
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
            out = values[self.single_output]
        elif self.output_keys is not None:
            out = self.output_type(values[k] for k in self.output_keys)
        else:
            out = map_structure(lambda t: values[id(t)], model._output_struct)
        return out


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
    """The plan's ``entries`` (node, step, input key(s), as_list, output keys) with each run of single-input,
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
        while (j + 1 < len(entries) and _single(entries[j]) and _single(entries[j + 1])
               and len(entries[j][4]) == 1 and entries[j + 1][2] == entries[j][4][0]
               and uses.get(entries[j][4][0]) == 1):
            j += 1
        run = entries[i:j + 1]
        if len(run) > 1 and any(_is_int8_conv(e[0].layer) for e in run):
            steps = int8_chain_steps([e[0].layer for e in run], [e[1] for e in run])
            out.append((run[-1][0], ChainStep(steps), run[0][2], None, run[-1][4]))
        else:
            out.extend(run)
        i = j + 1
    return out


def _single(entry):
    """Whether a plan entry runs one layer step on one tensor."""
    return entry[1] is not None and entry[3] is None


def _entry_reads(entry):
    """The ids of the values a plan entry reads."""
    node, _, keys, as_list, _ = entry
    if keys is None:
        return [id(t) for t in node.parents]
    return [keys] if as_list is None else list(keys)


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


# ---- memory plan ---------------------------------------------------------------------------------
_ALIGN = 64  # bytes between buffer starts in an arena (a cache line)
_MAX_RETRACES = 2  # an input shape whose allocations keep changing stays unplanned after this
_MAX_SHAPES = 8  # arenas one plan keeps per thread; a ninth input shape starts the set over
_MAX_CAPTURES = 2  # captures tried per arena (again after a variable or the thread count changed)
_STEADY_CALLS = 2  # arena calls in a row with no variable written before a capture (a loop that
# trains between predicts, as reinforcement learning and GANs do, never pays for one)


def _root(a):
    """The ndarray owning the memory that ndarray ``a`` views."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


class _Trace:
    """The ops' output allocations during one call of a plan: their shapes and dtypes, the step that
    made each (``born``) and the last step that reads it (``last``), for :class:`Arena`. It keeps
    no array alive (the traced call peaks as an unplanned one): an id reused after an array is freed
    can only extend a live range, never shorten one."""

    __slots__ = ("layouts", "born", "last", "index", "step", "returned")

    def __init__(self):
        self.layouts, self.born, self.last = [], [], []  # layouts: (shape, dtype, nbytes)
        self.index = {}  # id(array) -> position
        self.step = 0
        self.returned = set()  # positions of the buffers the call's output lives in

    def take(self, shape, dtype):
        a = np.empty(shape, dtype=dtype)
        self.index[id(a)] = len(self.layouts)
        self.layouts.append((a.shape, a.dtype, a.nbytes))
        self.born.append(self.step)
        self.last.append(self.step)
        return a

    def read(self, values, step):
        """Mark the buffers behind ``values`` (Tensors or arrays, in a structure) as read at ``step``."""
        for v in flatten(values):
            v = v.value if isinstance(v, Tensor) else v
            if isinstance(v, np.ndarray):
                i = self.index.get(id(_root(v)))
                if i is not None and step > self.last[i]:
                    self.last[i] = step

    def finish(self, out):
        """Note the buffers behind the call's output ``out``: they are handed out fresh each call."""
        for v in flatten(out):
            v = v.value if isinstance(v, Tensor) else v
            if isinstance(v, np.ndarray):
                i = self.index.get(id(_root(v)))
                if i is not None:
                    self.returned.add(i)


class Arena:
    """The output buffers of one call's traced allocations, in one block of ``nbytes``: buffers whose
    live step ranges overlap get disjoint bytes, the others may share them (placed largest first,
    each at the lowest offset free over its range). ``take`` hands them out in the traced order,
    and a fresh array where the call's output lives; a request that differs from the trace gets a
    fresh array and sets ``missed``."""

    __slots__ = ("memory", "buffers", "layouts", "count", "nbytes", "total_nbytes", "live_nbytes", "next",
                 "missed", "held", "clean", "program", "captures", "epoch", "steady")

    def __init__(self, trace):
        layouts, born, last, returned = trace.layouts, trace.born, trace.last, trace.returned
        planned = [i for i in range(len(layouts)) if i not in returned]
        sizes = [-(-nbytes // _ALIGN) * _ALIGN for _, _, nbytes in layouts]
        offsets = [0] * len(layouts)
        placed = []  # (offset, end, born, last)
        for i in sorted(planned, key=lambda i: -sizes[i]):
            offset = 0
            for start, end in sorted((o, e) for o, e, b, l in placed if b <= last[i] and born[i] <= l):
                if offset + sizes[i] <= start:
                    break
                offset = max(offset, end)
            offsets[i] = offset
            placed.append((offset, offset + sizes[i], born[i], last[i]))
        self.nbytes = max((e for _, e, _, _ in placed), default=0)
        self.total_nbytes = sum(nbytes for _, _, nbytes in layouts)  # what one unplanned call allocates
        self.live_nbytes = max((sum(layouts[i][2] for i in planned if born[i] <= s <= last[i])
                                for s in set(born)), default=0)  # the most live at once: no plan needs less
        self.memory = np.empty(self.nbytes, dtype=np.uint8)
        self.buffers = [None if i in returned else self.memory[o:o + nbytes].view(dtype).reshape(shape)
                        for i, (o, (shape, dtype, nbytes)) in enumerate(zip(offsets, layouts))]
        self.layouts = [(shape, dtype) for shape, dtype, _ in layouts]
        self.count = len(self.buffers)
        self.next, self.missed = 0, False
        self.held = None  # during a capture: {position: the buffer handed out there every time}
        self.clean = False  # a call ran from this arena as traced
        self.program, self.captures = None, 0  # the captured call (replay.Program) and the tries
        self.epoch, self.steady = Variable.epoch, 0  # Variable.epoch at the last call, calls in a row it stayed

    def take(self, shape, dtype):
        if type(shape) is not tuple:
            shape = tuple(shape) if hasattr(shape, "__len__") else (int(shape),)
        i = self.next
        if i < self.count:
            planned_shape, planned_dtype = self.layouts[i]
            if planned_shape == shape and planned_dtype == dtype:
                self.next = i + 1
                b = self.buffers[i]
                if b is None:
                    if self.held is None:
                        return np.empty(shape, dtype=dtype)
                    b = self.held.get(i)
                    if b is None:
                        b = self.held[i] = np.empty(shape, dtype=dtype)
                return b
        self.missed = True
        return np.empty(shape, dtype=dtype)


class _Memory:
    """A plan's arenas, per thread (concurrent calls never share buffers) and per input key."""

    __slots__ = ("local",)

    def __init__(self):
        self.local = threading.local()

    def __reduce__(self):  # a copied or pickled plan starts with no arenas
        return (_Memory, ())

    def arenas(self):
        arenas = getattr(self.local, "arenas", None)
        if arenas is None:
            arenas = self.local.arenas = {}
        return arenas

    def replayed(self, a, capturable, predicting):
        """The replay of this thread's last captured call for ndarray ``a`` (one input, of that call's
        shape and dtype after conversion), or None: a call that costs its kernels and two copies.
        For ``predict_on_batch`` (predicting) a one-output call's result is the array itself."""
        last = getattr(self.local, "last", None)
        if last is None or a.shape != last[0] or a.dtype is not last[1] or allocator.arena is not None:
            return None
        program = last[2].program
        if program is None or not program.valid() or not (capturable is True or (capturable and predicting)):
            return None
        try:
            return program.run((a,), predicting)
        except Exception:  # a kernel refused the input: the plan's layers say why
            return None

    def run(self, key, steps, arrays, capturable, *args):
        """``steps(trace, arrays, *args)``'s result, through this thread's arena for ``key``: plain on
        the key's first call (its per-shape checks and first-call paths, such as ConvPoolStep's
        unfused one, run there), traced on the second, from the arena after, then captured once
        and replayed as its kernel calls (``replay.py``) where ``capturable`` is True (every layer
        is dlcore's) or is "predict" and ``predict``/``predict_on_batch`` runs the call (custom
        layers: Keras runs them from a traced function there too), never where it is False (masks
        made from the input's values); plain when a planned call is already running on this
        thread (a nested model: the outer plan's arena serves it)."""
        if allocator.arena is not None:
            return steps(None, arrays, *args)
        arenas = getattr(self.local, "arenas", None)
        if arenas is None:
            arenas = self.local.arenas = {}
        arena = arenas.get(key, False)
        if arena is None:  # this shape's allocations differ from call to call: unplanned
            return steps(None, arrays, *args)
        if arena is False:
            if len(arenas) >= _MAX_SHAPES:
                arenas.clear()
            arenas[key] = True
            return steps(None, arrays, *args)
        if arena is True:
            trace = _Trace()
            allocator.arena = trace
            try:
                out = steps(trace, arrays, *args)
            finally:
                allocator.arena = None
            trace.finish(out)
            arenas[key] = Arena(trace)
            return out
        program = arena.program
        if program is not None:
            if not program.valid():  # a variable or the thread count changed: capture again once steady
                arena.program, arena.captures, arena.steady = None, 0, 0
            elif capturable is True or (capturable and getattr(_context, "predicting", False)):
                try:
                    out = program.run(arrays)
                except Exception:  # a kernel refused the input (an id out of range): the layers say why
                    arena.program = None
                else:
                    if len(arrays) == 1:
                        self.local.last = (arrays[0].shape, arrays[0].dtype, arena)
                    return out
        elif arena.clean and arena.steady >= _STEADY_CALLS and arena.captures < _MAX_CAPTURES and (
                capturable is True or (capturable and getattr(_context, "predicting", False))) and all(
                type(a) is np.ndarray for a in arrays):
            arena.captures += 1
            try:
                out, arena.program = replay.capture(arena, steps, arrays, args)
            except Exception:  # the perturbed input of the capture was refused: no capture
                out = arena.program = None
            if out is not None:
                return out
        arena.next, arena.missed = 0, False
        allocator.arena = arena
        try:
            out = steps(None, arrays, *args)
        finally:
            allocator.arena = None
        arena.clean = not arena.missed and arena.next == arena.count
        arena.steady = arena.steady + 1 if arena.clean and arena.epoch == Variable.epoch else 0
        arena.epoch = Variable.epoch
        if arena.missed or arena.next != arena.count:  # the allocations changed (a step's first-call
            # path ended, e.g. a ConvPoolStep fusing from its second direct call): trace again, at most
            # _MAX_RETRACES times, then leave the shape unplanned
            retraces = getattr(self.local, "retraces", None)
            if retraces is None:
                retraces = self.local.retraces = {}
            retraces[key] = retraces.get(key, 0) + 1
            arenas[key] = True if retraces[key] <= _MAX_RETRACES else None
        return out


def planned_memory(model):
    """{input key: (arena bytes, bytes one unplanned call allocates, most bytes live at once)} of
    ``model``'s inference plan on this thread: the arena is the activation memory of a planned
    call; the live peak is the least any plan of these buffers can take."""
    plan = model.__dict__.get("_plan")
    memory = getattr(plan, "memory", None)
    if memory is None:
        return {}
    return {k: (a.nbytes, a.total_nbytes, a.live_nbytes) for k, a in memory.arenas().items() if isinstance(a, Arena)}
