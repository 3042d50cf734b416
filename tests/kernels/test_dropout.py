"""Dropout kernels (dlcore.kernels.dropout) against the reference (tests/reference/dropout.py):
mask, scaling, backward, determinism."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import dropout as ref  # noqa: E402

from dlcore.kernels import _config  # noqa: E402
from dlcore.kernels import dropout as K  # noqa: E402

DTYPES = [np.float32, np.float64]


def _run_forward(x, u, rate):
    y = np.empty_like(x)
    mask = np.empty(x.shape, dtype=np.uint8)
    K.dropout_forward(x, u, rate, y, mask)
    return y, mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9])
def test_forward_mask_and_scaling(rate, dtype):
    rng = np.random.default_rng(0)
    n = 100_003
    x = rng.normal(size=n).astype(dtype)
    u = rng.random(n, dtype=dtype)
    y, mask = _run_forward(x, u, rate)
    y_ref, mask_ref = ref.dropout(x, u, rate)
    np.testing.assert_array_equal(mask, mask_ref)
    assert abs(mask.mean() - (1.0 - rate)) < 0.01
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_allclose(y, x * mask / (1.0 - rate), rtol=1e-6 if dtype == np.float32 else 1e-14)
    assert y.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward(dtype):
    rng = np.random.default_rng(1)
    n, rate = 1000, 0.3
    x = rng.normal(size=n).astype(dtype)
    u = rng.random(n, dtype=dtype)
    _, mask = _run_forward(x, u, rate)
    dy = rng.normal(size=n).astype(dtype)
    dx = np.empty_like(dy)
    K.dropout_backward(dy, mask, rate, dx)
    np.testing.assert_array_equal(dx, ref.dropout_backward(dy, mask, rate))
    # The forward is linear in x: y = J x with J = diag(mask) / (1 - rate), and dx = J^T dy.
    y, _ = _run_forward(dy, u, rate)
    np.testing.assert_array_equal(dx, y)


def test_deterministic_for_given_u_and_thread_count():
    rng = np.random.default_rng(2)
    n, rate = 200_000, 0.25
    x = rng.normal(size=n).astype(np.float32)
    u = rng.random(n, dtype=np.float32)
    y1, m1 = _run_forward(x, u, rate)
    y2, m2 = _run_forward(x, u.copy(), rate)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(m1, m2)
    before = _config.num_threads()
    try:
        _config.set_num_threads(1)
        y3, m3 = _run_forward(x, u, rate)
    finally:
        _config.set_num_threads(before)
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(m1, m3)


def test_empty_and_table():
    x = np.empty(0, dtype=np.float32)
    y, mask = _run_forward(x, x.copy(), 0.5)
    assert y.size == 0 and mask.size == 0
    assert set(K.KERNELS) == {"dropout_forward", "dropout_backward", "philox_uniform", "philox_uniform_drawn"}
    for name, fn in K.KERNELS.items():
        assert fn.__doc__ and ": (N,)" in fn.__doc__


def test_philox_reference_matches_the_random123_answers():
    # Random123's known-answer vectors for philox4x32_10 (counter, key) -> four words
    assert ref.philox4x32_10((0, 0, 0, 0), (0, 0)) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert ref.philox4x32_10((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                                       0x6D5451FD]


@pytest.mark.parametrize("dtype", DTYPES)
def test_philox_uniform_equals_the_reference_and_is_uniform(dtype):
    u = np.full(300, -1.0, dtype=dtype)
    K.philox_uniform(12345, 2 ** 32 - 1, u)
    np.testing.assert_array_equal(u, ref.philox_uniform(12345, 2 ** 32 - 1, 300, dtype))
    big = np.empty(100_000, dtype=dtype)
    K.philox_uniform(7, 8, big)
    assert 0.0 <= big.min() and big.max() < 1.0
    assert abs(big.mean() - 0.5) < 0.005 and abs(big.var() - 1 / 12) < 0.002
    other = np.empty(100_000, dtype=dtype)
    K.philox_uniform(7, 9, other)
    assert np.mean(big == other) < 0.01  # another key, another draw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 301, 302, 303])
def test_philox_uniform_partial_last_block_equals_the_reference(dtype, n):
    """Sizes that end inside a Philox block: the whole blocks and the partial one, nothing past n."""
    u = np.full(n + 4, -1.0, dtype=dtype)
    K.philox_uniform(99, 3, u[:n])
    np.testing.assert_array_equal(u[:n], ref.philox_uniform(99, 3, n, dtype))
    assert np.all(u[n:] == -1.0)


def test_philox_uniform_does_not_depend_on_the_thread_count():
    a, b = np.empty(50_000, np.float32), np.empty(50_000, np.float32)
    before = _config.num_threads()
    try:
        _config.set_num_threads(1)
        K.philox_uniform(3, 4, a)
        _config.set_num_threads(2)
        K.philox_uniform(3, 4, b)
    finally:
        _config.set_num_threads(before)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("isa", [0, 1])
def test_philox_uniform_vector_and_scalar_rounds_equal_the_reference(isa):
    """The 16-block AVX-512 rounds and the scalar rounds (dl_philox.h): the reference's bits
    across a vector step, its tail blocks and a partial block (141 = 2 x 64 + 13)."""
    from dlcore.kernels import _dropout

    previous = _dropout.set_isa(isa)
    if previous == -1:
        pytest.skip("no AVX-512 on this CPU")
    try:
        u = np.empty(141, np.float32)
        K.philox_uniform(0xDEADBEEF, 17, u)
        np.testing.assert_array_equal(u, ref.philox_uniform(0xDEADBEEF, 17, 141, np.float32))
    finally:
        _dropout.set_isa(previous)


def test_philox_uniform_paths_agree_across_openmp_chunks():
    """Several OpenMP chunks of whole blocks plus a partial one: the vector and scalar paths
    and one and two threads give the same draw."""
    from dlcore.kernels import _dropout

    n = 4 * _dropout.CHUNK_BLOCKS * 3 + 4 * 21 + 3
    draws = []
    before = _config.num_threads()
    try:
        for isa in (0, 1):
            previous = _dropout.set_isa(isa)
            for threads in (1, 2):
                _config.set_num_threads(threads)
                u = np.empty(n, np.float32)
                K.philox_uniform(5, 6, u)
                draws.append(u)
            if previous != -1:
                _dropout.set_isa(previous)
    finally:
        _config.set_num_threads(before)
    for u in draws[1:]:
        np.testing.assert_array_equal(u, draws[0])
    tail = ref.philox_uniform(5, 6, n, np.float32)[-90:]
    np.testing.assert_array_equal(draws[0][-90:], tail)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_philox_uniform_drawn_draws_its_key_at_each_call(dtype):
    keys = iter([(12345, 2 ** 32 - 1), (7, 8)])
    u1, u2 = np.empty(300, dtype), np.empty(300, dtype)
    K.philox_uniform_drawn(lambda: next(keys), u1)
    K.philox_uniform_drawn(lambda: next(keys), u2)
    np.testing.assert_array_equal(u1, ref.philox_uniform(12345, 2 ** 32 - 1, 300, dtype))
    np.testing.assert_array_equal(u2, ref.philox_uniform(7, 8, 300, dtype))
