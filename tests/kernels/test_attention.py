"""Fused attention kernels against the NumPy reference (tests/reference/attention.py): forward
output and log-sum-exp, backward dq/dk/dv, with bias, boolean mask, causal, grouped-query heads,
dropout, several query/key tiles, float32/float64; 1 and 2 threads bit-identical."""
import numpy as np
import pytest

from dlcore.kernels import attention as ka
from reference import attention as ref

CASES = [  # B, T, S, H, Hk, D, Dv, bias, mask, causal, rate
    (2, 9, 7, 2, 2, 8, 8, False, False, False, 0.0),
    (2, 130, 100, 4, 2, 16, 12, True, True, False, 0.0),
    (1, 150, 150, 2, 1, 8, 8, False, False, True, 0.0),
    (1, 150, 200, 2, 2, 8, 8, True, False, True, 0.0),
    (1, 70, 64, 2, 2, 8, 8, False, True, True, 0.0),
    (2, 65, 80, 2, 2, 8, 8, False, False, True, 0.3),
    (1, 33, 140, 4, 4, 4, 6, True, True, False, 0.5),
    (1, 45, 77, 2, 1, 20, 13, False, False, False, 0.0),  # transposes: 8 x 8 blocks and remainders
]


def _run(case, dtype, threads, seed=0):
    B, T, S, H, Hk, D, Dv, has_bias, has_mask, causal, rate = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, T, H, D)).astype(dtype)
    k = rng.standard_normal((B, S, Hk, D)).astype(dtype)
    v = rng.standard_normal((B, S, Hk, Dv)).astype(dtype)
    bias = rng.standard_normal((1, H, T, S)).astype(dtype) if has_bias else None
    mask = None
    if has_mask:
        mask = rng.random((B, 1, T, S)) > 0.3
        mask[..., 0] = True  # every row keeps a key: the causal tile skip is exact (see the op)
    do = rng.standard_normal((B, T, H, Dv)).astype(dtype)
    full = (B, H, T, S)
    bv = np.broadcast_to(bias, full) if has_bias else np.zeros((1, 1, 1, 1), dtype)
    mv = np.broadcast_to(mask, full).view(np.uint8) if has_mask else np.zeros((1, 1, 1, 1), np.uint8)
    args = (q, k, v, bv, int(has_bias), mv, int(has_mask), 1 / np.sqrt(D), int(causal), rate, 123)
    out, lse = np.full((B, T, H, Dv), np.nan, dtype), np.full((B, H, T), np.nan)
    ka.attention_forward(*args, out, lse, threads)
    grads = [np.full_like(x, np.nan) for x in (q, k, v)]
    ka.attention_backward(*args, out, lse, do, *grads, threads)
    inputs64 = [x.astype(np.float64) for x in (q, k, v)]
    b64 = None if bias is None else bias.astype(np.float64)
    expected = ref.attention(*inputs64, b64, mask, 1 / np.sqrt(D), causal, rate, 123)
    expected_grads = ref.attention_backward(*inputs64, do.astype(np.float64), b64, mask, 1 / np.sqrt(D), causal,
                                            rate, 123)[:3]
    return [out, lse, *grads], [expected[0], expected[2], *expected_grads]


@pytest.fixture(params=[0, 1], ids=["avx512", "baseline"])
def isa(request):
    """Runs a test with each float32 path the CPU has (set_isa), then restores the default."""
    old = ka.set_isa(request.param)
    if old < 0:
        pytest.skip("the CPU or the build lacks this ISA")
    yield request.param
    ka.set_isa(old)


def test_kernel_table():
    assert set(ka.KERNELS) == {"attention_forward", "attention_backward", "attention_dropout_keep"}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_against_reference(case, dtype, isa):
    actual, expected = _run(case, dtype, 1)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    for name, a, e in zip(("out", "lse", "dq", "dk", "dv"), actual, expected):
        scale = max(1.0, np.abs(e).max())
        np.testing.assert_allclose(a / scale, e / scale, err_msg=name, **tol)


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]])
def test_threads_bit_identical(case, isa):
    one, _ = _run(case, np.float32, 1)
    two, _ = _run(case, np.float32, 2)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_dropout_keep_matches_reference_hash():
    keep = np.empty((2, 3, 5, 7), np.uint8)
    ka.attention_dropout_keep(2, 3, 5, 7, 0.3, 99, keep)
    np.testing.assert_array_equal(keep.astype(bool), ref.dropout_keep(2, 3, 5, 7, 0.3, 99))
    big = np.empty((1, 1, 256, 256), np.uint8)
    ka.attention_dropout_keep(1, 1, 256, 256, 0.3, 7, big)
    assert abs(big.mean() - 0.7) < 0.01


def _forward(case, dtype, threads, seed=0):
    B, T, S, H, Hk, D, Dv = case
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(dtype) for s in ((B, T, H, D), (B, S, Hk, D), (B, S, Hk, Dv)))
    args = (q, k, v, np.zeros((1, 1, 1, 1), dtype), 0, np.zeros((1, 1, 1, 1), np.uint8), 0, 1 / np.sqrt(D), 0, 0.0, 1)
    out, lse = np.full((B, T, H, Dv), np.nan, dtype), np.full((B, H, T), np.nan)
    ka.attention_forward(*args, out, lse, threads)
    return out, lse


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_batch1_runs_on_the_team(dtype):
    """Batch-1 sizes (under TEAM_MAX_MACS) split their query tiles over the thread team, not
    OpenMP, with the bits of one thread."""
    from dlcore.kernels import _config, _team

    case = (1, 150, 150, 4, 2, 16, 16)
    assert 150 * 150 * 4 * 32 < _config.TEAM_MAX_MACS
    one = _forward(case, dtype, 1)
    guard = _team.set_load_guard(False)  # else a loaded host may run the job alone
    try:
        jobs = _team.stats()[0]
        two = _forward(case, dtype, 2)
        assert _team.stats()[0] == jobs + 1  # one job shared with the workers
    finally:
        _team.set_load_guard(guard)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_forward_large_on_openmp_same_bits():
    """Above TEAM_MAX_MACS the forward takes OpenMP (the team is not used), same bits."""
    from dlcore.kernels import _config, _team

    case = (1, 520, 520, 2, 2, 64, 64)
    assert 520 * 520 * 2 * 128 >= _config.TEAM_MAX_MACS
    one = _forward(case, np.float32, 1)
    jobs = _team.stats()[0]
    two = _forward(case, np.float32, 2)
    assert _team.stats()[0] == jobs
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
