"""Overridable steps (Keras 3): fit / evaluate / predict call train_step / test_step /
predict_step with what the data yields, and the default step goes through compute_loss and
compute_metrics. Expected counts and History keys are Keras 3's (checked against keras 3.x:
fit(x) on 64 samples, batch 16, 2 epochs makes 8 train_step calls; History holds the step's
log names, sorted)."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers, ops

RNG = np.random.default_rng(0)
LATENT = 3


class GAN(dl.Model):
    """The keras.io "GAN overriding train_step" pattern, on tiny MLPs."""

    def __init__(self, discriminator, generator, latent_dim):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = dl.random.SeedGenerator(1337)
        self.calls = 0

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = dl.metrics.Mean(name="d_loss")
        self.g_loss_metric = dl.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real):
        self.calls += 1
        batch_size = ops.shape(real)[0]
        noise = dl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        fake = self.generator(noise)
        combined = ops.concatenate([fake, real], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels = labels + 0.05 * dl.random.uniform(ops.shape(labels), seed=self.seed_generator)
        with dl.GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined))
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))

        noise = dl.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        misleading = ops.zeros((batch_size, 1))
        with dl.GradientTape() as tape:
            g_loss = self.loss_fn(misleading, self.discriminator(self.generator(noise)))
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def _gan():
    disc = dl.Sequential([dl.Input((4,)), layers.Dense(8, activation="relu"), layers.Dense(1, activation="sigmoid")])
    gen = dl.Sequential([dl.Input((LATENT,)), layers.Dense(8, activation="relu"), layers.Dense(4)])
    gan = GAN(disc, gen, LATENT)
    gan.compile(d_optimizer=dl.optimizers.Adam(1e-3), g_optimizer=dl.optimizers.Adam(1e-3),
                loss_fn=dl.losses.BinaryCrossentropy())
    return gan


def test_gan_train_step_runs_through_fit_on_x_alone():
    dl.utils.set_random_seed(1)
    gan = _gan()
    real = RNG.normal(size=(64, 4)).astype("float32")
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    g_before = [w.copy() for w in gan.generator.get_weights()]
    seen = []
    cb = dl.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(dict(logs)))
    history = gan.fit(real, batch_size=16, epochs=2, verbose=0, callbacks=[cb])
    assert gan.calls == 8  # what Keras 3 makes: 4 batches x 2 epochs
    assert list(history.history) == ["d_loss", "g_loss"]
    assert len(history.history["d_loss"]) == 2
    # epoch logs are the metrics' results at the end of the epoch; the metrics restart each epoch
    assert history.history["d_loss"][-1] == pytest.approx(float(gan.d_loss_metric.result()))
    assert all(isinstance(v, float) for logs in seen for v in logs.values()) and len(seen) == 8
    assert seen[-1]["g_loss"] == pytest.approx(history.history["g_loss"][-1])
    assert int(gan.d_loss_metric.count.value) == 4  # reset at the start of the second epoch
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, gan.discriminator.get_weights()))
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, gan.generator.get_weights()))


def test_gan_is_reproducible_under_set_random_seed():
    real = RNG.normal(size=(32, 4)).astype("float32")
    runs = []
    for _ in range(2):
        dl.utils.set_random_seed(7)
        gan = _gan()
        runs.append(gan.fit(real, batch_size=16, epochs=1, verbose=0, shuffle=False).history)
    assert runs[0] == runs[1]


def _classifier(cls=dl.Model):
    inputs = dl.Input((4,))
    return cls(inputs, layers.Dense(3, activation="softmax")(layers.Dense(5, activation="relu")(inputs)))


def _data(n=20):
    return RNG.normal(size=(n, 4)).astype("float32"), RNG.integers(0, 3, n)


def test_default_fit_refuses_x_without_y():
    model = dl.Sequential([dl.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="needs targets `y`"):
        model.fit(_data()[0], verbose=0)


class CountingSteps(dl.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = layers.Dense(3, activation="softmax")
        self.counts = {"train": 0, "test": 0, "predict": 0}
        self.seen = []

    def call(self, x):
        return self.dense(x)

    def test_step(self, data):
        self.counts["test"] += 1
        x, y, w = dl.utils.unpack_x_y_sample_weight(data)
        self.seen.append((x.shape, None if y is None else y.shape, w is None))
        logs = super().test_step(data)
        return {**logs, "batch_rows": float(x.shape[0])}

    def predict_step(self, data):
        self.counts["predict"] += 1
        return {"probs": self(data, training=False), "twice": 2 * self(data, training=False)}


def test_custom_test_step_in_evaluate_and_fit_validation():
    x, y = _data(20)
    model = CountingSteps()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    assert model.counts["test"] == 3
    assert model.seen[0] == ((8, 4), (8,), True)
    # the step's logs add a key the metrics lack, so the last step's logs come back (Keras)
    assert sorted(logs) == ["accuracy", "batch_rows", "loss"] and logs["batch_rows"] == 4.0
    history = model.fit(x, y, batch_size=10, epochs=2, validation_data=(x, y, np.ones(20)), verbose=0)
    assert model.counts["test"] == 3 + 2 * 2
    assert model.seen[-1][2] is False  # validation sample weights reach test_step
    assert {"val_batch_rows", "val_loss", "val_accuracy", "loss", "accuracy"} == set(history.history)


def test_predict_step_override_shapes_the_output():
    x, _ = _data(10)
    model = CountingSteps()
    out = model.predict(x, batch_size=4, verbose=0)
    assert model.counts["predict"] == 3
    assert sorted(out) == ["probs", "twice"] and out["probs"].shape == (10, 3)  # the step's dict, as Keras
    np.testing.assert_allclose(out["twice"], 2 * out["probs"], rtol=1e-6)


def test_a_step_returning_no_dict_is_refused():
    class NoDict(CountingSteps):
        def train_step(self, data):
            return [1.0]

    model = NoDict()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="train_step must return a dict of logs"):
        model.fit(*_data(8), verbose=0)


class CustomLoss(dl.Model):
    """compute_loss overridden (Keras 3 docstring pattern): trains on x alone."""

    def __init__(self):
        super().__init__()
        self.dense = layers.Dense(2)
        self.loss_tracker = dl.metrics.Mean(name="custom_loss")

    def call(self, x):
        return self.dense(x)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = ops.mean(ops.square(y_pred))
        self.loss_tracker.update_state(loss)
        return loss


def test_compute_loss_override_trains_without_targets():
    model = CustomLoss()
    model.compile("sgd")
    x = RNG.normal(size=(16, 3)).astype("float32")
    history = model.fit(x, batch_size=8, epochs=3, verbose=0)
    # the attribute metric is tracked, reset each epoch, and logged beside the loss tracker
    assert sorted(history.history) == ["custom_loss", "loss"]
    assert history.history["custom_loss"][-1] < history.history["custom_loss"][0]
    np.testing.assert_allclose(history.history["loss"], history.history["custom_loss"], rtol=1e-6)


def test_compute_metrics_override_adds_a_log():
    class WithMax(dl.Sequential):
        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            logs = super().compute_metrics(x, y, y_pred, sample_weight)
            logs["max_prob"] = float(np.max(y_pred.value))
            return logs

    model = WithMax([dl.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = _data(16)
    history = model.fit(x, y, batch_size=8, verbose=0)
    assert sorted(history.history) == ["loss", "max_prob"]
    assert 1 / 3 <= history.history["max_prob"][0] <= 1


def test_default_steps_keep_the_array_fast_path_results():
    """The default train_step gives the numbers of a hand-written step: loss logged per epoch
    is the sample-weighted mean of the per-batch losses."""
    dl.utils.set_random_seed(3)
    x, y = _data(12)
    model = dl.Sequential([dl.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(dl.optimizers.SGD(0.0), "sparse_categorical_crossentropy")  # lr 0: the weights stay put
    history = model.fit(x, y, batch_size=5, shuffle=False, verbose=0)
    p = model.predict(x, verbose=0)
    expected = float(np.mean(-np.log(p[np.arange(12), y])))
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-5)


def test_bad_step_data_is_refused():
    with pytest.raises(ValueError, match=r"format `x`, `\(x,\)`, `\(x, y\)`"):
        dl.utils.unpack_x_y_sample_weight((1, 2, 3, 4))
