"""Sequence wrappers: Bidirectional (merge_mode concat/sum/mul/ave/None) and TimeDistributed."""
import numpy as np

from ... import ops, quantizers
from ...registry import register
from ..layer import Layer
from .cells import _value


# ---- wrappers -----------------------------------------------------------------------------------
def _flip_time(x):
    return ops.getitem(x, (slice(None), slice(None, None, -1)))


def _set_dtype(config, dtype):
    """The wrapped layer's serialized ``config`` with the float ``dtype``, keeping its quantization
    (an int8 LSTM stays "int8_from_<dtype>")."""
    mode, _ = quantizers.parse_dtype(config["config"].get("dtype"))
    config["config"]["dtype"] = dtype if mode is None else quantizers.policy_name(mode, dtype)


@register("layer")
class Bidirectional(Layer):
    """Runs ``layer`` forward and a copy of it backward over the sequence and merges the outputs
    (``merge_mode`` "concat" (default), "sum", "mul", "ave", or None for a list of both). The
    backward outputs are flipped back to input order when ``return_sequences``. Weights: the
    forward layer's, then the backward layer's."""

    _INPUT_KWARGS = ("initial_state",)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        from .. import deserialize, serialize

        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `Bidirectional` layer with a `Layer` instance. Received: {layer!r}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(f"`backward_layer` need to be a `Layer` instance. Received: {backward_layer!r}")
        if merge_mode not in ("sum", "mul", "ave", "concat", None):
            raise ValueError(f"Invalid merge mode. Received: {merge_mode!r}. Merge mode should be one of "
                             '{"sum", "mul", "ave", "concat", None}')
        super().__init__(**kwargs)
        config = serialize(layer)
        if self._dtype is not None:  # an explicit dtype applies to the two copies
            _set_dtype(config, self._dtype)
        config["config"]["name"] = "forward_" + _removeprefix(layer.name, "forward_")
        self.forward_layer = deserialize(config)
        if backward_layer is None:
            config = serialize(layer)
            if self._dtype is not None:
                _set_dtype(config, self._dtype)
            config["config"]["go_backwards"] = not config["config"].get("go_backwards", False)
            config["config"]["name"] = "backward_" + _removeprefix(layer.name, "backward_")
            self.backward_layer = deserialize(config)
        else:
            self.backward_layer = backward_layer
        self._verify_layer_config()
        for sub in (self.forward_layer, self.backward_layer):
            if hasattr(sub, "zero_output_for_mask"):
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self.input_spec = layer.input_spec

    def _verify_layer_config(self):
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError("Forward layer and backward layer should have different `go_backwards` value. "
                             f"Received: forward_layer.go_backwards {fwd.go_backwards}, "
                             f"backward_layer.go_backwards={bwd.go_backwards}")
        for a in ("stateful", "return_sequences", "return_state"):
            if getattr(fwd, a) != getattr(bwd, a):
                raise ValueError(f'Forward layer and backward layer are expected to have the same value for '
                                 f'attribute "{a}", got "{getattr(fwd, a)}" for forward layer and '
                                 f'"{getattr(bwd, a)}" for backward layer')

    def build(self, sequences_shape, initial_state_shape=None):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(sequences_shape)
        if self._initial_weights is not None:
            half = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:half])
            self.backward_layer.set_weights(self._initial_weights[half:])
            self._initial_weights = None
        self.built = True

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs = {"training": training}
        if mask is not None:
            kwargs["mask"] = mask
        forward_state = backward_state = None
        if initial_state is not None:
            states = list(initial_state)
            half = len(states) // 2
            forward_state, backward_state = states[:half], states[half:]
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = ()
        if self.return_state:
            states = tuple(y[1:]) + tuple(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = _flip_time(y_rev)
        if self.merge_mode == "concat":
            output = ops.concatenate([y, y_rev], axis=-1)
        elif self.merge_mode == "sum":
            output = ops.add(y, y_rev)
        elif self.merge_mode == "ave":
            output = ops.multiply(ops.add(y, y_rev), 0.5)
        elif self.merge_mode == "mul":
            output = ops.multiply(y, y_rev)
        else:
            output = [y, y_rev]
        if self.return_state:
            return (list(output) if self.merge_mode is None else [output]) + list(states)
        return output

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        out = self.forward_layer.compute_output_shape(sequences_shape)
        state_shapes = []
        if self.return_state:
            out, state_shapes = out[0], list(out[1:])
        if self.merge_mode == "concat":
            out = tuple(out[:-1]) + (None if out[-1] is None else 2 * out[-1],)
        if self.merge_mode is None:
            outputs = [tuple(out), tuple(out)]
        else:
            outputs = [tuple(out)]
        if self.return_state:
            return outputs + state_shapes + state_shapes
        return outputs if self.merge_mode is None else outputs[0]

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        masks = [output_mask, output_mask] if self.merge_mode is None else [output_mask]
        if self.return_state:
            return masks + [None] * (2 * len(self.forward_layer.state_size))
        return masks if self.merge_mode is None else output_mask

    def reset_states(self):
        self.reset_state()

    def reset_state(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    @property
    def states(self):
        if self.forward_layer.states and self.backward_layer.states:
            return tuple(self.forward_layer.states + self.backward_layer.states)
        return None

    def get_config(self):
        from .. import serialize

        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import deserialize

        config = dict(config)
        config["layer"] = deserialize(config["layer"], custom_objects=custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = deserialize(backward, custom_objects=custom_objects)
        return cls(**config)


def _removeprefix(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


@register("layer")
class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: inputs (batch, timesteps, ...) run through the layer
    as (batch * timesteps, ...) in one call and come back as (batch, timesteps, ...)."""

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(f"Please initialize `TimeDistributed` layer with a `Layer` instance. Received: {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer
        self.supports_masking = True

    def _child_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError(f"`TimeDistributed` Layer '{self.name}' should be passed an `input_shape` with at "
                             f"least 3 dimensions, received: {input_shape}")
        return (input_shape[0],) + tuple(input_shape[2:])

    def build(self, input_shape):
        child = self._child_shape(input_shape)
        if not self.layer.built:
            self.layer.build(child)
            self.layer.built = True
        self.built = True

    def call(self, inputs, training=None, mask=None):
        shape = tuple(inputs.shape)
        self._child_shape(shape)
        n, t_len = shape[0], shape[1]
        kwargs = {}
        if getattr(self.layer, "_call_has_training", False):
            kwargs["training"] = training
        if mask is not None:
            mask = np.asarray(_value(mask), dtype=bool)
            if mask.shape[:2] != (n, t_len):
                raise ValueError(f"The `mask` passed to the `TimeDistributed` layer '{self.name}' has a shape "
                                 f"{mask.shape} that is incompatible with the input shape {shape}.")
            if getattr(self.layer, "_call_has_mask", False):
                kwargs["mask"] = mask.reshape((n * t_len,) + mask.shape[2:])
        flat = ops.reshape(inputs, (n * t_len,) + shape[2:])
        out = self.layer(flat, **kwargs)
        return ops.reshape(out, (n, t_len) + tuple(out.shape[1:]))

    def compute_output_shape(self, input_shape):
        child = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (child[0], input_shape[1]) + tuple(child[1:])

    def get_config(self):
        from .. import serialize

        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import deserialize

        config = dict(config)
        config["layer"] = deserialize(config["layer"], custom_objects=custom_objects)
        return cls(**config)
