"""Learning-rate schedules (dlcore.optimizers.schedules) against Keras 3's formulas, transcribed
here in NumPy, and against keras.optimizers.schedules when Keras is installed; serialization; use
as ``learning_rate=`` on every optimizer; saving with the optimizer."""
import math
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import registry
from dlcore.optimizers import schedules as S

STEPS = [0, 1, 2, 3, 5, 7, 10, 11, 15, 20, 29, 30, 31, 45, 60, 100, 1000]


# ---- the formulas, from keras/src/optimizers/schedules/learning_rate_schedule.py ---------------------
def ref_exponential(step, lr, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return lr * rate ** (math.floor(p) if staircase else p)


def ref_piecewise(step, boundaries, values):
    out = 0.0
    out += values[0] * (step <= boundaries[0])
    out += values[-1] * (step > boundaries[-1])
    for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        out += v * (low < step <= high)
    return out


def ref_polynomial(step, lr, decay_steps, end=1e-4, power=1.0, cycle=False):
    if cycle:
        decay_steps = decay_steps * (1.0 if step == 0 else math.ceil(step / decay_steps))
    else:
        step = min(step, decay_steps)
    return (lr - end) * (1 - step / decay_steps) ** power + end


def ref_inverse_time(step, lr, decay_steps, rate, staircase=False):
    p = step / decay_steps
    return lr / (1 + rate * (math.floor(p) if staircase else p))


def ref_cosine(step, lr, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    def decay(s, from_lr):
        return from_lr * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * s / decay_steps)) + alpha)

    if warmup_target is None:
        return decay(min(step, decay_steps), lr)
    step = min(step, decay_steps + warmup_steps)
    if step < warmup_steps:
        return (warmup_target - lr) * step / warmup_steps + lr
    return decay(step - warmup_steps, warmup_target)


def ref_cosine_restarts(step, lr, first, t_mul=2.0, m_mul=1.0, alpha=0.0):
    # SGDR by walking the periods one by one (independent of the closed form)
    start, length, i = 0.0, float(first), 0
    while step >= start + length:
        start += length
        length *= t_mul
        i += 1
    fraction = (step - start) / length
    return lr * ((1 - alpha) * 0.5 * m_mul ** i * (1 + math.cos(math.pi * fraction)) + alpha)


CASES = [
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5),
     lambda s: ref_exponential(s, 0.1, 10, 0.5)),
    ("ExponentialDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True),
     lambda s: ref_exponential(s, 0.1, 10, 0.5, True)),
    ("PiecewiseConstantDecay", dict(boundaries=[10, 30], values=[1.0, 0.5, 0.1]),
     lambda s: ref_piecewise(s, [10, 30], [1.0, 0.5, 0.1])),
    ("PiecewiseConstantDecay", dict(boundaries=[5], values=[0.3, 0.03]),
     lambda s: ref_piecewise(s, [5], [0.3, 0.03])),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30),
     lambda s: ref_polynomial(s, 0.1, 30)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01, power=2.0),
     lambda s: ref_polynomial(s, 0.1, 30, 0.01, 2.0)),
    ("PolynomialDecay", dict(initial_learning_rate=0.1, decay_steps=30, end_learning_rate=0.01, power=0.5,
                             cycle=True),
     lambda s: ref_polynomial(s, 0.1, 30, 0.01, 0.5, True)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5),
     lambda s: ref_inverse_time(s, 0.1, 10, 0.5)),
    ("InverseTimeDecay", dict(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True),
     lambda s: ref_inverse_time(s, 0.1, 10, 0.5, True)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=30),
     lambda s: ref_cosine(s, 0.1, 30)),
    ("CosineDecay", dict(initial_learning_rate=0.1, decay_steps=30, alpha=0.1),
     lambda s: ref_cosine(s, 0.1, 30, 0.1)),
    ("CosineDecay", dict(initial_learning_rate=0.0, decay_steps=30, alpha=0.05, warmup_target=0.2,
                         warmup_steps=10),
     lambda s: ref_cosine(s, 0.0, 30, 0.05, 0.2, 10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10),
     lambda s: ref_cosine_restarts(s, 0.1, 10)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=10, t_mul=1.0, m_mul=0.5,
                                 alpha=0.1),
     lambda s: ref_cosine_restarts(s, 0.1, 10, 1.0, 0.5, 0.1)),
    ("CosineDecayRestarts", dict(initial_learning_rate=0.1, first_decay_steps=7, t_mul=3.0, m_mul=0.8),
     lambda s: ref_cosine_restarts(s, 0.1, 7, 3.0, 0.8)),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


@pytest.mark.parametrize("name,kwargs,reference", CASES, ids=IDS)
def test_matches_keras_formula(name, kwargs, reference):
    schedule = getattr(S, name)(**kwargs)
    for step in STEPS:
        value = schedule(step)
        assert isinstance(value, float)
        np.testing.assert_allclose(value, reference(step), rtol=1e-12, atol=1e-15, err_msg=f"step {step}")


@pytest.mark.parametrize("name,kwargs,reference", CASES, ids=IDS)
def test_config_round_trip_and_registry(name, kwargs, reference):
    schedule = getattr(S, name)(**kwargs)
    config = schedule.get_config()
    for key, value in kwargs.items():
        assert config[key] == value
    again = S.deserialize(S.serialize(schedule))
    assert type(again) is type(schedule) and again.get_config() == config
    assert [again(s) for s in STEPS] == [schedule(s) for s in STEPS]
    assert registry.lookup("schedule", name) is type(schedule)
    assert type(schedule).from_config(config).get_config() == config


def test_registered_schedules_are_all_tested():
    assert set(registry.registered("schedule")) >= {name for name, _, _ in CASES}


def test_keras_defaults_and_names():
    assert S.CosineDecay(0.1, 10).get_config() == {"initial_learning_rate": 0.1, "decay_steps": 10, "alpha": 0.0,
                                                   "name": "CosineDecay", "warmup_target": None, "warmup_steps": 0}
    assert S.PolynomialDecay(0.1, 10).get_config()["end_learning_rate"] == 0.0001
    assert S.PolynomialDecay(0.1, 10).get_config()["power"] == 1.0
    assert S.CosineDecayRestarts(0.1, 10).get_config() == {"initial_learning_rate": 0.1, "first_decay_steps": 10,
                                                           "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0,
                                                           "name": "SGDRDecay"}
    assert S.PiecewiseConstantDecay([1], [1.0, 2.0]).name == "PiecewiseConstant"
    assert S.InverseTimeDecay(0.1, 10, 0.5).name == "InverseTimeDecay"


@pytest.mark.parametrize("make", [
    lambda: S.PolynomialDecay(0.1, 0), lambda: S.InverseTimeDecay(0.1, 0, 0.5), lambda: S.CosineDecay(0.1, 0),
    lambda: S.CosineDecayRestarts(0.1, 0), lambda: S.PiecewiseConstantDecay([1, 2], [1.0, 2.0]),
    lambda: S.PiecewiseConstantDecay([2, 1], [1.0, 2.0, 3.0])])
def test_invalid_arguments(make):
    with pytest.raises(ValueError):
        make()


# ---- on the optimizers ---------------------------------------------------------------------------
# LossScaleOptimizer wraps another optimizer, whose learning rate it uses (tested with the wrapper's tests)
@pytest.mark.parametrize("opt_name", sorted(set(registry.registered("optimizer")) - {"LossScaleOptimizer"}))
def test_usable_on_every_optimizer(opt_name):
    cls = registry.lookup("optimizer", opt_name)
    schedule = S.CosineDecay(0.05, decay_steps=6, warmup_target=0.1, warmup_steps=2)
    optimizer = cls(learning_rate=schedule)
    w = dl.Variable(np.ones((3, 2), np.float32), name="w")
    for step in range(5):
        assert optimizer.learning_rate == schedule(step)
        optimizer.apply([np.full((3, 2), 0.5, np.float32)], [w])
    assert optimizer.iterations == 5 and np.isfinite(w.value).all()
    again = type(optimizer).from_config(optimizer.get_config())
    assert isinstance(again._learning_rate, S.CosineDecay)
    assert again._learning_rate.get_config() == schedule.get_config()


def test_schedule_is_saved_and_restored_with_the_model(tmp_path, fresh_session):
    schedule = S.PiecewiseConstantDecay([2, 4], [0.1, 0.05, 0.01])
    model = dl.Sequential([dl.Input(shape=(3,)), dl.layers.Dense(2)])
    model.compile(dl.optimizers.SGD(learning_rate=schedule), "mse")
    x = np.random.default_rng(0).normal(size=(12, 3)).astype("float32")
    model.fit(x, x[:, :2], batch_size=4, epochs=1, verbose=0)
    model.save(tmp_path / "m.dlc")
    loaded = dl.models.load_model(tmp_path / "m.dlc")
    assert isinstance(loaded.optimizer._learning_rate, S.PiecewiseConstantDecay)
    assert loaded.optimizer.iterations == 3
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate == 0.05


# ---- against Keras itself (skipped without keras) -------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    return pytest.importorskip("keras")


def test_against_keras_schedules_if_installed():
    keras = _keras()
    for name, kwargs, _ in CASES:
        ours = getattr(S, name)(**kwargs)
        theirs = getattr(keras.optimizers.schedules, name)(**kwargs)
        for step in STEPS:
            expected = float(keras.ops.convert_to_numpy(theirs(step)))
            # Keras computes in float32
            np.testing.assert_allclose(ours(step), expected, rtol=2e-6, atol=1e-8,
                                       err_msg=f"{name} {kwargs} step {step}")
        assert ours.get_config() == theirs.get_config()
