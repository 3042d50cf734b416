"""dlcore.losses: Keras 3 Loss objects (reductions, sample weights, masks), Keras's documented
values, gradients through GradientTape, registry names, get/serialize/deserialize."""
import json

import numpy as np
import pytest

import dlcore as dl
from dlcore import losses
from harness import check_op_gradients

EPS = 1e-7


def _per_sample(name, t, p):
    """NumPy per-sample losses (float64), written from the formulas."""
    t, p = np.asarray(t, np.float64), np.asarray(p, np.float64)
    if name == "mse":
        return np.mean((t - p) ** 2, -1)
    if name == "mae":
        return np.mean(np.abs(t - p), -1)
    if name == "bce":
        c = np.clip(p, EPS, 1 - EPS)
        return np.mean(-(t * np.log(c) + (1 - t) * np.log(1 - c)), -1)
    raise KeyError(name)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, size=(8, 3)).astype(np.float32)
    p = rng.uniform(0.05, 0.95, size=(8, 3)).astype(np.float32)
    w = rng.uniform(0.0, 2.0, size=8).astype(np.float32)
    return t, p, w


# ---- reductions and weights ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls,name", [(losses.MeanSquaredError, "mse"), (losses.MeanAbsoluteError, "mae"),
                                      (losses.BinaryCrossentropy, "bce")])
def test_reductions_and_sample_weights(cls, name, data, dtype):
    t, p, w = (a.astype(dtype) for a in data)
    per = _per_sample(name, t, p)
    tol = dict(rtol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
    cases = {
        "sum_over_batch_size": (per.mean(), (per * w).sum() / per.size),  # not / sum(w)
        "mean": (per.mean(), (per * w).sum() / per.size),
        "sum": (per.sum(), (per * w).sum()),
        "mean_with_sample_weight": (per.mean(), (per * w).sum() / w.sum()),
    }
    for reduction, (plain, weighted) in cases.items():
        loss = cls(reduction=reduction)
        out = loss(t, p)
        assert isinstance(out, dl.Tensor) and out.shape == () and out.dtype == dtype
        np.testing.assert_allclose(out.numpy(), plain, **tol)
        np.testing.assert_allclose(loss(t, p, sample_weight=w).numpy(), weighted, **tol)
        np.testing.assert_allclose(loss(t, p, sample_weight=w[:, None]).numpy(), weighted, **tol)
        scalar = plain if reduction == "mean_with_sample_weight" else 2 * plain  # weighted mean
        np.testing.assert_allclose(loss(t, p, sample_weight=2.0).numpy(), scalar, **tol)
    for reduction in (None, "none"):
        out = cls(reduction=reduction)(t, p, sample_weight=w)
        assert out.shape == (8,)
        np.testing.assert_allclose(out.numpy(), per * w, **tol)


def test_weights_for_sequence_losses():
    rng = np.random.default_rng(1)
    t, p = rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 5, 3))
    per = np.mean((t - p) ** 2, -1)  # (4, 5)
    w_sample, w_step = rng.uniform(size=4), rng.uniform(size=(4, 5))
    mse = losses.MeanSquaredError()
    np.testing.assert_allclose(mse(t, p, sample_weight=w_sample).numpy(), (per * w_sample[:, None]).mean())
    np.testing.assert_allclose(mse(t, p, sample_weight=w_step).numpy(), (per * w_step).mean())


def test_bad_sample_weight_is_a_clear_error(data):
    t, p, _ = data
    with pytest.raises(ValueError, match=r"binary_crossentropy: sample_weight must have shape \(8,\).*\(5,\)"):
        losses.BinaryCrossentropy()(t, p, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="sample_weight"):
        losses.BinaryCrossentropy()(t, p, sample_weight=np.ones((8, 3)))


def test_invalid_reduction():
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")


def test_zero_weights_give_zero_not_nan(data):
    t, p, _ = data
    out = losses.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, sample_weight=np.zeros(8))
    assert float(out) == 0.0


def test_sparse_ignore_class_averages_over_valid_entries():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=(6, 5))
    labels[0, :2] = labels[3, 4] = -1
    logits = rng.normal(size=(6, 5, 4))
    valid = labels != -1
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    per = lse - np.take_along_axis(logits, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    loss = losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    np.testing.assert_allclose(loss(labels, logits).numpy(), per[valid].mean(), rtol=1e-12)
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1,
                                                                    reduction="sum")(labels, logits).numpy(),
                               per[valid].sum(), rtol=1e-12)
    check_op_gradients(lambda x: loss(labels, x), [logits])


# ---- Keras's documented values -------------------------------------------------------------------
def test_known_keras_values():
    t, p = [[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]]
    bce = losses.BinaryCrossentropy()
    np.testing.assert_allclose(float(bce(t, p)), 0.815, atol=1e-3)
    np.testing.assert_allclose(float(bce(t, p, sample_weight=[1, 0])), 0.458, atol=1e-3)
    np.testing.assert_allclose(float(losses.BinaryCrossentropy(reduction="sum")(t, p)), 1.630, atol=1e-3)
    np.testing.assert_allclose(losses.BinaryCrossentropy(reduction=None)(t, p).numpy(), [0.916, 0.714],
                               atol=1e-3)
    np.testing.assert_allclose(float(losses.BinaryCrossentropy(from_logits=True)(
        [0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8])), 0.865, atol=1e-3)
    np.testing.assert_allclose(float(losses.BinaryCrossentropy()([1, 0], [0.9, 0.2])),
                               -(np.log(0.9) + np.log(0.8)) / 2, rtol=1e-6)
    ct, cp = [[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    cce = losses.CategoricalCrossentropy()
    np.testing.assert_allclose(float(cce(ct, cp)), 1.177, atol=1e-3)
    np.testing.assert_allclose(float(cce(ct, cp, sample_weight=[0.3, 0.7])), 0.814, atol=1e-3)
    np.testing.assert_allclose(float(losses.CategoricalCrossentropy(reduction="sum")(ct, cp)), 2.354, atol=1e-3)
    np.testing.assert_allclose(float(losses.SparseCategoricalCrossentropy()([1, 2], cp)), 1.177, atol=1e-3)
    mt, mp = [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]
    np.testing.assert_allclose(float(losses.MeanSquaredError()(mt, mp)), 0.5)
    np.testing.assert_allclose(float(losses.MeanSquaredError()(mt, mp, sample_weight=[0.7, 0.3])), 0.25)
    np.testing.assert_allclose(float(losses.MeanAbsoluteError(reduction="sum")(mt, mp)), 1.0)
    np.testing.assert_allclose(float(losses.MeanSquaredLogarithmicError()(mt, mp)), 0.240, atol=1e-3)
    np.testing.assert_allclose(float(losses.MeanAbsolutePercentageError()([[2.0, 1.0], [2.0, 3.0]], mp)), 50.0,
                               rtol=1e-6)
    np.testing.assert_allclose(float(losses.Huber()(t, p)), 0.155, atol=1e-3)
    np.testing.assert_allclose(float(losses.LogCosh()(mt, [[1.0, 1.0], [0.0, 0.0]])), 0.108, atol=1e-3)
    np.testing.assert_allclose(float(losses.Hinge()(t, p)), 1.3, atol=1e-6)
    np.testing.assert_allclose(float(losses.SquaredHinge()(t, p)), 1.86, atol=1e-6)
    np.testing.assert_allclose(float(losses.CategoricalHinge()([[0, 1], [0, 0]], p)), 1.4, atol=1e-6)
    np.testing.assert_allclose(float(losses.KLDivergence()(t, p)), 0.458, atol=1e-3)
    np.testing.assert_allclose(float(losses.Poisson()(mt, [[1.0, 1.0], [0.0, 0.0]])), 0.5, atol=1e-6)
    cos = losses.CosineSimilarity()([[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(float(cos),
                               -0.5, atol=1e-6)


# ---- gradients ---------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", [losses.MeanSquaredError(), losses.BinaryCrossentropy(label_smoothing=0.1),
                                  losses.CategoricalCrossentropy(from_logits=True), losses.Huber(delta=0.5),
                                  losses.Poisson(reduction="sum")], ids=lambda l: l.name)
def test_loss_object_gradients(loss):
    rng = np.random.default_rng(3)
    t = np.eye(4)[rng.integers(0, 4, size=5)]
    p = rng.uniform(0.1, 0.9, size=(5, 4))
    w = rng.uniform(0.5, 1.5, size=5)
    check_op_gradients(lambda x: loss(t, x, sample_weight=w), [p])


def test_dtype_argument_casts_y_pred():
    out = losses.MeanSquaredError(dtype="float64")(np.zeros((2, 2), np.float32), np.ones((2, 2), np.float32))
    assert out.dtype == np.float64
    assert losses.MeanSquaredError().dtype == "float32"


def test_custom_loss_subclass():
    class Scaled(losses.Loss):
        def call(self, y_true, y_pred):
            return dl.ops.multiply(losses.mean_squared_error(y_true, y_pred), 3.0)

    loss = Scaled()
    assert loss.name == "scaled"
    np.testing.assert_allclose(float(loss([[0.0, 1.0]], [[1.0, 1.0]])), 1.5)


# ---- names, get, (de)serialization -----------------------------------------------------------------
@pytest.mark.parametrize("alias,fn", [
    ("mse", losses.mean_squared_error), ("MSE", losses.mean_squared_error),
    ("mean_squared_error", losses.mean_squared_error), ("mae", losses.mean_absolute_error),
    ("mape", losses.mean_absolute_percentage_error), ("msle", losses.mean_squared_logarithmic_error),
    ("binary_crossentropy", losses.binary_crossentropy), ("bce", losses.binary_crossentropy),
    ("categorical_crossentropy", losses.categorical_crossentropy),
    ("sparse_categorical_crossentropy", losses.sparse_categorical_crossentropy),
    ("huber", losses.huber), ("log_cosh", losses.log_cosh), ("logcosh", losses.log_cosh),
    ("kld", losses.kl_divergence), ("kl_divergence", losses.kl_divergence), ("hinge", losses.hinge),
    ("squared_hinge", losses.squared_hinge), ("poisson", losses.poisson),
    ("cosine_similarity", losses.cosine_similarity),
])
def test_get_function_names(alias, fn):
    assert losses.get(alias) is fn
    assert dl.registry.lookup("loss", alias) is fn


@pytest.mark.parametrize("name", ["MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError",
                                  "MeanSquaredLogarithmicError", "Huber", "LogCosh", "BinaryCrossentropy",
                                  "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Hinge",
                                  "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
                                  "CosineSimilarity"])
def test_get_class_names_and_round_trip(name):
    loss = losses.get(name)
    assert isinstance(loss, losses.Loss) and type(loss).__name__ == name
    again = losses.deserialize(json.loads(json.dumps(losses.serialize(loss))))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()


def test_configs_keep_arguments():
    loss = losses.BinaryCrossentropy(from_logits=True, label_smoothing=0.2, reduction="sum", name="b")
    assert loss.get_config() == {"name": "b", "reduction": "sum", "from_logits": True,
                                 "label_smoothing": 0.2, "axis": -1}
    again = losses.get(losses.serialize(loss))
    assert again.from_logits and again.label_smoothing == 0.2 and again.reduction == "sum"
    huber = losses.Huber.from_config(losses.Huber(delta=2.5).get_config())
    assert huber.name == "huber_loss" and huber._fn_kwargs == {"delta": 2.5}
    scce = losses.get({"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 255}})
    assert scce.ignore_class == 255


def test_wrapper_and_callables():
    wrapper = losses.LossFunctionWrapper(losses.huber, delta=0.5, name="h")
    config = wrapper.get_config()
    assert config["fn"] == "huber" and config["delta"] == 0.5
    again = losses.LossFunctionWrapper.from_config(json.loads(json.dumps(config)))
    t, p = [[0.0, 2.0]], [[1.0, 0.0]]
    np.testing.assert_allclose(float(again(t, p)), float(wrapper(t, p)))

    def my_loss(y_true, y_pred):
        return losses.mean_absolute_error(y_true, y_pred)

    assert losses.get(my_loss) is my_loss
    assert isinstance(losses.get(losses.Huber), losses.Huber)
    assert losses.get(None) is None
    assert losses.get("my_loss", custom_objects={"my_loss": my_loss}) is my_loss
    with pytest.raises(ValueError, match="Unknown loss identifier"):
        losses.get("no_such_loss")
    with pytest.raises(ValueError, match="Could not interpret"):
        losses.get(3)


def test_output_mask_drops_masked_steps_from_the_loss():
    """Keras semantics: a sequence model's output mask (from Embedding(mask_zero=True)) removes
    the padded time steps from the loss, which is averaged over the valid steps only."""
    import dlcore as dl

    dl.utils.set_random_seed(0)
    model = dl.Sequential([
        dl.Input(shape=(5,), dtype="int32"),
        dl.layers.Embedding(10, 4, mask_zero=True),
        dl.layers.SimpleRNN(3, return_sequences=True),
        dl.layers.Dense(1),
    ])
    model.compile(optimizer="sgd", loss="mse")
    x = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 7, 8]])
    y = np.random.default_rng(0).standard_normal((2, 5, 1)).astype(np.float32)
    y_pred = model(x)
    assert y_pred.mask is not None and y_pred.mask.shape == (2, 5)
    loss = model.compute_loss(x, y, y_pred)  # Keras 3: a scalar
    valid = x != 0
    squared = (y_pred.numpy()[..., 0] - y[..., 0]) ** 2
    np.testing.assert_allclose(float(loss.numpy()), squared[valid].mean(), rtol=1e-5)
    assert not np.isclose(float(loss.numpy()), squared.mean())


def test_output_mask_drops_masked_steps_from_the_metrics():
    import dlcore as dl

    dl.utils.set_random_seed(0)
    model = dl.Sequential([
        dl.Input(shape=(4,), dtype="int32"),
        dl.layers.Embedding(10, 4, mask_zero=True),
        dl.layers.SimpleRNN(3, return_sequences=True),
        dl.layers.Dense(2, activation="softmax"),
    ])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = np.array([[1, 2, 0, 0], [3, 4, 5, 0]])
    y_pred = model.predict(x, verbose=0)
    y = np.argmax(y_pred, axis=-1)  # right on every step ...
    y[x == 0] = 1 - y[x == 0]        # ... and wrong on every padded one
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert logs["accuracy"] == 1.0
