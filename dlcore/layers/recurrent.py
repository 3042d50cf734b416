"""Recurrent layers, as ``keras.layers`` (Keras 3 names, arguments, defaults, weight layouts).

``RNN(cell)`` is the base: it owns the sequence semantics (return_sequences, return_state,
go_backwards, stateful, initial_state, masks) and the cell owns the weights and the step math.
``SimpleRNN``, ``LSTM`` and ``GRU`` are ``RNN`` over ``SimpleRNNCell`` / ``LSTMCell`` /
``GRUCell``; for these cells the whole sequence runs as one fused op (``dlcore.ops.lstm`` ...:
one GEMM for the inputs of all steps, then a compiled loop over time, forward and backward), so
no Python runs per time step. Any other cell (a user's Layer with ``call(inputs, states)`` and
``state_size``) runs step by step through ops, with the same mask semantics.

Weights (Keras layouts): kernel (input_dim, gates * units), recurrent_kernel (units, gates *
units), bias; LSTM gates i, f, c, o with one bias (4 units,), unit_forget_bias initializing the
forget part to ones; GRU gates z, r, h with bias (2, 3 units) (input and recurrent rows) when
``reset_after`` (the default) else (3 units,). Recurrent kernels default to orthogonal.

Masks: a mask (from Embedding(mask_zero=True), Masking, or ``mask=``) makes a masked step keep
the states and repeat the previous output (zeros with ``zero_output_for_mask``, which
Bidirectional sets for its ``return_sequences`` layers); ``return_sequences`` layers pass the mask
on. Dropout (training only): ``dropout`` masks the inputs with one mask per sequence (one per gate
when ``recurrent_dropout`` is set, as Keras's implementation 1), ``recurrent_dropout`` masks the
state entering each gate, one mask per gate, fixed over the sequence.

Also here: ``Bidirectional`` (merge_mode concat/sum/mul/ave/None) and ``TimeDistributed``.
"""
import numpy as np

from .. import activations, constraints, initializers, ops, regularizers
from ..ops import recurrent as rnn_ops
from ..registry import register
from ..tensor import Tensor
from ..utils.random import generator
from .layer import InputSpec, Layer, defer_state_update


def _value(x):
    return x.value if isinstance(x, Tensor) else x


def _nested(x):
    return isinstance(x, (list, tuple))


def _check_units(cls_name, units):
    if not isinstance(units, (int, np.integer)) or isinstance(units, bool) or units <= 0:
        raise ValueError(f"{cls_name}: received an invalid value for argument `units`, expected a positive "
                         f"integer, got {units!r}.")
    return int(units)


def _check_rate(cls_name, name, value):
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise ValueError(f"{cls_name}: `{name}` must be a float in [0, 1], received {value!r}")
    return min(1.0, max(0.0, float(value)))


def _fused_activation(cls_name, what, fn):
    """(kernel name, alpha) of an activation the recurrent kernels run, or a ValueError."""
    pair = activations.kernel_activation(fn)
    name = pair[0] if pair else getattr(fn, "__name__", repr(fn))
    if pair is None:
        raise ValueError(f"{cls_name}: `{what}`={name!r} is not supported by the fused recurrent kernels "
                         "(their backward pass needs the derivative from the output); use one of linear, "
                         "relu, sigmoid, tanh, hard_sigmoid, softsign, softplus, elu, selu, relu6, "
                         "leaky_relu, exponential.")
    try:
        rnn_ops.activation_code(pair[0], what)
    except ValueError as e:
        raise ValueError(f"{cls_name}: {e}") from None
    return pair


# ---- cells --------------------------------------------------------------------------------------
class _FusedCell(Layer):
    """Shared by SimpleRNNCell, LSTMCell and GRUCell: weights, dropout masks, configuration, and
    ``sequence`` (the whole sequence through the fused op), which ``call`` runs with one step."""

    _gates = 1
    _op = None
    _has_recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        cls_name = type(self).__name__
        super().__init__(**kwargs)
        self.units = _check_units(cls_name, units)
        self.activation = activations.get(activation)
        self._act = _fused_activation(cls_name, "activation", self.activation)
        if self._has_recurrent_activation:
            self.recurrent_activation = activations.get(recurrent_activation)
            self._rec = _fused_activation(cls_name, "recurrent_activation", self.recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.recurrent_constraint = constraints.get(recurrent_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.dropout = _check_rate(cls_name, "dropout", dropout)
        self.recurrent_dropout = _check_rate(cls_name, "recurrent_dropout", recurrent_dropout)
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"{cls_name}: `seed` must be None or a non-negative integer, received {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._rng = None if seed is None else generator(self.seed)
        self.state_size = self.units
        self.output_size = self.units

    # weights -----------------------------------------------------------------------------------
    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(f"Layer '{self.name}': the last dimension of the inputs must be known, received "
                             f"input shape {tuple(input_shape)}")
        g = self._gates * self.units
        self.kernel = self.add_weight(shape=(input_dim, g), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, g), initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint, name="recurrent_kernel")
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=self._bias_shape(), initializer=self._bias_init(),
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    # states ------------------------------------------------------------------------------------
    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if _nested(self.state_size) else [self.state_size]
        return [ops.zeros((batch_size, s), dtype=self.dtype) for s in sizes]

    # dropout -----------------------------------------------------------------------------------
    def _draw(self, rate, shape):
        gen = self._rng if self._rng is not None else generator()
        keep = gen.random(shape) >= rate
        return (keep / (1.0 - rate)).astype(self.dtype)

    def _dropout_masks(self, n, input_dim, training):
        """(input masks (k, N, K), recurrent masks (gates, N, U)), None where not applied."""
        if not training:
            return None, None
        per_gate = self.recurrent_dropout > 0 and self._gates > 1
        x_masks = h_masks = None
        if 0 < self.dropout < 1:
            x_masks = self._draw(self.dropout, (self._gates if per_gate else 1, n, input_dim))
        if 0 < self.recurrent_dropout < 1:
            h_masks = self._draw(self.recurrent_dropout, (self._gates, n, self.units))
        return x_masks, h_masks

    # computing ---------------------------------------------------------------------------------
    def _op_kwargs(self):
        return {"activation": self._act}

    def sequence(self, inputs, initial_state, mask=None, go_backwards=False, return_sequences=False,
                 zero_output_for_mask=False, training=None):
        """The whole sequence (N, T, K) through the fused op: returns (output, *final_states)."""
        x_masks = h_masks = None
        if training and (self.dropout or self.recurrent_dropout):
            shape = inputs.shape
            x_masks, h_masks = self._dropout_masks(shape[0], shape[2], training)
        state = initial_state
        if state is not None and not isinstance(self.state_size, (list, tuple)):
            state = state[0] if _nested(state) else state
        return type(self)._op(inputs, self.kernel, self.recurrent_kernel, self.bias, initial_state=state,
                              mask=mask, go_backwards=go_backwards, return_sequences=return_sequences,
                              zero_output_for_mask=zero_output_for_mask, input_dropout_mask=x_masks,
                              recurrent_dropout_mask=h_masks, **self._op_kwargs())

    def call(self, inputs, states, training=None):
        """One step: inputs (N, K), states [h] or [h, c] -> (output, new_states)."""
        states = list(states) if _nested(states) else [states]
        out = self.sequence(ops.expand_dims(inputs, 1), states, training=training)
        return out[0], list(out[1:])

    def get_config(self):
        config = {
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "kernel_constraint": constraints.serialize(self.kernel_constraint),
            "recurrent_constraint": constraints.serialize(self.recurrent_constraint),
            "bias_constraint": constraints.serialize(self.bias_constraint),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "seed": self.seed,
        }
        if self._has_recurrent_activation:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        return {**super().get_config(), **config}


@register("layer")
class SimpleRNNCell(_FusedCell):
    """One step of a fully connected RNN: ``h = activation(x @ kernel + bias + h @ recurrent_kernel)``."""

    _gates = 1
    _op = staticmethod(rnn_ops.simple_rnn)
    _has_recurrent_activation = False

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)


@register("layer")
class LSTMCell(_FusedCell):
    """One LSTM step (gates i, f, c, o): ``c = f c + i act(.)``, ``h = o act(c)``."""

    _gates = 4
    _op = staticmethod(rnn_ops.lstm)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.units]

    def _bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        base, units = self.bias_initializer, self.units

        def init(shape, dtype=None):
            return np.concatenate([np.asarray(base((units,), dtype=dtype)), np.ones(units, dtype=dtype),
                                   np.asarray(base((2 * units,), dtype=dtype))])

        return init

    def _op_kwargs(self):
        return {"activation": self._act, "recurrent_activation": self._rec}

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register("layer")
class GRUCell(_FusedCell):
    """One GRU step (gates z, r, h): ``h = z h + (1 - z) act(x_h + r * (h @ R_h + b_rh))`` with
    ``reset_after`` (the default, as cuDNN and PyTorch), else ``act(x_h + (r h) @ R_h)``."""

    _gates = 3
    _op = staticmethod(rnn_ops.gru)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, reset_after=True, seed=None, **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, activation=activation, recurrent_activation=recurrent_activation,
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                         dropout=dropout, recurrent_dropout=recurrent_dropout, seed=seed, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _op_kwargs(self):
        return {"activation": self._act, "recurrent_activation": self._rec, "reset_after": self.reset_after}

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


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
            raise ValueError(f"{type(self).__name__}: a list of cells (StackedRNNCells) is not supported; stack "
                             "RNN layers with return_sequences=True instead.")
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
            for v in self.cell.weights:
                v.path = f"{self.name}/{self.cell.name}/{v.name}"
        if self._fused:
            self.input_spec = InputSpec(ndim=3, axes={-1: sequences_shape[-1]})
        self.built = True

    # states ------------------------------------------------------------------------------------
    def get_initial_state(self, batch_size):
        fn = getattr(self.cell, "get_initial_state", None)
        if fn is not None:
            state = fn(batch_size=batch_size)
            return list(state) if _nested(state) else [state]
        return [ops.zeros((batch_size, d), dtype=self.dtype) for d in self.state_size]

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
                return [Tensor(np.zeros((batch, d), dtype=self.dtype)) for d in self.state_size]
            return [Tensor(s) for s in self.states]
        states = list(initial_state) if _nested(initial_state) else [initial_state]
        if len(states) != len(self.state_size):
            raise ValueError(f"Layer '{self.name}' expects {len(self.state_size)} initial state(s) (shapes "
                             f"{[(batch, d) for d in self.state_size]}), but it received {len(states)}: "
                             f"{[tuple(getattr(s, 'shape', ())) for s in states]}")
        out = []
        for i, (s, d) in enumerate(zip(states, self.state_size)):
            s = s if isinstance(s, Tensor) else Tensor(np.asarray(s, dtype=self.dtype))
            if tuple(s.shape) != (batch, d):
                raise ValueError(f"Layer '{self.name}': initial_state[{i}] must have shape (batch, units) = "
                                 f"{(batch, d)} for inputs of batch size {batch}, received shape {tuple(s.shape)}")
            if s.dtype != np.dtype(self.dtype):
                s = ops.cast(s, self.dtype)
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
            final = [np.array(s.value, copy=True) for s in new_states]
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
        from . import serialize

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
        from . import deserialize

        config = dict(config)
        cell = deserialize(config.pop("cell"), custom_objects=custom_objects)
        return cls(cell, **config)


class _FusedRNN(RNN):
    """SimpleRNN / LSTM / GRU: an RNN whose configuration is its cell's, flattened (Keras)."""

    _cell_class = None

    def __init__(self, cell_kwargs, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, activity_regularizer=None, use_cudnn="auto", **kwargs):
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"{type(self).__name__}: invalid value received for argument `use_cudnn`. Expected "
                             f"one of {{'auto', True, False}}. Received: use_cudnn={use_cudnn!r}")
        cell = self._cell_class(**cell_kwargs, dtype=kwargs.get("dtype"), trainable=kwargs.get("trainable", True),
                                name=_CELL_NAMES[self._cell_class])
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)
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
                "use_cudnn": self.use_cudnn}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


_CELL_ATTRIBUTES = {
    "units", "activation", "recurrent_activation", "use_bias", "unit_forget_bias", "kernel_initializer",
    "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
    "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
    "recurrent_dropout", "reset_after", "seed",
}
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
        cell_kwargs = dict(units=units, activation=activation, use_bias=use_bias,
                           kernel_initializer=kernel_initializer, recurrent_initializer=recurrent_initializer,
                           bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
                           recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                           kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                           bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
                           seed=seed)
        super().__init__(cell_kwargs, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, **kwargs)


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
        kwargs.pop("implementation", None)
        cell_kwargs = dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                           use_bias=use_bias, kernel_initializer=kernel_initializer,
                           recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                           unit_forget_bias=unit_forget_bias, kernel_regularizer=kernel_regularizer,
                           recurrent_regularizer=recurrent_regularizer, bias_regularizer=bias_regularizer,
                           kernel_constraint=kernel_constraint, recurrent_constraint=recurrent_constraint,
                           bias_constraint=bias_constraint, dropout=dropout, recurrent_dropout=recurrent_dropout,
                           seed=seed)
        super().__init__(cell_kwargs, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, use_cudnn=use_cudnn, **kwargs)


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
        kwargs.pop("implementation", None)
        cell_kwargs = dict(units=units, activation=activation, recurrent_activation=recurrent_activation,
                           use_bias=use_bias, kernel_initializer=kernel_initializer,
                           recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer,
                           kernel_regularizer=kernel_regularizer, recurrent_regularizer=recurrent_regularizer,
                           bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                           recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint,
                           dropout=dropout, recurrent_dropout=recurrent_dropout, reset_after=reset_after,
                           seed=seed)
        super().__init__(cell_kwargs, return_sequences=return_sequences, return_state=return_state,
                         go_backwards=go_backwards, stateful=stateful, unroll=unroll,
                         activity_regularizer=activity_regularizer, use_cudnn=use_cudnn, **kwargs)


# ---- wrappers -----------------------------------------------------------------------------------
def _flip_time(x):
    return ops.getitem(x, (slice(None), slice(None, None, -1)))


@register("layer")
class Bidirectional(Layer):
    """Runs ``layer`` forward and a copy of it backward over the sequence and merges the outputs
    (``merge_mode`` "concat" (default), "sum", "mul", "ave", or None for a list of both). The
    backward outputs are flipped back to input order when ``return_sequences``. Weights: the
    forward layer's, then the backward layer's."""

    _INPUT_KWARGS = ("initial_state",)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        from . import deserialize, serialize

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
            config["config"]["dtype"] = self._dtype
        config["config"]["name"] = "forward_" + _removeprefix(layer.name, "forward_")
        self.forward_layer = deserialize(config)
        if backward_layer is None:
            config = serialize(layer)
            if self._dtype is not None:
                config["config"]["dtype"] = self._dtype
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
        from . import serialize

        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize

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
        from . import serialize

        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize

        config = dict(config)
        config["layer"] = deserialize(config["layer"], custom_objects=custom_objects)
        return cls(**config)


__all__ = ["RNN", "SimpleRNN", "SimpleRNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "Bidirectional",
           "TimeDistributed"]
