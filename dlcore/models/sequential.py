"""Sequential: a plain stack of layers, each feeding the next."""
import numpy as np

from ..autograd import is_recording
from ..layers.core import InputLayer
from ..layers.layer import Layer
from ..registry import register
from ..symbolic import KerasTensor, flatten
from ..tensor import Tensor
from .inference import ConvPoolStep, SequentialPlan, _is_layer
from .model import Model


def _defined_input(model):
    """The one symbolic input of a functional or Sequential ``model`` with a defined input, or
    None (subclassed, not yet built, or several inputs)."""
    try:
        inputs = model.inputs
    except AttributeError:
        return None
    if len(inputs) != 1 or not isinstance(inputs[0], KerasTensor):
        return None
    return inputs[0]


def _conv_max_pool(conv, x):
    from ..ops.pooling import conv2d_bias_act_max_pool

    return conv2d_bias_act_max_pool(x, conv.kernel, conv.bias, conv.padding, *conv._kernel_activation,
                                    _who=conv._who)


@register("layer")
class Sequential(Model):
    """``Sequential([dl.Input(shape), layer, layer, ...])``, or layers added with ``add``.

    The first layer may carry ``input_shape=``, or be a model with a defined input (a pretrained
    functional or Sequential base), which builds the model at once; without any input shape the
    model builds on its first call, from the data.
    """

    def __init__(self, layers=None, trainable=True, name=None, **kwargs):
        super().__init__(trainable=trainable, name=name, **kwargs)
        object.__setattr__(self, "_input_layer", None)  # not a tracked sublayer, as in Keras
        self._symbolic_output = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, KerasTensor) and layer.node is not None and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer instance, received {type(layer).__name__}: {layer!r}")
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError(f"Sequential '{self.name}': an InputLayer can only be the first layer.")
            self._set_input(layer)
            return
        if not self._layers and self._input_layer is None:
            if layer._input_shape_arg is not None:
                self._set_input(InputLayer(batch_shape=layer._input_shape_arg, dtype=layer._dtype))
            elif isinstance(layer, Model):
                spec = _defined_input(layer)
                if spec is not None:  # a built model first: build now, as Keras does
                    self._set_input(InputLayer(batch_shape=spec.shape, dtype=spec.dtype))
        self._layers.append(layer)
        if self._symbolic_output is not None:
            self._symbolic_output = layer(self._symbolic_output)

    def _set_input(self, input_layer):
        object.__setattr__(self, "_input_layer", input_layer)
        self._symbolic_output = input_layer.output
        for layer in self._layers:
            self._symbolic_output = layer(self._symbolic_output)
        self.built = True  # the symbolic calls built every layer, as Keras builds a Sequential with an input

    def pop(self):
        if not self._layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to pop.")
        layer = self._layers.pop()
        if self._input_layer is not None:
            self._set_input(self._input_layer)
        return layer

    def call(self, inputs, training=None):
        if self._input_layer is not None:
            x = self._input_layer._convert_input(inputs)
            self._check_sequential_input(x)
        else:
            x = inputs
        if is_recording():
            return self._call_recording(x, training)
        for layer in self._layers:
            x = layer(x, training=training)
        return x

    def _call_recording(self, x, training):
        """The layers under a tape, each Conv2D + MaxPooling2D pair the inference plan fuses
        (``ConvPoolStep.fuses``, no precision policy) as one differentiable
        ``ops.conv2d_bias_act_max_pool`` once the pair has run as two layer calls on this input
        shape, dtype and specs (the layers' checks and build made as without the fusion): the
        convolution's output is never written (the runner's cnn-train, 1 thread: about 17% less
        time a step, the same weights bit for bit)."""
        layers = self._layers
        checked = self.__dict__.get("_fused_checked")  # (layers, {index of a conv: the key that ran unfused})
        if checked is None or checked[0] != layers:
            checked = self.__dict__["_fused_checked"] = (list(layers), {})
        checked = checked[1]
        i = 0
        while i < len(layers):
            layer = layers[i]
            following = layers[i + 1] if i + 1 < len(layers) else None
            if (following is None or not _is_layer(layer, "dlcore.layers.conv", "Conv2D")
                    or not _is_layer(following, "dlcore.layers.pooling", "MaxPooling2D")
                    or type(x) is not Tensor or x.mask is not None or not ConvPoolStep.fuses(layer, following)
                    or layer._precision is not None or following._precision is not None
                    or x.value.dtype != layer._float_dtype()):
                x = layer(x, training=training)
                i += 1
                continue
            key = (x.value.shape, x.value.dtype, layer.input_spec, following.input_spec)
            if checked.get(i) == key:
                x = _conv_max_pool(layer, x)
            else:
                y = layer(x, training=training)
                x = following(y, training=training)
                if type(y) is Tensor and y.mask is None:
                    checked[i] = key
            i += 2
        return x

    def _build_from(self, inputs):
        self.built = True
        if self._input_layer is None and hasattr(inputs, "shape"):
            # Known now: give the model a symbolic graph, so summary() and layer.output work.
            shape = (None,) + tuple(inputs.shape[1:])
            dtype = "string" if inputs.dtype.kind in "USO" else inputs.dtype if inputs.dtype.kind != "f" else None
            self.__dict__["_pending_input"] = InputLayer(batch_shape=shape, dtype=dtype)

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and (not kwargs or (len(kwargs) == 1 and "training" in kwargs)):
            out = self._call_inference(args[0], kwargs.get("training"))
            if out is not None:
                return out
        out = super().__call__(*args, **kwargs)
        pending = self.__dict__.pop("_pending_input", None)
        if pending is not None:
            self._set_input(pending)
        return out

    def _inference_plan(self):
        if type(self).call is not Sequential.call or self._input_layer is None:
            return None
        plan = self.__dict__.get("_plan")
        if plan is None or plan.input_layer is not self._input_layer or plan.layers != self._layers:
            plan = SequentialPlan(self._input_layer, self._layers)
            self.__dict__["_plan"] = plan
        return plan

    def _check_data_shapes(self, data):
        if type(data) is np.ndarray and self._input_layer is not None:
            self._check_sequential_input(data)
            return
        if isinstance(data, dict):
            raise ValueError(f"Sequential model '{self.name}' expects one input array, received a dict with keys "
                             f"{sorted(map(str, data))}")
        if self._input_layer is None:
            return
        leaves = flatten(data)
        if len(leaves) == 1 and hasattr(leaves[0], "shape"):
            self._check_sequential_input(leaves[0])
        elif len(leaves) > 1:
            raise ValueError(f"Sequential model '{self.name}' expects 1 input, but it received {len(leaves)} "
                             "input arrays.")

    def _convert_input(self, x):
        if self._input_layer is not None and hasattr(x, "shape") and not (
                type(x) is np.ndarray and x.dtype == self._float_dtype()):
            self._check_sequential_input(x)  # before a cast copies the data
        return super()._convert_input(x)

    def _check_sequential_input(self, x):
        shape = getattr(x, "shape", None)
        expected = self._input_layer.batch_shape
        if shape is None:
            return
        if len(shape) != len(expected) or any(e is not None and e != s for e, s in zip(expected[1:], shape[1:])):
            raise ValueError(f"Input 0 of Sequential model '{self.name}' is incompatible: expected shape "
                             f"{expected}, received {tuple(shape)}")

    @property
    def input(self):
        if self._input_layer is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined input yet: give the first "
                                 "layer an input shape, start with dl.Input, or call the model on data.")
        return self._input_layer.output

    @property
    def inputs(self):
        return [self.input]

    @property
    def output(self):
        if self._symbolic_output is None:
            raise AttributeError(f"Sequential model '{self.name}' has no defined output yet.")
        return self._symbolic_output

    @property
    def outputs(self):
        return [self.output]

    @property
    def input_shape(self):
        return self.input.shape

    @property
    def output_shape(self):
        return self.output.shape

    def get_config(self):
        from .. import layers as layers_module

        entries = []
        if self._input_layer is not None:
            entries.append(layers_module.serialize(self._input_layer))
        entries.extend(layers_module.serialize(layer) for layer in self._layers)
        return {"name": self.name, "trainable": self.trainable, "layers": entries}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import layers as layers_module

        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for entry in config["layers"]:
            model.add(layers_module.deserialize(entry, custom_objects=custom_objects))
        return model
