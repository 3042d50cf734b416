"""The RNN layer (sequence semantics over any cell) and SimpleRNN / LSTM / GRU, which run their
cell's whole sequence as one fused op."""
import numpy as np

from ... import devices, ops, quantizers, regularizers
from ...registry import register
from ...tensor import Tensor
from ..layer import InputSpec, Layer, defer_state_update
from .cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells, _FusedCell, _nested, _value


# ---- the RNN layer ------------------------------------------------------------------------------
@register("layer")
class RNN(Layer):
    """A recurrent layer over ``cell``: inputs (batch, timesteps, features) -> the last output
    (batch, units), or all outputs (batch, timesteps, units) with ``return_sequences``; with
    ``return_state`` the final states follow, as a list. ``initial_state`` (call argument): a
    list of (batch, state_size) tensors. ``stateful``: the final states of a batch are the
    initial states of the next (``reset_states()`` zeroes them; a batch of another size starts
    from zeros, where Keras, which fixes the batch size at build, raises). ``unroll`` is
    accepted and has no effect: the fused cells always run a compiled loop."""

    _INPUT_KWARGS = ("initial_state",)

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False, stateful=False,
                 unroll=False, zero_output_for_mask=False, **kwargs):
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)  # as Keras: the cells run in order at each step
        if not hasattr(cell, "call") or not hasattr(cell, "state_size"):
            raise ValueError(f"{type(self).__name__}: argument `cell` should have a `call` method and a "
                             f"`state_size` attribute. Received: cell={cell!r}")
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.supports_masking = True
        self.input_spec = InputSpec(min_ndim=3)
        self.states = None
        state_size = cell.state_size
        self.state_size = list(state_size) if _nested(state_size) else [int(state_size)]

    @property
    def _fused(self):
        return isinstance(self.cell, _FusedCell)

    # building ----------------------------------------------------------------------------------
    def build(self, sequences_shape, initial_state_shape=None):
        if len(sequences_shape) < 3:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected ndim=3, "
                             f"found ndim={len(sequences_shape)}. Full shape received: {tuple(sequences_shape)}")
        step_shape = (sequences_shape[0],) + tuple(sequences_shape[2:])
        if isinstance(self.cell, Layer) and not self.cell.built:
            self.cell.build(step_shape)
            self.cell.built = True
            for v in self.cell.weights:  # the cell's paths (cell/kernel, or stacked/cell/kernel) under the RNN's
                v.path = f"{self.name}/{v.path}"
        if self._fused:
            self.input_spec = InputSpec(ndim=3, axes={-1: sequences_shape[-1]})
        self.built = True

    # states ------------------------------------------------------------------------------------
    def get_initial_state(self, batch_size):
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is not None:
            state = fn(batch_size=batch_size)
            return list(state) if _nested(state) else [state]
        return [ops.zeros((batch_size, d), dtype=self._float_dtype()) for d in self.state_size]

    def reset_states(self):
        self.reset_state()

    def reset_state(self):
        if self.states is not None:
            self.states = [np.zeros_like(s) for s in self.states]

    def _initial_states(self, initial_state, batch):
        if initial_state is None:
            if not self.stateful:
                return None
            if self.states is None or self.states[0].shape[0] != batch:
                # zeros for a new batch size; self.states changes when the call completes
                return [Tensor(np.zeros((batch, d), dtype=self._float_dtype())) for d in self.state_size]
            return [Tensor(s) for s in self.states]
        states = list(initial_state) if _nested(initial_state) else [initial_state]
        if len(states) != len(self.state_size):
            raise ValueError(f"Layer '{self.name}' expects {len(self.state_size)} initial state(s) (shapes "
                             f"{[(batch, d) for d in self.state_size]}), but it received {len(states)}: "
                             f"{[tuple(getattr(s, 'shape', ())) for s in states]}")
        out = []
        for i, (s, d) in enumerate(zip(states, self.state_size)):
            s = s if isinstance(s, Tensor) else Tensor(np.asarray(s, dtype=self._float_dtype()))
            if tuple(s.shape) != (batch, d):
                raise ValueError(f"Layer '{self.name}': initial_state[{i}] must have shape (batch, units) = "
                                 f"{(batch, d)} for inputs of batch size {batch}, received shape {tuple(s.shape)}")
            if s.dtype != self._float_dtype():
                s = ops.cast(s, self._float_dtype())
            out.append(s)
        return out

    # computing ---------------------------------------------------------------------------------
    def call(self, sequences, initial_state=None, mask=None, training=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        states = None
        if initial_state is not None or self.stateful:
            states = self._initial_states(initial_state, sequences.shape[0])
        if mask is not None:
            mask = np.asarray(_value(mask), dtype=bool)
            if mask.shape != tuple(sequences.shape[:2]):
                raise ValueError(f"Layer '{self.name}': the mask must have shape (batch, timesteps) = "
                                 f"{tuple(sequences.shape[:2])}, received {mask.shape}")
        if self._fused:
            out = self.cell.sequence(sequences, states, mask=mask, go_backwards=self.go_backwards,
                                     return_sequences=self.return_sequences,
                                     zero_output_for_mask=self.zero_output_for_mask, training=training)
        else:
            out = self._loop(sequences, states, mask, training)
        output, new_states = out[0], list(out[1:])
        if self.stateful:
            final = [np.array(devices.to_host(s.value), copy=True) for s in new_states]  # host, GPU or not
            defer_state_update(lambda: setattr(self, "states", final))
        if self.activity_regularizer is not None:
            self._activity_losses.append(self.activity_regularizer(output))
        if self.return_state:
            return [output] + new_states
        return output

    def _loop(self, x, states, mask, training):
        """Step by step through ops, for cells without a fused kernel (Keras's masked loop)."""
        n, t_len = x.shape[0], x.shape[1]
        if states is None:
            states = self.get_initial_state(n)
        kwargs = {"training": training} if getattr(self.cell, "_call_has_training", False) else {}
        order = range(t_len - 1, -1, -1) if self.go_backwards else range(t_len)
        outputs, prev = [], None
        for t in order:
            out, new_states = self.cell(ops.getitem(x, (slice(None), t)), states, **kwargs)
            new_states = list(new_states) if _nested(new_states) else [new_states]
            if mask is not None:
                m = mask[:, t][:, None]
                fallback = ops.zeros_like(out) if (self.zero_output_for_mask or prev is None) else prev
                out = ops.where(m, out, fallback)
                new_states = [ops.where(m, s_new, s_old) for s_new, s_old in zip(new_states, states)]
            outputs.append(out)
            prev, states = out, new_states
        if self.return_sequences:
            output = ops.stack(outputs, axis=1)
        else:
            output = outputs[-1]
        return [output] + list(states)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, length = sequences_shape[0], sequences_shape[1]
        units = getattr(self.cell, "output_size", None) or self.state_size[0]
        output_shape = (batch, length, units) if self.return_sequences else (batch, units)
        if self.return_state:
            return [output_shape] + [(batch, d) for d in self.state_size]
        return output_shape

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * len(self.state_size)
        return output_mask

    def get_config(self):
        from .. import serialize

        config = {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        if type(self) is RNN:
            config["cell"] = serialize(self.cell)
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import deserialize

        config = dict(config)
        cell = deserialize(config.pop("cell"), custom_objects=custom_objects)
        return cls(cell, **config)


class _FusedRNN(RNN):
    """SimpleRNN / LSTM / GRU: an RNN whose configuration is its cell's, flattened (Keras)."""

    _cell_class = None

    def __init__(self, **arguments):
        """``arguments``: the subclass constructor's arguments (``_own(locals())``; its explicit
        signature is Keras's): the cell's, the layer's (``_LAYER_ARGUMENTS``) and ``kwargs``."""
        cell_args = dict(arguments)
        kwargs = cell_args.pop("kwargs")
        kwargs.pop("implementation", None)
        mode = quantizers.take_mode(kwargs)  # "int8_from_float32": the cell is int8, the layer's dtype float
        layer_args = {k: cell_args.pop(k) for k in _LAYER_ARGUMENTS if k in cell_args}
        use_cudnn = layer_args.pop("use_cudnn", kwargs.pop("use_cudnn", "auto"))
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"{type(self).__name__}: invalid value received for argument `use_cudnn`. Expected "
                             f"one of {{'auto', True, False}}. Received: use_cudnn={use_cudnn!r}")
        dtype = kwargs.get("dtype") if mode is None else quantizers.policy_name(mode, kwargs.get("dtype") or "float32")
        cell = self._cell_class(**cell_args, dtype=dtype, trainable=kwargs.get("trainable", True),
                                name=_CELL_NAMES[self._cell_class])
        super().__init__(cell, **layer_args, **kwargs)
        self.use_cudnn = use_cudnn
        self.input_spec = InputSpec(ndim=3)

    def __getattr__(self, name):
        # units, activation, kernel_initializer, ... read through to the cell (Keras properties)
        cell = self.__dict__.get("cell")
        if cell is not None and name in _CELL_ATTRIBUTES:
            return getattr(cell, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def get_config(self):
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype", "batch_input_shape"):
            cell_config.pop(key, None)
        base = super().get_config()
        return {**base, **cell_config, "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "use_cudnn": self.use_cudnn, **quantizers.dtype_config(self.cell)}

    # int8 (LSTM and GRU: see LSTMCell.quantize) -------------------------------------------------------
    @property
    def quantization_mode(self):
        return getattr(self.cell, "quantization_mode", None)

    @property
    def dtype_policy(self):
        return quantizers.DTypePolicy(self.dtype, self.quantization_mode)

    def quantize(self, mode, type_check=True, config=None):
        """Quantize the cell's kernels to int8 (``model.quantize`` reaches the cell itself)."""
        quantizers.check_mode(f"{type(self).__name__} '{self.name}'", mode)
        if type_check and type(self) not in (LSTM, GRU):
            raise TypeError(f"{type(self).__name__} '{self.name}': quantize() is defined for LSTM and GRU "
                            f"themselves, not for {type(self).__name__}; pass type_check=False to quantize it anyway")
        self.cell.quantize(mode, type_check=False, config=config)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


_CELL_ATTRIBUTES = {
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
    "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "reset_after", "seed",
}
def _own(arguments):
    """A constructor's ``locals()`` without ``self`` and ``__class__``."""
    return {k: v for k, v in arguments.items() if k not in ("self", "__class__")}


_LAYER_ARGUMENTS = ("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
                    "activity_regularizer", "use_cudnn")
_CELL_NAMES = {SimpleRNNCell: "simple_rnn_cell", LSTMCell: "lstm_cell", GRUCell: "gru_cell"}


@register("layer")
class SimpleRNN(_FusedRNN):
    """Fully connected RNN: ``h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)``.

    Input shape: (batch, timesteps, features). Output shape: (batch, units), or (batch,
    timesteps, units) with return_sequences. Weights: kernel (features, units), recurrent_kernel
    (units, units), bias (units,).
    """

    _cell_class = SimpleRNNCell

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, seed=None, **kwargs):
        super().__init__(**_own(locals()))


@register("layer")
class LSTM(_FusedRNN):
    """Long Short-Term Memory layer (Hochreiter & Schmidhuber 1997), Keras 3 semantics.

    Input shape: (batch, timesteps, features). Output shape: (batch, units), or (batch,
    timesteps, units) with return_sequences; return_state adds [h, c]. Weights: kernel
    (features, 4 units), recurrent_kernel (units, 4 units), bias (4 units,), gates i, f, c, o.
    """

    _cell_class = LSTMCell

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, use_cudnn="auto", **kwargs):
        super().__init__(**_own(locals()))


@register("layer")
class GRU(_FusedRNN):
    """Gated Recurrent Unit (Cho et al. 2014), Keras 3 semantics (``reset_after=True`` by default,
    the cuDNN/PyTorch form with two biases).

    Input shape: (batch, timesteps, features). Output shape: (batch, units), or (batch,
    timesteps, units) with return_sequences; return_state adds [h]. Weights: kernel (features, 3
    units), recurrent_kernel (units, 3 units), bias (2, 3 units) (or (3 units,) with
    reset_after=False), gates z, r, h.
    """

    _cell_class = GRUCell

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0, seed=None,
                 return_sequences=False, return_state=False, go_backwards=False, stateful=False, unroll=False,
                 reset_after=True, use_cudnn="auto", **kwargs):
        super().__init__(**_own(locals()))
