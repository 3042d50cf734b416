"""Embedding kernels against the NumPy reference (tests/reference/embedding.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import embedding as ref  # noqa: E402

from dlcore.kernels import embedding  # noqa: E402

DTYPES = (np.float32, np.float64)


def rng(seed):
    return np.random.default_rng(seed)


def test_kernel_table():
    assert set(embedding.KERNELS) == {"embedding_forward", "embedding_backward"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_embedding_forward(dtype, n_threads):
    table = rng(0).normal(size=(11, 5)).astype(dtype)
    ids = rng(1).integers(0, 11, size=37).astype(np.int64)
    y = np.empty((37, 5), dtype)
    embedding.embedding_forward(ids, table, y, n_threads)
    np.testing.assert_array_equal(y, ref.embedding(ids, table).astype(dtype))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_backward_scatter_add(dtype, index_dtype):
    ids = np.array([3, 1, 3, 3, 0, 1], dtype=index_dtype)
    dy = rng(2).normal(size=(6, 4)).astype(dtype)
    dw = np.zeros((5, 4), dtype)
    embedding.embedding_backward(ids, dy, dw)
    np.testing.assert_allclose(dw, ref.embedding_grad(ids, dy, 5), rtol=1e-6)
    again = np.zeros((5, 4), dtype)
    embedding.embedding_backward(ids, dy, again)
    np.testing.assert_array_equal(dw, again)  # deterministic: same order every time


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_embedding_forward_reads_int32_and_int64_ids_and_refuses_out_of_range(index_dtype):
    table = rng(4).normal(size=(6, 3)).astype(np.float32)
    ids = np.array([5, 0, 3, 3], dtype=index_dtype)
    y = np.empty((4, 3), np.float32)
    embedding.embedding_forward(ids, table, y, 1)
    np.testing.assert_array_equal(y, ref.embedding(ids.astype(np.int64), table))
    for bad in (6, -1):
        y[:] = 7.0
        with pytest.raises(ValueError, match=rf"\[0, 6\), received {bad} at position 2"):
            embedding.embedding_forward(np.array([1, 2, bad, 0], dtype=index_dtype), table, y, 2)
        assert np.all(y == 7.0)  # nothing written
