"""Adadelta, Lion, Ftrl, Adafactor, Lamb and LossScaleOptimizer: step by step against float64
NumPy transcriptions of the Keras 3 formulas (keras/src/optimizers/{adadelta, lion, ftrl,
adafactor, lamb, loss_scale_optimizer}.py), against values computed with Keras 3 (stored below;
re-checked live when keras is installed), and their configs, pickling, .dlc state and errors."""
import math
import pickle

import numpy as np
import pytest

import dlcore as dl
import dlcore.optimizers as O
from dlcore.tensor import Variable

# Keras 3.x (TensorFlow backend), float32: w (3, 4) and b (4,) from default_rng(0) standard
# normals, then three apply() calls with gradients drawn next from the same generator.
KERAS_3STEP = {
    "adadelta": ([[0.12578029930591583, -0.13515283167362213, 0.6361950039863586, 0.10434222221374512], [-0.5318690538406372, 0.35920873284339905, 1.3060808181762695, 0.9425076246261597], [-0.704282820224762, -1.2705916166305542, -0.6218045949935913, 0.04276685416698456]],
        [-2.3229551315307617, -0.215770423412323, -1.2482787370681763, -0.7321124076843262]),
    "lion": ([[0.13573022186756134, -0.1421048641204834, 0.610422670841217, 0.09490011632442474], [-0.5056694149971008, 0.3315950930118561, 1.3140000104904175, 0.9170809984207153], [-0.7137352228164673, -1.2954214811325073, -0.6132744550704956, 0.051325976848602295]],
        [-2.315030813217163, -0.20879165828227997, -1.2559109926223755, -0.7222673892974854]),
    "ftrl": ([[0.030055996030569077, -0.0919613242149353, 0.009410508908331394, 0.015621079131960869], [0.060352668166160583, 0.1235470175743103, 0.5174204707145691, 0.0019798355642706156], [-0.3532908260822296, -0.12139932811260223, -0.19606734812259674, 0.07262778282165527]],
        [-0.4433229863643646, 0.06299779564142227, -0.6768589019775391, -0.06416133046150208]),
    "adafactor": ([[0.10957085341215134, -0.1998118758201599, 0.5852940082550049, 0.07517589628696442], [-0.497876912355423, 0.2858186662197113, 1.3555546998977661, 0.861136257648468], [-0.7212988138198853, -1.3405060768127441, -0.5899535417556763, 0.07837925106287003]],
        [-2.232938766479492, -0.1282953917980194, -1.316668152809143, -0.7171779274940491]),
    "lamb": ([[0.13616783916950226, -0.1373596340417862, 0.6120630502700806, 0.08990070968866348], [-0.5116727948188782, 0.3404288589954376, 1.314366102218628, 0.921004593372345], [-0.7079063653945923, -1.2907785177230835, -0.6177947521209717, 0.051897332072257996]],
        [-2.2933125495910645, -0.2062675803899765, -1.2569223642349243, -0.7496141195297241]),
}
KERAS_LSO = ([[-0.07131905853748322, -0.3002355694770813, 0.445457398891449, 0.033809810876846313], [-0.49621814489364624, -0.17963896691799164, 1.761230707168579, 0.7626035213470459], [-1.0607489347457886, -1.4328336715698242, -0.1634010523557663, 0.4501841068267822]], [-2.100426197052002, -0.05088980495929718, -1.2908991575241089, -0.5703325867652893], [8.0, 4.0, 4.0, 8.0], 3)
KERAS_EMA = ([[0.007953867316246033, -0.25902748107910156, 0.5527886152267456, 0.10371199995279312], [-0.48967909812927246, 0.1657819002866745, 1.4601569175720215, 0.7977461814880371], [-0.7741153240203857, -1.4201232194900513, -0.49780648946762085, 0.16060321033000946]], [-2.248837471008301, -0.10813483595848083, -1.391787052154541, -0.7597717046737671], [[0.09803561121225357, -0.19327229261398315, 0.5706576108932495, 0.04329606890678406], [-0.4899018108844757, 0.19860565662384033, 1.3957388401031494, 0.8175022602081299], [-0.752622127532959, -1.3853211402893066, -0.5570123791694641, 0.12751808762550354]], [-2.2706592082977295, -0.16662493348121643, -1.3048186302185059, -0.7845672369003296])

CASES = {
    "adadelta": dict(learning_rate=0.5, rho=0.9, epsilon=1e-6),
    "lion": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.95),
    "ftrl": dict(learning_rate=0.1, learning_rate_power=-0.6, initial_accumulator_value=0.2,
                 l1_regularization_strength=0.05, l2_regularization_strength=0.1,
                 l2_shrinkage_regularization_strength=0.02, beta=0.3),
    "adafactor": dict(learning_rate=0.1, clip_threshold=0.5),
    "lamb": dict(learning_rate=0.01, beta_1=0.8, beta_2=0.9, epsilon=1e-6),
}
CLASSES = {"adadelta": O.Adadelta, "lion": O.Lion, "ftrl": O.Ftrl, "adafactor": O.Adafactor,
           "lamb": O.Lamb}


def _data(dtype=np.float32, steps=3):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    grads = [(rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32))
             for _ in range(steps)]
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return [cast(w), cast(b)], [[cast(gw), cast(gb)] for gw, gb in grads]


# ---- float64 references, one step on one array (state: a dict of arrays) ------------------------
def ref_adadelta(w, g, s, t, lr, rho, epsilon):
    s.setdefault("ag", np.zeros_like(w)); s.setdefault("ad", np.zeros_like(w))
    s["ag"] = rho * s["ag"] + (1 - rho) * g * g
    delta = -np.sqrt(s["ad"] + epsilon) * g / np.sqrt(s["ag"] + epsilon)
    s["ad"] = rho * s["ad"] + (1 - rho) * delta * delta
    return w + lr * delta


def ref_lion(w, g, s, t, lr, beta_1, beta_2):
    m = s.setdefault("m", np.zeros_like(w))
    w = w - lr * np.sign(beta_1 * m + (1 - beta_1) * g)
    s["m"] = beta_2 * m + (1 - beta_2) * g
    return w


def ref_ftrl(w, g, s, t, lr, learning_rate_power, initial_accumulator_value, l1_regularization_strength,
             l2_regularization_strength, l2_shrinkage_regularization_strength, beta):
    n = s.setdefault("n", np.full_like(w, initial_accumulator_value))
    z = s.setdefault("z", np.zeros_like(w))
    p = -learning_rate_power
    n_new = n + g * g
    z = z + g + 2 * l2_shrinkage_regularization_strength * w - (n_new ** p - n ** p) / lr * w
    quadratic = n_new ** p / lr + 2 * (l2_regularization_strength + beta / (2 * lr))
    l1 = l1_regularization_strength
    s["n"], s["z"] = n_new, z
    return (np.clip(z, -l1, l1) - z) / quadratic


def ref_adafactor(w, g, s, t, lr, clip_threshold, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3):
    rms = lambda x: math.sqrt(np.mean(x * x))  # noqa: E731
    rho = min(lr, 1 / math.sqrt(t))
    alpha = max(epsilon_2, rms(w)) * rho
    beta = 1 - t ** beta_2_decay
    sq = g * g + epsilon_1
    if w.ndim >= 2:
        r = s["r"] = beta * s.get("r", 0.0) + (1 - beta) * sq.mean(axis=-1)
        c = s["c"] = beta * s.get("c", 0.0) + (1 - beta) * sq.mean(axis=-2)
        v = np.outer(r / r.mean(), c)
    else:
        v = s["v"] = beta * s.get("v", 0.0) + (1 - beta) * sq
    u = g / np.sqrt(v)
    return w - alpha * u / max(1.0, rms(u) / clip_threshold)


def ref_lamb(w, g, s, t, lr, beta_1, beta_2, epsilon):
    m = s["m"] = s.get("m", 0.0) + (g - s.get("m", 0.0)) * (1 - beta_1)
    v = s["v"] = s.get("v", 0.0) + (g * g - s.get("v", 0.0)) * (1 - beta_2)
    update = (m / (1 - beta_1 ** t)) / (np.sqrt(v / (1 - beta_2 ** t)) + epsilon)
    w_norm, u_norm = np.linalg.norm(w), np.linalg.norm(update)
    ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
    return w - ratio * lr * update


REFS = {"adadelta": ref_adadelta, "lion": ref_lion, "ftrl": ref_ftrl, "adafactor": ref_adafactor,
        "lamb": ref_lamb}


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_steps_follow_the_formulas(name):
    weights, grads = _data(np.float64, steps=4)
    variables = [Variable(w.copy()) for w in weights]
    opt = CLASSES[name](**CASES[name])
    kw = dict(CASES[name]); lr = kw.pop("learning_rate")
    ref_w, states = [w.copy() for w in weights], [{}, {}]
    for t, step in enumerate(grads, start=1):
        opt.apply(step, variables)
        ref_w = [REFS[name](w, g, s, t, lr, **kw) for w, g, s in zip(ref_w, step, states)]
        for v, r in zip(variables, ref_w):
            np.testing.assert_allclose(v.value, r, rtol=1e-12, atol=1e-13)
    assert opt.iterations == 4


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_matches_stored_keras_values(name):
    weights, grads = _data(np.float32)
    variables = [Variable(w.copy()) for w in weights]
    opt = O.get(name).__class__(**CASES[name])
    for step in grads:
        opt.apply(step, variables)
    expected_w, expected_b = KERAS_3STEP[name]
    np.testing.assert_allclose(variables[0].value, expected_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variables[1].value, expected_b, rtol=1e-5, atol=1e-6)
    assert variables[0].value.dtype == np.float32


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_live_keras(name):
    keras = pytest.importorskip("keras")
    weights, grads = _data(np.float32)
    kcls = {"adadelta": keras.optimizers.Adadelta, "lion": keras.optimizers.Lion,
            "ftrl": keras.optimizers.Ftrl, "adafactor": keras.optimizers.Adafactor,
            "lamb": keras.optimizers.Lamb}[name]
    kopt, kvars = kcls(**CASES[name]), [keras.Variable(w) for w in weights]
    opt, variables = CLASSES[name](**CASES[name]), [Variable(w.copy()) for w in weights]
    for step in grads:
        kopt.apply(step, kvars)
        opt.apply(step, variables)
    for v, k in zip(variables, kvars):
        np.testing.assert_allclose(v.value, np.asarray(k), rtol=1e-5, atol=1e-6)
    assert [tuple(a.shape) for a in opt.variables] == [tuple(k.shape) for k in kopt.variables
                                                      if k.path.split("/")[-1] != "learning_rate"]


def test_adafactor_factors_rank_2_and_up():
    opt = O.Adafactor()
    w3, b = Variable(np.ones((2, 3, 5), np.float32)), Variable(np.ones(5, np.float32))
    opt.build([w3, b])
    r, c, v = opt._r[0], opt._c[0], opt._v[0]
    assert (r.shape, c.shape, v.shape) == ((2, 3), (2, 5), (2, 3, 5))
    assert opt._r[1].shape == () and opt._v[1].shape == (5,)
    g = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32)
    opt.apply([g, np.ones(5, np.float32)], [w3, b])
    sq = g.astype(np.float64) ** 2 + 1e-30  # t = 1: beta = 0, so r and c are the plain means
    np.testing.assert_allclose(r, sq.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(c, sq.mean(-2), rtol=1e-6)


@pytest.mark.parametrize("name", ["adadelta", "lion", "ftrl", "adafactor", "lamb", "loss_scale_optimizer"])
def test_string_names_and_config_round_trip(name):
    if name == "loss_scale_optimizer":
        opt = O.LossScaleOptimizer(O.Lion(learning_rate=0.02), initial_scale=64.0, dynamic_growth_steps=7)
    else:
        opt = O.get(name)
        assert isinstance(opt, CLASSES[name]) and opt.name == name
        opt = CLASSES[name](**CASES[name])
    config = O.serialize(opt)
    again = O.deserialize(config)
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    if name == "loss_scale_optimizer":
        assert isinstance(again.inner_optimizer, O.Lion) and again.learning_rate == 0.02
        assert again.dynamic_growth_steps == 7 and again.initial_scale == 64.0


@pytest.mark.parametrize("name", sorted(CASES))
def test_pickle_keeps_state_and_continues_identically(name):
    weights, grads = _data(np.float64, steps=3)
    variables = [Variable(w.copy()) for w in weights]
    opt = CLASSES[name](**CASES[name])
    opt.apply(grads[0], variables)
    opt2, variables2 = pickle.loads(pickle.dumps((opt, variables)))
    for step in grads[1:]:
        opt.apply(step, variables)
        opt2.apply(step, variables2)
    for a, b in zip(variables, variables2):
        np.testing.assert_array_equal(a.value, b.value)


@pytest.mark.parametrize("kwargs, match", [
    (dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
    (dict(learning_rate_power=0.5), "learning_rate_power"),
    (dict(l1_regularization_strength=-1.0), "l1_regularization_strength"),
    (dict(l2_regularization_strength=-1.0), "l2_regularization_strength"),
    (dict(l2_shrinkage_regularization_strength=-1.0), "l2_shrinkage_regularization_strength"),
])
def test_ftrl_rejects_bad_hyper_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        O.Ftrl(**kwargs)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match="beta_1"):
        O.Lion(beta_1=0.0)
    with pytest.raises(ValueError, match="clip_threshold"):
        O.Adafactor(clip_threshold=0)
    with pytest.raises(ValueError, match="not recognized"):
        O.Lamb(momentum=0.9)
    with pytest.raises(TypeError, match="inner_optimizer"):
        O.LossScaleOptimizer("adam")
    with pytest.raises(ValueError, match="initial_scale"):
        O.LossScaleOptimizer(O.SGD(), initial_scale=0)
    with pytest.raises(ValueError, match="dynamic_growth_steps"):
        O.LossScaleOptimizer(O.SGD(), dynamic_growth_steps=0)
    with pytest.raises(ValueError, match="does not support `clipnorm`"):
        O.LossScaleOptimizer(O.SGD(), clipnorm=1.0)
    with pytest.raises(ValueError, match="dynamic=False"):
        O.LossScaleOptimizer(O.SGD(), dynamic=False)
    with pytest.raises(ValueError, match="shape"):
        O.Adadelta().apply([np.ones(3)], [Variable(np.ones(4))])


# ---- LossScaleOptimizer -----------------------------------------------------------------------
def test_loss_scale_optimizer_skips_non_finite_steps_and_rescales():
    weights, grads = _data(np.float32)
    variables = [Variable(w.copy()) for w in weights]
    opt = O.LossScaleOptimizer(O.SGD(learning_rate=0.1), initial_scale=8.0, dynamic_growth_steps=2)
    assert opt.scale_loss(2.0) == 16.0  # unbuilt: initial_scale
    scales = []
    for k, (gw, gb) in enumerate(grads + [grads[0]]):
        if k == 1:
            gw = gw.copy(); gw[0, 0] = np.inf
            before = [v.value.copy() for v in variables]
        opt.apply([gw * 8, gb * 8], variables)
        if k == 1:  # skipped: weights untouched, scale halved
            for v, b in zip(variables, before):
                np.testing.assert_array_equal(v.value, b)
        scales.append(float(opt.dynamic_scale))
    expected_w, expected_b, keras_scales, keras_iterations = KERAS_LSO
    assert scales == keras_scales == [8.0, 4.0, 4.0, 8.0]
    assert opt.iterations == keras_iterations == 3
    assert opt.scale_loss(2.0) == 16.0
    np.testing.assert_allclose(variables[0].value, expected_w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(variables[1].value, expected_b, rtol=1e-6, atol=1e-6)
    names = [n for n in opt._variable_names]
    assert names[:3] == ["iteration", "step_counter", "dynamic_scale"] and len(opt.variables) == 4


def test_loss_scale_optimizer_delegates_learning_rate_and_state():
    inner = O.Adam(learning_rate=0.01)
    opt = O.LossScaleOptimizer(inner)
    assert opt.learning_rate == 0.01 and opt.initial_scale == 2.0 ** 15 and opt.dynamic_growth_steps == 2000
    opt.learning_rate = 0.5
    assert inner.learning_rate == 0.5
    v = Variable(np.ones(3, np.float32))
    opt.apply([np.full(3, 2.0 ** 15, np.float32)], [v])
    state = opt.get_state()
    assert len(state) == 3 + len(inner.variables)
    opt.apply([np.full(3, np.nan, np.float32)], [v])
    assert float(opt.dynamic_scale) == 2.0 ** 14
    opt.set_state(state)
    assert float(opt.dynamic_scale) == 2.0 ** 15 and opt.iterations == 1
    with pytest.raises(ValueError, match="state arrays"):
        opt.set_state(state[:-1])
    opt2, v2 = pickle.loads(pickle.dumps((opt, v)))
    grad = [np.full(3, 2.0 ** 14, np.float32)]
    opt.apply(grad, [v])
    opt2.apply(grad, [v2])
    np.testing.assert_array_equal(v.value, v2.value)
    assert opt2.iterations == opt.iterations == 2 and float(opt2.step_counter) == 2
    assert opt2.learning_rate == 0.5 and opt2.inner_optimizer is not inner


def _compiled_model(optimizer):
    model = dl.Sequential([dl.layers.Input((3,)), dl.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_loss_scale_optimizer_in_fit_matches_unscaled_training_and_saves(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((16, 3)).astype(np.float32), rng.standard_normal((16, 2)).astype(np.float32)
    dl.utils.set_random_seed(0)
    plain = _compiled_model(O.SGD(learning_rate=0.1))
    dl.utils.set_random_seed(0)
    scaled = _compiled_model(O.LossScaleOptimizer(O.SGD(learning_rate=0.1), initial_scale=256.0,
                                                  dynamic_growth_steps=3))
    for m in (plain, scaled):
        m.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(plain.get_weights(), scaled.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert float(scaled.optimizer.dynamic_scale) == 512.0  # 4 finite steps, growth every 3
    path = str(tmp_path / "m.dlc")
    scaled.save(path)
    loaded = dl.models.load_model(path)
    assert isinstance(loaded.optimizer, O.LossScaleOptimizer)
    assert float(loaded.optimizer.dynamic_scale) == 512.0 and loaded.optimizer.iterations == 4
    for a, b in zip(scaled.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a, b)


# ---- use_ema ----------------------------------------------------------------------------------
def test_ema_with_overwrite_frequency_matches_keras():
    weights, grads = _data(np.float32)
    variables = [Variable(w.copy()) for w in weights]
    opt = O.SGD(learning_rate=0.1, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=2)
    for step in grads:
        opt.apply(step, variables)
    expected_w, expected_b, average_w, average_b = KERAS_EMA
    np.testing.assert_allclose(variables[0].value, expected_w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(variables[1].value, expected_b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(opt._model_variables_moving_average[0], average_w, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(opt._model_variables_moving_average[1], average_b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_ema_on_every_new_optimizer(name):
    weights, grads = _data(np.float64)
    variables = [Variable(w.copy()) for w in weights]
    opt = CLASSES[name](**CASES[name], use_ema=True, ema_momentum=0.75)
    assert opt.get_config()["use_ema"] is True and opt.get_config()["ema_momentum"] == 0.75
    average = None
    for step in grads:
        opt.apply(step, variables)
        now = [v.value.copy() for v in variables]
        average = now if average is None else [0.75 * a + 0.25 * n for a, n in zip(average, now)]
    for got, want in zip(opt._model_variables_moving_average, average):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    opt.finalize_variable_values(variables)
    for v, want in zip(variables, average):
        np.testing.assert_allclose(v.value, want, rtol=1e-12)
