"""Comparisons, logic, bitwise ops, floor_divide, mod and where (dlcore/ops/math.py) and the Tensor
operators that call them: values and dtypes against NumPy and, when keras is importable, against
keras.ops; hashing and membership semantics of Tensors with an elementwise ``==``."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import ops

rng = np.random.default_rng(5)
A = rng.integers(-4, 5, (3, 4)).astype(np.float32)
B = rng.integers(-4, 5, (4,)).astype(np.float32)

PREDICATES = {
    "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
    "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
    "logical_or": np.logical_or, "logical_xor": np.logical_xor,
}


@pytest.mark.parametrize("name", sorted(PREDICATES))
def test_predicates_return_boolean_tensors(name):
    out = getattr(ops, name)(A, B)
    assert isinstance(out, dl.Tensor) and out.dtype == np.bool_
    np.testing.assert_array_equal(out.numpy(), PREDICATES[name](A, B))
    np.testing.assert_array_equal(getattr(ops, name)(dl.Tensor(A), 0).numpy(), PREDICATES[name](A, 0))


def test_tensor_operators():
    t, u = dl.Tensor(A), dl.Tensor(B)
    for got, want in [(t == 2, A == 2), (t != u, A != B), (t < u, A < B), (t <= 1, A <= 1), (t > u, A > B),
                      (t >= 0, A >= 0), (2 == t, A == 2), (B > t, B > A)]:
        assert isinstance(got, dl.Tensor) and got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal((t // 3).numpy(), A // 3)
    np.testing.assert_array_equal((7 // u).numpy() if (B != 0).all() else (7 // (u + 10)).numpy(),
                                  7 // B if (B != 0).all() else 7 // (B + 10))
    np.testing.assert_array_equal((t % 3).numpy(), A % 3)
    np.testing.assert_array_equal((5.5 % (u * u + 1)).numpy(), 5.5 % (B * B + 1))
    assert (t // 3).dtype == np.float32 and (t % 3).dtype == np.float32
    i, j = dl.Tensor(np.array([5, 6, 7], np.int32)), dl.Tensor(np.array([3, 3, 1], np.int32))
    for got, want in [(i & j, [1, 2, 1]), (i | j, [7, 7, 7]), (i ^ j, [6, 5, 6]), (~i, [-6, -7, -8]),
                      (i // 2, [2, 3, 3]), (i % j, [2, 0, 0]), (6 & i, [4, 6, 6])]:
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got.numpy(), want)
    p, q = t > 0, t < 3
    for got, want in [(p & q, (A > 0) & (A < 3)), (p | q, (A > 0) | (A < 3)), (p ^ q, (A > 0) ^ (A < 3)),
                      (~p, ~(A > 0)), (True & q, A < 3)]:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got.numpy(), want)


def test_the_issues_attention_mask_by_hand():
    """ops.where(t == 2, ...) used to get a Python False and return a scalar."""
    t = dl.Tensor(np.array([[1, 2], [2, 3]]))
    out = ops.where(t == 2, 0.0, -1e9)
    assert out.shape == (2, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out.numpy(), [[-1e9, 0.0], [0.0, -1e9]])
    scores = dl.Tensor(rng.standard_normal((2, 3, 3)).astype(np.float32))
    causal = ops.tril(ops.ones((3, 3))) > 0
    masked = ops.where(causal, scores, -1e9)
    assert masked.shape == (2, 3, 3) and masked.dtype == np.float32
    assert (masked.numpy()[:, 0, 1:] == np.float32(-1e9)).all()


def test_hashing_and_membership_stay_by_identity():
    a, b = dl.Tensor(np.zeros(3)), dl.Tensor(np.zeros(3))
    assert hash(a) != hash(b) and len({a, b}) == 2
    d = {a: 1, b: 2}
    assert d[a] == 1 and d[b] == 2
    assert a in [a] and a in {a} and b not in {a}
    v = dl.Variable(np.zeros(2))
    assert v in {v: 0} and (v == None) is False and (v != None) is True  # noqa: E711
    with dl.GradientTape() as tape:  # the autograd keys by id(): unaffected
        tape.watch(a)
        y = ops.sum(ops.multiply(a, a) + b)
    assert tape.gradient(y, a).shape == (3,)


def test_where_forms_and_errors():
    cond = np.array([[True, False], [False, True]])
    idx = ops.where(cond)
    assert isinstance(idx, tuple) and len(idx) == 2 and idx[0].dtype == np.int64
    np.testing.assert_array_equal([i.numpy() for i in idx], np.nonzero(cond))
    np.testing.assert_array_equal(ops.where(dl.Tensor(cond), np.ones((2, 2)), 0).numpy(), cond.astype(float))
    assert ops.where(cond, 1, 0).dtype == np.int32
    with pytest.raises(ValueError, match="x1.*x2"):
        ops.where(cond, 1.0)


def test_bitwise_and_floor_divide_errors_and_values():
    with pytest.raises(TypeError, match="bitwise_and.*integer"):
        ops.bitwise_and(np.ones(2), 1)
    with pytest.raises(TypeError, match="bitwise_invert.*integer"):
        ops.bitwise_invert(np.ones(2))
    with pytest.raises(TypeError, match="bitwise_xor.*integer"):
        dl.Tensor(np.ones(2)) ^ dl.Tensor(np.ones(2))
    np.testing.assert_array_equal(ops.floor_divide(np.array([-7, 7]), 2).numpy(), [-4, 3])
    np.testing.assert_array_equal(ops.mod(np.array([-7.0, 7.0]), 3).numpy(), [2.0, 1.0])
    np.testing.assert_array_equal(ops.logical_not(np.array([0, 2])).numpy(), [True, False])
    assert ops.bitwise_not is ops.bitwise_invert


def test_comparisons_are_not_recorded():
    x = dl.Tensor(A.astype(np.float64))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.where(x > 0, x * 2.0, x * 3.0)) + ops.sum(ops.mod(x, 2.5))
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), np.where(A > 0, 2.0, 3.0) + 1.0)


# ---- keras.ops parity (values and dtypes) ------------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", sorted(PREDICATES) + ["floor_divide", "mod", "bitwise_and", "bitwise_or",
                                                       "bitwise_xor"])
def test_keras_parity(name):
    keras = _keras()
    ints = name.startswith("bitwise")
    a = A.astype(np.int32) if ints else A
    b = (B.astype(np.int32) if ints else np.where(B == 0, 3, B).astype(np.float32))
    ours, theirs = getattr(ops, name)(a, b), getattr(keras.ops, name)(a, b)
    np.testing.assert_allclose(ours.numpy(), keras.ops.convert_to_numpy(theirs))
    assert ours.dtype == keras.ops.convert_to_numpy(theirs).dtype


def test_keras_parity_where_and_logical_not():
    keras = _keras()
    cond = A > 0
    for args in [(cond, A, 0.0), (cond, 1.0, 0.0), (cond, 1, 0)]:
        ours, theirs = ops.where(*args), keras.ops.convert_to_numpy(keras.ops.where(*args))
        np.testing.assert_array_equal(ours.numpy(), theirs)
        assert ours.dtype == theirs.dtype, args
    for ours, theirs in zip(ops.where(cond), keras.ops.where(cond)):
        np.testing.assert_array_equal(ours.numpy(), keras.ops.convert_to_numpy(theirs))
    np.testing.assert_array_equal(ops.logical_not(A).numpy(), keras.ops.convert_to_numpy(keras.ops.logical_not(A)))


def test_add_reshape_cast_and_embedding_run_without_a_graph_node_when_nothing_records():
    """add, reshape, cast and embedding_lookup call their forward directly outside a tape: the
    recorded op's values, no graph node; under a tape they still differentiate."""
    x = dl.Tensor(rng.standard_normal((2, 3)).astype(np.float32))
    y = rng.standard_normal((1, 3)).astype(np.float32)
    table = rng.standard_normal((5, 3)).astype(np.float32)
    ids = np.array([[0, 4], [2, 2]])
    fast = [ops.add(x, y), ops.reshape(x, (3, -1)), ops.cast(x, "float64"), ops.embedding_lookup(table, ids)]
    for out in fast:
        assert isinstance(out, dl.Tensor) and out.node is None
    np.testing.assert_array_equal(fast[0].numpy(), x.numpy() + y)
    np.testing.assert_array_equal(fast[1].numpy(), x.numpy().reshape(3, 2))
    assert fast[2].numpy().dtype == np.float64
    np.testing.assert_array_equal(fast[3].numpy(), table[ids])
    with pytest.raises(ValueError, match="cannot reshape"):
        ops.reshape(x, (4, -1))

    w = dl.Variable(table)
    with dl.GradientTape() as tape:
        tape.watch(x)
        total = ops.sum(ops.cast(ops.reshape(ops.add(x, y), (6,)), "float64")) + ops.sum(ops.embedding_lookup(w, ids))
    gx, gw = tape.gradient(total, [x, w])
    np.testing.assert_array_equal(gx.numpy(), np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(gw.numpy(), np.array([1, 0, 2, 0, 1])[:, None] * np.ones((1, 3), np.float32))
