"""Focal and overlap losses (BinaryFocalCrossentropy, CategoricalFocalCrossentropy, Dice,
Tversky): Keras 3 values stored below (computed by keras 3.15 on these inputs, and recomputed
live when keras is installed), float64 finite-difference gradients, config round trips, names
and bad input."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import losses
from harness import check_op_gradients

T = np.array([[0, 1, 1, 0], [1, 0, 1, 1], [0, 0, 1, 0]], "float32")
P = np.array([[0.1, 0.8, 0.6, 0.3], [0.7, 0.2, 0.9, 0.4], [0.05, 0.5, 0.95, 0.2]], "float32")
X = np.array([[-1.5, 2.0, 0.3, -0.2], [0.8, -2.5, 1.2, 0.1], [-0.4, 0.0, 3.0, -1.0]], "float32")
OH = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0]], "float32")
S = P / P.sum(-1, keepdims=True)
INPUTS = {"P": P, "X": X, "S": S}
FUNCTIONS = {"BinaryFocalCrossentropy": "binary_focal_crossentropy",
             "CategoricalFocalCrossentropy": "categorical_focal_crossentropy",
             "Dice": "dice", "Tversky": "tversky"}

# (class, kwargs, y_pred, Keras per-sample values, Keras reduced value)
CASES = [
    ("BinaryFocalCrossentropy", {}, "P", [0.030953, 0.0929862, 0.0456173], 0.0565188),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.3, "gamma": 1.5}, "P",
     [0.0220285, 0.0400772, 0.0465224], 0.0362094),
    ("BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "X",
     [0.069492, 0.0612709, 0.0797514], 0.0701714),
    ("CategoricalFocalCrossentropy", {}, "S", [0.644535, 0.0780244, 0.1524426], 0.2916674),
    ("CategoricalFocalCrossentropy", {"alpha": 0.5, "gamma": 1.0, "label_smoothing": 0.1}, "S",
     [1.295981, 0.2987198, 0.4691226], 0.6879411),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, "X", [0.9024749, 0.0454129, 0.7057596],
     0.5512158),
    ("Dice", {}, "P", 0.2564102, 0.2564102),
    ("Dice", {"axis": 1}, "P", [0.2631578, 0.2307693, 0.2962963], 0.2634078),
    ("Tversky", {"alpha": 0.3, "beta": 0.7}, "P", 0.2487047, 0.2487047),
    ("Tversky", {"axis": (1,)}, "P", [0.2631579, 0.2307693, 0.2962964], 0.2634079),
]


def _targets(cls):
    return OH if cls.startswith("Categorical") else T


def _np(x):
    return np.asarray(x.value if isinstance(x, dl.Tensor) else x)


@pytest.mark.parametrize("cls,kwargs,pred,per_sample,reduced", CASES)
def test_matches_stored_keras_values(cls, kwargs, pred, per_sample, reduced):
    fn = getattr(losses, FUNCTIONS[cls])
    y_true, y_pred = _targets(cls), INPUTS[pred]
    np.testing.assert_allclose(_np(fn(y_true, y_pred, **kwargs)), per_sample, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(_np(getattr(losses, cls)(**kwargs)(y_true, y_pred)), reduced,
                               rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kwargs,pred,per_sample,reduced", CASES)
def test_matches_live_keras(cls, kwargs, pred, per_sample, reduced):
    keras = pytest.importorskip("keras")
    y_true, y_pred = _targets(cls), INPUTS[pred]
    expected = np.asarray(getattr(keras.losses, FUNCTIONS[cls])(y_true, y_pred, **kwargs))
    np.testing.assert_allclose(_np(getattr(losses, FUNCTIONS[cls])(y_true, y_pred, **kwargs)),
                               expected, rtol=2e-5, atol=1e-6)
    k_cfg = getattr(keras.losses, cls)(**kwargs).get_config()
    assert getattr(losses, cls)(**kwargs).get_config() == k_cfg


@pytest.mark.parametrize("cls,kwargs,pred,per_sample,reduced", CASES)
def test_gradients_float64(cls, kwargs, pred, per_sample, reduced):
    fn = getattr(losses, FUNCTIONS[cls])
    y_true = _targets(cls).astype(np.float64)
    check_op_gradients(lambda p: fn(y_true, p, **kwargs), [INPUTS[pred].astype(np.float64)],
                       rtol=1e-5, atol=1e-8)


def test_tversky_half_half_is_dice_and_gamma_zero_is_bce():
    np.testing.assert_allclose(_np(losses.tversky(T, P)), _np(losses.dice(T, P)), rtol=1e-6)
    np.testing.assert_allclose(_np(losses.binary_focal_crossentropy(T, P, gamma=0.0)),
                               _np(losses.binary_crossentropy(T, P)), rtol=1e-5)


def test_names_config_round_trip_and_compile_strings():
    for name in ("binary_focal_crossentropy", "categorical_focal_crossentropy", "dice", "tversky"):
        assert losses.get(name) is getattr(losses, name)
    for cls, kwargs, *_ in CASES:
        loss = getattr(losses, cls)(**kwargs)
        again = losses.deserialize(losses.serialize(loss))
        assert type(again) is type(loss) and again.get_config() == loss.get_config()
        assert isinstance(losses.get(cls), getattr(losses, cls))
    model = dl.Sequential([dl.layers.Input((4,)), dl.layers.Dense(4, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="binary_focal_crossentropy")
    history = model.fit(X, T, epochs=2, batch_size=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_bad_input():
    with pytest.raises(ValueError, match="binary_focal_crossentropy.*same shape"):
        losses.binary_focal_crossentropy(T[:, :3], P)
    with pytest.raises(ValueError, match="alpha"):
        losses.binary_focal_crossentropy(T, P, apply_class_balancing=True, alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        losses.CategoricalFocalCrossentropy(gamma=-1.0)(OH, S)
    with pytest.raises(ValueError, match="label_smoothing"):
        losses.categorical_focal_crossentropy(OH, S, label_smoothing=2.0)
    with pytest.raises(ValueError, match="axis"):
        losses.categorical_focal_crossentropy(OH, S, axis=True)
    with pytest.raises(ValueError, match="dice.*axis=5"):
        losses.dice(T, P, axis=5)
    with pytest.raises(ValueError, match="tversky.*beta"):
        losses.tversky(T, P, beta="high")
