"""Transfer learning, Keras 3 semantics: freezing with ``trainable`` (layers and whole models),
model surgery through ``layers`` / ``get_layer`` / ``layer.output`` / ``model.input``, a new head
on a trained base, fine-tuning after a recompile, and BatchNormalization in a frozen base."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers

pytestmark = pytest.mark.usefixtures("fresh_session")


def _data(n=64, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x @ rng.normal(size=(features, classes)), axis=1)
    return x, y


def _base(features=8, classes=3):
    model = dl.Sequential([
        dl.Input(shape=(features,), name="pixels"),
        layers.Dense(16, activation="relu", name="block1"),
        layers.Dense(12, activation="relu", name="block2"),
        layers.Dense(8, activation="relu", name="features"),
        layers.Dense(classes, activation="softmax", name="classifier"),
    ])
    model.compile(optimizer=dl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _trained_base():
    x, y = _data()
    base = _base()
    base.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return base


def _summary_counts(model):
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)

    def count(label):
        line = next(li for li in text.splitlines() if li.strip().startswith(label))
        return int(line.split(":")[1].split("(")[0].replace(",", ""))

    return count("Total params"), count("Trainable params"), count("Non-trainable params")


def _changed(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def test_frozen_layers_keep_their_weights_through_fit():
    base = _trained_base()
    for name in ("block1", "block2"):
        base.get_layer(name).trainable = False
    base.compile(optimizer=dl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    frozen = [w for name in ("block1", "block2") for w in base.get_layer(name).get_weights()]
    free = [w for name in ("features", "classifier") for w in base.get_layer(name).get_weights()]
    x, y = _data(seed=1)
    base.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not any(_changed(frozen, [w for n in ("block1", "block2") for w in base.get_layer(n).get_weights()]))
    assert all(_changed(free, [w for n in ("features", "classifier") for w in base.get_layer(n).get_weights()]))
    assert len(base.trainable_weights) == 4 and len(base.non_trainable_weights) == 4
    trainable_ids = {id(v) for v in base.trainable_weights}
    assert all(id(v) not in trainable_ids for n in ("block1", "block2") for v in base.get_layer(n).weights)


def test_summary_counts_non_trainable_parameters():
    base = _base()
    total, trainable, non_trainable = _summary_counts(base)
    assert (total, trainable, non_trainable) == (base.count_params(), base.count_params(), 0)
    base.get_layer("block1").trainable = False
    assert _summary_counts(base) == (total, total - (8 * 16 + 16), 8 * 16 + 16)
    base.trainable = False
    assert _summary_counts(base) == (total, 0, total)


def test_frozen_layers_compute_no_weight_gradient():
    base = _base()
    base.get_layer("block1").trainable = False
    x, y = _data()
    frozen = base.get_layer("block1").weights
    with dl.GradientTape() as tape:
        loss = dl.losses.sparse_categorical_crossentropy(y, base(x, training=True))
        loss = dl.ops.mean(loss)
    grads = tape.gradient(loss, base.weights)
    by_id = {id(v): g for v, g in zip(base.weights, grads)}
    assert all(by_id[id(v)] is None for v in frozen)  # never computed, not merely zero
    assert all(by_id[id(v)] is not None for v in base.trainable_weights)
    assert all(v.trainable is False for v in frozen)


def test_model_trainable_false_freezes_every_sublayer_and_true_unfreezes_them():
    base = _base()
    base.trainable = False
    assert base.trainable_weights == [] and len(base.non_trainable_weights) == 8
    assert all(not layer.trainable for layer in base.layers)
    base.trainable = True
    assert len(base.trainable_weights) == 8  # Keras 3: setting True recurses too
    assert all(layer.trainable for layer in base.layers)


def test_layer_frozen_before_it_is_built():
    dense = layers.Dense(5, trainable=False, name="frozen_early")
    later = layers.Dense(5, name="frozen_late")
    later.trainable = False
    model = dl.Sequential([dl.Input(shape=(3,)), dense, later, layers.Dense(2)])
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 4
    assert all(not v.trainable for v in dense.weights + later.weights)
    model.compile(optimizer=dl.optimizers.SGD(0.1), loss="mse")
    before = model.get_weights()
    model.fit(np.ones((8, 3), "float32"), np.ones((8, 2), "float32"), verbose=0)
    assert _changed(before, model.get_weights()) == [False] * 4 + [True] * 2
    dense.trainable = True
    assert len(model.trainable_weights) == 4


def test_model_surgery_new_head_on_a_trained_base():
    base = _trained_base()
    assert base.input is base.inputs[0]
    assert [layer.name for layer in base.layers] == ["block1", "block2", "features", "classifier"]
    assert base.get_layer("block2") is base.layers[-3]
    assert base.get_layer(index=0) is base.layers[0]
    with pytest.raises(ValueError, match="No such layer"):
        base.get_layer("nope")
    features = base.layers[-3].output
    assert features.shape == (None, 12)
    new_head = layers.Dense(2, activation="softmax", name="new_head")
    model = dl.Model(base.input, new_head(features))
    assert [layer.name for layer in model.layers] == ["pixels", "block1", "block2", "new_head"]
    assert model.get_layer("block1") is base.get_layer("block1")  # the layers (and weights) are shared
    assert model.input is base.input and model.inputs == base.inputs

    # the truncated graph computes what the base computes up to block2
    x, y = _data(seed=2)
    extractor = dl.Model(base.input, base.get_layer("block2").output)
    manual = x
    for name in ("block1", "block2"):
        layer = base.get_layer(name)
        manual = np.maximum(manual @ layer.kernel.value + layer.bias.value, 0)
    np.testing.assert_allclose(extractor.predict(x, verbose=0), manual, rtol=1e-5, atol=1e-6)

    for layer in model.layers[:-1]:
        layer.trainable = False
    assert _summary_counts(model)[1:] == (12 * 2 + 2, 8 * 16 + 16 + 16 * 12 + 12)
    model.compile(optimizer=dl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    before_base = base.get_weights()
    history = model.fit(x, y % 2, epochs=5, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not any(_changed(before_base, base.get_weights()))  # base untouched, head trained
    assert model.predict(x[:3], verbose=0).shape == (3, 2)


def test_fine_tuning_after_unfreezing_the_top_with_a_lower_learning_rate():
    base = _trained_base()
    base.trainable = False
    head = layers.Dense(2, activation="softmax", name="head")
    model = dl.Model(base.input, head(base.get_layer("features").output))
    model.compile(optimizer=dl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    x, y = _data(seed=3)
    y = y % 2
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    bottom = base.get_layer("block1").get_weights()
    top = base.get_layer("features").get_weights()

    base.trainable = True  # Keras's recipe: unfreeze, re-freeze the bottom, recompile with a low rate
    base.get_layer("block1").trainable = False
    base.get_layer("block2").trainable = False
    model.compile(optimizer=dl.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    assert model.optimizer.learning_rate == pytest.approx(1e-4)
    names = {v.path.split("/")[0] for v in model.trainable_weights}
    assert names == {"features", "head"}
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert not any(_changed(bottom, base.get_layer("block1").get_weights()))
    new_top = base.get_layer("features").get_weights()
    assert all(_changed(top, new_top))
    step = max(float(np.abs(a - b).max()) for a, b in zip(top, new_top))
    assert step < 2 * 1e-4 * 8 + 1e-6  # Adam moves each weight by at most ~lr per step (8 steps)


def test_nested_frozen_base_as_a_layer():
    base = _trained_base()
    base.trainable = False
    inputs = dl.Input(shape=(8,))
    outputs = layers.Dense(2, activation="softmax")(base(inputs, training=False))
    model = dl.Model(inputs, outputs)
    total, trainable, non_trainable = _summary_counts(model)
    assert (trainable, non_trainable) == (3 * 2 + 2, base.count_params())
    model.compile(optimizer=dl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    before = base.get_weights()
    x, y = _data(seed=4)
    model.fit(x, y % 2, epochs=2, batch_size=16, verbose=0)
    assert not any(_changed(before, base.get_weights()))


def test_transfer_weights_by_layer_between_models():
    base = _trained_base()
    fresh = _base()
    for src, dst in zip(base.layers[:-1], fresh.layers[:-1]):
        dst.set_weights(src.get_weights())
    x, _ = _data(seed=5)
    a = dl.Model(base.input, base.get_layer("features").output).predict(x, verbose=0)
    b = dl.Model(fresh.input, fresh.get_layer("features").output).predict(x, verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not hasattr(dl.layers, "BatchNormalization"),
                    reason="dl.layers.BatchNormalization is not available yet")
def test_batch_normalization_in_a_frozen_base_runs_in_inference_mode():
    rng = np.random.default_rng(0)
    x = (3.0 + 2.0 * rng.normal(size=(64, 6))).astype("float32")
    y = (x[:, 0] > 3.0).astype("int64")
    base = dl.Sequential([dl.Input(shape=(6,)), layers.Dense(8, name="dense_in"),
                          layers.BatchNormalization(name="bn"), layers.Activation("relu")])
    model = dl.Sequential([base, layers.Dense(2, activation="softmax")])
    model.compile(optimizer=dl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    bn = base.get_layer("bn")
    stats = [w.copy() for w in bn.get_weights()]

    base.trainable = False
    assert not bn.trainable and bn.trainable_weights == []
    model.compile(optimizer=dl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    shifted = (x * 5.0 - 10.0).astype("float32")  # batch statistics far from the moving ones
    model.fit(shifted, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(stats, bn.get_weights()):
        np.testing.assert_array_equal(a, b)  # gamma, beta and the moving statistics all unchanged
    train_mode = base(shifted[:16], training=True).value
    infer_mode = base(shifted[:16], training=False).value
    np.testing.assert_allclose(train_mode, infer_mode, rtol=1e-6, atol=1e-6)
