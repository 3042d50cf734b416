"""kernels/_team.pyx + dl_team.h: the work-sharing thread team of the batch-1 products, and the
own GEMV (dl_sgemv.h) that runs on it."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dlcore import kernels
from dlcore.kernels import _config, _gemm, _team
from harness import run_in_threads, stalled_team_workers

ISAS = [p for p in _gemm.AVAILABLE_PATHS if p != "blas"]


@pytest.fixture(autouse=True)
def no_load_guard():
    """The load guard off: on a loaded host it would run some of the counted jobs alone (its own
    test turns it back on)."""
    previous = _team.set_load_guard(False)
    yield
    _team.set_load_guard(previous)


def _expected(rows, width):
    return 1000.0 * np.arange(rows)[:, None] + np.arange(width)[None, :]


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_every_chunk_runs_once(n_threads):
    out = np.full((37, 5), -1.0)
    used = _team.fill_test(out, n_threads, 200)
    np.testing.assert_array_equal(out, _expected(37, 5))
    assert 1 <= used <= n_threads


def test_workers_share_chunks_and_stop_at_one_thread():
    _team.resize(2)
    try:
        before = _team.stats()
        out = np.zeros((64, 2))
        for _ in range(50):
            _team.fill_test(out, 2, 20000)
        np.testing.assert_array_equal(out, _expected(64, 2))
        jobs, by_workers = _team.stats()
        assert jobs - before[0] == 50
        assert _team.workers() == 1
    finally:
        _team.resize(1)
    assert _team.workers() == 0


def test_the_caller_claims_from_the_front_and_workers_from_the_back():
    """The caller's chunks are a prefix and the workers' a suffix of every job (so on two threads
    each runs the same columns of a batch-1 product at every call); with one-ended claims
    (set_workers_from_front) every chunk still runs once."""
    _team.resize(2)
    try:
        shared = 0
        for _ in range(200):
            out = np.full((16, 2), -1.0)
            owner = np.full(16, 7, np.uint8)
            _team.fill_test(out, 2, 20000, owner)
            np.testing.assert_array_equal(out, _expected(16, 2))
            assert set(owner.tolist()) <= {0, 1}
            caller = np.flatnonzero(owner == 0)
            assert caller.size and caller[0] == 0 and np.array_equal(caller, np.arange(caller.size)), owner
            shared += owner.any()
            if shared >= 5:
                break
        assert shared >= 5  # the worker took part in some of the jobs
        previous = _team.set_workers_from_front(True)
        try:
            for _ in range(20):
                out = np.full((16, 2), -1.0)
                _team.fill_test(out, 2, 2000, np.zeros(16, np.uint8))
                np.testing.assert_array_equal(out, _expected(16, 2))
        finally:
            _team.set_workers_from_front(previous)
        with pytest.raises(ValueError, match="owner"):
            _team.fill_test(np.zeros((4, 2)), 2, 0, np.zeros(3, np.uint8))
    finally:
        _team.resize(1)


def test_set_num_threads_stops_workers_of_another_count():
    previous = kernels.num_threads()
    try:
        _team.fill_test(np.zeros((8, 1)), 2, 0)
        assert _team.workers() == 1
        kernels.set_num_threads(1)
        assert _team.workers() == 0  # no worker threads at all for one thread
        _team.fill_test(np.zeros((8, 1)), 1, 0)
        assert _team.workers() == 0
        kernels.set_num_threads(3)
        out = np.zeros((9, 3))
        _team.fill_test(out, 3, 100)
        np.testing.assert_array_equal(out, _expected(9, 3))
        assert _team.workers() == 2
    finally:
        kernels.set_num_threads(previous)


def test_a_late_worker_never_runs_a_stale_job():
    """Workers sleep 2 ms after each claim: the caller runs the rest, waits only for claimed
    chunks, and the next jobs (new generations) are never touched by the late worker."""
    previous = _team.set_late_worker(0.002)
    try:
        for rows in (3, 17, 2, 40):
            out = np.full((rows, 3), -1.0)
            _team.fill_test(out, 2, 0)
            np.testing.assert_array_equal(out, _expected(rows, 3))
    finally:
        _team.set_late_worker(previous)


def test_load_guard_goes_solo_when_workers_stall_and_probes_again():
    """Workers that hold their chunk 3 ms (as when the OS deschedules them mid-chunk) make the
    shared jobs cost more than they give: the guard runs the next jobs on the caller alone (same
    results), and a change of the thread count starts it afresh."""
    with stalled_team_workers(0.003) as solo:
        for _ in range(200):  # until a worker got a chunk (a new worker may start late)
            out = np.full((8, 2), -1.0)
            _team.fill_test(out, 2, 20000)
            np.testing.assert_array_equal(out, _expected(8, 2))
            if _team.solo_jobs() > solo + 2:
                break
        assert _team.solo_jobs() > solo + 2
    _team.set_load_guard(True)
    jobs = _team.stats()[0]
    _team.fill_test(np.zeros((8, 2)), 2, 2000)  # after a resize the team is tried again
    assert _team.stats()[0] == jobs + 1
    _team.resize(1)


def test_guard_solo_runs_give_the_same_bits():
    """When the load guard runs a GEMV alone it calls its serial form (all columns in one call,
    wider tiles): the same bits as one thread and as the shared runs."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(300).astype(np.float32)
    w = rng.standard_normal((300, 700)).astype(np.float32)
    b = rng.standard_normal(700).astype(np.float32)
    ref = np.empty(700, np.float32)
    _gemm.gemv(x, w, b, True, ref, 1)
    with stalled_team_workers(0.002) as solo:
        for _ in range(40):
            y = np.full(700, np.nan, np.float32)
            _gemm.gemv(x, w, b, True, y, 2)
            np.testing.assert_array_equal(y, ref)
        assert _team.solo_jobs() > solo


def test_two_python_threads_at_once():
    """A caller that finds the team busy runs its chunks alone: both results complete."""

    def work(seed):
        rng = np.random.default_rng(seed)
        x = rng.standard_normal(300).astype(np.float32)
        w = rng.standard_normal((300, 520)).astype(np.float32)
        ref = np.empty(520, np.float32)
        _gemm.gemv(x, w, None, False, ref, 1)
        y = np.empty(520, np.float32)
        for i in range(300):
            out = np.full((11, 2), -1.0)
            _team.fill_test(out, 2, 50)
            _gemm.gemv(x, w, None, False, y, 2)
            assert np.array_equal(out, _expected(11, 2)) and np.array_equal(y, ref), (seed, i)

    run_in_threads(work, [(s,) for s in range(2)])


def test_callers_that_meet_run_alone_for_a_while():
    """Two Python threads giving the team jobs at once: after one finds it busy, both run their
    jobs alone (a core each) instead of one sharing the team with the other's core; the window
    closes (forget_callers, or 2 ms) and a lone caller shares again."""
    used = {0: [], 1: []}

    def work(i):
        out = np.zeros((8, 4))
        for _ in range(300):
            used[i].append(_team.fill_test(out, 2, 20000))
            assert np.array_equal(out, _expected(8, 4))

    run_in_threads(work, [(0,), (1,)])
    shared = sum(u == 2 for u in used[0] + used[1])
    assert shared < 0.3 * 600, shared  # taken by turns, about half the jobs were shared
    _team.forget_callers()
    assert _team.fill_test(np.zeros((8, 4)), 2, 20000) == 2


def test_team_after_fork():
    """The child of a fork (after the parent's workers ran) starts workers of its own."""
    code = (
        "import os, numpy as np\n"
        "from dlcore.kernels import _team\n"
        "out = np.zeros((16, 2)); _team.fill_test(out, 2, 1000)\n"
        "assert _team.workers() == 1\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = _team.workers() == 0\n"
        "    o = np.zeros((16, 2)); _team.fill_test(o, 2, 1000)\n"
        "    ok = ok and _team.workers() == 1 and o[15, 1] == 15001.0\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.WEXITSTATUS(status))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0"]


def test_resize_rejects_bad_counts():
    with pytest.raises(ValueError, match="thread count >= 1"):
        _team.resize(0)


def test_team_threads_for_macs():
    previous = kernels.num_threads()
    try:
        kernels.set_num_threads(2)
        assert kernels.team_threads_for_macs(_config.TEAM_MIN_MACS - 1) == 1
        assert kernels.team_threads_for_macs(_config.TEAM_MIN_MACS) == 2
        assert isinstance(kernels.team_threads_for_macs(1 << 30), int)
        kernels.set_num_threads(1)
        assert kernels.team_threads_for_macs(1 << 20) == 1
    finally:
        kernels.set_num_threads(previous)


# ---- the GEMV ---------------------------------------------------------------------------------

@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("k, n", [(1, 1), (1, 17), (5, 3), (37, 15), (64, 129), (300, 250), (784, 512),
                                  (256, 10)])
def test_gemv_matches_numpy_on_every_isa(isa, k, n):
    rng = np.random.default_rng(k * 1000 + n)
    x = rng.standard_normal(k).astype(np.float32)
    w = rng.standard_normal((k, n)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    ref = x.astype(np.float64) @ w.astype(np.float64) + b
    y1 = np.empty(n, np.float32)
    _gemm.gemv(x, w, b, False, y1, 1, isa)
    np.testing.assert_allclose(y1, ref, rtol=1e-4, atol=1e-4 * np.sqrt(k))
    y2 = np.empty(n, np.float32)
    _gemm.gemv(x, w, b, True, y2, 2, isa)
    np.testing.assert_array_equal(y2, np.maximum(y1, 0))  # relu fused; bit-identical at 2 threads
    y3 = np.empty(n, np.float32)
    _gemm.gemv(x, w, None, False, y3, 3, isa)
    np.testing.assert_allclose(y3, ref - b, rtol=1e-4, atol=1e-4 * np.sqrt(k))


def test_gemv_relu_keeps_nan_and_k_zero():
    x = np.array([np.nan, 1.0], np.float32)
    w = np.ones((2, 3), np.float32)
    y = np.empty(3, np.float32)
    _gemm.gemv(x, w, None, True, y)
    assert np.isnan(y).all()
    y0 = np.empty(4, np.float32)
    _gemm.gemv(np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.array([1, -2, 3, -4], np.float32),
               True, y0)
    np.testing.assert_array_equal(y0, [1, 0, 3, 0])


def test_gemv_rejects_bad_shapes_and_isa():
    with pytest.raises(ValueError, match="gemv: expected x"):
        _gemm.gemv(np.zeros(3, np.float32), np.zeros((4, 2), np.float32), None, False, np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="gemv: isa expected"):
        _gemm.gemv(np.zeros(4, np.float32), np.zeros((4, 2), np.float32), None, False, np.zeros(2, np.float32),
                   1, "avx1024")


@pytest.mark.parametrize("activation", [0, 1, 2])
def test_batch1_dense_forward_runs_the_gemv_bit_identical_for_any_threads(activation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 515)).astype(np.float32)
    w = rng.standard_normal((515, 333)).astype(np.float32)
    b = rng.standard_normal(333).astype(np.float32)
    outs = []
    for threads in (1, 2, 4):
        y = np.empty((1, 333), np.float32)
        _gemm.dense_forward(x, w, b, activation, 0.0, y, threads)
        outs.append(y)
    for y in outs[1:]:
        np.testing.assert_array_equal(y, outs[0])
    z = x.astype(np.float64) @ w + b
    ref = {0: z, 1: np.maximum(z, 0), 2: 1 / (1 + np.exp(-z))}[activation]
    np.testing.assert_allclose(outs[0], ref, rtol=1e-4, atol=1e-3)
    y_gemv = np.empty(333, np.float32)
    _gemm.gemv(x[0], w, b, activation == 1, y_gemv, 1)
    if activation < 2:
        np.testing.assert_array_equal(outs[0][0], y_gemv)  # the GEMV's bits, not BLAS's


def test_one_row_matmul_takes_the_gemv_with_strided_rows():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((70, 1)).astype(np.float32)  # trans_a: the row is a column of a
    b = rng.standard_normal((70, 45)).astype(np.float32)
    out1, out2 = np.empty((1, 45), np.float32), np.empty((1, 45), np.float32)
    _gemm.matmul(a, b, out1, True, False, 1.0, 0.0, 1)
    _gemm.matmul(np.ascontiguousarray(a.T), b, out2, False, False, 1.0, 0.0, 2)
    np.testing.assert_array_equal(out1, out2)
    y = np.empty(45, np.float32)
    _gemm.gemv(np.ascontiguousarray(a[:, 0]), b, None, False, y)
    np.testing.assert_array_equal(out1[0], y)
    np.testing.assert_allclose(out1, a.T.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("path", ISAS)
def test_small_own_gemm_on_the_team_is_bit_identical(path):
    rng = np.random.default_rng(5)
    previous = _gemm.set_path(path)
    try:
        for m, n, k in [(3, 200, 100), (40, 64, 50), (100, 96, 33)]:
            a = rng.standard_normal((m, k)).astype(np.float32)
            b = rng.standard_normal((k, n)).astype(np.float32)
            outs = []
            for threads in (1, 2, 3):
                out = np.empty((m, n), np.float32)
                _gemm.matmul(a, b, out, False, False, 1.0, 0.0, threads)
                outs.append(out)
            for out in outs[1:]:
                np.testing.assert_array_equal(out, outs[0])
            np.testing.assert_allclose(outs[0], a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    finally:
        _gemm.set_path(previous)


def test_team_range_from_the_environment():
    code = "from dlcore.kernels import _config; print(_config.TEAM_MIN_MACS, _config.TEAM_MAX_MACS)"
    env = dict(os.environ, DLCORE_TEAM_MIN_MACS="1000", DLCORE_TEAM_MAX_MACS="5000000")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.split() == ["1000", "5000000"], out.stderr
    assert _config.TEAM_MIN_MACS <= _config.PARALLEL_MIN_MACS <= _config.TEAM_MAX_MACS


def test_own_products_in_the_team_range_take_every_thread():
    """Whatever the tuning cached (one thread, measured on a loaded host), an own-path product
    under TEAM_MAX_MACS gets every thread: the team's load guard decides at run time."""
    for shape in ((128, 512, 128), (64, 256, 300), (30, 700, 200)):
        path, threads = _gemm.choose_path(*shape, n_threads=2)
        assert threads == 2 if path != "blas" else threads in (1, 2), (shape, path, threads)
