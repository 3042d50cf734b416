"""Recurrent ops: SimpleRNN, LSTM and GRU over whole sequences, and the embedding lookup.

Each recurrent op is one Function: the forward runs the input projection of all time steps as
one GEMM (``z = x @ W + b``, through the ``dense_forward`` kernel), then the fused recurrence
kernel (``<cell>_forward``: one small GEMM per step plus the gate epilogue, in compiled code).
The backward runs the compiled backpropagation through time (``<cell>_backward``), which yields
the gate pre-activation gradients dz for all steps, and then the weight gradients as GEMMs over
all steps at once: dW = x^T dz, dR = h_{t-1}^T dz, db = column sums of dz, dx = dz W^T.

Keras 3 semantics (keras/src/backend/tensorflow/rnn.py): inputs (N, T, K) batch-major; a mask
(N, T) keeps the states through masked steps and repeats the previous output there (zeros with
``zero_output_for_mask``); ``go_backwards`` processes the reversed sequence and returns the
outputs in processing order; the last output is the output of the last step. Dropout masks are
explicit arrays, drawn by the layer: ``input_dropout_mask`` (k, N, K) and
``recurrent_dropout_mask`` (k, N, U), k = 1 (one mask for every gate) or the gate count.

Each op returns ``(output, *final_states)``: output (N, T, U) with ``return_sequences`` else
(N, U); states h (and c for LSTM) of shape (N, U).
"""
import sys
import threading

import numpy as np

from .. import devices, kernels
from ..autograd import Function, is_recording
from ..kernels.elementwise import ACTIVATIONS
from ..kernels.recurrent import BACKWARD_ACTIVATIONS
from ..tensor import Tensor
from .core import cast, contiguous, device_of, device_sum, empty_on, float_array, out_buffer, value, zeros_state

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


class _Workspace:
    """The large per-call buffers of the recurrent ops (gates, saved states, gate gradients),
    reused across calls instead of freshly allocated: a fresh 6 MB buffer costs 1,600 page faults
    on first touch (about 1 ms of a 10 ms LSTM(128) training step, measured). A buffer is handed
    out again only when nothing but the workspace references it (``sys.getrefcount``), so a
    buffer still saved for a backward pass, or reachable through any view, is never reused.
    Outputs returned to the caller are never taken from here. Free buffers beyond
    ``max_bytes`` are dropped, least recently used first."""

    def __init__(self, max_bytes=256 << 20):
        self.max_bytes = max_bytes
        self._arrays = []  # most recently used last
        self._lock = threading.Lock()

    def empty(self, shape, dtype):
        shape = tuple(map(int, shape))
        if not isinstance(dtype, np.dtype):
            dtype = np.dtype(dtype)
        with self._lock:
            arrays = self._arrays
            last = len(arrays) - 1
            for i in range(last, -1, -1):  # most recently used first
                a = arrays[i]
                # references: the list, `a` and getrefcount's argument (no enumerate: its cached
                # result tuple would hold one more)
                if a.shape == shape and a.dtype == dtype and sys.getrefcount(a) <= 3:
                    if i != last:
                        arrays.append(arrays.pop(i))
                    return a
            a = None
            a = np.empty(shape, dtype)
            self._arrays.append(a)
            total = sum(x.nbytes for x in self._arrays)
            i = 0
            while total > self.max_bytes and i < len(self._arrays) - 1:
                x = self._arrays[i]
                if sys.getrefcount(x) <= 3:
                    total -= x.nbytes
                    del self._arrays[i]
                else:
                    i += 1
                x = None
            return a

    def clear(self):
        with self._lock:
            self._arrays.clear()


_workspace = _Workspace()


def _rows_matmul(a, b, bias=None, trans_b=False):
    """a @ op(b) (+ bias) for 2-D arrays, rows on the recurrent kernels' threads (see the
    ``rows_matmul`` kernel: no threaded BLAS next to the recurrence's OpenMP team)."""
    n = b.shape[0] if trans_b else b.shape[1]
    out = np.empty((a.shape[0], n), dtype=a.dtype)
    kernels.get("rows_matmul")(contiguous(a), contiguous(b), None if bias is None else contiguous(bias), out,
                               trans_b, kernels.threads_for(out.size))
    return out


def _tn_matmul(a, b, colsum=False, a2=None):
    """(a^T @ b, column sums of b or None, a2^T @ b or None), summed over rows in fixed blocks
    (``rows_matmul_tn``: one pass over b for the three)."""
    out = np.empty((a.shape[1], b.shape[1]), dtype=a.dtype)
    sums = np.empty(b.shape[1], dtype=a.dtype) if colsum else None
    out2 = None if a2 is None else np.empty((a2.shape[1], b.shape[1]), dtype=a.dtype)
    kernels.get("rows_matmul_tn")(contiguous(a), contiguous(b), out, sums, kernels.threads_for(b.size),
                                  None if a2 is None else contiguous(a2), out2)
    return out, sums, out2


def _colsum(a2):
    out = np.empty(a2.shape[1], dtype=a2.dtype)
    kernels.get("sum_axis0")(contiguous(a2), out, kernels.threads_for(a2.size))
    return out


_TANH, _SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


def activation_code(name, what="activation"):
    """The kernel code of a recurrent activation name (its derivative must come from the output)."""
    code = ACTIVATIONS.get(name)
    if code is None or code not in BACKWARD_ACTIVATIONS:
        supported = sorted(k for k, v in ACTIVATIONS.items() if v in BACKWARD_ACTIVATIONS)
        raise ValueError(f"recurrent {what} {name!r} is not supported by the recurrent kernels; "
                         f"supported: {supported}")
    return code


class _Recurrence(Function):
    """Shared forward/backward of the three cells; subclasses set ``cell`` and ``n_outputs``."""

    cell = None
    runs_on_gpu = True  # weights on the GPU: the recurrence runs there (_device_forward)

    @classmethod
    def forward(cls, ctx, x, w, r, b, h0, c0, mask, x_masks, h_masks, go_backwards, return_sequences,
                zero_output, act, rec, reset_after, recording):
        cell = cls.cell
        if type(w) is not np.ndarray and device_of(w) == "cuda":
            return _device_forward(cell, ctx, x, w, r, b, h0, c0, mask, x_masks, h_masks, go_backwards,
                                   return_sequences, zero_output, act, rec, reset_after, recording)
        dtype = w.dtype
        x = np.asarray(x, dtype=dtype)
        n, t_len, k = x.shape
        u = r.shape[0]
        g = r.shape[1]
        if go_backwards:
            x = x[:, ::-1]
            mask = None if mask is None else mask[:, ::-1]
        mask_u8 = None if mask is None else np.ascontiguousarray(mask, dtype=np.uint8)

        h = zeros_state((n, u), dtype) if h0 is None else np.array(h0, dtype=dtype, order="C")
        c = None
        if cell == "lstm":
            c = zeros_state((n, u), dtype) if c0 is None else np.array(c0, dtype=dtype, order="C")
        hprev = _workspace.empty((n, t_len, u), dtype) if recording else None
        y = out_buffer((n, t_len, u), dtype) if return_sequences else None
        (act_code, act_alpha), (rec_code, rec_alpha) = act, rec
        if (cell == "lstm" and n == 1 and not recording and mask is None and x_masks is None
                and h_masks is None and act_code == _TANH and rec_code == _SIGMOID):
            # batch-1 inference: the projection and the recurrence in one kernel call; the units
            # split over the thread team when a step's product is worth a barrier (LSTM(128): 64 K)
            z = _workspace.empty((n, t_len, g), dtype)
            kernels.get("lstm_forward_inputs")(contiguous(x).reshape(t_len, k), w,
                                               None if b is None else contiguous(b), z, r, h, c, y,
                                               kernels.team_threads_for_macs(u * g))
            return (h if y is None else y, h, c)

        # input projection for all steps: one GEMM (one per gate with per-gate dropout masks)
        bias_in, brh = b, None
        if cell == "gru" and b is not None and reset_after:
            bias_in = b[0].copy()
            bias_in[:2 * u] += b[1][:2 * u]
            brh = np.ascontiguousarray(b[1][2 * u:])
        xs, z = _project_inputs(x, w, bias_in, x_masks, g // GATES[cell])
        rmask = None if h_masks is None else np.ascontiguousarray(h_masks, dtype=dtype)
        threads = kernels.threads_for(z.size)
        if cell == "simple_rnn":
            kernels.get("simple_rnn_forward")(z, r, mask_u8, rmask, act_code, act_alpha, zero_output,
                                              h, hprev, y, threads)
            aux = cprev = None
        elif cell == "lstm":
            cprev = _workspace.empty((n, t_len, u), dtype) if recording else None
            kernels.get("lstm_forward")(z, r, mask_u8, rmask, act_code, act_alpha, rec_code, rec_alpha,
                                        zero_output, h, c, hprev, cprev, y, threads)
            aux = None
        else:
            aux = _workspace.empty((n, t_len, u), dtype)
            kernels.get("gru_forward")(z, r, brh, mask_u8, rmask, act_code, act_alpha, rec_code,
                                       rec_alpha, reset_after, zero_output, h, hprev, aux, y, threads)
            cprev = None

        last_rows = _last_rows(mask, zero_output)
        if return_sequences:
            output = y
        elif last_rows is None:
            output = h
        else:
            output = np.where(last_rows[:, None], h, 0).astype(dtype, copy=False)

        if recording:
            ctx.save(xs, w, r, z, hprev, cprev, aux)
            ctx.mask_u8, ctx.x_masks, ctx.rmask = mask_u8, x_masks, rmask
            ctx.last_rows = last_rows
            ctx.shape = (n, t_len, k, u, g)
            ctx.flags = (go_backwards, return_sequences, zero_output, reset_after)
            ctx.acts = (act, rec)
            ctx.has_bias, ctx.has_h0, ctx.has_c0 = b is not None, h0 is not None, c0 is not None
            ctx.bias_shape = None if b is None else b.shape
        states = (h,) if c is None else (h, c)
        return (output,) + states

    @classmethod
    def backward(cls, ctx, dys, needs):
        cell = cls.cell
        if getattr(ctx, "on_device", False):
            return _device_backward(cell, ctx, dys, needs)
        xs, w, r, z, hprev, cprev, aux = ctx.saved
        n, t_len, k, u, g = ctx.shape
        go_backwards, return_sequences, zero_output, reset_after = ctx.flags
        (act_code, act_alpha), (rec_code, rec_alpha) = ctx.acts
        dtype = w.dtype
        d_out = np.asarray(dys[0], dtype=dtype)
        # dh (and dc below) by kernels, which the backward then updates in place: a captured
        # training step (models/train_replay.py) makes them again at every replay
        dh = _state_gradient(dys[1], dtype)
        dy_seq = None
        if return_sequences:
            dy_seq = contiguous(d_out)
        elif ctx.last_rows is None:
            flat = dh.reshape(-1)
            kernels.get("add_forward")(flat, contiguous(d_out).reshape(-1), flat)
        else:
            dh += np.where(ctx.last_rows[:, None], d_out, 0)
        dz = _workspace.empty((n, t_len, g), dtype)
        dzr = None
        threads = kernels.threads_for(dz.size)
        if cell == "simple_rnn":
            kernels.get("simple_rnn_backward")(z, r, ctx.mask_u8, ctx.rmask, act_code, act_alpha,
                                               zero_output, dy_seq, dh, dz, threads)
            dc = None
        elif cell == "lstm":
            dc = _state_gradient(dys[2], dtype)
            kernels.get("lstm_backward")(z, cprev, r, ctx.mask_u8, ctx.rmask, act_code, act_alpha,
                                         rec_code, rec_alpha, zero_output, dy_seq, dh, dc, dz, threads)
        else:
            dc = None
            dzr = _workspace.empty((n, t_len, g), dtype) if reset_after else None
            kernels.get("gru_backward")(z, hprev, aux, r, ctx.mask_u8, ctx.rmask, act_code, act_alpha,
                                        rec_code, rec_alpha, reset_after, zero_output, dy_seq, dh, dz,
                                        dzr, threads)
        dz2 = dz.reshape(n * t_len, g)
        x_masks = ctx.x_masks
        ng = GATES[cell]
        want_db = ctx.has_bias and needs[3]
        gru_after = cell == "gru" and reset_after

        dx = dw = dr = db = db_rec = None
        if needs[0]:
            dx = _input_gradient(dz2, w, x_masks, u, ng).reshape(n, t_len, k)
            if go_backwards:
                dx = dx[:, ::-1]
        if needs[1] and needs[2] and cell != "gru" and ctx.rmask is None and not isinstance(xs, list):
            # dW, db and dR in one pass over dz
            dw, db, dr = _tn_matmul(xs, dz2, want_db, hprev.reshape(n * t_len, u))
        else:
            if needs[1]:
                dw, db = _weight_gradient(xs, dz2, u, ng, want_db)
            if needs[2]:
                dr, db_rec = _recurrent_gradient(cell, hprev, aux, dz, dzr, ctx.rmask, reset_after, u,
                                                 want_db and gru_after)
        if want_db:
            if db is None:
                db = _colsum(dz2)
            if gru_after:
                db = np.stack([db, db_rec if db_rec is not None else _colsum(dzr.reshape(n * t_len, g))])
        else:
            db = None
        dh0 = dh if ctx.has_h0 and needs[4] else None
        dc0 = dc if cell == "lstm" and ctx.has_c0 and needs[5] else None
        return dx, dw, dr, db, dh0, dc0


def _state_gradient(dy, dtype):
    """A new C-contiguous copy of a final state's gradient ``dy``, made by kernels."""
    dy = contiguous(np.asarray(dy, dtype=dtype))
    out = zeros_state(dy.shape, dtype)
    flat = out.reshape(-1)
    kernels.get("add_forward")(flat, dy.reshape(-1), flat)
    return out


def _last_rows(mask, zero_output):
    """The rows (host bool (N,)) whose last output is the final state; None: all rows."""
    if mask is None:
        return None
    last_rows = mask[:, -1] if zero_output else mask.any(axis=1)
    return None if last_rows.all() else last_rows


def _project_inputs(x, w, bias, x_masks, u):
    """(masked inputs kept for dW, z = x @ W + b of shape (N, T, G))."""
    n, t_len, k = x.shape
    g = w.shape[1]
    dtype = w.dtype
    z = _workspace.empty((n, t_len, g), dtype)
    z2 = z.reshape(n * t_len, g)
    project = kernels.get("rows_matmul")
    threads = kernels.threads_for(z2.size)
    if x_masks is None or x_masks.shape[0] == 1:
        if x_masks is not None:
            x = x * x_masks[0][:, None, :].astype(dtype, copy=False)
        x2 = contiguous(x).reshape(n * t_len, k)
        project(x2, w, None if bias is None else contiguous(bias), z2, False, threads)
        return x2, z
    xs = []
    for gate in range(x_masks.shape[0]):
        cols = slice(gate * u, (gate + 1) * u)
        xg = contiguous(x * x_masks[gate][:, None, :].astype(dtype, copy=False)).reshape(n * t_len, k)
        zg = np.empty((n * t_len, u), dtype)
        project(xg, np.ascontiguousarray(w[:, cols]), None if bias is None else np.ascontiguousarray(bias[cols]),
                zg, False, threads)
        z2[:, cols] = zg
        xs.append(xg)
    return xs, z


def _input_gradient(dz2, w, x_masks, u, ng):
    if x_masks is None or x_masks.shape[0] == 1:
        dx = _rows_matmul(dz2, w, trans_b=True)
        if x_masks is not None:
            n = x_masks.shape[1]
            dx = (dx.reshape(n, -1, w.shape[0]) * x_masks[0][:, None, :]).reshape(dx.shape)
        return dx
    n = x_masks.shape[1]
    dx = None
    for gate in range(ng):
        cols = slice(gate * u, (gate + 1) * u)
        part = _rows_matmul(np.ascontiguousarray(dz2[:, cols]), np.ascontiguousarray(w[:, cols]), trans_b=True)
        part = (part.reshape(n, -1, w.shape[0]) * x_masks[gate][:, None, :]).reshape(part.shape)
        dx = part if dx is None else dx + part
    return dx


def _weight_gradient(xs, dz2, u, ng, colsum):
    """(dW, db or None): x^T dz (per gate with per-gate input masks)."""
    if not isinstance(xs, list):
        return _tn_matmul(xs, dz2, colsum)[:2]
    parts = [_tn_matmul(xs[gate], np.ascontiguousarray(dz2[:, gate * u:(gate + 1) * u]))[0]
             for gate in range(ng)]
    return np.concatenate(parts, axis=1), (_colsum(dz2) if colsum else None)


def _recurrent_gradient(cell, hprev, aux, dz, dzr, rmask, reset_after, u, colsum):
    """(dR, column sums of the recurrent pre-activation gradient or None)."""
    n, t_len, g = dz.shape
    hp2 = hprev.reshape(n * t_len, u)
    if cell == "gru" and reset_after:
        dz = dzr
    dz2 = dz.reshape(n * t_len, g)
    if rmask is None and not (cell == "gru" and not reset_after):
        return _tn_matmul(hp2, dz2, colsum)[:2]
    dr = np.empty((u, g), dtype=dz.dtype)
    for gate in range(g // u):
        cols = slice(gate * u, (gate + 1) * u)
        if cell == "gru" and not reset_after and gate == 2:
            left = aux.reshape(n * t_len, u)  # r * (masked) h_{t-1}
        elif rmask is None:
            left = hp2
        else:
            left = (hprev * rmask[gate][:, None, :]).reshape(n * t_len, u)
        dr[:, cols] = _tn_matmul(left, np.ascontiguousarray(dz2[:, cols]))[0]
    return dr, (_colsum(dz2) if colsum else None)


# ---- the GPU path: the same buffers and kernels (kernels/cuda/recurrent.py), on device arrays ----
def _device_copy(a, dtype, like=None):
    """A new device array holding ``a`` (host or device; zeros of ``like``'s shape when None)."""
    if a is None:
        out = empty_on("cuda", like, dtype)
        out[:] = 0
        return out
    if not devices.is_device_array(a):
        return devices.to_device(np.asarray(a, dtype=dtype))
    out = empty_on("cuda", a.shape, dtype)
    out.copy_to_device(a)
    return out


def _time_reversed(a):
    """A C-contiguous device copy of ``a`` (N, T, ...) with the time axis reversed."""
    out = empty_on("cuda", a.shape, a.dtype)
    out[:] = a[:, ::-1]
    return out


def _zero_rows(a, keep_rows):
    """Device ``a`` (N, U) with the rows where ``keep_rows`` (host bool) is False zeroed, in place."""
    for i in np.flatnonzero(~keep_rows):
        a[int(i)] = 0
    return a


def _device_mask(m, dtype):
    """A dropout mask (k, N, K) as a device array (the layer draws it on the host, as on the CPU,
    so a GPU step equals the CPU step; it is copied in with the batch)."""
    if m is None or devices.is_device_array(m):
        return m
    return devices.to_device(np.ascontiguousarray(m, dtype=dtype))


def _device_project(x, w, bias, x_masks, z):
    """z = (masked x) @ W + b on the device, per gate with per-gate masks (the CPU's
    _project_inputs); returns the masked inputs (N*T, K) kept for dW (a list of them per gate)."""
    dev = "cuda"
    n, t_len, k = x.shape
    g = w.shape[1]
    z2 = z.reshape(n * t_len, g)
    project, mask_steps = kernels.get("rows_matmul", dev), kernels.get("mask_time_steps", dev)
    if x_masks is None or x_masks.shape[0] == 1:
        if x_masks is not None:
            masked = empty_on(dev, x.shape, x.dtype)
            mask_steps(x, x_masks[0], False, masked)
            x = masked
        x2 = x.reshape(n * t_len, k)
        project(x2, w, bias, z2, False)
        return x2
    u = g // x_masks.shape[0]
    xs = []
    for gate in range(x_masks.shape[0]):
        cols = slice(gate * u, (gate + 1) * u)
        xg = empty_on(dev, x.shape, x.dtype)
        mask_steps(x, x_masks[gate], False, xg)
        xs.append(xg.reshape(n * t_len, k))
        project(xs[-1], w[:, cols], None if bias is None else bias[cols], z2[:, cols], False)
    return xs


def _device_forward(cell, ctx, x, w, r, b, h0, c0, mask, x_masks, h_masks, go_backwards, return_sequences,
                    zero_output, act, rec, reset_after, recording):
    """The forward of _Recurrence on GPU arrays: one projection GEMM, the per-step recurrence."""
    dev, dtype = "cuda", w.dtype
    x = devices.to_device(np.asarray(x, dtype=dtype)) if not devices.is_device_array(x) else x
    n, t_len, k = x.shape
    u, g = r.shape
    if go_backwards:
        x = _time_reversed(x)
        mask = None if mask is None else mask[:, ::-1]
    mask_u8 = None if mask is None else devices.to_device(np.ascontiguousarray(mask, dtype=np.uint8))
    x_masks, rmask = _device_mask(x_masks, dtype), _device_mask(h_masks, dtype)
    bias_in, brh = b, None
    if cell == "gru" and b is not None and reset_after:  # input bias + the recurrent z, r biases
        bias_in = empty_on(dev, (g,), dtype)
        colsum = kernels.get("sum_axis0", dev)
        colsum(b[:, :2 * u], bias_in[:2 * u])
        colsum(b[:1, 2 * u:], bias_in[2 * u:])
        brh = b[1, 2 * u:]
    z = empty_on(dev, (n, t_len, g), dtype)
    xs = _device_project(x, w, bias_in, x_masks, z)
    h = _device_copy(h0, dtype, (n, u))
    c = _device_copy(c0, dtype, (n, u)) if cell == "lstm" else None
    hprev = empty_on(dev, (n, t_len, u), dtype) if recording else None
    y = empty_on(dev, (n, t_len, u), dtype) if return_sequences else None
    (act_code, act_alpha), (rec_code, rec_alpha) = act, rec
    aux = cprev = None
    if cell == "simple_rnn":
        kernels.get("simple_rnn_forward", dev)(z, r, mask_u8, rmask, act_code, act_alpha, zero_output, h, hprev, y)
    elif cell == "lstm":
        cprev = empty_on(dev, (n, t_len, u), dtype) if recording else None
        kernels.get("lstm_forward", dev)(z, r, mask_u8, rmask, act_code, act_alpha, rec_code, rec_alpha,
                                         zero_output, h, c, hprev, cprev, y)
    else:
        aux = empty_on(dev, (n, t_len, u), dtype)
        kernels.get("gru_forward", dev)(z, r, brh, mask_u8, rmask, act_code, act_alpha, rec_code, rec_alpha,
                                        reset_after, zero_output, h, hprev, aux, y)
    last_rows = _last_rows(mask, zero_output)
    if return_sequences:
        output = y
    elif last_rows is None:
        output = h
    else:
        output = _zero_rows(_device_copy(h, dtype), last_rows)
    if recording:
        ctx.on_device = True
        ctx.save(xs, w, r, z, hprev, cprev, aux)
        ctx.mask_u8, ctx.last_rows, ctx.x_masks, ctx.rmask = mask_u8, last_rows, x_masks, rmask
        ctx.shape = (n, t_len, k, u, g)
        ctx.flags = (go_backwards, return_sequences, zero_output, reset_after)
        ctx.acts = (act, rec)
        ctx.has_bias, ctx.has_h0, ctx.has_c0 = b is not None, h0 is not None, c0 is not None
    return (output, h) if c is None else (output, h, c)


def _device_backward(cell, ctx, dys, needs):
    """The backward of _Recurrence on GPU arrays (the CPU path's products, on the device)."""
    dev = "cuda"
    xs, w, r, z, hprev, cprev, aux = ctx.saved
    x_masks, rmask = ctx.x_masks, ctx.rmask
    n, t_len, k, u, g = ctx.shape
    go_backwards, return_sequences, zero_output, reset_after = ctx.flags
    (act_code, act_alpha), (rec_code, rec_alpha) = ctx.acts
    dtype = w.dtype
    d_out = devices.to_device(np.asarray(dys[0], dtype=dtype)) if not devices.is_device_array(dys[0]) else dys[0]
    dh = _device_copy(dys[1], dtype)
    dy_seq = None
    if return_sequences:
        dy_seq = d_out
    else:
        if ctx.last_rows is not None:
            d_out = _zero_rows(_device_copy(d_out, dtype), ctx.last_rows)
        dh = device_sum([dh, d_out])
    dz = empty_on(dev, (n, t_len, g), dtype)
    dzr = dc = None
    if cell == "simple_rnn":
        kernels.get("simple_rnn_backward", dev)(z, r, ctx.mask_u8, rmask, act_code, act_alpha, zero_output, dy_seq,
                                                dh, dz)
    elif cell == "lstm":
        dc = _device_copy(dys[2], dtype)
        kernels.get("lstm_backward", dev)(z, cprev, r, ctx.mask_u8, rmask, act_code, act_alpha, rec_code, rec_alpha,
                                          zero_output, dy_seq, dh, dc, dz)
    else:
        dzr = empty_on(dev, (n, t_len, g), dtype) if reset_after else None
        kernels.get("gru_backward", dev)(z, hprev, aux, r, ctx.mask_u8, rmask, act_code, act_alpha, rec_code,
                                         rec_alpha, reset_after, zero_output, dy_seq, dh, dz, dzr)
    dz2 = dz.reshape(n * t_len, g)
    want_db = ctx.has_bias and needs[3]
    gru_after = cell == "gru" and reset_after
    project, project_tn = kernels.get("rows_matmul", dev), kernels.get("rows_matmul_tn", dev)
    matmul, mask_steps = kernels.get("matmul", dev), kernels.get("mask_time_steps", dev)
    ng = GATES[cell]
    dx = dw = dr = db = None
    if needs[0]:
        dx = empty_on(dev, (n, t_len, k), dtype)
        if x_masks is None or x_masks.shape[0] == 1:
            project(dz2, w, None, dx.reshape(n * t_len, k), True)
            if x_masks is not None:
                mask_steps(dx, x_masks[0], False, dx)
        else:  # per-gate input masks: sum over gates of (dz_gate @ W_gate^T) * mask_gate
            part = empty_on(dev, (n, t_len, k), dtype)
            for gate in range(ng):
                cols = slice(gate * u, (gate + 1) * u)
                matmul(dz2[:, cols], w[:, cols], part.reshape(n * t_len, k), False, True, 1.0, 0.0)
                mask_steps(part, x_masks[gate], gate > 0, dx)
        if go_backwards:
            dx = _time_reversed(dx)
    if want_db:
        db = empty_on(dev, (2, g) if gru_after else (g,), dtype)
    if needs[1]:
        dw = empty_on(dev, (k, g), dtype)
        if isinstance(xs, list):  # per-gate masked inputs
            for gate in range(ng):
                cols = slice(gate * u, (gate + 1) * u)
                matmul(xs[gate], dz2[:, cols], dw[:, cols], True, False, 1.0, 0.0)
            if db is not None:
                kernels.get("sum_axis0", dev)(dz2, db[0] if gru_after else db)
        else:
            project_tn(xs, dz2, dw, None if db is None else (db[0] if gru_after else db))
    elif db is not None:
        kernels.get("sum_axis0", dev)(dz2, db[0] if gru_after else db)
    hp2 = hprev.reshape(n * t_len, u)
    if (needs[2] or (want_db and gru_after)) and rmask is not None:
        dr = empty_on(dev, (u, g), dtype)
        dzx2 = (dzr if gru_after else dz).reshape(n * t_len, g)
        left = empty_on(dev, (n, t_len, u), dtype)
        for gate in range(ng):  # the recurrent input of each gate is its masked h_{t-1}
            cols = slice(gate * u, (gate + 1) * u)
            if cell == "gru" and not reset_after and gate == 2:
                src = aux  # r * (masked) h_{t-1}
            else:
                mask_steps(hprev, rmask[gate], False, left)
                src = left
            matmul(src.reshape(n * t_len, u), dzx2[:, cols], dr[:, cols], True, False, 1.0, 0.0)
        if want_db and gru_after:
            kernels.get("sum_axis0", dev)(dzx2, db[1])
        dr = dr if needs[2] else None
    elif needs[2] or (want_db and gru_after):
        dr = empty_on(dev, (u, g), dtype)
        if gru_after:
            project_tn(hp2, dzr.reshape(n * t_len, g), dr, db[1] if want_db else None)
        elif cell == "gru":  # the h part's recurrent input is r * h_{t-1} (aux)
            matmul(hp2, dz2[:, :2 * u], dr[:, :2 * u], True, False, 1.0, 0.0)
            matmul(aux.reshape(n * t_len, u), dz2[:, 2 * u:], dr[:, 2 * u:], True, False, 1.0, 0.0)
        else:
            project_tn(hp2, dz2, dr, None)
        dr = dr if needs[2] else None
    dh0 = dh if ctx.has_h0 and needs[4] else None
    dc0 = dc if cell == "lstm" and ctx.has_c0 and needs[5] else None
    return dx, dw, dr, db, dh0, dc0


class SimpleRNN(_Recurrence):
    cell = "simple_rnn"
    n_outputs = 2


class LSTM(_Recurrence):
    cell = "lstm"
    n_outputs = 3


class GRU(_Recurrence):
    cell = "gru"
    n_outputs = 2


_ACT_PAIRS = {}  # (name, default) -> (code, alpha): looked up on every call


def _act_pair(name, default):
    """(kernel code, alpha) of an activation name or (name, alpha) pair (None: ``default``)."""
    try:
        return _ACT_PAIRS[name, default]
    except KeyError:
        pass
    except TypeError:  # unhashable: not cached
        return _compute_act_pair(name, default)
    pair = _ACT_PAIRS[name, default] = _compute_act_pair(name, default)
    return pair


def _compute_act_pair(name, default):
    if name is None:
        name = default
    if isinstance(name, (tuple, list)):
        return (activation_code(name[0]), float(name[1]))
    return (activation_code(name), 0.2 if name == "leaky_relu" else 1.0 if name == "elu" else 0.0)


def _check(cell, x, kernel, recurrent_kernel, bias, states, mask, reset_after):
    """Shapes, checked once at the op's edge."""
    name = cell
    if len(x.shape) != 3:
        raise ValueError(f"ops.{name}: inputs must be 3-D (batch, timesteps, features), received shape "
                         f"{x.shape}")
    n, t_len, k = x.shape
    if len(kernel.shape) != 2 or kernel.shape[0] != k or kernel.shape[1] % GATES[cell]:
        raise ValueError(f"ops.{name}: kernel must have shape ({k}, {GATES[cell]} * units) for inputs of "
                         f"shape {x.shape}, received {kernel.shape}")
    u = kernel.shape[1] // GATES[cell]
    if recurrent_kernel.shape != (u, GATES[cell] * u):
        raise ValueError(f"ops.{name}: recurrent_kernel must have shape {(u, GATES[cell] * u)}, received "
                         f"{recurrent_kernel.shape}")
    if bias is not None:
        expected = (2, 3 * u) if cell == "gru" and reset_after else (GATES[cell] * u,)
        if bias.shape != expected:
            raise ValueError(f"ops.{name}: bias must have shape {expected}, received {bias.shape}")
    for i, s in enumerate(states):
        if s is not None and tuple(s.shape) != (n, u):
            raise ValueError(f"ops.{name}: initial state {i} must have shape {(n, u)} (batch, units), "
                             f"received {tuple(s.shape)}")
    if mask is not None and mask.shape != (n, t_len):
        raise ValueError(f"ops.{name}: mask must have shape {(n, t_len)} (batch, timesteps), received "
                         f"{mask.shape}")
    return u


def _state_array(s):
    return s if devices.is_device_array(s) else np.asarray(s)


def _dropout_mask(m, dtype):
    if m is None:
        return None
    m = value(m)
    if devices.is_device_array(m):
        return m.reshape((1,) + tuple(m.shape)) if m.ndim == 2 else m
    m = np.asarray(m, dtype=dtype)
    return m[None] if m.ndim == 2 else m


def _run(cls, x, kernel, recurrent_kernel, bias, states, mask, go_backwards, return_sequences,
         zero_output_for_mask, activation, recurrent_activation, input_dropout_mask,
         recurrent_dropout_mask, reset_after=True):
    w = value(kernel)
    dtype = w.dtype
    r = value(recurrent_kernel)
    xv = value(x)
    if devices.is_device_array(xv):
        if xv.dtype != dtype:
            raise TypeError(f"ops.{cls.cell}: the input on the GPU has dtype {xv.dtype}; the kernel has {dtype}")
    elif not isinstance(xv, np.ndarray) or xv.dtype != dtype:
        # a Tensor is cast through the tape, so its gradient flows back in its own dtype
        x = cast(x, dtype) if isinstance(x, Tensor) else float_array(xv, dtype=dtype)
        xv = value(x)
    h0 = states[0]
    c0 = states[1] if len(states) > 1 else None
    h0 = None if h0 is None else _state_array(value(h0))
    c0 = None if c0 is None else _state_array(value(c0))
    mask_v = None if mask is None else np.asarray(value(mask), dtype=bool)
    b = None if bias is None else value(bias)
    _check(cls.cell, xv, w, r, b, (h0, c0), mask_v, reset_after)
    if mask_v is not None and mask_v.all():
        mask_v = None  # all steps valid: the unmasked loop gives the same results
    rec = (0, 0.0) if cls.cell == "simple_rnn" else _act_pair(recurrent_activation, "sigmoid")
    act = _act_pair(activation, "tanh")
    x_masks = None if input_dropout_mask is None else _dropout_mask(input_dropout_mask, dtype)
    h_masks = None if recurrent_dropout_mask is None else _dropout_mask(recurrent_dropout_mask, dtype)
    go_backwards, return_sequences = bool(go_backwards), bool(return_sequences)
    zero_output, reset_after = bool(zero_output_for_mask), bool(reset_after)
    if is_recording():
        states = list(states) + [None] * (2 - len(states))
        return cls.apply(x, kernel, recurrent_kernel, bias, states[0], states[1], mask=mask_v, x_masks=x_masks,
                         h_masks=h_masks, go_backwards=go_backwards, return_sequences=return_sequences,
                         zero_output=zero_output, act=act, rec=rec, reset_after=reset_after, recording=True)
    # inference: nothing to record, so no Function.apply (what it adds is the tape's node)
    out = cls.forward(None, xv, w, r, b, h0, c0, mask_v, x_masks, h_masks, go_backwards, return_sequences,
                      zero_output, act, rec, reset_after, False)
    return tuple([Tensor(o) for o in out])


def simple_rnn(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None,
               go_backwards=False, return_sequences=False, zero_output_for_mask=False, activation="tanh",
               input_dropout_mask=None, recurrent_dropout_mask=None):
    """SimpleRNN over (N, T, K) inputs: h_t = act(x_t W + b + h_{t-1} R).

    kernel (K, U), recurrent_kernel (U, U), bias (U,) or None, initial_state h0 (N, U) or None.
    ``activation`` is a kernel activation name, or a (name, alpha) pair. Returns (output, h).
    """
    return _run(SimpleRNN, inputs, kernel, recurrent_kernel, bias, [initial_state], mask, go_backwards,
                return_sequences, zero_output_for_mask, activation, None, input_dropout_mask,
                recurrent_dropout_mask)


def lstm(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None, go_backwards=False,
         return_sequences=False, zero_output_for_mask=False, activation="tanh",
         recurrent_activation="sigmoid", input_dropout_mask=None, recurrent_dropout_mask=None):
    """LSTM over (N, T, K) inputs, Keras gate order i, f, c, o.

    kernel (K, 4U), recurrent_kernel (U, 4U), bias (4U,) or None, initial_state [h0, c0] or None.
    Returns (output, h, c).
    """
    states = [None, None] if initial_state is None else list(initial_state)
    return _run(LSTM, inputs, kernel, recurrent_kernel, bias, states, mask, go_backwards, return_sequences,
                zero_output_for_mask, activation, recurrent_activation, input_dropout_mask,
                recurrent_dropout_mask)


def gru(inputs, kernel, recurrent_kernel, bias=None, initial_state=None, mask=None, go_backwards=False,
        return_sequences=False, zero_output_for_mask=False, activation="tanh", recurrent_activation="sigmoid",
        reset_after=True, input_dropout_mask=None, recurrent_dropout_mask=None):
    """GRU over (N, T, K) inputs, Keras gate order z, r, h.

    kernel (K, 3U), recurrent_kernel (U, 3U), bias (2, 3U) with ``reset_after`` (input and
    recurrent biases) else (3U,), or None; initial_state h0 (N, U) or None. Returns (output, h).
    """
    return _run(GRU, inputs, kernel, recurrent_kernel, bias, [initial_state], mask, go_backwards,
                return_sequences, zero_output_for_mask, activation, recurrent_activation,
                input_dropout_mask, recurrent_dropout_mask, reset_after=reset_after)


__all__ = ["simple_rnn", "lstm", "gru"]
