"""Finite-difference checks (float64, through harness.check_op_gradients) for every differentiable
op that dlcore.ops exports, with broadcasting cases for the binary ops.

``test_every_exported_op_is_covered`` sweeps ``dlcore.ops``: a new op must get a case here or be
listed as not differentiable.
"""
import pathlib

import numpy as np
import pytest

import dlcore as dl
from dlcore import ops
from dlcore.ops.reduce import sum_divided
from harness import check_op_gradients

rng = np.random.default_rng(42)


def normal(*shape):
    return rng.standard_normal(shape)


def positive(*shape, low=0.5, high=2.0):
    return rng.uniform(low, high, size=shape)


def away_from_zero(*shape):
    """|x| in [0.3, 1.5], random sign: clear of the kinks and poles at 0."""
    return rng.uniform(0.3, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def softmax_rows(*shape):
    e = np.exp(normal(*shape))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot_rows(n, k):
    return np.eye(k)[rng.integers(0, k, size=n)]


CASES = {}  # id -> (op(s) covered, fn, inputs, extra kwargs for check_op_gradients)


def case(id_, covers, fn, inputs, **check):
    assert id_ not in CASES, id_
    CASES[id_] = (covers if isinstance(covers, tuple) else (covers,), fn, inputs, check)


# ---- binary arithmetic, with broadcasting ---------------------------------------------------------
BROADCAST_SHAPES = {
    "same": ((3, 4), (3, 4)),
    "row": ((3, 4), (4,)),
    "column": ((3, 4), (3, 1)),
    "both": ((2, 1, 4), (3, 1)),
    "scalar_array": ((3, 4), ()),
}
for shape_id, (sa, sb) in BROADCAST_SHAPES.items():
    case(f"add-{shape_id}", ops.add, ops.add, [normal(*sa), normal(*sb)])
    case(f"subtract-{shape_id}", ops.subtract, ops.subtract, [normal(*sa), normal(*sb)])
    case(f"multiply-{shape_id}", ops.multiply, ops.multiply, [normal(*sa), normal(*sb)])
    case(f"divide-{shape_id}", ops.divide, ops.divide, [normal(*sa), away_from_zero(*sb)])
    case(f"power-{shape_id}", ops.power, ops.power, [positive(*sa), normal(*sb)])
    case(f"maximum-{shape_id}", ops.maximum, ops.maximum, [normal(*sa), normal(*sb)])
    case(f"minimum-{shape_id}", ops.minimum, ops.minimum, [normal(*sa), normal(*sb)])
case("add-python-scalar", ops.add, lambda a: ops.add(a, 2.5), [normal(3, 4)])
case("subtract-python-scalar-left", ops.subtract, lambda a: ops.subtract(1.0, a), [normal(3, 4)])
case("multiply-python-scalar", ops.multiply, lambda a: ops.multiply(-1.5, a), [normal(3, 4)])
case("divide-python-scalar-numerator", ops.divide, lambda a: ops.divide(2.0, a), [away_from_zero(3, 4)])
case("power-integer-exponent", ops.power, lambda a: ops.power(a, 3), [normal(3, 4)])
case("power-python-base", ops.power, lambda a: ops.power(2.0, a), [normal(3, 4)])
case("maximum-python-scalar", ops.maximum, lambda a: ops.maximum(a, 0.1), [away_from_zero(3, 4)])
case("true_divide", ops.true_divide, ops.true_divide, [normal(2, 3), away_from_zero(2, 3)])
case("where-broadcast", ops.where,
     lambda a, b: ops.where(np.arange(12).reshape(3, 4) % 3 == 0, a, b), [normal(3, 4), normal(4)])
case("where-scalar-branch", ops.where,
     lambda a: ops.where(np.arange(6).reshape(2, 3) % 2 == 0, a, 0.0), [normal(2, 3)])

# ---- unary math ---------------------------------------------------------------------------------
case("negative", ops.negative, ops.negative, [normal(3, 4)])
case("exp", ops.exp, ops.exp, [normal(3, 4)])
case("log", ops.log, ops.log, [positive(3, 4)])
case("log1p", ops.log1p, ops.log1p, [positive(3, 4, low=-0.5)])
case("sqrt", ops.sqrt, ops.sqrt, [positive(3, 4)])
case("square", ops.square, ops.square, [normal(3, 4)])
case("abs", (ops.abs, ops.absolute), ops.abs, [away_from_zero(3, 4)])
case("sin", ops.sin, ops.sin, [normal(3, 4)])
case("cos", ops.cos, ops.cos, [normal(3, 4)])
case("reciprocal", ops.reciprocal, ops.reciprocal, [away_from_zero(3, 4)])
# values in and outside [-0.5, 0.5], clear of the bounds
case("clip", ops.clip, lambda a: ops.clip(a, -0.5, 0.5),
     [np.array([[-1.2, -0.7, -0.3, 0.0], [0.2, 0.45, 0.55, 2.0]]) + 1e-3])

# ---- reductions ---------------------------------------------------------------------------------
# the losses' reduction (not exported: losses.reduce_values calls it), by the sum_all kernel
case("sum_divided", sum_divided, lambda a: sum_divided(a, 7.0), [normal(2, 3, 4)])
case("sum_divided-1d", sum_divided, lambda a: sum_divided(a, 1.0), [normal(5)])
for axis, keepdims in ((None, False), (0, False), (-1, True), ((0, 2), False), ((1, 2), True)):
    tag = f"axis={axis}-keepdims={keepdims}"
    case(f"sum-{tag}", ops.sum, lambda a, axis=axis, k=keepdims: ops.sum(a, axis=axis, keepdims=k), [normal(2, 3, 4)])
    case(f"mean-{tag}", ops.mean, lambda a, axis=axis, k=keepdims: ops.mean(a, axis=axis, keepdims=k),
         [normal(2, 3, 4)])
    case(f"max-{tag}", (ops.max, ops.amax), lambda a, axis=axis, k=keepdims: ops.max(a, axis=axis, keepdims=k),
         [normal(2, 3, 4)])
    case(f"min-{tag}", (ops.min, ops.amin), lambda a, axis=axis, k=keepdims: ops.min(a, axis=axis, keepdims=k),
         [normal(2, 3, 4)])
    case(f"var-{tag}", ops.var, lambda a, axis=axis, k=keepdims: ops.var(a, axis=axis, keepdims=k), [normal(2, 3, 4)])
    case(f"std-{tag}", ops.std, lambda a, axis=axis, k=keepdims: ops.std(a, axis=axis, keepdims=k), [normal(2, 3, 4)])
    case(f"logsumexp-{tag}", ops.logsumexp,
         lambda a, axis=axis, k=keepdims: ops.logsumexp(a, axis=axis, keepdims=k), [normal(2, 3, 4)])
for order in (None, 1, 2, np.inf):
    case(f"norm-ord={order}-all", ops.norm, lambda a, o=order: ops.norm(a, ord=o), [away_from_zero(3, 4)])
    case(f"norm-ord={order}-axis=-1", ops.norm, lambda a, o=order: ops.norm(a, ord=o, axis=-1, keepdims=True),
         [away_from_zero(3, 4)])

# ---- shape ops ------------------------------------------------------------------------------------
case("reshape", ops.reshape, lambda a: ops.reshape(a, (4, -1)), [normal(2, 3, 4)])
case("transpose-default", ops.transpose, ops.transpose, [normal(2, 3, 4)])
case("transpose-axes", ops.transpose, lambda a: ops.transpose(a, (1, 0, 2)), [normal(2, 3, 4)])
case("transpose-negative-axes", ops.transpose, lambda a: ops.transpose(a, (0, -1, -2)), [normal(2, 3, 4)])
case("expand_dims", ops.expand_dims, lambda a: ops.expand_dims(a, 1), [normal(2, 3)])
case("expand_dims-last", ops.expand_dims, lambda a: ops.expand_dims(a, -1), [normal(2, 3)])
case("squeeze-all", ops.squeeze, ops.squeeze, [normal(2, 1, 3, 1)])
case("squeeze-axis", ops.squeeze, lambda a: ops.squeeze(a, axis=1), [normal(2, 1, 3, 1)])
case("flatten", ops.flatten, ops.flatten, [normal(2, 3, 2)])
case("concatenate-axis0", ops.concatenate, lambda a, b, c: ops.concatenate([a, b, c], axis=0),
     [normal(1, 3), normal(2, 3), normal(3, 3)])
case("concatenate-axis-1", ops.concatenate, lambda a, b: ops.concatenate([a, b], axis=-1),
     [normal(2, 2, 3), normal(2, 2, 1)])
case("concatenate-same-tensor-twice", ops.concatenate, lambda a: ops.concatenate([a, a], axis=1), [normal(2, 3)])
case("stack-axis0", ops.stack, lambda a, b: ops.stack([a, b]), [normal(2, 3), normal(2, 3)])
case("stack-axis1", ops.stack, lambda a, b, c: ops.stack([a, b, c], axis=1), [normal(2, 3), normal(2, 3), normal(2, 3)])
case("stack-axis-1", ops.stack, lambda a, b: ops.stack([a, b], axis=-1), [normal(2, 3), normal(2, 3)])
case("split-sections", ops.split, lambda a: ops.split(a, 2, axis=1), [normal(3, 4)])
case("split-indices", ops.split, lambda a: ops.split(a, [1, 3], axis=0), [normal(5, 2)])
case("split-negative-axis", ops.split, lambda a: ops.split(a, 3, axis=-1), [normal(2, 6)])
case("getitem-slice", ops.getitem, lambda a: ops.getitem(a, (slice(None), slice(1, 3))), [normal(3, 4)])
case("getitem-int", ops.getitem, lambda a: ops.getitem(a, 1), [normal(3, 4)])
case("getitem-negative-step", ops.getitem, lambda a: ops.getitem(a, slice(None, None, -2)), [normal(5, 2)])
case("getitem-fancy-repeats", ops.getitem, lambda a: ops.getitem(a, np.array([0, 2, 0, 0])), [normal(3, 2)])
case("getitem-boolean", ops.getitem, lambda a: ops.getitem(a, np.array([True, False, True])), [normal(3, 2)])
case("getitem-newaxis-ellipsis", ops.getitem, lambda a: ops.getitem(a, (Ellipsis, None, 1)), [normal(2, 3)])
case("getitem-tensor-operator", ops.getitem, lambda a: a[1:, ::2], [normal(3, 4)])
case("take-flat", ops.take, lambda a: ops.take(a, np.array([5, 0, 5])), [normal(2, 3)])
case("take-axis1", ops.take, lambda a: ops.take(a, np.array([[2, 0], [2, 2]]), axis=1), [normal(2, 3)])
case("pad-constant", ops.pad, lambda a: ops.pad(a, ((1, 0), (2, 1))), [normal(2, 3)])
case("pad-constant-value", ops.pad, lambda a: ops.pad(a, ((0, 1), (1, 1)), constant_values=3.0), [normal(2, 3)])
case("pad-reflect", ops.pad, lambda a: ops.pad(a, ((1, 2), (2, 1)), mode="reflect"), [normal(4, 3)])
case("pad-symmetric", ops.pad, lambda a: ops.pad(a, ((2, 1), (0, 3)), mode="symmetric"), [normal(3, 4)])
case("pad-reflect-3d", ops.pad, lambda a: ops.pad(a, ((0, 0), (1, 1), (2, 0)), mode="reflect"), [normal(2, 3, 4)])

# ---- matrix products ------------------------------------------------------------------------------
case("matmul-2d", (ops.matmul, ops.dot), ops.matmul, [normal(3, 4), normal(4, 2)])
case("matmul-batched", ops.matmul, ops.matmul, [normal(2, 3, 4), normal(2, 4, 5)])
case("matmul-broadcast-batch", ops.matmul, ops.matmul, [normal(2, 3, 4), normal(1, 4, 2)])
case("matmul-3d-by-2d", ops.matmul, ops.matmul, [normal(2, 3, 4), normal(4, 2)])
case("matmul-vector-matrix", ops.matmul, ops.matmul, [normal(3), normal(3, 4)])
case("matmul-matrix-vector", ops.matmul, ops.matmul, [normal(2, 3), normal(3)])
case("matmul-operator", ops.matmul, lambda a, b: a @ b, [normal(2, 3), normal(3, 2)])


def _dense_kernel_activations():
    from dlcore.kernels.elementwise import ACTIVATIONS

    return sorted(ACTIVATIONS)


for name in _dense_kernel_activations():
    inputs = [normal(4, 3), normal(3, 5) * 0.7, normal(5)]
    if name == "exponential":
        inputs = [normal(4, 3) * 0.5, normal(3, 5) * 0.5, normal(5) * 0.5]
    case(f"dense-{name}", ops.dense, lambda x, w, b, name=name: ops.dense(x, w, b, activation=name), inputs)
case("dense-leaky_relu-alpha", ops.dense, lambda x, w, b: ops.dense(x, w, b, activation="leaky_relu", alpha=0.1),
     [normal(4, 3), normal(3, 5), normal(5)])
case("dense-elu-alpha", ops.dense, lambda x, w, b: ops.dense(x, w, b, activation="elu", alpha=0.6),
     [normal(4, 3), normal(3, 5), normal(5)])
case("dense-no-bias", ops.dense, lambda x, w: ops.dense(x, w, None, activation="tanh"), [normal(4, 3), normal(3, 2)])
case("dense-3d-input", ops.dense, lambda x, w, b: ops.dense(x, w, b, activation="sigmoid"),
     [normal(2, 3, 4), normal(4, 2), normal(2)])

# ---- activations ----------------------------------------------------------------------------------
for fn in (ops.relu, ops.relu6, ops.sigmoid, ops.tanh, ops.leaky_relu, ops.elu, ops.selu, ops.silu,
           ops.softplus, ops.softsign, ops.hard_sigmoid, ops.exponential):
    case(fn.__name__, fn, fn, [away_from_zero(3, 4) * 4])  # crosses relu6's 6 and hard_sigmoid's +-3
case("swish", ops.swish, ops.swish, [normal(3, 4)])
case("leaky_relu-slope", ops.leaky_relu, lambda a: ops.leaky_relu(a, negative_slope=0.05), [away_from_zero(3, 4)])
case("elu-alpha", ops.elu, lambda a: ops.elu(a, alpha=0.5), [away_from_zero(3, 4)])
case("gelu-approximate", ops.gelu, lambda a: ops.gelu(a, approximate=True), [normal(3, 4)])
case("gelu-exact", ops.gelu, lambda a: ops.gelu(a, approximate=False), [normal(3, 4)])
for fn in (ops.softmax, ops.log_softmax):
    case(f"{fn.__name__}-axis-1", fn, lambda a, fn=fn: fn(a, axis=-1), [normal(3, 5)])
    case(f"{fn.__name__}-axis0", fn, lambda a, fn=fn: fn(a, axis=0), [normal(3, 5)])
    case(f"{fn.__name__}-3d-axis1", fn, lambda a, fn=fn: fn(a, axis=1), [normal(2, 3, 4)])
    case(f"{fn.__name__}-1d", fn, fn, [normal(5)])

# ---- dropout (the mask is fixed for a given generator state: re-create it in each evaluation) ---------
case("dropout-generator-seed", ops.dropout, lambda a: ops.dropout(a, 0.4, seed=np.random.default_rng(7)),
     [normal(4, 5)])
case("dropout-int-seed", ops.dropout, lambda a: ops.dropout(a, 0.25, seed=3), [normal(4, 5)])
case("dropout-noise-shape", ops.dropout, lambda a: ops.dropout(a, 0.5, noise_shape=(1, 5), seed=11),
     [normal(4, 5)])
case("dropout-rate-0", ops.dropout, lambda a: ops.dropout(a, 0.0, seed=1), [normal(3, 2)])

# ---- cast -------------------------------------------------------------------------------------------
case("cast-float64", ops.cast, lambda a: ops.cast(a, "float64"), [normal(3, 4)])
# through float32 and back: linear, so finite differences with a large step are exact up to rounding
case("cast-float32-roundtrip", ops.cast, lambda a: ops.cast(ops.multiply(ops.cast(a, "float32"), 3.0), "float64"),
     [normal(3, 4)], eps=1e-2, rtol=1e-4, atol=1e-5)

# ---- compositions: accumulation through shared inputs and Tensor operators -------------------------------
case("composite-shared-input", ops.multiply, lambda a: ops.multiply(ops.exp(a), ops.sin(a)) + a * a, [normal(3, 4)])
case("composite-operators", ops.add, lambda a, b: (a * b + a / b - b) ** 2 - (-a), [normal(2, 3), away_from_zero(2, 3)])
case("composite-diamond", ops.add, lambda a: ops.add(ops.sum(ops.tanh(a), axis=0), ops.max(ops.square(a), axis=0)),
     [normal(3, 4)])


# ---- losses (gradient with respect to y_pred; y_true is a constant) ----------------------------------
def _loss_cases():
    y_true, y_pred = normal(4, 3), normal(4, 3)
    for name in ("mean_squared_error", "mean_absolute_error", "huber", "log_cosh"):
        case(f"loss-{name}", getattr(ops, name), getattr(ops, name), [y_true, y_pred], argnums=[1])
    case("loss-huber-delta", ops.huber, lambda t, p: ops.huber(t, p, delta=0.5), [y_true, y_pred], argnums=[1])
    probs, labels = softmax_rows(4, 3), one_hot_rows(4, 3)
    case("loss-categorical_crossentropy", ops.categorical_crossentropy, ops.categorical_crossentropy,
         [labels, probs], argnums=[1])
    case("loss-categorical_crossentropy-logits", ops.categorical_crossentropy,
         lambda t, p: ops.categorical_crossentropy(t, p, from_logits=True, label_smoothing=0.1),
         [labels, normal(4, 3)], argnums=[1])
    case("loss-sparse_categorical_crossentropy", ops.sparse_categorical_crossentropy,
         ops.sparse_categorical_crossentropy, [np.array([0, 2, 1, 2]), probs], argnums=[1])
    case("loss-sparse_categorical_crossentropy-logits", ops.sparse_categorical_crossentropy,
         lambda t, p: ops.sparse_categorical_crossentropy(t, p, from_logits=True),
         [np.array([0, 2, 1, 2]), normal(4, 3)], argnums=[1])
    if hasattr(ops, "binary_crossentropy"):
        case("loss-binary_crossentropy", ops.binary_crossentropy, ops.binary_crossentropy,
             [(normal(4, 3) > 0).astype(float), positive(4, 3, low=0.1, high=0.9)], argnums=[1])
        case("loss-binary_crossentropy-logits", ops.binary_crossentropy,
             lambda t, p: ops.binary_crossentropy(t, p, from_logits=True),
             [(normal(4, 3) > 0).astype(float), normal(4, 3)], argnums=[1])
    case("loss-mean_absolute_percentage_error", ops.mean_absolute_percentage_error,
         ops.mean_absolute_percentage_error, [away_from_zero(4, 3), normal(4, 3)], argnums=[1])
    case("loss-mean_squared_logarithmic_error", ops.mean_squared_logarithmic_error,
         ops.mean_squared_logarithmic_error, [positive(4, 3), positive(4, 3)], argnums=[1])
    signs = np.sign(away_from_zero(4, 3))
    case("loss-hinge", ops.hinge, ops.hinge, [signs, normal(4, 3) * 0.5], argnums=[1])
    case("loss-squared_hinge", ops.squared_hinge, ops.squared_hinge, [signs, normal(4, 3) * 0.5], argnums=[1])
    case("loss-categorical_hinge", ops.categorical_hinge, ops.categorical_hinge, [labels, normal(4, 3)], argnums=[1])
    case("loss-kl_divergence", ops.kl_divergence, ops.kl_divergence, [softmax_rows(4, 3), probs], argnums=[1])
    case("loss-poisson", ops.poisson, ops.poisson, [positive(4, 3), positive(4, 3)], argnums=[1])
    case("loss-cosine_similarity", ops.cosine_similarity, ops.cosine_similarity, [normal(4, 3), normal(4, 3)],
         argnums=[1])


_loss_cases()

# ---- pooling and batch normalization (more geometries in tests/ops/test_pooling.py, test_normalization.py) 
case("max_pool-2d-same", ops.max_pool, lambda x: ops.max_pool(x, 2, 2, "same"), [normal(2, 5, 5, 3)])
case("average_pool-1d-same", ops.average_pool, lambda x: ops.average_pool(x, 3, 2, "same"), [normal(2, 7, 3)])
case("batch_normalization", ops.batch_normalization,
     lambda x, m, v, b, g: ops.batch_normalization(x, m, v, axis=-1, offset=b, scale=g, epsilon=1e-3),
     [normal(4, 3), normal(3), positive(3), normal(3), normal(3)])
case("batch_normalization_training", ops.batch_normalization_training,
     lambda x, g, b: ops.batch_normalization_training(x, g, b, axis=-1, epsilon=1e-3),
     [normal(5, 2, 3), normal(3), normal(3)])
case("moments", ops.moments, lambda x: ops.moments(x, axes=(0, 1)), [normal(4, 2, 3)])


# ---- issue 12: mod, triangles, gathers, layer/RMS normalization (einsum: tests/ops/test_linalg_gradients.py) --
case("mod", ops.mod, ops.mod, [rng.uniform(0.1, 0.9, (3, 4)) + rng.integers(-3, 3, (3, 4)), positive(4, low=1.1)])
case("tril-k=-1", ops.tril, lambda x: ops.tril(x, -1), [normal(2, 3, 4)])
case("triu-k=1", ops.triu, lambda x: ops.triu(x, 1), [normal(4, 3)])
case("take_along_axis-repeats", ops.take_along_axis,
     lambda x: ops.take_along_axis(x, np.array([[0, 2, 2, -1], [1, 1, 0, 0]]), axis=1), [normal(2, 3)])
case("take_along_axis-broadcast", ops.take_along_axis,
     lambda x: ops.take_along_axis(x, np.array([[[1], [0]]]), axis=-1), [normal(3, 2, 4)])
case("take_along_axis-flat", ops.take_along_axis,
     lambda x: ops.take_along_axis(x, np.array([5, 0, 5]), axis=None), [normal(2, 3)])
case("top_k", ops.top_k, lambda x: ops.top_k(x, 2)[0], [normal(3, 5)])
case("layer_normalization-last", ops.layer_normalization,
     lambda x, g, b: ops.layer_normalization(x, g, b, axis=-1, epsilon=1e-3), [normal(3, 2, 5), normal(5), normal(5)])
case("layer_normalization-axes-0-2", ops.layer_normalization,
     lambda x, g, b: ops.layer_normalization(x, g, b, axis=[0, 2], epsilon=1e-3),
     [normal(3, 2, 4), normal(3, 4), normal(3, 4)])
case("layer_normalization-broadcast-gamma", ops.layer_normalization,
     lambda x, g: ops.layer_normalization(x, g, axis=-1, epsilon=1e-3), [normal(2, 3), normal(2, 3)])
case("layer_normalization-rms_scaling", ops.layer_normalization,
     lambda x, g: ops.layer_normalization(x, g, axis=-1, epsilon=1e-3, rms_scaling=True), [normal(3, 4), normal(4)])
case("rms_normalization-last", ops.rms_normalization,
     lambda x, s: ops.rms_normalization(x, s, axis=-1, epsilon=1e-3), [normal(4, 6), normal(6)])
case("rms_normalization-axis-1", ops.rms_normalization,
     lambda x: ops.rms_normalization(x, axis=1, epsilon=1e-3), [normal(2, 3, 4)])
case("normalize-l2", ops.normalize, lambda x: ops.normalize(x, axis=-1), [normal(3, 4)])
case("normalize-l1", ops.normalize, lambda x: ops.normalize(x, axis=0, order=1), [away_from_zero(3, 4)])


# ---- recurrent ops and the embedding lookup (masks, states, dropout in tests/layers/test_recurrent.py) ----
case("simple_rnn", ops.simple_rnn, lambda x, w, r, b: ops.simple_rnn(x, w, r, b, return_sequences=True)[0],
     [normal(2, 3, 2), normal(2, 3), normal(3, 3) * 0.5, normal(3)])
case("lstm", ops.lstm, lambda x, w, r, b, h, c: list(ops.lstm(x, w, r, b, initial_state=[h, c])),
     [normal(2, 3, 2), normal(2, 8), normal(2, 8) * 0.5, normal(8), normal(2, 2), normal(2, 2)])
case("gru", ops.gru, lambda x, w, r, b: ops.gru(x, w, r, b, go_backwards=True)[0],
     [normal(2, 3, 2), normal(2, 6), normal(2, 6) * 0.5, normal(2, 6)])
case("embedding_lookup", ops.embedding_lookup, lambda t: ops.embedding_lookup(t, np.array([[0, 2, 2], [1, 0, 3]])),
     [normal(4, 2)])


# ---- the sweep -------------------------------------------------------------------------------------
NOT_DIFFERENTIABLE = {
    # conversion, constants and integer-valued results: no gradient by definition
    "convert_to_tensor", "convert_to_numpy", "is_tensor", "stop_gradient", "sign", "argmax", "argmin",
    "all", "any", "arange", "eye", "zeros", "ones", "zeros_like", "ones_like", "full", "shape", "one_hot",
    "sparse_valid_mask", "squeeze_or_expand_to_same_rank",
    # comparisons, logic, bitwise and floor division: boolean or integer-valued, no gradient (as Keras)
    "equal", "not_equal", "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
    "logical_xor", "logical_not", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_invert", "bitwise_not",
    "floor_divide",
}


def _exported_ops():
    out = {}
    for name in dir(ops):
        obj = getattr(ops, name)
        if name.startswith("_") or isinstance(obj, type) or not callable(obj):
            continue
        if getattr(obj, "__module__", "").startswith("dlcore.ops"):
            out[name] = obj
    return out


def _checked_in_family_file(name, obj):
    """A family's own gradient tests (tests/ops/test_<family>_gradients.py or
    tests/ops|kernels|layers/test_<family>.py) may cover its ops: the file must name the op and run
    finite differences."""
    family = obj.__module__.rsplit(".", 1)[-1]
    root = pathlib.Path(__file__).resolve().parents[1]
    for path in (root / "ops" / f"test_{family}_gradients.py", root / "ops" / f"test_{family}.py",
                 root / "layers" / f"test_{family}.py",
                 root / "kernels" / f"test_{family}.py"):
        if path.exists():
            text = path.read_text()
            if name in text and ("check_op_gradients" in text or "finite" in text.lower()):
                return True
    return False


def test_every_exported_op_is_covered():
    covered = {id(op) for covers, *_ in CASES.values() for op in covers}
    missing = sorted(name for name, obj in _exported_ops().items()
                     if name not in NOT_DIFFERENTIABLE and id(obj) not in covered
                     and not _checked_in_family_file(name, obj))
    assert not missing, f"dlcore.ops exports ops without a finite-difference gradient check: {missing}"


# Known bugs in dlcore/ops, reported to the lead; strict, so a fix turns these into failures to remove.
@pytest.mark.parametrize("case_id", sorted(CASES))
def test_op_gradient(case_id):
    covers, fn, inputs, check = CASES[case_id]
    check_op_gradients(fn, inputs, **check)


# ---- properties the finite differences do not show ----------------------------------------------------
def test_gradient_dtype_follows_source():
    x = dl.Tensor(normal(2, 3))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.cast(x, "float32"))
    (g,) = tape.gradient(y, [x])
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g.value, np.ones((2, 3)))


def test_non_float_inputs_get_no_gradient():
    x = dl.Tensor(normal(3))
    with dl.GradientTape() as tape:
        tape.watch(x)
        y = ops.sum(ops.cast(ops.cast(x, "int32"), "float64"))
    g = tape.gradient(y, x)
    assert g is None or not np.any(g.value)


def test_dropout_training_mask_matches_scaling():
    x = np.ones((200, 50))
    y = ops.dropout(x, 0.3, seed=5).value
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.7)
    assert 0.25 < 1 - kept.mean() < 0.35
    again = ops.dropout(x, 0.3, seed=5).value
    np.testing.assert_array_equal(y, again)  # an int seed repeats the mask


def test_check_op_gradients_catches_a_wrong_backward():
    """The harness itself: a Function whose backward is off by a factor must fail the check."""
    from dlcore.autograd import Function

    class WrongSquare(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save(x)
            return x * x

        @staticmethod
        def backward(ctx, dy, needs):
            (x,) = ctx.saved
            return (dy * x,)  # should be 2 * x * dy

    with pytest.raises(AssertionError, match="finite differences"):
        check_op_gradients(WrongSquare.apply, [normal(3)])
