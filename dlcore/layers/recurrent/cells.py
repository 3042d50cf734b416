"""The recurrent cells: SimpleRNNCell, LSTMCell, GRUCell (the weights and the step math; see the
package docstring for layouts, masks and dropout), and StackedRNNCells."""
import numpy as np

from ... import activations, constraints, initializers, ops, quantizers, regularizers
from ...ops import quantized as quantized_ops
from ...ops import recurrent as rnn_ops
from ...registry import register
from ...tensor import Tensor
from ...utils.random import generator
from ..layer import Layer


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


def _base_arguments(arguments, *own):
    """A cell constructor's ``locals()`` as ``_FusedCell``'s keyword arguments: without ``self``,
    ``__class__`` and the subclass's ``own`` arguments, with ``kwargs`` merged in (less Keras's
    ignored ``implementation``)."""
    out = {k: v for k, v in arguments.items() if k not in ("self", "__class__", "kwargs") + own}
    out.update(arguments["kwargs"])
    out.pop("implementation", None)
    return out


# ---- cells --------------------------------------------------------------------------------------
class _FusedCell(Layer):
    """Shared by SimpleRNNCell, LSTMCell and GRUCell: weights, dropout masks, configuration, and
    ``sequence`` (the whole sequence through the fused op), which ``call`` runs with one step."""

    _gates = 1
    _op = None
    _int8_cell = None  # the int8 op's cell name ("lstm" in LSTMCell, "gru" in GRUCell)
    _runs_on_gpu = True  # the fused recurrent ops dispatch on where the kernels live (no dropout masks there yet)
    _has_recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        cls_name = type(self).__name__
        mode = quantizers.take_mode(kwargs)
        super().__init__(**kwargs)
        self.quantization_mode = mode
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
        if self.quantization_mode is not None:
            self._check_int8(self.quantization_mode)
            self._int8_build(input_dim)
        else:
            self._float_build(input_dim, g)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(shape=self._bias_shape(), initializer=self._bias_init(),
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint,
                                        name="bias")
        self.built = True

    def _float_build(self, input_dim, g):
        self.kernel = self.add_weight(shape=(input_dim, g), initializer=self.kernel_initializer,
                                      regularizer=self.kernel_regularizer, constraint=self.kernel_constraint,
                                      name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, g), initializer=self.recurrent_initializer,
                                                regularizer=self.recurrent_regularizer,
                                                constraint=self.recurrent_constraint, name="recurrent_kernel")

    # int8 quantization (a dlcore extension: Keras 3.15 quantizes no recurrent layer) ---------------------
    def _check_int8(self, mode):
        if type(self)._int8_cell is None:
            raise quantizers.NotQuantizable(f"{type(self).__name__} '{self.name}': no int8 kernel for this cell "
                                            "(int8 covers LSTM and GRU); left in float")
        if np.dtype(self.dtype) != np.float32:
            raise quantizers.NotQuantizable(f"{type(self).__name__} '{self.name}': int8 quantizes float32 layers, "
                                            f"this one is {np.dtype(self.dtype).name}; left in float")

    def quantize(self, mode, type_check=True, config=None):
        """Replace ``kernel`` and ``recurrent_kernel`` by int8 ones with a float32 scale per output column
        (``kernel_scale``, ``recurrent_kernel_scale``: Keras's abs-max rule, as Dense); the hidden state is
        quantized per row at each step. Inference only."""
        self._check_int8(mode)
        cls = next(c for c in type(self).__mro__ if c.__dict__.get("_int8_cell"))
        quantizers.check_quantizable(self, mode, type_check, cls)
        prefix = self.kernel.path.rpartition("/")[0]
        pairs = [quantizers.abs_max_quantize(w.value, axis=0) for w in (self.kernel, self.recurrent_kernel)]
        quantizers.untrack(self, self.kernel)
        quantizers.untrack(self, self.recurrent_kernel)
        self.quantization_mode = mode
        self._int8_build(self.kernel.shape[0])
        for (values, scale), weight, weight_scale in zip(pairs, (self.kernel, self.recurrent_kernel),
                                                          (self.kernel_scale, self.recurrent_kernel_scale)):
            weight.assign(values)
            weight_scale.assign(scale[0])
        for v in (self.kernel, self.kernel_scale, self.recurrent_kernel, self.recurrent_kernel_scale):
            v.path = f"{prefix}/{v.name}" if prefix else v.name

    def _int8_build(self, input_dim):
        g, u = self._gates * self.units, self.units
        self.kernel = quantizers.add_int8_weight(self, "kernel", (input_dim, g))
        self.kernel_scale = quantizers.add_scale_weight(self, "kernel_scale", (g,))
        self.recurrent_kernel = quantizers.add_int8_weight(self, "recurrent_kernel", (u, g),
                                                           splits=(2 * u,) if self._gates == 3 else ())
        self.recurrent_kernel_scale = quantizers.add_scale_weight(self, "recurrent_kernel_scale", (g,))

    def _int8_sequence(self, inputs, state, mask, go_backwards, return_sequences, zero_output_for_mask):
        quantizers.refuse_recording(self)
        kwargs = self._op_kwargs()
        return quantized_ops.int8_recurrent(
            type(self)._int8_cell, inputs, self.kernel.packed(), self.kernel_scale, self.recurrent_kernel.packed(),
            self.recurrent_kernel_scale, self.bias, initial_state=state, mask=mask, go_backwards=go_backwards,
            return_sequences=return_sequences, zero_output_for_mask=zero_output_for_mask,
            activation=kwargs["activation"], recurrent_activation=kwargs["recurrent_activation"],
            reset_after=kwargs.get("reset_after", True))

    # states ------------------------------------------------------------------------------------
    def get_initial_state(self, batch_size=None):
        sizes = self.state_size if _nested(self.state_size) else [self.state_size]
        return [ops.zeros((batch_size, s), dtype=self._float_dtype()) for s in sizes]

    # dropout -----------------------------------------------------------------------------------
    def _draw(self, rate, shape):
        gen = self._rng if self._rng is not None else generator()
        keep = gen.random(shape) >= rate
        return (keep / (1.0 - rate)).astype(self._float_dtype())

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
        if self.quantization_mode is not None:
            return self._int8_sequence(inputs, state, mask, go_backwards, return_sequences, zero_output_for_mask)
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
        return {**super().get_config(), **config, **quantizers.dtype_config(self)}


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
        super().__init__(**_base_arguments(locals(), "unit_forget_bias", "reset_after"))


@register("layer")
class LSTMCell(_FusedCell):
    """One LSTM step (gates i, f, c, o): ``c = f c + i act(.)``, ``h = o act(c)``."""

    _gates = 4
    _op = staticmethod(rnn_ops.lstm)
    _int8_cell = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0, recurrent_dropout=0.0,
                 seed=None, **kwargs):
        super().__init__(**_base_arguments(locals(), "unit_forget_bias", "reset_after"))
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
    _int8_cell = "gru"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, reset_after=True, seed=None, **kwargs):
        super().__init__(**_base_arguments(locals(), "unit_forget_bias", "reset_after"))
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _op_kwargs(self):
        return {"activation": self._act, "recurrent_activation": self._rec, "reset_after": self.reset_after}

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


@register("layer")
class StackedRNNCells(Layer):
    """Cells applied in order at each time step, each one's output the next one's input
    (``RNN([cell_1, cell_2])`` wraps its list in one). ``state_size`` is the cells' state sizes
    flattened in order (``[h1, h2, c2]`` for SimpleRNNCell then LSTMCell), and so are the states
    ``call`` takes and returns; the output is the last cell's."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(cells, (list, tuple)) or not cells:
            raise ValueError(f"StackedRNNCells: `cells` must be a non-empty list of cells, received {cells!r}")
        for cell in cells:
            if not hasattr(cell, "call") or not hasattr(cell, "state_size"):
                raise ValueError("StackedRNNCells: every cell needs a `call` method and a `state_size` "
                                 f"attribute. Received: cell={cell!r}")
        self.cells = list(cells)

    def _sizes(self, cell):
        return list(cell.state_size) if _nested(cell.state_size) else [int(cell.state_size)]

    @property
    def state_size(self):
        return [size for cell in self.cells for size in self._sizes(cell)]

    @property
    def output_size(self):
        last = self.cells[-1]
        return getattr(last, "output_size", None) or self._sizes(last)[0]

    def get_initial_state(self, batch_size=None):
        states = []
        for cell in self.cells:
            fn = getattr(cell, "get_initial_state", None)
            state = fn(batch_size=batch_size) if fn is not None else \
                [ops.zeros((batch_size, d), dtype=self._float_dtype()) for d in self._sizes(cell)]
            states.extend(state if _nested(state) else [state])
        return states

    def build(self, input_shape):
        """``input_shape``: one step's (batch, features); each cell is built on the previous one's output."""
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(input_shape)
                cell.built = True
                for v in cell.weights:
                    v.path = f"{self.name}/{cell.name}/{v.name}"
            units = getattr(cell, "output_size", None) or self._sizes(cell)[0]
            input_shape = (input_shape[0], units)
        self.built = True

    def call(self, inputs, states, training=None):
        """One step: inputs (batch, features), the flat states -> (last output, new flat states)."""
        states = list(states) if _nested(states) else [states]
        if len(states) != len(self.state_size):
            raise ValueError(f"StackedRNNCells '{self.name}': expected {len(self.state_size)} states "
                             f"(sizes {self.state_size}), received {len(states)}")
        new_states, start = [], 0
        for cell in self.cells:
            n = len(self._sizes(cell))
            kwargs = {"training": training} if getattr(cell, "_call_has_training", False) else {}
            inputs, cell_states = cell(inputs, states[start:start + n], **kwargs)
            new_states.extend(cell_states if _nested(cell_states) else [cell_states])
            start += n
        return inputs, new_states

    def get_config(self):
        from .. import serialize

        return {**super().get_config(), "cells": [serialize(cell) for cell in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .. import deserialize

        config = dict(config)
        entries = config.pop("cells")
        if config.get("dtype") is not None:  # the cells are rebuilt in the stack's dtype (a float64 copy)
            entries = [{**e, "config": {**e["config"], "dtype": config["dtype"]}}
                       if isinstance(e, dict) and isinstance(e.get("config"), dict) else e for e in entries]
        return cls([deserialize(e, custom_objects=custom_objects) for e in entries], **config)
