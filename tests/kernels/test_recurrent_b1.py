"""The batch-1 LSTM forward (kernels/dl_recurrent_b1.h: gate math pipelined into the step's
product, R packed once per layer in a cache checked against R bit for bit) and the recurrences'
typed-memoryview-free entries (lstm_forward, rows_matmul).

The reference for a batch-1 pass is the same row inside a batch of several rows, which runs the
general path (R read in place, dlr_lstm_cell_f32): every float32 result must be equal, signs of
zeros and NaNs included."""
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import run_in_threads  # noqa: E402
from reference import recurrent as ref  # noqa: E402

from dlcore.kernels import _team, elementwise, recurrent  # noqa: E402

TANH, SIGMOID = elementwise.ACTIVATIONS["tanh"], elementwise.ACTIVATIONS["sigmoid"]


@pytest.fixture(autouse=True)
def avx512_and_empty_cache():
    """The fused path runs where the products run AVX-512; each test starts with an empty cache."""
    old = recurrent.set_isa(0)
    if old < 0:
        pytest.skip("the CPU or the build lacks AVX-512: the batch-1 LSTM forward does not run")
    recurrent.packed_cache_clear()
    yield
    recurrent.packed_cache_clear()
    recurrent.set_isa(old)


def lstm(z, r, h, c, y=True):
    """lstm_forward on copies; returns (z, h, c, y)."""
    z, h, c = z.copy(), h.copy(), c.copy()
    out = np.empty(z.shape[:2] + (h.shape[1],), np.float32) if y else None
    recurrent.lstm_forward(z, r, None, None, TANH, 0.0, SIGMOID, 0.0, False, h, c, None, None, out)
    return z, h, c, out


def inputs(u, t_len=9, n=5, seed=0, h0="random"):
    g = np.random.default_rng(seed)
    z = g.normal(size=(n, t_len, 4 * u)).astype(np.float32) * 2
    z[:, 0, ::7] = -0.0
    r = (g.normal(size=(u, 4 * u)) * 0.3).astype(np.float32)
    h = g.normal(size=(n, u)).astype(np.float32) if h0 == "random" else np.zeros((n, u), np.float32)
    c = g.normal(size=(n, u)).astype(np.float32)
    return z, r, h, c


def assert_same_bits(a, b, what):
    np.testing.assert_array_equal(a, b, err_msg=what)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b), err_msg=what)


def check_rows(z, r, h, c, rows=(0, 2, 4)):
    """Each row run alone (the batch-1 path) equals that row of the whole batch."""
    whole = lstm(z, r, h, c)
    for i in rows:
        one = lstm(z[i:i + 1], r, h[i:i + 1], c[i:i + 1])
        for name, a, b in zip("zhcy", one, whole):
            assert_same_bits(a[0], b[i], f"row {i} {name}")
    return whole


@pytest.mark.parametrize("u", [1, 5, 16, 33, 64, 128])
@pytest.mark.parametrize("h0", ["random", "zero"])
def test_batch1_rows_equal_the_batch(u, h0):
    check_rows(*inputs(u, h0=h0))


def test_batch1_matches_the_reference():
    z, r, h, c = inputs(48, n=1)
    zk, hk, ck, yk = lstm(z, r, h, c)
    y_ref, _, (h_ref, c_ref) = ref.lstm(z[0:1].astype(np.float64), np.eye(4 * 48), r.astype(np.float64),
                                        None, h.astype(np.float64), c.astype(np.float64))
    np.testing.assert_allclose(yk, y_ref, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(hk, h_ref, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(ck, c_ref, rtol=2e-5, atol=2e-6)


def test_batch1_without_output_sequence_and_states_only():
    z, r, h, c = inputs(40, n=2)
    full = lstm(z[:1], r, h[:1], c[:1], y=True)
    part = lstm(z[:1], r, h[:1], c[:1], y=False)
    for a, b in zip(full[:3], part[:3]):
        assert_same_bits(a, b, "y=None")
    assert_same_bits(full[3][0, -1], full[1][0], "last output is h")


def test_gate_math_on_random_bits_equals_the_general_cell():
    """Pre-activations and states from random bit patterns (infinities, NaNs, subnormals, huge
    values): the vector gate functions equal dl_expf.h's, and a block with a NaN is recomputed
    by dlr_lstm_cell_f32 itself, so even NaN signs agree."""
    g = np.random.default_rng(7)
    u, t_len = 32, 6
    for trial in range(40):
        bits = g.integers(0, 2 ** 32, size=(3, t_len, 4 * u), dtype=np.uint64).astype(np.uint32)
        z = bits.view(np.float32).copy()
        plain = g.normal(size=z.shape).astype(np.float32) * 10
        keep = g.random(z.shape) < 0.7
        z[keep] = plain[keep]
        r = np.zeros((u, 4 * u), np.float32)  # h R = +0 exactly: z alone drives the gates
        h = np.zeros((3, u), np.float32)
        c = g.normal(size=(3, u)).astype(np.float32)
        c[1, ::5] = np.inf
        check_rows(z, r, h, c, rows=(0, 1, 2))


def test_nan_and_inf_in_r_and_zero_state():
    z, r, h, c = inputs(20, h0="zero")
    r[3, 5] = np.inf  # 0 * inf is NaN: the first product must run, not be skipped
    whole = check_rows(z, r, h, c)
    assert np.isnan(whole[1]).any()


def test_cache_packs_once_and_sees_r_change():
    z, r, h, c = inputs(24, n=1)
    first = lstm(z, r, h, c)
    packs = recurrent.packed_cache_info()[2]
    for _ in range(3):
        again = lstm(z, r, h, c)
        for a, b in zip(first, again):
            assert_same_bits(a, b, "cached")
    assert recurrent.packed_cache_info()[2] == packs  # reused, not repacked
    r[7, 30] += 0.5  # in place: same address, new contents
    changed = lstm(z, r, h, c)
    assert recurrent.packed_cache_info()[2] == packs + 1
    recurrent.packed_cache_clear()
    fresh = lstm(z, r, h, c)
    for a, b in zip(changed, fresh):
        assert_same_bits(a, b, "after an in-place change of R")
    assert not np.array_equal(changed[1], first[1])
    r[0, 0] = np.inf  # finiteness is re-derived with the new copy
    r_inf = lstm(z, r, np.zeros_like(h), c)
    recurrent.packed_cache_clear()
    for a, b in zip(r_inf, lstm(z, r, np.zeros_like(h), c)):
        assert_same_bits(a, b, "after R became non-finite")


def test_cache_is_bounded():
    z, _, h, c = inputs(8, n=1)
    g = np.random.default_rng(3)
    kernels = [(g.normal(size=(8, 32)) * 0.3).astype(np.float32) for _ in range(12)]
    for r in kernels:
        lstm(z, r, h, c)
    entries, nbytes, _ = recurrent.packed_cache_info()
    assert 1 <= entries <= 8
    assert nbytes == entries * 8 * 4 * 16 * 4  # one block of 16 units: U rows of 64 floats
    recurrent.packed_cache_clear()
    assert recurrent.packed_cache_info()[:2] == (0, 0)


def test_concurrent_batch1_forwards_share_one_copy():
    z, r, h, c = inputs(64, n=1)
    expected = lstm(z, r, h, c)
    errors = []

    def work():
        try:
            for _ in range(10):
                for a, b in zip(lstm(z, r, h, c), expected):
                    assert_same_bits(a, b, "thread")
        except AssertionError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert recurrent.packed_cache_info()[0] == 1


def test_entries_fall_back_to_the_typed_path():
    """Arrays the fast entries do not take (float64, strided, short sequences, a mask, wrong
    dtypes) go through the typed path: same results as before, same errors."""
    z, r, h, c = inputs(16, n=1)
    packs = recurrent.packed_cache_info()[2]
    # a non-contiguous z is rejected by the typed path as before
    zt = np.asfortranarray(z)
    with pytest.raises(ValueError):
        recurrent.lstm_forward(zt, r, None, None, TANH, 0.0, SIGMOID, 0.0, False, h.copy(), c.copy(),
                               None, None, None)
    with pytest.raises(ValueError):
        recurrent.lstm_forward(z.copy(), r, None, None, TANH, 0.0, SIGMOID, 0.0, False, h.copy(),
                               c.copy(), None, None, np.empty((1, 9, 16), np.float64))
    # float64 and short sequences run the general path; they match the float64 reference
    z64, r64, h64, c64 = (a.astype(np.float64) for a in (z, r, h, c))
    y = np.empty((1, 9, 16))
    recurrent.lstm_forward(z64.copy(), r64, None, None, TANH, 0.0, SIGMOID, 0.0, False, h64.copy(),
                           c64.copy(), None, None, y)
    y_ref = ref.lstm(z64, np.eye(64), r64, None, h64, c64)[0]
    np.testing.assert_allclose(y, y_ref, rtol=1e-11, atol=1e-12)
    short = inputs(16, t_len=3)
    check_rows(*short)
    assert recurrent.packed_cache_info()[2] == packs  # none of these used the batch-1 path


@pytest.mark.parametrize("m,k,n", [(50, 32, 512), (1, 3, 5), (255, 17, 40), (256, 8, 16), (3, 0, 4)])
def test_rows_matmul_entry_matches_the_typed_path(m, k, n):
    g = np.random.default_rng(m + k + n)
    a = g.normal(size=(m, k)).astype(np.float32)
    b = g.normal(size=(k, n)).astype(np.float32)
    bias = g.normal(size=n).astype(np.float32)
    for bb in (bias, None):
        fast, typed = np.empty((m, n), np.float32), np.empty((m, n), np.float32)
        recurrent.rows_matmul(a, b, bb, fast)
        recurrent._recurrent._rows_matmul(a, b, bb, typed, False, 1)
        assert_same_bits(fast, typed, "rows_matmul")
        want = a.astype(np.float64) @ b + (0 if bb is None else bb)
        np.testing.assert_allclose(fast, want, rtol=1e-5, atol=1e-5 * np.sqrt(max(k, 1)))


def from_inputs(x, w, b, r, h, c, y=True, n_threads=1):
    """lstm_forward_inputs on copies of the states; returns (z, h, c, y)."""
    t_len, u = x.shape[0], r.shape[0]
    z = np.empty((1, t_len, 4 * u), x.dtype)
    h, c = h.copy(), c.copy()
    out = np.empty((1, t_len, u), x.dtype) if y else None
    recurrent.lstm_forward_inputs(x, w, b, z, r, h, c, out, n_threads)
    return z, h, c, out


def two_calls(x, w, b, r, h, c):
    """rows_matmul then lstm_forward, the general path's pair."""
    t_len, u = x.shape[0], r.shape[0]
    z = np.empty((1, t_len, 4 * u), x.dtype)
    recurrent._recurrent._rows_matmul(x, w, b, z.reshape(t_len, 4 * u), False, 1)
    return lstm(z, r, h, c) if x.dtype == np.float32 else None


@pytest.mark.parametrize("u,k,t_len", [(128, 32, 50), (5, 3, 7), (33, 17, 9), (16, 1, 6), (20, 40, 3)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_lstm_forward_inputs_equals_projection_then_recurrence(u, k, t_len, with_bias):
    g = np.random.default_rng(u + k + t_len)
    x = g.normal(size=(t_len, k)).astype(np.float32)
    w = (g.normal(size=(k, 4 * u)) * 0.3).astype(np.float32)
    b = g.normal(size=4 * u).astype(np.float32) if with_bias else None
    r = (g.normal(size=(u, 4 * u)) * 0.3).astype(np.float32)
    h = np.zeros((1, u), np.float32)
    c = g.normal(size=(1, u)).astype(np.float32)
    want = two_calls(x, w, b, r, h, c)
    for attempt in range(2):  # packs, then reads the cached copy checked inside the projection
        for name, a, e in zip("zhcy", from_inputs(x, w, b, r, h, c), want):
            assert_same_bits(a, e, f"{name} (call {attempt})")


def test_lstm_forward_inputs_sees_r_change_through_the_projection_check():
    g = np.random.default_rng(11)
    u, k, t_len = 40, 8, 12
    x = g.normal(size=(t_len, k)).astype(np.float32)
    w = (g.normal(size=(k, 4 * u)) * 0.3).astype(np.float32)
    r = (g.normal(size=(u, 4 * u)) * 0.3).astype(np.float32)
    h, c = np.zeros((1, u), np.float32), np.zeros((1, u), np.float32)
    from_inputs(x, w, None, r, h, c)
    packs = recurrent.packed_cache_info()[2]
    for row, col in ((u - 1, 4 * u - 1), (0, 0), (17, 2 * u + 3)):  # the last, first and a middle unit
        r[row, col] = -r[row, col] + 0.25
        got = from_inputs(x, w, None, r, h, c)
        for name, a, e in zip("zhcy", got, two_calls(x, w, None, r, h, c)):
            assert_same_bits(a, e, f"{name} after R[{row}, {col}] changed")
    assert recurrent.packed_cache_info()[2] == packs + 3


def test_lstm_forward_inputs_other_arrays_take_the_general_path():
    g = np.random.default_rng(2)
    u, k, t_len = 6, 4, 8
    x = g.normal(size=(t_len, k))
    w, r = g.normal(size=(k, 4 * u)) * 0.3, g.normal(size=(u, 4 * u)) * 0.3
    h, c = np.zeros((1, u)), g.normal(size=(1, u))
    z, h1, c1, y = from_inputs(x, w, None, r, h, c)  # float64: rows_matmul + lstm_forward, BLAS
    y_ref, _, (h_ref, c_ref) = ref.lstm(x[None], w, r, None, h, c)
    np.testing.assert_allclose(y, y_ref, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(c1, c_ref, rtol=1e-11, atol=1e-12)
    with pytest.raises(ValueError):  # mixed dtypes fail in the typed path as before
        from_inputs(x.astype(np.float32), w, None, r.astype(np.float32), h.astype(np.float32),
                    c.astype(np.float32))


@pytest.fixture
def team_without_guard():
    """The thread team's load guard off, so that jobs are shared on a loaded host too."""
    previous = _team.set_load_guard(False)
    yield
    _team.set_load_guard(previous)
    _team.resize(1)


@pytest.mark.parametrize("u,t_len", [(128, 50), (5, 7), (33, 9), (64, 12), (200, 6)])
@pytest.mark.parametrize("h0", ["random", "zero"])
def test_batch1_on_the_thread_team_gives_the_one_thread_bits(u, t_len, h0, team_without_guard):
    """The units split in parts over 2-4 threads, a barrier per step (dl_recurrent_b1.h's job):
    every result equals one thread's, through both entries, with and without the output
    sequence; u = 5 (one block) runs as one part."""
    g = np.random.default_rng(u + t_len)
    k = 9
    x = g.normal(size=(t_len, k)).astype(np.float32)
    w = (g.normal(size=(k, 4 * u)) * 0.3).astype(np.float32)
    b = g.normal(size=4 * u).astype(np.float32)
    r = (g.normal(size=(u, 4 * u)) * 0.3).astype(np.float32)
    h = g.normal(size=(1, u)).astype(np.float32) if h0 == "random" else np.zeros((1, u), np.float32)
    c = g.normal(size=(1, u)).astype(np.float32)
    one = from_inputs(x, w, b, r, h, c)
    workers_before = _team.stats()[1]
    for n_threads in (2, 3, 4):
        for y in (True, False):
            got = from_inputs(x, w, b, r, h, c, y=y, n_threads=n_threads)
            for name, a, e in zip("zhcy", got, one):
                if a is not None:
                    assert_same_bits(a, e, f"{name}, {n_threads} threads, y={y}")
    z = one[0].copy()  # the z entry (lstm_forward) on the team too
    z_in = np.empty_like(z)
    recurrent._recurrent._rows_matmul(x, w, b, z_in.reshape(t_len, 4 * u), False, 1)
    hh, cc, yy = h.copy(), c.copy(), np.empty((1, t_len, u), np.float32)
    recurrent.lstm_forward(z_in, r, None, None, TANH, 0.0, SIGMOID, 0.0, False, hh, cc, None, None, yy, 2)
    for name, a, e in zip("zhcy", (z_in, hh, cc, yy), one):
        assert_same_bits(a, e, f"lstm_forward {name}, 2 threads")
    if u >= 32:  # a worker runs parts (it may start too late for the first calls, or lack a core
        # for a while on a busy machine: up to 10 s of calls)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if _team.stats()[1] > workers_before:
                break
            got = from_inputs(x, w, b, r, h, c, n_threads=2)
            for name, a, e in zip("zhcy", got, one):
                assert_same_bits(a, e, f"{name}, 2 threads, repeated")
        assert _team.stats()[1] > workers_before


def row_inputs(u, k, t_len, seed):
    """One row's float32 (x, w, r, h, c) for lstm_forward_inputs: zero initial h, random c."""
    g = np.random.default_rng(seed)
    x = g.normal(size=(t_len, k)).astype(np.float32)
    w = (g.normal(size=(k, 4 * u)) * 0.3).astype(np.float32)
    r = (g.normal(size=(u, 4 * u)) * 0.3).astype(np.float32)
    return x, w, r, np.zeros((1, u), np.float32), g.normal(size=(1, u)).astype(np.float32)


def test_batch1_on_the_team_with_a_late_or_absent_helper(team_without_guard):
    """A worker that arrives 2 ms late (after its claim) finds the steps done by the caller, who
    never waits for a part nobody runs; NaN and inf in R (the unpacked-finite path) too."""
    x, w, r, h, c = row_inputs(96, 4, 20, seed=5)
    for r_case in ("finite", "nan"):
        if r_case == "nan":
            r[3, 5], r[70, 200] = np.nan, np.inf
        one = from_inputs(x, w, None, r, h, c)
        previous = _team.set_late_worker(0.002)
        try:
            for _ in range(3):
                got = from_inputs(x, w, None, r, h, c, n_threads=2)
                for name, a, e in zip("zhcy", got, one):
                    assert_same_bits(a, e, f"{name} with a late helper, R {r_case}")
        finally:
            _team.set_late_worker(previous)


def test_batch1_on_the_team_from_several_python_threads(team_without_guard):
    """Four Python threads run the multi-threaded batch-1 forward at once: one holds the team, the
    others run alone (dl_team.h), every result equal to one thread's."""
    x, w, r, h, c = row_inputs(128, 16, 30, seed=9)
    expected = from_inputs(x, w, None, r, h, c)

    def work():
        for _ in range(20):
            for name, a, e in zip("zhcy", from_inputs(x, w, None, r, h, c, n_threads=2), expected):
                assert_same_bits(a, e, f"{name} from a Python thread")

    run_in_threads(work, [()] * 4)
