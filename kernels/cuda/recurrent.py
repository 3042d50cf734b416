"""Recurrent cells on the GPU: the CUDA twins of kernels/recurrent.py (SimpleRNN, LSTM, GRU with
reset_after both ways, forward and backward through time, and the products around them), with
the CPU kernels' names, signatures, buffers and masked-step semantics (see _recurrent.pyx).

Design:
  - The op tier runs the input projection of all steps as one product (``rows_matmul``: the
    tiled matmul of gemm.py plus a bias launch), then the recurrence here.
  - The recurrence is one launch per time step (two for GRU with reset_after=False, whose h part
    needs the whole row of r * h_{t-1}), not a persistent kernel: a step needs every unit of
    h_{t-1}, so a persistent kernel needs a grid-wide barrier per step (a cooperative launch,
    which limits the grid to the resident blocks and which the CUDA simulator does not run);
    per-step launches keep the kernels plain and testable everywhere. No GPU was lent while this
    was written, so the launch overhead (a few us per step) against a persistent kernel is not
    measured yet.
  - One thread per (batch row n, unit j): it computes its unit's gate pre-activations (a dot
    product of h_{t-1} with the gate's column of R, summed in a fixed order, so the results do
    not depend on the launch geometry), the cell epilogue, and writes h_t into the other of two
    state buffers (h_{t-1} is read by every thread of the row, so it is never overwritten in
    the step that reads it). The final state is copied back into h_nu.
  - Backward: one launch per step, from T-1 down to -1; the thread (n, j) first adds the
    previous (later) step's recurrent gradient dz_{t+1} @ R^T for its unit (dz_{t+1} is complete
    once that launch ended), then the output gradient and the cell's backward epilogue for step
    t; the launch for t = -1 only adds dz_0 @ R^T, giving the initial state's gradient.
  - Absent optional arrays (mask, recurrent dropout masks, hprev/cprev, y, dy) are passed as
    1-element dummies with a flag.

Legend: N batch, T time steps, K input features, U units, G = gates * U (LSTM i, f, c, o; GRU
z, r, h; SimpleRNN U); M rows of a product.
"""
import math

import numpy as np
from numba import cuda

from ._launch import grid_1d
from .elementwise import act_scalar
from .gemm import matmul
from .reduce import sum_axis0

SOFTPLUS, SOFTSIGN, HARD_SIGMOID, RELU6, EXPONENTIAL = 10, 11, 12, 13, 14
SELU_ALPHA_SCALE = 1.7580993408473766
SELU_SCALE = 1.0507009873554805


@cuda.jit(device=True)
def dact(code, alpha, y):
    """d act_code / dx from the output y = act_code(x) (the CPU recurrences' ``_dact``)."""
    if code == 2:
        return y * (1.0 - y)
    if code == 3:
        return 1.0 - y * y
    if code == 1:
        return 1.0 if y > 0 else 0.0
    if code == 4:
        return 1.0 if y > 0 else alpha
    if code == 5:
        return 1.0 if y > 0 else y + alpha
    if code == 6:
        return SELU_SCALE if y > 0 else y + SELU_ALPHA_SCALE
    if code == SOFTPLUS:
        return -math.expm1(-y)
    if code == SOFTSIGN:
        v = 1.0 - abs(y)
        return v * v
    if code == HARD_SIGMOID:
        return 1.0 / 6.0 if 0 < y < 1 else 0.0
    if code == RELU6:
        return 1.0 if 0 < y < 6 else 0.0
    if code == EXPONENTIAL:
        return y
    return 1.0


@cuda.jit(device=True)
def _dot_h(h, rmask, has_rmask, gate, n, r, col):
    """sum_k (h[n, k] * rmask[gate, n, k]) * r[k, col], k in order."""
    s = 0.0
    for k in range(h.shape[1]):
        hk = h[n, k] * rmask[gate, n, k] if has_rmask else h[n, k]
        s += hk * r[k, col]
    return s


@cuda.jit(device=True)
def _dot_back(dz, n, t, r, j, g0, ng, rmask, has_rmask):
    """sum over gates g0..g0+ng-1 of rmask[g, n, j] * sum_k dz[n, t, g*U + k] * r[j, g*U + k]."""
    u = r.shape[0]
    total = 0.0
    for g in range(g0, g0 + ng):
        s = 0.0
        for k in range(u):
            s += dz[n, t, g * u + k] * r[j, g * u + k]
        total += s * rmask[g, n, j] if has_rmask else s
    return total


@cuda.jit(device=True)
def _valid(mask, has_mask, n, t):
    return (not has_mask) or mask[n, t] != 0


@cuda.jit(device=True)
def _masked_output(y, n, t, j, zero_output):
    y[n, t, j] = 0.0 if zero_output or t == 0 else y[n, t - 1, j]


@cuda.jit(device=True)
def _output_grad(d, dy, n, t, j, carry, valid, has_mask, zero_output):
    """d plus step t's output gradient (Keras masked-output semantics, as the CPU's _output_grad)."""
    if not has_mask:
        return d + dy[n, t, j]
    if zero_output:
        return d + dy[n, t, j] if valid else d
    if valid:
        d = d + dy[n, t, j] + carry[n, j]
        carry[n, j] = 0.0
        return d
    carry[n, j] += dy[n, t, j]
    return d


# ---- forward steps -----------------------------------------------------------------------------
@cuda.jit
def _rnn_step(z, r, mask, has_mask, rmask, has_rmask, act, alpha, zero_output, h_src, h_dst, hprev, has_prev,
              y, has_y, t):
    i = cuda.grid(1)
    u = h_src.shape[1]
    if i < h_src.shape[0] * u:
        n, j = i // u, i % u
        v = z[n, t, j] + _dot_h(h_src, rmask, has_rmask, 0, n, r, j)
        if has_prev:
            hprev[n, t, j] = h_src[n, j]
        if _valid(mask, has_mask, n, t):
            v = act_scalar(act, v, alpha)
            h_dst[n, j] = v
            if has_y:
                y[n, t, j] = v
        else:
            h_dst[n, j] = h_src[n, j]
            if has_y:
                _masked_output(y, n, t, j, zero_output)
        z[n, t, j] = v


@cuda.jit
def _lstm_step(z, r, mask, has_mask, rmask, has_rmask, act, alpha, rec, ralpha, zero_output, h_src, h_dst, c,
               hprev, cprev, has_prev, y, has_y, t):
    i = cuda.grid(1)
    u = h_src.shape[1]
    if i < h_src.shape[0] * u:
        n, j = i // u, i % u
        for g in range(4):
            z[n, t, g * u + j] += _dot_h(h_src, rmask, has_rmask, g, n, r, g * u + j)
        if has_prev:
            hprev[n, t, j] = h_src[n, j]
            cprev[n, t, j] = c[n, j]
        if _valid(mask, has_mask, n, t):
            ig = act_scalar(rec, z[n, t, j], ralpha)
            fg = act_scalar(rec, z[n, t, u + j], ralpha)
            gg = act_scalar(act, z[n, t, 2 * u + j], alpha)
            og = act_scalar(rec, z[n, t, 3 * u + j], ralpha)
            z[n, t, j] = ig
            z[n, t, u + j] = fg
            z[n, t, 2 * u + j] = gg
            z[n, t, 3 * u + j] = og
            cc = fg * c[n, j] + ig * gg
            c[n, j] = cc
            hv = og * act_scalar(act, cc, alpha)
            h_dst[n, j] = hv
            if has_y:
                y[n, t, j] = hv
        else:
            h_dst[n, j] = h_src[n, j]
            if has_y:
                _masked_output(y, n, t, j, zero_output)


@cuda.jit
def _gru_step(z, r, brh, has_brh, mask, has_mask, rmask, has_rmask, act, alpha, rec, ralpha, reset_after,
              zero_output, h_src, h_dst, hprev, has_prev, aux, y, has_y, t, phase):
    """reset_after: one launch (phase 0). Otherwise phase 1 activates z, r and writes
    aux = r * (masked) h_{t-1}; phase 2 adds aux @ R_h to the h part and updates h."""
    i = cuda.grid(1)
    u = h_src.shape[1]
    if i < h_src.shape[0] * u:
        n, j = i // u, i % u
        valid = _valid(mask, has_mask, n, t)
        if phase == 2:
            v = z[n, t, 2 * u + j]
            for k in range(u):
                v += aux[n, t, k] * r[k, 2 * u + j]
            _gru_update(z, n, t, j, u, valid, v, act, alpha, h_src, h_dst, y, has_y, zero_output)
            return
        if has_prev:
            hprev[n, t, j] = h_src[n, j]
        zz = z[n, t, j] + _dot_h(h_src, rmask, has_rmask, 0, n, r, j)
        rr = z[n, t, u + j] + _dot_h(h_src, rmask, has_rmask, 1, n, r, u + j)
        if valid:
            zz = act_scalar(rec, zz, ralpha)
            rr = act_scalar(rec, rr, ralpha)
        z[n, t, j] = zz
        z[n, t, u + j] = rr
        if reset_after:
            a = _dot_h(h_src, rmask, has_rmask, 2, n, r, 2 * u + j)
            if valid and has_brh:
                a += brh[j]
            aux[n, t, j] = a
            _gru_update(z, n, t, j, u, valid, z[n, t, 2 * u + j] + rr * a, act, alpha, h_src, h_dst, y, has_y,
                        zero_output)
        elif valid:
            hm = h_src[n, j] * rmask[2, n, j] if has_rmask else h_src[n, j]
            aux[n, t, j] = rr * hm
        else:
            aux[n, t, j] = 0.0


@cuda.jit(device=True)
def _gru_update(z, n, t, j, u, valid, pre, act, alpha, h_src, h_dst, y, has_y, zero_output):
    """hh = act(pre) into z's h part, h_t = z h_{t-1} + (1 - z) hh (masked: h kept)."""
    if valid:
        hh = act_scalar(act, pre, alpha)
        z[n, t, 2 * u + j] = hh
        zz = z[n, t, j]
        hv = zz * h_src[n, j] + (1.0 - zz) * hh
        h_dst[n, j] = hv
        if has_y:
            y[n, t, j] = hv
    else:
        h_dst[n, j] = h_src[n, j]
        if has_y:
            _masked_output(y, n, t, j, zero_output)


# ---- backward steps ----------------------------------------------------------------------------
@cuda.jit
def _rnn_back_step(z, r, mask, has_mask, rmask, has_rmask, act, alpha, zero_output, dy, has_dy, dh, dz, carry, t):
    i = cuda.grid(1)
    u = dh.shape[1]
    if i < dh.shape[0] * u:
        n, j = i // u, i % u
        d = dh[n, j]
        if t + 1 < z.shape[1]:
            d += _dot_back(dz, n, t + 1, r, j, 0, 1, rmask, has_rmask)
        if t >= 0:
            valid = _valid(mask, has_mask, n, t)
            if has_dy:
                d = _output_grad(d, dy, n, t, j, carry, valid, has_mask, zero_output)
            if valid:
                dz[n, t, j] = d * dact(act, alpha, z[n, t, j])
                d = 0.0
            else:
                dz[n, t, j] = 0.0
        dh[n, j] = d


@cuda.jit
def _lstm_back_step(z, cprev, r, mask, has_mask, rmask, has_rmask, act, alpha, rec, ralpha, zero_output, dy,
                    has_dy, dh, dc, dz, carry, t):
    i = cuda.grid(1)
    u = dh.shape[1]
    if i < dh.shape[0] * u:
        n, j = i // u, i % u
        d = dh[n, j]
        if t + 1 < z.shape[1]:
            d += _dot_back(dz, n, t + 1, r, j, 0, 4, rmask, has_rmask)
        if t >= 0:
            valid = _valid(mask, has_mask, n, t)
            if has_dy:
                d = _output_grad(d, dy, n, t, j, carry, valid, has_mask, zero_output)
            if valid:
                ig, fg, gg, og = z[n, t, j], z[n, t, u + j], z[n, t, 2 * u + j], z[n, t, 3 * u + j]
                cp = cprev[n, t, j]
                tc = act_scalar(act, fg * cp + ig * gg, alpha)
                dct = dc[n, j] + d * og * dact(act, alpha, tc)
                dz[n, t, j] = dct * gg * dact(rec, ralpha, ig)
                dz[n, t, u + j] = dct * cp * dact(rec, ralpha, fg)
                dz[n, t, 2 * u + j] = dct * ig * dact(act, alpha, gg)
                dz[n, t, 3 * u + j] = d * tc * dact(rec, ralpha, og)
                dc[n, j] = dct * fg
                d = 0.0
            else:
                for g in range(4):
                    dz[n, t, g * u + j] = 0.0
        dh[n, j] = d


@cuda.jit
def _gru_back_step(z, hprev, aux, r, mask, has_mask, rmask, has_rmask, act, alpha, rec, ralpha, reset_after,
                   zero_output, dy, has_dy, dh, dz, dzr, carry, t, phase):
    """Phase 0: the recurrent gradient of step t+1, the output gradient and the elementwise
    part of step t. Phase 1 (reset_after=False): d(r h) = dz_h @ R_h^T, then d(r) and the r path
    into dh."""
    i = cuda.grid(1)
    u = dh.shape[1]
    if i < dh.shape[0] * u:
        n, j = i // u, i % u
        if phase == 1:
            if _valid(mask, has_mask, n, t):
                drh = 0.0
                for k in range(u):
                    drh += dz[n, t, 2 * u + k] * r[j, 2 * u + k]
                mh = rmask[2, n, j] if has_rmask else 1.0
                dz[n, t, u + j] = drh * hprev[n, t, j] * mh * dact(rec, ralpha, z[n, t, u + j])
                dh[n, j] += drh * z[n, t, u + j] * mh
            return
        d = dh[n, j]
        if t + 1 < z.shape[1]:
            if reset_after:
                d += _dot_back(dzr, n, t + 1, r, j, 0, 3, rmask, has_rmask)
            else:
                d += _dot_back(dz, n, t + 1, r, j, 0, 2, rmask, has_rmask)
        if t >= 0:
            valid = _valid(mask, has_mask, n, t)
            if has_dy:
                d = _output_grad(d, dy, n, t, j, carry, valid, has_mask, zero_output)
            if valid:
                zz, rr, hh = z[n, t, j], z[n, t, u + j], z[n, t, 2 * u + j]
                dzz = d * (hprev[n, t, j] - hh) * dact(rec, ralpha, zz)
                dhh = d * (1.0 - zz) * dact(act, alpha, hh)
                d = d * zz
                dz[n, t, j] = dzz
                dz[n, t, 2 * u + j] = dhh
                if reset_after:
                    dzr_ = dhh * aux[n, t, j] * dact(rec, ralpha, rr)
                    dz[n, t, u + j] = dzr_
                    dzr[n, t, j] = dzz
                    dzr[n, t, u + j] = dzr_
                    dzr[n, t, 2 * u + j] = dhh * rr
            else:
                for g in range(3):
                    dz[n, t, g * u + j] = 0.0
                    if reset_after:
                        dzr[n, t, g * u + j] = 0.0
        dh[n, j] = d


# ---- host wrappers -----------------------------------------------------------------------------
_dummies = {}


def _opt(a, ndim, dtype):
    """(a, True), or (a 1-element dummy of ``ndim`` dims, False) when ``a`` is None."""
    if a is not None:
        return a, True
    key = (ndim, np.dtype(dtype))
    if key not in _dummies:
        _dummies[key] = cuda.to_device(np.zeros((1,) * ndim, dtype=key[1]))
    return _dummies[key], False


def _zeros_like(a):
    out = cuda.device_array(a.shape, dtype=a.dtype)
    out[:] = 0
    return out


def _run_forward(step, h_nu, t_len, args_before_h, args_after_h, phases=(None,)):
    """Launch ``step`` per time step with ping-pong state buffers; the final state back in h_nu."""
    src, dst = h_nu, cuda.device_array(h_nu.shape, dtype=h_nu.dtype)
    grid = grid_1d(h_nu.shape[0] * h_nu.shape[1])
    for t in range(t_len):
        for phase in phases:
            extra = (t,) if phase is None else (t, phase)
            step[grid](*args_before_h, src, dst, *args_after_h, *extra)
        src, dst = dst, src
    if src is not h_nu:
        h_nu.copy_to_device(src)


def _carry(mask_nt, zero_output, dy_ntu, dh_nu):
    """The masked outputs' gradient carry (N, U), zeroed, where the CPU kernel keeps one."""
    if mask_nt is not None and not zero_output and dy_ntu is not None:
        return _zeros_like(dh_nu)
    return _opt(None, 2, dh_nu.dtype)[0]


def simple_rnn_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, h_nu, hprev_ntu, y_ntu,
                       n_threads=1):
    """h_t = act(z_t + h_{t-1} @ R) for t = 0..T-1 (the CPU twin's buffers); device arrays."""
    n, t_len, u = z_ntg.shape
    if n == 0 or t_len == 0 or u == 0:
        return
    dt = z_ntg.dtype
    mask, rmask = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt)
    hprev, y = _opt(hprev_ntu, 3, dt), _opt(y_ntu, 3, dt)
    _run_forward(_rnn_step, h_nu, t_len,
                 (z_ntg, r_ug, *mask, *rmask, int(activation), float(alpha), bool(zero_output)), (*hprev, *y))


def simple_rnn_backward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, zero_output, dy_ntu, dh_nu, dz_ntg,
                        n_threads=1):
    """Backward through time of simple_rnn_forward (the CPU twin's buffers); device arrays."""
    n, t_len, u = z_ntg.shape
    if n == 0 or t_len == 0 or u == 0:
        return
    dt = z_ntg.dtype
    mask, rmask, dy = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt), _opt(dy_ntu, 3, dt)
    carry = _carry(mask_nt, zero_output, dy_ntu, dh_nu)
    grid = grid_1d(n * u)
    for t in range(t_len - 1, -2, -1):
        _rnn_back_step[grid](z_ntg, r_ug, *mask, *rmask, int(activation), float(alpha), bool(zero_output), *dy,
                             dh_nu, dz_ntg, carry, t)


def lstm_forward(z_ntg, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation, recurrent_alpha,
                 zero_output, h_nu, c_nu, hprev_ntu, cprev_ntu, y_ntu, n_threads=1):
    """LSTM over T steps, Keras gate order i, f, c, o (the CPU twin's buffers); device arrays."""
    n, t_len, g = z_ntg.shape
    if n == 0 or t_len == 0 or g == 0:
        return
    dt = z_ntg.dtype
    mask, rmask, y = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt), _opt(y_ntu, 3, dt)
    has_prev = hprev_ntu is not None
    hprev, cprev = (hprev_ntu, cprev_ntu) if has_prev else (_opt(None, 3, dt)[0],) * 2
    _run_forward(_lstm_step, h_nu, t_len,
                 (z_ntg, r_ug, *mask, *rmask, int(activation), float(alpha), int(recurrent_activation),
                  float(recurrent_alpha), bool(zero_output)), (c_nu, hprev, cprev, has_prev, *y))


def lstm_backward(z_ntg, cprev_ntu, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
                  recurrent_alpha, zero_output, dy_ntu, dh_nu, dc_nu, dz_ntg, n_threads=1):
    """Backward through time of lstm_forward (the CPU twin's buffers); device arrays."""
    n, t_len, g = z_ntg.shape
    if n == 0 or t_len == 0 or g == 0:
        return
    dt = z_ntg.dtype
    mask, rmask, dy = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt), _opt(dy_ntu, 3, dt)
    carry = _carry(mask_nt, zero_output, dy_ntu, dh_nu)
    grid = grid_1d(dh_nu.shape[0] * dh_nu.shape[1])
    for t in range(t_len - 1, -2, -1):
        _lstm_back_step[grid](z_ntg, cprev_ntu, r_ug, *mask, *rmask, int(activation), float(alpha),
                              int(recurrent_activation), float(recurrent_alpha), bool(zero_output), *dy, dh_nu,
                              dc_nu, dz_ntg, carry, t)


def gru_forward(z_ntg, r_ug, brh_u, mask_nt, rmask_knu, activation, alpha, recurrent_activation, recurrent_alpha,
                reset_after, zero_output, h_nu, hprev_ntu, aux_ntu, y_ntu, n_threads=1):
    """GRU over T steps, Keras gate order z, r, h (the CPU twin's buffers); device arrays."""
    n, t_len, g = z_ntg.shape
    if n == 0 or t_len == 0 or g == 0:
        return
    dt = z_ntg.dtype
    mask, rmask, y = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt), _opt(y_ntu, 3, dt)
    brh, hprev = _opt(brh_u, 1, dt), _opt(hprev_ntu, 3, dt)
    _run_forward(_gru_step, h_nu, t_len,
                 (z_ntg, r_ug, *brh, *mask, *rmask, int(activation), float(alpha), int(recurrent_activation),
                  float(recurrent_alpha), bool(reset_after), bool(zero_output)), (*hprev, aux_ntu, *y),
                 phases=(0,) if reset_after else (1, 2))


def gru_backward(z_ntg, hprev_ntu, aux_ntu, r_ug, mask_nt, rmask_knu, activation, alpha, recurrent_activation,
                 recurrent_alpha, reset_after, zero_output, dy_ntu, dh_nu, dz_ntg, dzr_ntg, n_threads=1):
    """Backward through time of gru_forward (the CPU twin's buffers); device arrays."""
    n, t_len, g = z_ntg.shape
    if n == 0 or t_len == 0 or g == 0:
        return
    dt = z_ntg.dtype
    mask, rmask, dy = _opt(mask_nt, 2, np.uint8), _opt(rmask_knu, 3, dt), _opt(dy_ntu, 3, dt)
    dzr = dzr_ntg if reset_after else _opt(None, 3, dt)[0]
    carry = _carry(mask_nt, zero_output, dy_ntu, dh_nu)
    grid = grid_1d(dh_nu.shape[0] * dh_nu.shape[1])
    args = (z_ntg, hprev_ntu, aux_ntu, r_ug, *mask, *rmask, int(activation), float(alpha),
            int(recurrent_activation), float(recurrent_alpha), bool(reset_after), bool(zero_output), *dy, dh_nu,
            dz_ntg, dzr, carry)
    for t in range(t_len - 1, -2, -1):
        _gru_back_step[grid](*args, t, 0)
        if not reset_after and t >= 0:
            _gru_back_step[grid](*args, t, 1)


@cuda.jit
def _add_bias(c_mn, bias_n):
    i = cuda.grid(1)
    if i < c_mn.shape[0] * c_mn.shape[1]:
        c_mn[i // c_mn.shape[1], i % c_mn.shape[1]] += bias_n[i % c_mn.shape[1]]


def rows_matmul(a_mk, b_kn, bias_n, c_mn, trans_b=False, n_threads=1):
    """c_mn = a_mk @ op(b) + bias_n (op(b) = b^T with trans_b); bias_n may be None; device arrays."""
    matmul(a_mk, b_kn, c_mn, False, bool(trans_b))
    if bias_n is not None and c_mn.size:
        _add_bias[grid_1d(c_mn.size)](c_mn, bias_n)


def rows_matmul_tn(a_mk, b_mn, c_kn, colsum_n, n_threads=1, a2_mj=None, c2_jn=None):
    """c_kn = a_mk^T @ b_mn, colsum_n = column sums of b_mn (or None) and c2_jn = a2_mj^T @ b_mn
    (or None); device arrays."""
    matmul(a_mk, b_mn, c_kn, True, False)
    if colsum_n is not None:
        sum_axis0(b_mn, colsum_n)
    if a2_mj is not None:
        matmul(a2_mj, b_mn, c2_jn, True, False)


@cuda.jit
def _mask_time_steps(x_ntk, mask_nk, accumulate, out_ntk):
    i = cuda.grid(1)
    n, t_len, k = x_ntk.shape
    if i < n * t_len * k:
        row, j = i // (t_len * k), i % k
        t = (i // k) % t_len
        v = x_ntk[row, t, j] * mask_nk[row, j]
        out_ntk[row, t, j] = out_ntk[row, t, j] + v if accumulate else v


def mask_time_steps(x_ntk, mask_nk, accumulate, out_ntk):
    """out = x * mask[:, None, :] (+ out when ``accumulate``); (N, T, K) and (N, K) device arrays."""
    if x_ntk.size:
        _mask_time_steps[grid_1d(x_ntk.size)](x_ntk, mask_nk, bool(accumulate), out_ntk)


KERNELS = {
    "mask_time_steps": mask_time_steps,
    "simple_rnn_forward": simple_rnn_forward,
    "simple_rnn_backward": simple_rnn_backward,
    "lstm_forward": lstm_forward,
    "lstm_backward": lstm_backward,
    "gru_forward": gru_forward,
    "gru_backward": gru_backward,
    "rows_matmul": rows_matmul,
    "rows_matmul_tn": rows_matmul_tn,
}
