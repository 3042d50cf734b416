"""Normalization ops. Batch normalization: forward against the NumPy reference and float64 finite-difference
gradients (training and inference forms, every output, other axes, batch 1)."""
import numpy as np
import pytest

from dlcore import ops
from harness import check_op_gradients
from reference import normalization as ref

rng = np.random.default_rng(0)
SHAPES_AXES = [((6, 3), -1), ((2, 3, 4, 3), -1), ((1, 3, 3, 2), -1), ((2, 3, 4, 5), 1), ((3, 4, 2), 0)]


def _param(shape, axis, low=0.5, high=1.5):
    return rng.uniform(low, high, shape[axis])


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_training_form(shape, axis):
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = _param(shape, axis), rng.standard_normal(shape[axis])
    y, mean, var = ops.batch_normalization_training(x, gamma, beta, axis=axis, epsilon=1e-3)
    y_ref, mean_ref, var_ref = ref.batch_training(x, gamma, beta, 1e-3, axis)
    np.testing.assert_allclose(y.value, y_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mean.value, mean_ref, rtol=1e-12)
    np.testing.assert_allclose(var.value, var_ref, rtol=1e-12)
    check_op_gradients(lambda t, g, b: ops.batch_normalization_training(t, g, b, axis=axis)[0], [x, gamma, beta])


def test_training_form_all_outputs_and_no_params():
    x = rng.standard_normal((5, 4))
    check_op_gradients(lambda t: ops.batch_normalization_training(t, axis=-1), [x])  # y, mean and var
    y = ops.batch_normalization_training(x)[0].value
    np.testing.assert_allclose(y, ref.batch_training(x, np.ones(4), np.zeros(4), 1e-3)[0], rtol=1e-12)


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_inference_form(shape, axis):
    x = rng.standard_normal(shape)
    c = shape[axis]
    mean, var, beta, gamma = rng.standard_normal(c), _param(shape, axis), rng.standard_normal(c), _param(shape, axis)
    y = ops.batch_normalization(x.astype("float32"), mean, var, axis, offset=beta, scale=gamma, epsilon=1e-3)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.value, ref.batch_inference(x, gamma, beta, mean, var, 1e-3, axis), rtol=1e-5, atol=1e-5)
    check_op_gradients(lambda t, m, v, b, g: ops.batch_normalization(t, m, v, axis, offset=b, scale=g),
                       [x, mean, var, beta, gamma])


def test_inference_form_keepdims_statistics():
    x = rng.standard_normal((2, 3, 4))
    mean, var = ops.moments(x, axes=(0, 2), keepdims=True)
    assert mean.shape == (1, 3, 1)
    y = ops.batch_normalization(x, mean, var, axis=1)
    np.testing.assert_allclose(y.value, ref.batch_training(x, np.ones(3), np.zeros(3), 1e-3, axis=1)[0], rtol=1e-10)
    check_op_gradients(lambda t: ops.batch_normalization(t, *ops.moments(t, axes=(0, 2)), axis=1), [x])


def test_errors():
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        ops.batch_normalization(x, np.zeros(3), np.ones(3), axis=2)
    with pytest.raises(ValueError, match="one value per channel"):
        ops.batch_normalization(x, np.zeros(4), np.ones(3), axis=-1)
    with pytest.raises(ValueError, match="empty"):
        ops.batch_normalization_training(np.zeros((0, 3)))


# ---- layer and RMS normalization ops ----------------------------------------------------------------
def test_layer_and_rms_normalization_values():
    x = rng.standard_normal((3, 4, 5)).astype(np.float32) * 3 + 1
    g, b = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(ops.layer_normalization(x, g, b).numpy(), (x - mean) / np.sqrt(var + 1e-7) * g + b,
                               rtol=1e-5, atol=1e-5)
    ms = (x.astype(np.float64) ** 2).mean(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(ops.rms_normalization(x, axis=[0, 2], epsilon=0.1).numpy(), x / np.sqrt(ms + 0.1),
                               rtol=1e-5, atol=1e-5)
    assert ops.layer_normalization(x.astype(np.float64)).dtype == np.float64
    assert ops.layer_normalization(np.arange(4)).dtype == np.float32


@pytest.mark.parametrize("call,fragment", [
    (lambda: ops.layer_normalization(np.ones((2, 3)), axis=2), "out of bounds"),
    (lambda: ops.layer_normalization(np.ones((2, 3)), axis=[1, -1]), "repeated"),
    (lambda: ops.layer_normalization(np.ones((2, 3)), axis="1"), "axis"),
    (lambda: ops.layer_normalization(np.ones((2, 3)), np.ones(4)), "gamma"),
    (lambda: ops.rms_normalization(np.ones((2, 3)), np.ones(2)), "scale"),
    (lambda: ops.normalize(np.ones(3), order=0), "order"),
])
def test_layer_and_rms_normalization_errors(call, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        call()


@pytest.mark.parametrize("kwargs", [{}, {"axis": [1, 2], "epsilon": 0.01}, {"axis": 1}])
def test_keras_parity_layer_and_rms_normalization_ops(kwargs):
    import os
    import sys

    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    keras = pytest.importorskip("keras")
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    axes = np.atleast_1d(kwargs.get("axis", -1)) % 3
    shape = [x.shape[i] if i in axes else 1 for i in range(3)]
    g, b = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    for ours, theirs in [
        (ops.layer_normalization(x, g, b, **kwargs), keras.ops.layer_normalization(x, g, b, **kwargs)),
        (ops.layer_normalization(x, **kwargs), keras.ops.layer_normalization(x, **kwargs)),
        (ops.rms_normalization(x, g, **kwargs), keras.ops.rms_normalization(x, g, **kwargs)),
        (ops.normalize(x, axis=kwargs.get("axis", -1)), keras.ops.normalize(x, axis=kwargs.get("axis", -1))),
    ]:
        np.testing.assert_allclose(ours.numpy(), keras.ops.convert_to_numpy(theirs), rtol=1e-5, atol=1e-5)


def test_layer_normalization_last_axis_lane_matches_recorded_and_general():
    """axis=-1 runs the forward without a graph node when nothing records: the same values as
    the recorded op and as the general path (axis given as a list); gamma/beta may be lists."""
    import dlcore as dl

    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    g, b = list(rng.uniform(0.5, 2, 5)), list(rng.standard_normal(5))
    fast = ops.layer_normalization(x, g, b, epsilon=1e-5)
    assert fast.node is None
    general = ops.layer_normalization(x, g, b, axis=[2], epsilon=1e-5)
    xt = dl.Tensor(x)
    with dl.GradientTape() as tape:
        tape.watch(xt)
        recorded = ops.layer_normalization(xt, g, b, epsilon=1e-5)
    assert recorded.node is not None
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * g + b
    for y in (fast, general, recorded):
        assert y.dtype == np.float32
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)


def _thread_replicas(n):
    """An ``all_sum`` for ``n`` threads standing in for replicas: each adds its vector and reads
    the sum in replica order once all have arrived."""
    import threading

    slots, barrier = [None] * n, threading.Barrier(n, timeout=30)

    def make(rank):
        def all_sum(vector):
            slots[rank] = np.array(vector, dtype=np.float64)
            barrier.wait()
            total = sum(slots[1:], slots[0].copy())
            barrier.wait()
            return total
        return all_sum
    return [make(r) for r in range(n)]


def test_training_form_synchronized_over_replicas_equals_the_global_batch():
    """Two replicas of uneven shares (5 and 3 rows): the outputs are the global batch's, and each
    replica's gradients weighted by its share and summed are the global batch's gradients."""
    import threading

    import dlcore as dl

    x, gamma, beta = rng.standard_normal((8, 3)) * 2 + 1, _param((8, 3), -1), rng.standard_normal(3)
    r_y, r_mean, r_var = rng.standard_normal((8, 3)), rng.standard_normal(3), rng.standard_normal(3)

    def loss_of(xs, g, b, rows, **sync):
        y, mean, var = ops.batch_normalization_training(xs, g, b, axis=-1, **sync)
        per_row = ops.sum(ops.multiply(y, r_y[rows]))
        return ops.add(ops.divide(per_row, float(len(range(8)[rows]))),
                       ops.add(ops.sum(ops.multiply(mean, r_mean)), ops.sum(ops.multiply(var, r_var)))), y

    def grads(rows, **sync):
        ts = [dl.Tensor(x[rows]), dl.Tensor(gamma), dl.Tensor(beta)]
        with dl.GradientTape() as tape:
            for t in ts:
                tape.watch(t)
            loss, y = loss_of(*ts, rows, **sync)
        return y.value, [np.asarray(g) for g in tape.gradient(loss, ts)]

    y_ref, g_ref = grads(slice(0, 8))
    parts, results = [slice(0, 5), slice(5, 8)], [None, None]
    sums = _thread_replicas(2)

    def replica(r):
        results[r] = grads(parts[r], all_sum=sums[r], replica_weight=(parts[r].stop - parts[r].start) / 8)

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(res is not None for res in results)
    np.testing.assert_allclose(np.concatenate([results[0][0], results[1][0]]), y_ref, rtol=1e-10, atol=1e-12)
    w = [5 / 8, 3 / 8]
    dx = np.concatenate([w[r] * results[r][1][0] for r in range(2)])
    np.testing.assert_allclose(dx, g_ref[0], rtol=1e-9, atol=1e-12)
    for i in (1, 2):  # gamma, beta: the optimizer's weighted sum over replicas
        np.testing.assert_allclose(sum(w[r] * results[r][1][i] for r in range(2)), g_ref[i], rtol=1e-9, atol=1e-12)


def test_training_form_synchronized_on_one_replica_is_the_plain_op():
    x, gamma, beta = rng.standard_normal((2, 3, 4, 3)), _param((2, 3, 4, 3), -1), rng.standard_normal(3)
    identity = lambda v: v  # noqa: E731 (the sum over one replica)
    for a, b in zip(ops.batch_normalization_training(x, gamma, beta, all_sum=identity),
                    ops.batch_normalization_training(x, gamma, beta)):
        np.testing.assert_allclose(a.value, b.value, rtol=1e-12, atol=1e-12)
    check_op_gradients(lambda t, g, b: ops.batch_normalization_training(t, g, b, axis=1, all_sum=identity),
                       [x, gamma[:1].repeat(3), beta])
    check_op_gradients(lambda t: ops.batch_normalization_training(t, all_sum=identity), [x])  # y, mean, var
    with pytest.raises(TypeError, match="all_sum must be a function"):
        ops.batch_normalization_training(x, all_sum=3)
    with pytest.raises(ValueError, match="replica_weight must be positive"):
        ops.batch_normalization_training(x, all_sum=identity, replica_weight=0)


def test_cross_replica_sum_sums_forward_and_weights_the_backward():
    """Replica r's loss sum(total * R_r), weights w_r: w_s * (its gradient) = sum_r w_r R_r, the
    gradient of the weighted global loss."""
    import threading

    import dlcore as dl
    from dlcore.ops.normalization import cross_replica_sum

    xs, rs, w = [rng.standard_normal(3) for _ in range(2)], [rng.standard_normal(3) for _ in range(2)], [0.25, 0.75]
    sums, results = _thread_replicas(2), [None, None]

    def replica(r):
        t = dl.Tensor(xs[r])
        with dl.GradientTape() as tape:
            tape.watch(t)
            total = cross_replica_sum(t, sums[r], w[r])
            loss = ops.sum(ops.multiply(total, rs[r]))
        results[r] = total.value, np.asarray(tape.gradient(loss, t))

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in range(2):
        np.testing.assert_allclose(results[r][0], xs[0] + xs[1], rtol=1e-12)
        np.testing.assert_allclose(w[r] * results[r][1], w[0] * rs[0] + w[1] * rs[1], rtol=1e-12)
    check_op_gradients(lambda t: cross_replica_sum(t, lambda v: v), [xs[0]])  # one replica: the identity
    with pytest.raises(TypeError, match="all_sum must be a function"):
        cross_replica_sum(xs[0], None)
