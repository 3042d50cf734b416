"""einsum, tril and triu (dlcore/ops/linalg.py): values against NumPy and float64
finite-difference gradients (check_op_gradients) of einsum over every kind of subscript: matrix
products, batched contractions, outer products, traces and diagonals, letters only one operand
sums, implicit output, ellipsis with broadcasting, three operands."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import ops
from harness import check_op_gradients

rng = np.random.default_rng(3)

EINSUM_CASES = {
    "matmul": ("ij,jk->ik", [(2, 3), (3, 4)]),
    "attention-scores": ("bqd,bkd->bqk", [(2, 3, 4), (2, 5, 4)]),
    "attention-heads": ("bqhd,bkhd->bhqk", [(2, 3, 2, 4), (2, 5, 2, 4)]),
    "einsum-dense": ("abc,cde->abde", [(2, 3, 4), (4, 2, 3)]),
    "outer": ("i,j->ij", [(3,), (4,)]),
    "trace": ("ii->", [(3, 3)]),
    "diagonal": ("ii->i", [(4, 4)]),
    "batch-diagonal-product": ("bii,bi->b", [(2, 3, 3), (2, 3)]),
    "sum-only-in-one": ("ij,k->i", [(3, 4), (2,)]),
    "transpose": ("ijk->kji", [(2, 3, 4)]),
    "implicit": ("ij,jk", [(2, 3), (3, 4)]),
    "ellipsis-broadcast": ("...ij,...jk->...ik", [(2, 1, 3, 4), (5, 4, 2)]),
    "three-operands": ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    "scalar-operand": (",ij->ij", [(), (2, 3)]),
}


@pytest.mark.parametrize("case_id", sorted(EINSUM_CASES))
def test_einsum_matches_numpy_and_gradients(case_id):
    subscripts, shapes = EINSUM_CASES[case_id]
    arrays = [rng.standard_normal(s) for s in shapes]
    np.testing.assert_allclose(ops.einsum(subscripts, *arrays).numpy(), np.einsum(subscripts, *arrays),
                               rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda *t: ops.einsum(subscripts, *t), arrays)


def test_einsum_dtypes_and_ints():
    a32 = rng.standard_normal((2, 3)).astype(np.float32)
    assert ops.einsum("ij,jk->ik", a32, a32.T).dtype == np.float32
    assert ops.einsum("ij,jk->ik", a32, a32.T.astype(np.float64)).dtype == np.float64
    ints = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(ops.einsum("ij->j", ints).numpy(), ints.sum(0))


def test_einsum_partial_needs():
    """Only the watched operand gets a gradient."""
    a, b = dl.Tensor(rng.standard_normal((2, 3))), dl.Tensor(rng.standard_normal((3, 4)))
    with dl.GradientTape() as tape:
        tape.watch(a)
        y = ops.sum(ops.einsum("ij,jk->ik", a, b))
    ga, gb = tape.gradient(y, [a, b])
    np.testing.assert_allclose(ga.numpy(), np.ones((2, 4)) @ b.numpy().T)
    assert gb is None


@pytest.mark.parametrize("subscripts,shapes,fragment", [
    ("ij,jk->ik", [(2, 3)], "operands"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "sizes"),
    ("ijk->ik", [(2, 3)], "subscripts for an operand"),
    ("ij->iz", [(2, 3)], "name no input axis"),
    ("i1->i", [(2, 3)], "letters"),
])
def test_einsum_errors(subscripts, shapes, fragment):
    with pytest.raises(ValueError, match=fragment):
        ops.einsum(subscripts, *[np.ones(s) for s in shapes])
    with pytest.raises(TypeError, match="string"):
        ops.einsum(3, np.ones(2))


@pytest.mark.parametrize("k", [-2, -1, 0, 1, 3])
def test_tril_triu_values(k):
    x = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(ops.tril(x, k).numpy(), np.tril(x, k))
    np.testing.assert_array_equal(ops.triu(x, k=k).numpy(), np.triu(x, k))
    check_op_gradients(lambda t: ops.tril(t, k), [x])
    check_op_gradients(lambda t: ops.triu(t, k), [x])


def test_tril_triu_errors_and_causal_mask():
    with pytest.raises(ValueError, match="rank >= 2"):
        ops.tril(np.ones(3))
    with pytest.raises(TypeError, match="integer"):
        ops.triu(np.ones((2, 2)), 0.5)
    mask = ops.tril(ops.ones((3, 3), dtype="bool"))  # the causal mask attention builds
    assert mask.dtype == np.bool_ and mask.numpy().sum() == 6


# ---- keras.ops parity: values and gradients (skipped without keras) ---------------------------------
def _keras():
    import os
    import sys

    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("case_id", ["attention-scores", "attention-heads", "einsum-dense", "diagonal", "implicit",
                                     "ellipsis-broadcast", "three-operands"])
def test_einsum_keras_parity_values_and_gradients(case_id):
    _keras()
    import tensorflow as tf

    subscripts, shapes = EINSUM_CASES[case_id]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    r = None
    tf_in = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tf_in:
            tape.watch(t)
        y_tf = __import__("keras").ops.einsum(subscripts, *tf_in)
        r = rng.standard_normal(y_tf.shape).astype(np.float32)
        loss_tf = tf.reduce_sum(y_tf * r)
    theirs = tape.gradient(loss_tf, tf_in)
    ours_in = [dl.Tensor(a) for a in arrays]
    with dl.GradientTape() as dtape:
        for t in ours_in:
            dtape.watch(t)
        y = ops.einsum(subscripts, *ours_in)
        loss = ops.sum(ops.multiply(y, r))
    np.testing.assert_allclose(y.numpy(), np.asarray(y_tf), rtol=1e-5, atol=1e-5)
    for g, t in zip(dtape.gradient(loss, ours_in), theirs):
        np.testing.assert_allclose(g.numpy(), np.asarray(t), rtol=1e-5, atol=1e-5)


def test_tril_triu_keras_parity():
    keras = _keras()
    x = rng.standard_normal((2, 4, 5)).astype(np.float32)
    for k in (-1, 0, 2):
        np.testing.assert_array_equal(ops.tril(x, k).numpy(), keras.ops.convert_to_numpy(keras.ops.tril(x, k)))
        np.testing.assert_array_equal(ops.triu(x, k).numpy(), keras.ops.convert_to_numpy(keras.ops.triu(x, k)))
