"""Reference recurrences for the kernel and layer tests: plain NumPy in float64, one time step at
a time, written from the published equations and Keras 3's RNN loop (never imports dlcore).

Weights use the Keras layouts: kernel (K, gates*U), recurrent_kernel (U, gates*U), LSTM gates
i, f, c, o with one bias (4U,); GRU gates z, r, h with bias (2, 3U) (input row, recurrent row)
when reset_after, else (3U,). Masks follow keras/src/backend/tensorflow/rnn.py: a masked step
keeps the states and outputs the previous output (zeros before the first valid step), or zeros
when ``zero_output``. ``go_backwards`` runs over the reversed sequence and returns the outputs in
processing order. Dropout masks are given explicitly: ``x_masks`` (k, N, K) and ``h_masks``
(k, N, U), k = 1 (one mask for all gates) or the gate count (Keras's implementation 1).

Every function returns (outputs (N, T, U), last_output (N, U), [final states]).
"""
import numpy as np

from . import elementwise as _act

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def _f(x):
    return None if x is None else np.asarray(x, dtype=np.float64)


def _activation(name):
    return getattr(_act, name)


def _gate_mask(masks, g):
    if masks is None:
        return 1.0
    return masks[g if masks.shape[0] > 1 else 0]


def _run(step, x, states, mask, go_backwards, zero_output):
    """Keras's masked loop around ``step(x_t, states) -> (output, new_states)``."""
    x = _f(x)
    n, t_len = x.shape[:2]
    order = range(t_len - 1, -1, -1) if go_backwards else range(t_len)
    outputs = []
    prev = None
    for t in order:
        out, new_states = step(x[:, t], states)
        if mask is not None:
            m = np.asarray(mask, dtype=bool)[:, t][:, None]
            fallback = np.zeros_like(out) if (zero_output or prev is None) else prev
            out = np.where(m, out, fallback)
            new_states = [np.where(m, s_new, s) for s_new, s in zip(new_states, states)]
        outputs.append(out)
        prev = out
        states = new_states
    seq = np.stack(outputs, axis=1) if outputs else np.zeros((n, 0, states[0].shape[1]))
    last = outputs[-1] if outputs else np.zeros_like(states[0])
    return seq, last, states


def simple_rnn(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None, go_backwards=False,
               zero_output=False, activation="tanh", x_masks=None, h_masks=None):
    """h_t = act(x_t W + b + h_{t-1} R)."""
    w, r, b = _f(kernel), _f(recurrent_kernel), _f(bias)
    x = _f(x)
    units = r.shape[0]
    h0 = np.zeros((x.shape[0], units)) if h0 is None else _f(h0)
    act = _activation(activation)

    def step(xt, states):
        (h,) = states
        z = (xt * _gate_mask(x_masks, 0)) @ w + (h * _gate_mask(h_masks, 0)) @ r
        if b is not None:
            z = z + b
        h = act(z)
        return h, [h]

    return _run(step, x, [h0], mask, go_backwards, zero_output)


def lstm(x, kernel, recurrent_kernel, bias=None, h0=None, c0=None, mask=None, go_backwards=False,
         zero_output=False, activation="tanh", recurrent_activation="sigmoid", x_masks=None,
         h_masks=None):
    """i = s(x W_i + h R_i + b_i), f = s(...), g = act(...), o = s(...); c = f c + i g;
    h = o act(c) (Hochreiter & Schmidhuber with the forget gate of Gers et al.)."""
    w, r, b = _f(kernel), _f(recurrent_kernel), _f(bias)
    x = _f(x)
    u = r.shape[0]
    n = x.shape[0]
    h0 = np.zeros((n, u)) if h0 is None else _f(h0)
    c0 = np.zeros((n, u)) if c0 is None else _f(c0)
    act, rec = _activation(activation), _activation(recurrent_activation)

    def step(xt, states):
        h, c = states
        pre = []
        for g in range(4):
            cols = slice(g * u, (g + 1) * u)
            v = (xt * _gate_mask(x_masks, g)) @ w[:, cols] + (h * _gate_mask(h_masks, g)) @ r[:, cols]
            if b is not None:
                v = v + b[cols]
            pre.append(v)
        i, f, gg, o = rec(pre[0]), rec(pre[1]), act(pre[2]), rec(pre[3])
        c = f * c + i * gg
        h = o * act(c)
        return h, [h, c]

    return _run(step, x, [h0, c0], mask, go_backwards, zero_output)


def gru(x, kernel, recurrent_kernel, bias=None, h0=None, mask=None, go_backwards=False,
        zero_output=False, activation="tanh", recurrent_activation="sigmoid", reset_after=True,
        x_masks=None, h_masks=None):
    """z = s(x W_z + h R_z + b), r = s(...); reset_after: hh = act(x W_h + b_ih + r (h R_h +
    b_rh)), else hh = act(x W_h + b_h + (r h) R_h); h = z h_{t-1} + (1 - z) hh (Cho et al.)."""
    w, r_k, b = _f(kernel), _f(recurrent_kernel), _f(bias)
    x = _f(x)
    u = r_k.shape[0]
    h0 = np.zeros((x.shape[0], u)) if h0 is None else _f(h0)
    act, rec = _activation(activation), _activation(recurrent_activation)
    if b is None:
        b_in, b_rec = np.zeros(3 * u), np.zeros(3 * u)
    elif reset_after:
        b_in, b_rec = b[0], b[1]
    else:
        b_in, b_rec = b, np.zeros(3 * u)

    def step(xt, states):
        (h,) = states
        cols = [slice(g * u, (g + 1) * u) for g in range(3)]
        xg = [(xt * _gate_mask(x_masks, g)) @ w[:, cols[g]] + b_in[cols[g]] for g in range(3)]
        hg = [h * _gate_mask(h_masks, g) for g in range(3)]
        z = rec(xg[0] + hg[0] @ r_k[:, cols[0]] + b_rec[cols[0]])
        r = rec(xg[1] + hg[1] @ r_k[:, cols[1]] + b_rec[cols[1]])
        if reset_after:
            hh = act(xg[2] + r * (hg[2] @ r_k[:, cols[2]] + b_rec[cols[2]]))
        else:
            hh = act(xg[2] + (r * hg[2]) @ r_k[:, cols[2]])
        h = z * h + (1 - z) * hh
        return h, [h]

    return _run(step, x, [h0], mask, go_backwards, zero_output)


def mask_time_steps(x, mask, out=None):
    """x * mask broadcast over time (x (N, T, K), mask (N, K)), plus out when it is given."""
    y = np.asarray(x, dtype=np.float64) * np.asarray(mask, dtype=np.float64)[:, None, :]
    return y if out is None else y + np.asarray(out, dtype=np.float64)


# Embedding's reference lives in embedding.py; tests/layers/test_embedding.py reads it here.
from reference.embedding import embedding  # noqa: E402,F401

