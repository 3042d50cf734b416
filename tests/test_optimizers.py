"""dlcore.optimizers against an independent NumPy transcription of Keras 3's optimizers.

The reference below follows keras/src/optimizers/{base_optimizer, sgd, adagrad, rmsprop, adam,
adamw, adamax, nadam}.py: clip the gradients, apply weight decay (w -= w * wd * lr), run
``update_step`` with hyper-parameters cast to the variable's dtype, apply constraints, count the
step. It never calls the kernels.
"""
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlcore.optimizers as O
from dlcore import registry
from dlcore.optimizers import schedules
from dlcore.tensor import Tensor, Variable

DTYPES = [np.float32, np.float64]
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}
SHAPES = [(3, 4), (5,)]
STEPS = 5


# ---- the reference -----------------------------------------------------------------------------
class Reference:
    """Keras 3's optimizer step in NumPy, on a list of arrays (updated in place)."""

    DEFAULTS = {
        "sgd": dict(learning_rate=0.01, momentum=0.0, nesterov=False),
        "adagrad": dict(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
        "rmsprop": dict(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
        "adam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False),
        "adamw": dict(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                      epsilon=1e-7, amsgrad=False),
        "adamax": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
        "nadam": dict(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    }

    def __init__(self, kind, weights, weight_decay=None, excluded=(), clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **hp):
        self.kind = kind
        self.hp = {**self.DEFAULTS[kind], **hp}
        self.lr = self.hp.pop("learning_rate")
        if kind == "adamw":
            weight_decay = self.hp.pop("weight_decay") if weight_decay is None else weight_decay
            self.hp.pop("weight_decay", None)
            kind = self.kind = "adam"
        self.weight_decay = weight_decay
        self.excluded = set(excluded)
        self.clipnorm, self.clipvalue, self.global_clipnorm = clipnorm, clipvalue, global_clipnorm
        self.w = weights
        self.iterations = 0
        zeros = [np.zeros_like(w) for w in weights]
        self.slots = {name: [z.copy() for z in zeros] for name in ("m", "v", "vhat", "mg", "mom")}
        if kind == "adagrad":
            self.slots["acc"] = [np.full_like(w, self.hp["initial_accumulator_value"]) for w in weights]
        self.u_product = weights[0].dtype.type(1.0)

    def current_lr(self):
        return self.lr(self.iterations) if callable(self.lr) else self.lr

    def clip(self, grads):
        if self.clipnorm:
            out = []
            for g in grads:
                norm = np.sqrt(np.sum(np.square(g)))
                out.append(g * self.clipnorm / np.maximum(norm, self.clipnorm))
            return out
        if self.global_clipnorm:
            norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads))
            scale = self.global_clipnorm * min(1.0 / norm, 1.0 / self.global_clipnorm)
            return [g * scale for g in grads]
        if self.clipvalue:
            return [np.clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def step(self, grads):
        """One ``apply``: None gradients are filtered out first (their variables are neither
        clipped, decayed nor updated)."""
        lr = self.current_lr()
        kept = [i for i, g in enumerate(grads) if g is not None]
        clipped = self.clip([np.asarray(grads[i]) for i in kept])
        grads = [None] * len(grads)
        for i, g in zip(kept, clipped):
            grads[i] = g
        if self.weight_decay is not None:
            for i in kept:
                if i not in self.excluded:
                    w = self.w[i]
                    dt = w.dtype.type
                    w[...] = w - w * dt(self.weight_decay) * dt(lr)
        if self.kind == "nadam":
            dt = self.w[0].dtype.type
            self.u_product = self.u_product * dt(self.hp["beta_1"]) * (
                dt(1.0) - dt(0.5) * dt(0.96) ** dt(self.iterations + 1))
        for i, g in enumerate(grads):
            if g is not None:
                getattr(self, "_" + self.kind)(i, g.astype(self.w[i].dtype), lr)
        self.iterations += 1

    def _sgd(self, i, g, lr):
        w, m, dt = self.w[i], self.slots["m"][i], self.w[i].dtype.type
        lr, momentum = dt(lr), dt(self.hp["momentum"])
        if self.hp["momentum"] != 0:
            m[...] = m * momentum - g * lr
            if self.hp["nesterov"]:
                w += m * momentum - g * lr
            else:
                w += m
        else:
            w -= g * lr

    def _adagrad(self, i, g, lr):
        w, acc, dt = self.w[i], self.slots["acc"][i], self.w[i].dtype.type
        acc += np.square(g)
        w -= (dt(lr) * g) / np.sqrt(acc + dt(self.hp["epsilon"]))

    def _rmsprop(self, i, g, lr):
        w, dt = self.w[i], self.w[i].dtype.type
        v, mg, mom = self.slots["v"][i], self.slots["mg"][i], self.slots["mom"][i]
        rho, eps = dt(self.hp["rho"]), dt(self.hp["epsilon"])
        v[...] = rho * v + (dt(1) - rho) * np.square(g)
        if self.hp["centered"]:
            mg[...] = rho * mg + (dt(1) - rho) * g
            denominator = v - np.square(mg) + eps
        else:
            denominator = v + eps
        increment = dt(lr) * g / np.sqrt(denominator)
        if self.hp["momentum"] > 0:
            mom[...] = dt(self.hp["momentum"]) * mom + increment
            w -= mom
        else:
            w -= increment

    def _adam(self, i, g, lr):
        w, dt = self.w[i], self.w[i].dtype.type
        m, v, vhat = self.slots["m"][i], self.slots["v"][i], self.slots["vhat"][i]
        t = dt(self.iterations + 1)
        b1, b2 = dt(self.hp["beta_1"]), dt(self.hp["beta_2"])
        alpha = dt(lr) * np.sqrt(dt(1) - b2**t) / (dt(1) - b1**t)
        m += (g - m) * (dt(1) - b1)
        v += (np.square(g) - v) * (dt(1) - b2)
        used = v
        if self.hp["amsgrad"]:
            vhat[...] = np.maximum(vhat, v)
            used = vhat
        w -= (m * alpha) / (np.sqrt(used) + dt(self.hp["epsilon"]))

    def _adamax(self, i, g, lr):
        w, dt = self.w[i], self.w[i].dtype.type
        m, u = self.slots["m"][i], self.slots["v"][i]
        b1, b2 = dt(self.hp["beta_1"]), dt(self.hp["beta_2"])
        b1_power = b1 ** dt(self.iterations + 1)
        m += (g - m) * (dt(1) - b1)
        u[...] = np.maximum(b2 * u, np.abs(g))
        w -= (dt(lr) * m) / ((dt(1) - b1_power) * (u + dt(self.hp["epsilon"])))

    def _nadam(self, i, g, lr):
        w, dt = self.w[i], self.w[i].dtype.type
        m, v = self.slots["m"][i], self.slots["v"][i]
        b1, b2, decay = dt(self.hp["beta_1"]), dt(self.hp["beta_2"]), dt(0.96)
        local_step, next_step = dt(self.iterations + 1), dt(self.iterations + 2)
        u_t = b1 * (dt(1.0) - dt(0.5) * decay**local_step)
        u_t_1 = b1 * (dt(1.0) - dt(0.5) * decay**next_step)
        u_product_t = dt(self.u_product)
        u_product_t_1 = u_product_t * u_t_1
        m += (g - m) * (dt(1) - b1)
        v += (np.square(g) - v) * (dt(1) - b2)
        m_hat = u_t_1 * m / (dt(1) - u_product_t_1) + (dt(1) - u_t) * g / (dt(1) - u_product_t)
        v_hat = v / (dt(1) - b2**local_step)
        w -= (m_hat * dt(lr)) / (np.sqrt(v_hat) + dt(self.hp["epsilon"]))


# ---- helpers -----------------------------------------------------------------------------------
CLASSES = {"sgd": O.SGD, "adagrad": O.Adagrad, "rmsprop": O.RMSprop, "adam": O.Adam,
           "adamw": O.AdamW, "adamax": O.Adamax, "nadam": O.Nadam}


def _data(dtype, seed=0, steps=STEPS, scale=1.0):
    rng = np.random.default_rng(seed)
    w0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(scale * rng.standard_normal(s)).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return w0, grads


def _variables(w0, names=("kernel", "bias")):
    return [Variable(w, name=n) for w, n in zip(w0, names)]


def _run(opt, variables, grads):
    for g in grads:
        opt.apply(g, variables)


def _assert_close(actual, expected, dtype):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **TOL[dtype])


# ---- every optimizer vs the reference ----------------------------------------------------------
CASES = [
    ("sgd", dict(learning_rate=0.1)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9)),
    ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("adagrad", dict(learning_rate=0.1)),
    ("adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.5, epsilon=1e-3)),
    ("rmsprop", dict(learning_rate=0.01)),
    ("rmsprop", dict(learning_rate=0.01, momentum=0.9)),
    ("rmsprop", dict(learning_rate=0.01, centered=True)),
    ("rmsprop", dict(learning_rate=0.01, centered=True, momentum=0.5, rho=0.8)),
    ("adam", dict(learning_rate=0.05)),
    ("adam", dict(learning_rate=0.05, amsgrad=True)),
    ("adam", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99, epsilon=1e-4)),
    ("adamw", dict(learning_rate=0.05)),
    ("adamw", dict(learning_rate=0.05, weight_decay=0.1, amsgrad=True)),
    ("adamax", dict(learning_rate=0.05)),
    ("nadam", dict(learning_rate=0.05)),
    ("nadam", dict(learning_rate=0.05, beta_1=0.8, beta_2=0.99)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind,hp", CASES, ids=[f"{k}-{'-'.join(map(str, h.values()))}" for k, h in CASES])
def test_matches_keras_reference(kind, hp, dtype):
    w0, grads = _data(dtype)
    variables = _variables(w0)
    opt = CLASSES[kind](**hp)
    ref = Reference(kind, [w.copy() for w in w0], **hp)
    for g in grads:
        opt.apply(g, variables)
        ref.step(g)
    assert opt.iterations == STEPS
    _assert_close([v.value for v in variables], ref.w, dtype)
    for v in variables:
        assert v.value.dtype == dtype and v.value.flags.c_contiguous


@pytest.mark.parametrize("kind", ["adam", "nadam"])
def test_large_and_small_variables_thread_policy(kind):
    """A variable above kernels.PARALLEL_MIN_WORK runs its kernel on all threads, small ones on
    one thread; both match the reference, and Numba's thread count is restored."""
    rng = np.random.default_rng(1)
    w0 = [rng.standard_normal((64, 80)).astype(np.float32), rng.standard_normal(7).astype(np.float32)]
    grads = [[rng.standard_normal(w.shape).astype(np.float32) for w in w0] for _ in range(3)]
    variables = _variables(w0)
    opt = CLASSES[kind](learning_rate=0.05, weight_decay=0.01)
    ref = Reference(kind, [w.copy() for w in w0], learning_rate=0.05, weight_decay=0.01)
    opt.apply(grads[0], variables)  # loads numba
    ref.step(grads[0])
    from dlcore.kernels import _config

    before = _config._numba.get_num_threads()
    for g in grads[1:]:
        opt.apply(g, variables)
        ref.step(g)
    assert _config._numba.get_num_threads() == before
    _assert_close([v.value for v in variables], ref.w, np.float32)


def test_default_hyperparameters_match_keras():
    assert O.SGD().learning_rate == 0.01 and O.SGD().momentum == 0.0 and O.SGD().nesterov is False
    a = O.Adagrad()
    assert (a.learning_rate, a.initial_accumulator_value, a.epsilon) == (0.001, 0.1, 1e-7)
    r = O.RMSprop()
    assert (r.learning_rate, r.rho, r.momentum, r.epsilon, r.centered) == (0.001, 0.9, 0.0, 1e-7, False)
    for cls in (O.Adam, O.AdamW, O.Adamax, O.Nadam):
        o = cls()
        assert (o.learning_rate, o.beta_1, o.beta_2, o.epsilon) == (0.001, 0.9, 0.999, 1e-7)
    assert O.Adam().amsgrad is False and O.AdamW().weight_decay == 0.004
    assert [cls().name for cls in CLASSES.values()] == [
        "SGD", "adagrad", "rmsprop", "adam", "adamw", "adamax", "nadam"]


def test_slots_follow_keras_order_and_initial_values():
    w0, grads = _data(np.float32)
    variables = _variables(w0)
    opt = O.Adam(amsgrad=True)
    opt.build(variables)
    shapes = [v.shape for v in opt.variables]
    assert shapes == [(), (3, 4), (3, 4), (5,), (5,), (3, 4), (5,)]  # it, m0, v0, m1, v1, vhat0, vhat1
    assert opt.variables[0].dtype == np.int64
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in opt.variables[1:])
    ada = O.Adagrad(initial_accumulator_value=0.25)
    ada.build(_variables(w0))
    assert all(np.all(a == np.float32(0.25)) for a in ada.variables[1:])
    sgd = O.SGD()
    sgd.build(_variables(w0))
    assert len(sgd.variables) == 1  # no momentum, no slots (Keras)
    assert len(O.SGD(momentum=0.5).variables) == 1  # nothing before build
    nadam = O.Nadam()
    nadam.build(_variables(w0))
    assert nadam.variables[-1].shape == () and float(nadam.variables[-1]) == 1.0  # u_product


# ---- weight decay ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_weight_decay_with_excluded_names(dtype):
    w0, grads = _data(dtype)
    variables = _variables(w0, names=("dense/kernel", "dense/bias"))
    opt = O.SGD(learning_rate=0.1, momentum=0.5, weight_decay=0.2)
    opt.exclude_from_weight_decay(var_names=["bias"])
    ref = Reference("sgd", [w.copy() for w in w0], learning_rate=0.1, momentum=0.5, weight_decay=0.2,
                    excluded={1})
    for g in grads:
        opt.apply(g, variables)
        ref.step(g)
    _assert_close([v.value for v in variables], ref.w, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_adamw_excluded_variables(dtype):
    w0, grads = _data(dtype)
    variables = _variables(w0)
    opt = O.AdamW(learning_rate=0.05, weight_decay=0.3)
    opt.exclude_from_weight_decay(var_list=[variables[0]])
    ref = Reference("adamw", [w.copy() for w in w0], learning_rate=0.05, weight_decay=0.3, excluded={0})
    for g in grads:
        opt.apply(g, variables)
        ref.step(g)
    _assert_close([v.value for v in variables], ref.w, dtype)
    # the exclusion matters: without it the kernel differs
    plain = _variables(w0)
    _run(O.AdamW(learning_rate=0.05, weight_decay=0.3), plain, grads)
    assert not np.allclose(plain[0].value, variables[0].value)
    np.testing.assert_allclose(plain[1].value, variables[1].value, **TOL[dtype])


def test_adamw_requires_weight_decay():
    with pytest.raises(ValueError, match="weight_decay"):
        O.AdamW(weight_decay=None)


# ---- clipping ----------------------------------------------------------------------------------
def _one_sgd_step(dtype, **clip):
    w0 = [np.zeros((3, 4), dtype), np.zeros(5, dtype)]
    g = [np.full((3, 4), 0.5, dtype), np.array([0.1, -0.2, 3.0, -4.0, 0.05], dtype)]
    variables = _variables(w0)
    O.SGD(learning_rate=1.0, **clip).apply(g, variables)
    return g, [-v.value for v in variables]  # w1 = 0 - clipped g


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_clipvalue(dtype):
    g, applied = _one_sgd_step(dtype, clipvalue=0.3)
    np.testing.assert_allclose(applied[0], np.full((3, 4), 0.3), **TOL[dtype])
    np.testing.assert_allclose(applied[1], [0.1, -0.2, 0.3, -0.3, 0.05], **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_clipnorm_clips_each_gradient_by_its_own_norm(dtype):
    g, applied = _one_sgd_step(dtype, clipnorm=2.0)
    norm0 = math.sqrt(12 * 0.25)  # 1.732 < 2: unchanged
    norm1 = math.sqrt(0.01 + 0.04 + 9 + 16 + 0.0025)
    assert norm0 < 2.0 < norm1
    np.testing.assert_allclose(applied[0], g[0], **TOL[dtype])
    np.testing.assert_allclose(applied[1], g[1].astype(np.float64) * 2.0 / norm1, **TOL[dtype])
    np.testing.assert_allclose(np.linalg.norm(applied[1]), 2.0, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_global_clipnorm_scales_all_gradients_together(dtype):
    g, applied = _one_sgd_step(dtype, global_clipnorm=2.0)
    global_norm = math.sqrt(12 * 0.25 + 0.01 + 0.04 + 9 + 16 + 0.0025)
    for a, gi in zip(applied, g):
        np.testing.assert_allclose(a, gi.astype(np.float64) * 2.0 / global_norm, **TOL[dtype])
    total = math.sqrt(sum(float(np.sum(np.square(a.astype(np.float64)))) for a in applied))
    assert total == pytest.approx(2.0, rel=1e-5)
    # a global norm below the threshold leaves the gradients as they are
    g, applied = _one_sgd_step(dtype, global_clipnorm=100.0)
    for a, gi in zip(applied, g):
        np.testing.assert_array_equal(a, gi)


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
@pytest.mark.parametrize("clip", [dict(clipnorm=1.0), dict(global_clipnorm=1.5), dict(clipvalue=0.4)],
                         ids=["clipnorm", "global_clipnorm", "clipvalue"])
def test_clipping_vs_reference_over_steps(kind, clip):
    w0, grads = _data(np.float64, scale=3.0)
    variables = _variables(w0)
    opt = CLASSES[kind](learning_rate=0.05, **clip)
    ref = Reference(kind, [w.copy() for w in w0], learning_rate=0.05, **clip)
    for g in grads:
        opt.apply(g, variables)
        ref.step(g)
    _assert_close([v.value for v in variables], ref.w, np.float64)


def test_at_most_one_clipping_argument():
    with pytest.raises(ValueError, match="Only one of"):
        O.Adam(clipnorm=1.0, global_clipnorm=1.0)
    with pytest.raises(ValueError, match="Only one of"):
        O.SGD(clipvalue=1.0, clipnorm=1.0)


def test_clipping_does_not_modify_the_callers_gradients():
    g = [np.full((3, 4), 5.0, np.float32), np.full(5, -5.0, np.float32)]
    copies = [x.copy() for x in g]
    for clip in (dict(clipnorm=1.0), dict(global_clipnorm=1.0), dict(clipvalue=1.0)):
        O.SGD(**clip).apply(g, _variables([np.zeros((3, 4), np.float32), np.zeros(5, np.float32)]))
    for a, b in zip(g, copies):
        np.testing.assert_array_equal(a, b)


# ---- gradients: None, conversion, errors --------------------------------------------------------
def test_none_gradients_skip_their_variable():
    w0, grads = _data(np.float32)
    variables = _variables(w0)
    opt = O.Adam(learning_rate=0.1)
    ref = Reference("adam", [w.copy() for w in w0], learning_rate=0.1)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for g in grads:
            opt.apply([None, g[1]], variables)
            ref.step([None, g[1]])
    np.testing.assert_array_equal(variables[0].value, w0[0])
    assert not np.any(opt.variables[1]) and not np.any(opt.variables[2])  # kernel's m, v untouched
    _assert_close([variables[1].value], [ref.w[1]], np.float32)
    assert opt.iterations == STEPS
    with pytest.raises(ValueError, match="No gradients provided for any variable"):
        opt.apply([None, None], variables)


def test_gradients_as_tensors_other_dtypes_and_layouts():
    w0, grads = _data(np.float32)
    a, b = _variables(w0), _variables(w0)
    O.SGD(learning_rate=0.1).apply([g for g in grads[0]], a)
    fancy = [Tensor(np.asfortranarray(grads[0][0].astype(np.float64))), grads[0][1].astype(np.float64).tolist()]
    O.SGD(learning_rate=0.1).apply(fancy, b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.value, y.value)
        assert y.value.dtype == np.float32


def test_shape_mismatch_names_variable_and_shapes():
    variables = _variables([np.zeros((3, 4), np.float32), np.zeros(5, np.float32)],
                           names=("dense/kernel", "dense/bias"))
    opt = O.Adam()
    with pytest.raises(ValueError) as err:
        opt.apply([np.zeros((3, 4)), np.zeros((4,))], variables)
    msg = str(err.value)
    assert "dense/bias" in msg and "(4,)" in msg and "(5,)" in msg
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(3, 4\)"):
        opt.apply([np.zeros((4, 3)), np.zeros(5)], variables)
    np.testing.assert_array_equal(variables[0].value, 0)  # nothing was applied
    assert opt.iterations == 0


def test_apply_without_variables_and_unknown_variables():
    w0, grads = _data(np.float32)
    variables = _variables(w0)
    opt = O.SGD()
    with pytest.raises(ValueError, match="must already be built"):
        opt.apply(grads[0])
    opt.build(variables)
    opt.apply(grads[0])  # the variables it was built with
    assert opt.apply_gradients(zip(grads[1], variables)) == 2
    other = Variable(np.zeros(5, np.float32), name="stranger")
    with pytest.raises(ValueError, match="Unknown variable: 'stranger'"):
        opt.apply([grads[2][1]], [other])
    with pytest.raises(ValueError, match="must match"):
        opt.apply(grads[0][:1])
    opt.apply([], [])  # no-op, as in Keras
    assert opt.iterations == 2


def test_subset_of_built_variables():
    w0, grads = _data(np.float64)
    variables = _variables(w0)
    opt = O.Adam(learning_rate=0.1)
    opt.build(variables)
    opt.apply([grads[0][1]], [variables[1]])
    ref = Reference("adam", [w.copy() for w in w0], learning_rate=0.1)
    ref.step([None, grads[0][1]])
    _assert_close([v.value for v in variables], ref.w, np.float64)


def test_constraint_applied_after_update():
    v = Variable(np.ones(5, np.float32), name="w", constraint=lambda x: np.clip(x, 0.0, 0.95))
    O.SGD(learning_rate=-1.0).apply([np.ones(5, np.float32)], [v])  # pushes w to 2.0
    np.testing.assert_array_equal(v.value, np.full(5, 0.95, np.float32))


def test_non_float_variable_rejected():
    with pytest.raises(TypeError, match="float"):
        O.SGD().build([Variable(np.zeros(3, np.int64), name="steps")])


def test_unknown_argument_and_bad_learning_rate():
    with pytest.raises(ValueError, match="not recognized"):
        O.Adam(beta3=0.1)
    with pytest.raises(ValueError, match="learning_rate"):
        O.Adam(learning_rate="fast")


# ---- learning rate: schedules, callables, setter -----------------------------------------------
def test_exponential_decay_values_and_config():
    s = schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    assert s(0) == pytest.approx(0.1) and s(4) == pytest.approx(0.05) and s(2) == pytest.approx(0.1 * 0.5**0.5)
    st = schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True)
    assert [st(i) for i in (0, 3, 4, 7, 8)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    again = schedules.deserialize(schedules.serialize(st))
    assert isinstance(again, schedules.ExponentialDecay) and again.get_config() == st.get_config()
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.ExponentialDecay(0.1, decay_steps=0, decay_rate=0.5)
    with pytest.raises(NotImplementedError):
        schedules.LearningRateSchedule()(0)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_schedule_drives_the_update(dtype):
    w0, grads = _data(dtype)
    variables = _variables(w0)
    schedule = schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    opt = O.Adam(learning_rate=schedule, weight_decay=0.1)
    ref = Reference("adam", [w.copy() for w in w0], learning_rate=lambda step: 0.1 * 0.5 ** (step / 2),
                    weight_decay=0.1)
    seen = []
    for g in grads:
        seen.append(opt.learning_rate)
        opt.apply(g, variables)
        ref.step(g)
    assert seen == pytest.approx([0.1 * 0.5 ** (i / 2) for i in range(STEPS)])
    _assert_close([v.value for v in variables], ref.w, dtype)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.01


def test_learning_rate_setter_and_callables():
    w0, grads = _data(np.float64)
    variables = _variables(w0)
    opt = O.SGD(learning_rate=0.1, momentum=0.9)
    lrs = [0.1, 0.1, 0.02, 0.02, 0.3]
    ref = Reference("sgd", [w.copy() for w in w0], learning_rate=lambda step: lrs[step], momentum=0.9)
    for i, g in enumerate(grads):
        opt.learning_rate = lrs[i]
        assert opt.learning_rate == lrs[i]
        opt.apply(g, variables)
        ref.step(g)
    _assert_close([v.value for v in variables], ref.w, np.float64)
    assert opt.get_config()["learning_rate"] == 0.3
    opt.learning_rate = lambda step: 0.5 / (step + 1)  # Keras 2 style: called with iterations
    assert opt.learning_rate == pytest.approx(0.5 / 6)
    opt.learning_rate = lambda: 0.25  # Keras 3 style: no arguments
    assert opt.learning_rate == 0.25
    opt.learning_rate = np.float32(0.5)
    assert type(opt.learning_rate) is float and opt.learning_rate == 0.5


# ---- state: exact resume -----------------------------------------------------------------------
STATE_CASES = [
    ("sgd", dict(momentum=0.9, nesterov=True)),
    ("adagrad", dict()),
    ("rmsprop", dict(centered=True, momentum=0.5)),
    ("adam", dict(amsgrad=True)),
    ("adamw", dict()),
    ("adamax", dict()),
    ("nadam", dict()),
]


@pytest.mark.parametrize("kind,hp", STATE_CASES, ids=[k for k, _ in STATE_CASES])
def test_get_state_set_state_resumes_exactly(kind, hp):
    w0, grads = _data(np.float32, steps=6)
    variables = _variables(w0)
    opt = CLASSES[kind](learning_rate=0.05, **hp)
    _run(opt, variables, grads[:3])
    state = opt.get_state()
    assert state[0].shape == () and int(state[0]) == 3
    assert all(isinstance(s, np.ndarray) for s in state)

    resumed_vars = _variables([v.value.copy() for v in variables])
    resumed = CLASSES[kind].from_config(opt.get_config())
    resumed.build(resumed_vars)
    resumed.set_state(state)
    assert resumed.iterations == 3
    state[1][...] = 123.0  # set_state copied: later edits of the list do not leak in
    _run(opt, variables, grads[3:])
    _run(resumed, resumed_vars, grads[3:])
    for a, b in zip(variables, resumed_vars):
        np.testing.assert_array_equal(a.value, b.value)
    for a, b in zip(opt.get_state(), resumed.get_state()):
        np.testing.assert_array_equal(a, b)


def test_set_state_errors():
    w0, _ = _data(np.float32)
    opt = O.Adam()
    with pytest.raises(ValueError, match="must be built"):
        opt.set_state([np.array(0)])
    opt.build(_variables(w0))
    state = opt.get_state()
    with pytest.raises(ValueError, match="5 state arrays"):
        opt.set_state(state[:-1])
    bad = list(state)
    bad[2] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"velocity.*\(3, 4\).*\(2, 2\)"):
        opt.set_state(bad)
    assert opt.iterations == 0


def test_keras_style_saving_hooks():
    w0, grads = _data(np.float32)
    variables = _variables(w0)
    opt = O.RMSprop(momentum=0.5)
    _run(opt, variables, grads[:2])
    store = {}
    opt.save_own_variables(store)
    other = O.RMSprop(momentum=0.5)
    other.build(_variables(w0))
    other.load_own_variables(store)
    for a, b in zip(opt.variables, other.variables):
        np.testing.assert_array_equal(a, b)
    with pytest.warns(UserWarning, match="Skipping variable loading"):
        O.RMSprop().load_own_variables(store)


# ---- configuration, registry, lookup -----------------------------------------------------------
@pytest.mark.parametrize("kind", list(CLASSES))
def test_config_round_trip(kind):
    opt = CLASSES[kind](learning_rate=0.02, clipnorm=1.0, name="mine")
    config = opt.get_config()
    assert config["learning_rate"] == 0.02 and config["clipnorm"] == 1.0 and config["name"] == "mine"
    again = CLASSES[kind].from_config(config)
    assert type(again) is CLASSES[kind] and again.get_config() == config
    back = O.deserialize(O.serialize(opt))
    assert type(back) is CLASSES[kind] and back.get_config() == config


def test_config_with_schedule_round_trips():
    opt = O.Adam(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.9, staircase=True))
    config = opt.get_config()
    assert config["learning_rate"]["class_name"] == "ExponentialDecay"
    import json

    again = O.Adam.from_config(json.loads(json.dumps(config)))
    assert isinstance(again._learning_rate, schedules.ExponentialDecay)
    assert again.get_config() == config


def test_get_by_name_dict_and_instance():
    for name, cls in [("adam", O.Adam), ("Adam", O.Adam), ("sgd", O.SGD), ("SGD", O.SGD),
                      ("rmsprop", O.RMSprop), ("RMSprop", O.RMSprop), ("adagrad", O.Adagrad),
                      ("adamw", O.AdamW), ("AdamW", O.AdamW), ("adamax", O.Adamax), ("nadam", O.Nadam)]:
        assert type(O.get(name)) is cls
        assert registry.lookup("optimizer", name) is cls
    opt = O.get({"class_name": "Adam", "config": {"learning_rate": 0.5, "amsgrad": True}})
    assert isinstance(opt, O.Adam) and opt.learning_rate == 0.5 and opt.amsgrad
    keras_form = {"module": "keras.optimizers", "class_name": "SGD", "registered_name": None,
                  "config": {"name": "SGD", "learning_rate": 0.1, "momentum": 0.9, "nesterov": False,
                             "weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                             "clipvalue": None, "use_ema": False, "ema_momentum": 0.99,
                             "ema_overwrite_frequency": None, "loss_scale_factor": None,
                             "gradient_accumulation_steps": None}}
    assert O.get(keras_form).momentum == 0.9
    assert O.get(opt) is opt and O.get(None) is None
    with pytest.raises(ValueError, match="Unknown optimizer"):
        O.get("adamm")
    with pytest.raises(ValueError, match="Could not interpret"):
        O.get(3)


# ---- extras: loss scaling, gradient accumulation, EMA, custom optimizers -----------------------
def test_loss_scale_factor_divides_gradients():
    w0, grads = _data(np.float64)
    a, b = _variables(w0), _variables(w0)
    opt = O.SGD(learning_rate=0.1, loss_scale_factor=8.0)
    assert opt.scale_loss(2.0) == 16.0
    opt.apply([g * 8.0 for g in grads[0]], a)
    O.SGD(learning_rate=0.1).apply(grads[0], b)
    _assert_close([v.value for v in a], [v.value for v in b], np.float64)


def test_gradient_accumulation_updates_every_n_calls_with_the_mean():
    w0, grads = _data(np.float64, steps=6)
    variables = _variables(w0)
    opt = O.Adam(learning_rate=0.1, gradient_accumulation_steps=3)
    ref = Reference("adam", [w.copy() for w in w0], learning_rate=0.1)
    for k in range(2):
        chunk = grads[3 * k:3 * k + 3]
        before = [v.value.copy() for v in variables]
        for i, g in enumerate(chunk):
            opt.apply(g, variables)
            if i < 2:  # accumulating: no update yet
                for v, b in zip(variables, before):
                    np.testing.assert_array_equal(v.value, b)
        ref.step([sum(c[j] for c in chunk) / 3 for j in range(2)])
        _assert_close([v.value for v in variables], ref.w, np.float64)
    assert opt.iterations == 2 and int(opt.variables[0]) == 6


def test_ema_tracks_weights_and_finalize_overwrites():
    w0, grads = _data(np.float64)
    variables = _variables(w0)
    opt = O.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5)
    average = None
    for g in grads:
        opt.apply(g, variables)
        current = [v.value.copy() for v in variables]
        average = current if average is None else [0.5 * a + 0.5 * c for a, c in zip(average, current)]
    opt.finalize_variable_values(variables)
    _assert_close([v.value for v in variables], average, np.float64)


def test_custom_optimizer_subclass_with_python_update_step():
    class SignSGD(O.Optimizer):
        def __init__(self, learning_rate=0.1, **kwargs):
            super().__init__(learning_rate=learning_rate, **kwargs)

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self.counts = self.add_optimizer_variables(var_list, "count")

        def update_step(self, gradient, variable, learning_rate):
            self.assign_add(self.counts[self._get_variable_index(variable)], 1.0)
            self.assign_sub(variable, learning_rate * np.sign(gradient))

    w0, grads = _data(np.float32)
    variables = _variables(w0)
    opt = SignSGD(weight_decay=0.5)
    _run(opt, variables, grads[:2])
    expected = w0[1].copy()
    for g in grads[:2]:
        expected = expected - expected * np.float32(0.05)
        expected = expected - np.float32(0.1) * np.sign(g[1])
    np.testing.assert_allclose(variables[1].value, expected, rtol=1e-6)
    assert np.all(opt.counts[0] == 2.0) and opt.name == "sign_sgd"


# ---- cold start --------------------------------------------------------------------------------
def test_import_does_not_load_numba_until_first_apply():
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import dlcore.optimizers as O
        from dlcore.tensor import Variable
        assert "numba" not in sys.modules, "import dlcore.optimizers imported numba"
        opt = O.Adam()
        v = Variable(np.ones(3, np.float32), name="v")
        opt.build([v])
        assert "numba" not in sys.modules, "building an optimizer imported numba"
        opt.apply([np.ones(3, np.float32)], [v])
        assert "numba" in sys.modules
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---- optional: Keras itself (skipped unless keras is importable) ---------------------------------
KERAS_NAMES = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
               "adamw": "AdamW", "adamax": "Adamax", "nadam": "Nadam"}
KERAS_CASES = [
    ("sgd", dict(learning_rate=0.1, momentum=0.9, nesterov=True)),
    ("sgd", dict(learning_rate=0.1, weight_decay=0.1, clipvalue=0.5)),
    ("adagrad", dict(learning_rate=0.1)),
    ("rmsprop", dict(learning_rate=0.01, centered=True, momentum=0.5)),
    ("rmsprop", dict(learning_rate=0.01, clipnorm=1.0)),
    ("adam", dict(learning_rate=0.05, amsgrad=True, global_clipnorm=1.0)),
    ("adamw", dict(learning_rate=0.05, weight_decay=0.2)),
    ("adamax", dict(learning_rate=0.05)),
    ("nadam", dict(learning_rate=0.05)),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("kind,hp", KERAS_CASES,
                         ids=[f"{k}-{'-'.join(map(str, h.values()))}" for k, h in KERAS_CASES])
def test_against_keras_if_installed(kind, hp):
    keras = pytest.importorskip("keras")
    w0, grads = _data(np.float32, scale=2.0)
    variables = _variables(w0)
    ours = CLASSES[kind](**hp)
    ours.exclude_from_weight_decay(var_names=["bias"])
    _run(ours, variables, grads)

    kvars = [keras.Variable(w.copy(), name=n) for w, n in zip(w0, ("kernel", "bias"))]
    theirs = getattr(keras.optimizers, KERAS_NAMES[kind])(**hp)
    theirs.exclude_from_weight_decay(var_names=["bias"])
    for g in grads:
        theirs.apply_gradients(zip([keras.ops.convert_to_tensor(x) for x in g], kvars))
    for v, kv in zip(variables, kvars):
        np.testing.assert_allclose(v.value, keras.ops.convert_to_numpy(kv), rtol=1e-5, atol=1e-6)
    # the same state arrays in the same order (Keras also tracks its learning-rate variable)
    kstate = [np.asarray(keras.ops.convert_to_numpy(v)) for v in theirs.variables]
    state = ours.get_state()
    assert int(kstate[0]) == int(state[0]) == STEPS
    assert [s.shape for s in state[1:]] == [s.shape for s in kstate[2:]]
    for a, b in zip(state[1:], kstate[2:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # configs have the same keys, and a Keras-serialized optimizer deserializes here
    assert set(ours.get_config()) == set(theirs.get_config())
    again = O.deserialize(keras.optimizers.serialize(theirs))
    assert type(again) is CLASSES[kind]
    assert again.get_config()["learning_rate"] == pytest.approx(hp["learning_rate"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_schedule_against_keras_if_installed():
    keras = pytest.importorskip("keras")
    w0, grads = _data(np.float32)
    variables = _variables(w0)
    _run(O.Adam(learning_rate=schedules.ExponentialDecay(0.1, 2, 0.5)), variables, grads)
    kvars = [keras.Variable(w.copy()) for w in w0]
    kopt = keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5))
    for g in grads:
        kopt.apply_gradients(zip([keras.ops.convert_to_tensor(x) for x in g], kvars))
    for v, kv in zip(variables, kvars):
        np.testing.assert_allclose(v.value, keras.ops.convert_to_numpy(kv), rtol=1e-5, atol=1e-6)
    assert schedules.ExponentialDecay(0.1, 2, 0.5).get_config() == \
        keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5).get_config()
