"""Functional models: multi-input/multi-output graphs with merge and shared layers, list and dict
targets, loss_weights and per-output logs, per-output metrics, model surgery, nested models,
frozen layers, and Keras parity."""
import os
import sys

import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")

N = 24


def _data(seed=0):
    rng = np.random.default_rng(seed)
    xa = rng.normal(size=(N, 4)).astype("float32")
    xb = rng.normal(size=(N, 3)).astype("float32")
    y_cls = rng.integers(0, 3, N)
    y_reg = rng.normal(size=(N, 1)).astype("float32")
    return xa, xb, y_cls, y_reg


def _two_tower():
    """a -> Dense(5) -> shared; b -> Dense(5) -> shared; cls = softmax(Dense(concat)); reg = Dense(add)."""
    a = dl.Input(shape=(4,), name="a")
    b = dl.Input(shape=(3,), name="b")
    shared = layers.Dense(5, activation="tanh", name="shared")
    ha = shared(layers.Dense(5, name="proj_a")(a))
    hb = shared(layers.Dense(5, name="proj_b")(b))
    cls = layers.Dense(3, activation="softmax", name="cls")(layers.Concatenate(name="concat")([ha, hb]))
    reg = layers.Dense(1, name="reg")(layers.Add(name="add")([ha, hb]))
    return dl.Model([a, b], [cls, reg], name="two_tower")


def _np_dense(layer, x):
    return np.asarray(x, np.float64) @ layer.kernel.value.astype(np.float64) + layer.bias.value


def _np_two_tower(model, xa, xb):
    g = model.get_layer
    ha = np.tanh(_np_dense(g("shared"), _np_dense(g("proj_a"), xa)))
    hb = np.tanh(_np_dense(g("shared"), _np_dense(g("proj_b"), xb)))
    logits = _np_dense(g("cls"), np.concatenate([ha, hb], axis=1))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), _np_dense(g("reg"), ha + hb)


def _np_cross_entropy(probs, y):
    return float(-np.mean(np.log(probs[np.arange(len(y)), y])))


def _summary(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines)


# ---- structure, shared layers, merges -----------------------------------------------------------
def test_graph_structure_and_forward_matches_numpy():
    model = _two_tower()
    names = [layer.name for layer in model.layers]
    assert names[:2] == ["a", "b"]  # then every other layer once, each after the layers it reads from
    assert sorted(names[2:]) == ["add", "cls", "concat", "proj_a", "proj_b", "reg", "shared"]
    assert names.index("proj_a") < names.index("shared")  # listed once, at its first call
    assert names.index("cls") > names.index("concat") and names.index("reg") > names.index("add")
    assert model.input_names == ["a", "b"] and model.output_names == ["cls", "reg"]
    assert [t.shape for t in model.inputs] == [(None, 4), (None, 3)]
    assert [t.shape for t in model.outputs] == [(None, 3), (None, 1)]
    # the shared Dense has one kernel, counted once
    assert sum(1 for w in model.weights if w is model.get_layer("shared").kernel) == 1
    assert model.count_params() == (4 * 5 + 5) + (3 * 5 + 5) + (5 * 5 + 5) + (10 * 3 + 3) + (5 + 1)

    xa, xb, _, _ = _data()
    cls, reg = model.predict([xa, xb], verbose=0)
    ref_cls, ref_reg = _np_two_tower(model, xa, xb)
    np.testing.assert_allclose(cls, ref_cls, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reg, ref_reg, rtol=1e-5, atol=1e-5)
    by_name = model.predict({"b": xb, "a": xa}, verbose=0)  # inputs by name, any order
    np.testing.assert_array_equal(by_name[0], cls)


def test_shared_layer_weights_are_one_variable():
    model = _two_tower()
    shared = model.get_layer("shared")
    xa, xb, _, _ = _data()
    before = model.predict([xa, xb], verbose=0)[0]
    shared.set_weights([np.zeros((5, 5), "float32"), np.zeros(5, "float32")])
    # with the shared layer zeroed, both towers give 0, so every row predicts softmax(bias of cls)
    cls = model.predict([xa, xb], verbose=0)[0]
    bias = model.get_layer("cls").bias.value
    np.testing.assert_allclose(cls, np.broadcast_to(np.exp(bias) / np.exp(bias).sum(), cls.shape), rtol=1e-5)
    assert not np.allclose(before, cls)

    # training updates the one shared kernel, and both towers keep using it
    model = _two_tower()
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"])
    _, _, y_cls, y_reg = _data()
    assert len(model.trainable_weights) == 10
    kernel_before = model.get_layer("shared").kernel.value.copy()
    model.fit([xa, xb], [y_cls, y_reg], batch_size=N, epochs=2, verbose=0)
    assert len(model.trainable_weights) == 10
    assert not np.array_equal(model.get_layer("shared").kernel.value, kernel_before)
    cls, reg = model.predict([xa, xb], verbose=0)
    ref_cls, ref_reg = _np_two_tower(model, xa, xb)
    np.testing.assert_allclose(cls, ref_cls, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reg, ref_reg, rtol=1e-5, atol=1e-5)


# ---- compile / fit with several outputs ----------------------------------------------------------
def _compiled(loss_weights=None, metrics=None):
    model = _two_tower()
    model.compile(optimizer=dl.optimizers.SGD(0.05), loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights=loss_weights, metrics=metrics)
    return model


def test_fit_with_list_and_dict_targets_agree():
    xa, xb, y_cls, y_reg = _data()
    runs = []
    for targets in ([y_cls, y_reg], {"cls": y_cls, "reg": y_reg}, {"reg": y_reg, "cls": y_cls}):
        dl.utils.set_random_seed(1)
        model = _compiled()
        history = model.fit({"a": xa, "b": xb} if isinstance(targets, dict) else [xa, xb], targets,
                            batch_size=8, epochs=2, shuffle=False, verbose=0)
        runs.append((history.history, model.get_weights()))
    assert set(runs[0][0]) == {"loss", "cls_loss", "reg_loss"}
    for history, weights in runs[1:]:
        assert history == runs[0][0]
        for w, w0 in zip(weights, runs[0][1]):
            np.testing.assert_array_equal(w, w0)


def test_dict_targets_with_wrong_keys_are_rejected():
    xa, xb, y_cls, y_reg = _data()
    model = _compiled()
    weights = model.get_weights()
    with pytest.raises(ValueError, match=r"keys \['cls', 'regression'\].*output names \['cls', 'reg'\]"):
        model.fit([xa, xb], {"cls": y_cls, "regression": y_reg}, verbose=0)
    for w, w0 in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("loss_weights", [[0.3, 2.0], {"cls": 0.3, "reg": 2.0}], ids=["list", "dict"])
def test_loss_weights_total_is_weighted_sum_of_output_losses(loss_weights):
    xa, xb, y_cls, y_reg = _data()
    model = _compiled(loss_weights=loss_weights)
    history = model.fit([xa, xb], [y_cls, y_reg], batch_size=8, epochs=2, verbose=0)
    for epoch in range(2):
        h = {k: v[epoch] for k, v in history.history.items()}
        assert h["loss"] == pytest.approx(0.3 * h["cls_loss"] + 2.0 * h["reg_loss"], rel=1e-5)

    logs = model.evaluate([xa, xb], [y_cls, y_reg], verbose=0, return_dict=True)
    probs, reg = model.predict([xa, xb], verbose=0)
    assert logs["cls_loss"] == pytest.approx(_np_cross_entropy(probs.astype(np.float64), y_cls), rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(float(np.mean((reg - y_reg) ** 2)), rel=1e-5)
    assert logs["loss"] == pytest.approx(0.3 * logs["cls_loss"] + 2.0 * logs["reg_loss"], rel=1e-5)
    assert model.evaluate([xa, xb], [y_cls, y_reg], verbose=0) == pytest.approx(
        [logs["loss"], logs["cls_loss"], logs["reg_loss"]], rel=1e-6)


def test_per_output_metrics():
    xa, xb, y_cls, y_reg = _data()
    model = _compiled(metrics={"cls": ["accuracy"], "reg": ["mae", "mse"]})
    history = model.fit([xa, xb], [y_cls, y_reg], epochs=1, verbose=0)
    assert set(history.history) == {"loss", "cls_loss", "reg_loss", "cls_accuracy", "reg_mae", "reg_mse"}
    logs = model.evaluate([xa, xb], [y_cls, y_reg], verbose=0, return_dict=True)
    probs, reg = model.predict([xa, xb], verbose=0)
    assert logs["cls_accuracy"] == pytest.approx(np.mean(np.argmax(probs, 1) == y_cls), abs=1e-6)
    assert logs["reg_mae"] == pytest.approx(float(np.mean(np.abs(reg - y_reg))), rel=1e-5)
    assert logs["reg_mse"] == pytest.approx(logs["reg_loss"], rel=1e-6)


def test_dict_outputs_are_named_by_their_keys():
    a = dl.Input(shape=(4,), name="a")
    h = layers.Dense(6, activation="relu")(a)
    model = dl.Model(a, {"label": layers.Dense(3, activation="softmax")(h), "score": layers.Dense(1)(h)})
    model.compile(optimizer="sgd", loss={"score": "mse", "label": "sparse_categorical_crossentropy"},
                  metrics={"label": "accuracy"})
    xa, _, y_cls, y_reg = _data()
    history = model.fit(xa, {"score": y_reg, "label": y_cls}, epochs=1, verbose=0)
    assert set(history.history) == {"loss", "label_loss", "score_loss", "label_accuracy"}
    out = model.predict(xa, verbose=0)
    assert isinstance(out, dict) and out["label"].shape == (N, 3) and out["score"].shape == (N, 1)


# ---- surgery, nesting, freezing -------------------------------------------------------------------
def _trained_base():
    base = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(8, activation="relu", name="features"),
                          layers.Dense(3, activation="softmax", name="old_head")])
    base.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    xa, _, y_cls, _ = _data()
    base.fit(xa, y_cls, epochs=2, verbose=0)
    return base


def test_transfer_learning_surgery_with_frozen_base():
    base = _trained_base()
    features = base.get_layer("features")
    features.trainable = False
    head = layers.Dense(2, activation="softmax", name="new_head")
    model = dl.Model(base.input, head(base.layers[-2].output))
    assert [layer.name for layer in model.layers][1:] == ["features", "new_head"]
    assert model.get_layer("features") is features  # the same layer object, sharing its weights

    text = _summary(model)
    assert "Total params: 58" in text and "Trainable params: 18" in text and "Non-trainable params: 40" in text
    assert [w.path for w in model.trainable_weights] == ["new_head/kernel", "new_head/bias"]

    xa, _, y_cls, _ = _data()
    frozen, head_before = features.get_weights(), head.get_weights()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(xa, y_cls % 2, epochs=2, batch_size=8, verbose=0)
    for w, w0 in zip(features.get_weights(), frozen):
        np.testing.assert_array_equal(w, w0)
    assert not np.array_equal(head.get_weights()[0], head_before[0])
    hidden = np.maximum(_np_dense(features, xa), 0)
    logits = _np_dense(head, hidden)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(xa, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_trainable_false_at_construction():
    inp = dl.Input(shape=(4,))
    frozen = layers.Dense(6, activation="relu", trainable=False, name="frozen")
    model = dl.Model(inp, layers.Dense(1, name="top")(frozen(inp)))
    assert "Non-trainable params: 30" in _summary(model) and "Trainable params: 7" in _summary(model)
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.compile(optimizer="sgd", loss="mse")
    before = model.get_weights()
    xa, _, _, y_reg = _data()
    model.fit(xa, y_reg, epochs=2, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert not np.array_equal(after[2], before[2])


def test_nested_model_as_layer():
    inner = dl.Sequential([dl.Input(shape=(4,)), layers.Dense(5, activation="relu", name="inner_dense")],
                          name="inner")
    inp = dl.Input(shape=(4,))
    outer = dl.Model(inp, layers.Dense(3, activation="softmax", name="top")(inner(inp)))
    assert _summary(outer).count("inner (Sequential)") == 1
    assert "Total params: 43" in _summary(outer)
    assert len(outer.weights) == 4 and inner.weights[0] is outer.weights[0]

    xa, _, y_cls, _ = _data()
    hidden = np.maximum(_np_dense(inner.layers[0], xa), 0)
    logits = _np_dense(outer.get_layer("top"), hidden)
    np.testing.assert_allclose(outer.predict(xa, verbose=0),
                               np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rtol=1e-5, atol=1e-6)

    outer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    before = inner.get_weights()
    outer.fit(xa, y_cls, epochs=1, verbose=0)
    assert not np.array_equal(inner.get_weights()[0], before[0])  # training the outer trains the inner

    inner.trainable = False
    assert "Non-trainable params: 25" in _summary(outer)
    before = inner.get_weights()
    outer.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    outer.fit(xa, y_cls, epochs=1, verbose=0)
    np.testing.assert_array_equal(inner.get_weights()[0], before[0])


def test_nested_functional_model_called_twice_shares_weights():
    i = dl.Input(shape=(4,))
    sub = dl.Model(i, layers.Dense(3, name="sub_dense")(i), name="sub")
    a, b = dl.Input(shape=(4,)), dl.Input(shape=(4,))
    model = dl.Model([a, b], layers.Subtract()([sub(a), sub(b)]))
    assert len(model.weights) == 2
    xa, _, _, _ = _data()
    np.testing.assert_allclose(model.predict([xa, xa], verbose=0), 0.0, atol=1e-6)  # same weights both sides
    kernel = sub.get_layer("sub_dense").kernel.value
    np.testing.assert_allclose(model.predict([xa, 0 * xa], verbose=0), xa @ kernel, rtol=1e-5, atol=1e-5)


# ---- Keras parity (skipped without keras) ------------------------------------------------------------
def _keras():
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = "tensorflow"
        pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


def _twin_concat_models(keras):
    def build(lib):
        a = lib.Input(shape=(4,), name="a")
        b = lib.Input(shape=(3,), name="b")
        ha = lib.layers.Dense(5, activation="relu", name="da")(a)
        hb = lib.layers.Dense(2, name="db2")(lib.layers.Dense(6, activation="tanh", name="db")(b))
        out = lib.layers.Dense(3, activation="softmax", name="out")(lib.layers.Concatenate()([hb, ha]))
        return lib.Model([a, b], out)

    km, dm = build(keras), build(dl)
    assert [w.shape for w in km.get_weights()] == [w.shape for w in dm.get_weights()]
    dm.set_weights(km.get_weights())
    return km, dm


def test_keras_parity_two_input_concatenate():
    keras = _keras()
    km, dm = _twin_concat_models(keras)
    xa, xb, y_cls, _ = _data(seed=5)
    np.testing.assert_allclose(dm.predict([xa, xb], verbose=0), km.predict([xa, xb], verbose=0),
                               rtol=1e-5, atol=1e-7)
    for model, lib in ((km, keras), (dm, dl)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    k_logs = km.evaluate([xa, xb], y_cls, batch_size=10, verbose=0, return_dict=True)
    d_logs = dm.evaluate([xa, xb], y_cls, batch_size=10, verbose=0, return_dict=True)
    assert set(d_logs) == set(k_logs)
    for key in k_logs:
        assert d_logs[key] == pytest.approx(k_logs[key], rel=1e-5), key

    km.train_on_batch([xa, xb], y_cls)
    dm.train_on_batch([xa, xb], y_cls)
    for i, (kw, dw) in enumerate(zip(km.get_weights(), dm.get_weights())):
        np.testing.assert_allclose(dw, kw, rtol=1e-5, atol=1e-6, err_msg=f"weight {i} after one SGD step")


def test_keras_parity_multi_output_loss_weights():
    keras = _keras()

    def build(lib):
        a = lib.Input(shape=(4,), name="a")
        h = lib.layers.Dense(6, activation="relu", name="h")(a)
        return lib.Model(a, [lib.layers.Dense(3, activation="softmax", name="cls")(h),
                             lib.layers.Dense(1, name="reg")(h)])

    km, dm = build(keras), build(dl)
    dm.set_weights(km.get_weights())
    xa, _, y_cls, y_reg = _data(seed=6)
    for model, lib in ((km, keras), (dm, dl)):
        model.compile(optimizer=lib.optimizers.SGD(0.1), loss=["sparse_categorical_crossentropy", "mse"],
                      loss_weights=[0.3, 2.0], metrics=[["accuracy"], ["mae"]])
    k_logs = km.evaluate(xa, [y_cls, y_reg], verbose=0, return_dict=True)
    d_logs = dm.evaluate(xa, [y_cls, y_reg], verbose=0, return_dict=True)
    assert set(d_logs) == set(k_logs)  # loss, cls_loss, reg_loss, cls_accuracy, reg_mae
    for key in k_logs:
        assert d_logs[key] == pytest.approx(k_logs[key], rel=1e-5), key
    km.train_on_batch(xa, [y_cls, y_reg])
    dm.train_on_batch(xa, [y_cls, y_reg])
    for i, (kw, dw) in enumerate(zip(km.get_weights(), dm.get_weights())):
        np.testing.assert_allclose(dw, kw, rtol=1e-5, atol=1e-6, err_msg=f"weight {i} after one SGD step")


def test_symbolic_tensor_passed_as_keyword_argument_is_part_of_the_graph():
    class ScaleBy(dl.layers.Layer):
        def call(self, inputs, scale=None):
            return dl.ops.multiply(inputs, scale)

    x = dl.Input(shape=(3,))
    s = dl.Input(shape=(3,))
    hidden = dl.layers.Dense(3, name="through_kwarg")(s)
    out = ScaleBy()(x, scale=hidden)
    model = dl.Model([x, s], out)
    assert "through_kwarg" in [layer.name for layer in model.layers]
    xv = np.ones((2, 3), np.float32)
    sv = np.full((2, 3), 2.0, np.float32)
    dense = model.get_layer("through_kwarg")
    expected = xv * (sv @ dense.kernel.numpy() + dense.bias.numpy())
    np.testing.assert_allclose(model.predict([xv, sv], verbose=0), expected, rtol=1e-6)


def test_unknown_spatial_sizes_stay_unknown_through_strided_layers():
    x = dl.Input(shape=(None, None, 3))
    y = dl.layers.MaxPooling2D()(dl.layers.Conv2D(4, 3, strides=2)(x))
    assert y.shape == (None, None, None, 4)
    model = dl.Model(x, y)
    assert model.predict(np.zeros((1, 21, 17, 3), np.float32), verbose=0).shape == (1, 5, 4, 4)
    seq = dl.Input(shape=(None,), dtype="int32")
    out = dl.layers.LSTM(5, return_sequences=True)(dl.layers.Embedding(10, 4)(seq))
    assert out.shape == (None, None, 5)
