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

Modules: ``cells.py`` (the cells), ``rnn.py`` (RNN and the fused SimpleRNN / LSTM / GRU),
``wrappers.py`` (Bidirectional and TimeDistributed).
"""
from .cells import GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .rnn import GRU, LSTM, RNN, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = ["RNN", "SimpleRNN", "SimpleRNNCell", "LSTM", "LSTMCell", "GRU", "GRUCell", "StackedRNNCells",
           "Bidirectional", "TimeDistributed"]
