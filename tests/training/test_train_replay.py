"""Captured training steps (dlcore/models/train_replay.py): once a batch shape repeats, the default
train_step replays the kernel calls of its forward and backward pass. Checked against the same
training with ``compile(run_eagerly=True)`` (every step through the layers and the tape), bit for
bit, on batches that change from step to step; and the refusals (a step whose Python does work
the kernel calls do not) train exactly as the eager run does."""
import numpy as np
import pytest

import dlcore as dl
from dlcore import layers
from dlcore.models.train_replay import MAX_KEYS, TrainProgram


def _batches(shape, n=6, batch=16, classes=5, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((batch,) + shape).astype(dtype), rng.integers(0, classes, batch))
            for _ in range(n)]


def _mlp():
    return [dl.Input((12,)), layers.Dense(16, activation="relu"), layers.Dense(5, activation="softmax")]


def _lstm():
    return [dl.Input((6, 4)), layers.LSTM(8), layers.Dense(5, activation="softmax")]


def _cnn():
    return [dl.Input((8, 8, 2)), layers.Conv2D(4, 3, activation="relu"), layers.MaxPooling2D(),
            layers.Flatten(), layers.Dense(5, activation="softmax")]


def _model(stack, eager, optimizer="adam", seed=1, metrics=("accuracy",), **compile_kw):
    dl.utils.set_random_seed(seed)
    model = dl.Sequential(stack())
    opt = dl.optimizers.Adam(0.01) if optimizer == "adam" else dl.optimizers.SGD(0.1, momentum=0.9)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=list(metrics),
                  run_eagerly=eager, **compile_kw)
    return model


def _programs(model):
    return [v for v in (model._train_programs or {}).values() if type(v) is TrainProgram]


def _train_both(stack, batches, optimizer="adam", **kw):
    out = []
    for eager in (True, False):
        model = _model(stack, eager, optimizer, **kw)
        logs = [model.train_on_batch(x, y, return_dict=True) for x, y in batches]
        out.append((model, logs))
    return out


def _eager_and_captured(build, batches, seed=1):
    """``[(model, logs)]`` of ``build()`` trained on ``batches`` with run_eagerly=True, then False."""
    runs = []
    for eager in (True, False):
        dl.utils.set_random_seed(seed)
        model = build()
        model.compile(optimizer=dl.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", run_eagerly=eager)
        runs.append((model, [model.train_on_batch(x, y, return_dict=True) for x, y in batches]))
    return runs


def _same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(u.dtype == v.dtype and np.array_equal(u, v) for u, v in zip(wa, wb))


@pytest.mark.parametrize("stack,shape,optimizer", [(_mlp, (12,), "sgd"), (_lstm, (6, 4), "adam"),
                                                   (_cnn, (8, 8, 2), "adam")])
def test_captured_steps_train_as_the_eager_steps_bit_for_bit(stack, shape, optimizer):
    (eager, logs_e), (captured, logs_c) = _train_both(stack, _batches(shape), optimizer)
    assert not _programs(eager) and len(_programs(captured)) == 1  # captured at the second step
    assert logs_c == logs_e
    assert _same_weights(captured, eager)
    slots_c, slots_e = captured.optimizer.variables, eager.optimizer.variables
    assert len(slots_c) == len(slots_e) > 0
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(slots_c, slots_e))


def test_the_replayed_calls_are_the_steps_kernels_and_nothing_else():
    model = _model(_mlp, False)
    for x, y in _batches((12,), n=3):
        model.train_on_batch(x, y)
    (program,) = _programs(model)
    # dense, softmax, loss, its reduction; the loss gradient, softmax, dense and relu backward
    assert 8 <= len(program.calls) <= 20
    calls_before = list(program.calls)
    x, y = _batches((12,), n=1, seed=5)[0]
    model.train_on_batch(x, y)
    assert program.calls == calls_before and len(_programs(model)) == 1  # replayed, not captured again


def test_fit_with_a_last_partial_batch_matches_eager():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((70, 12)).astype(np.float32)
    y = rng.integers(0, 5, 70)
    histories, models = [], []
    for eager in (True, False):
        model = _model(_mlp, eager)
        histories.append(model.fit(x, y, batch_size=16, epochs=3, verbose=0, shuffle=True).history)
        models.append(model)
    assert histories[0] == histories[1]
    assert _same_weights(*models)
    # the 16-sample batches captured; the 6-sample last batch repeats once an epoch: captured too
    shapes = sorted(k[0][0][0][0] for k, v in models[1]._train_programs.items() if type(v) is TrainProgram)
    assert shapes == [6, 16]


def test_weights_set_between_steps_are_the_ones_replayed():
    batches = _batches((12,), n=5)
    models = [_model(_mlp, eager) for eager in (True, False)]
    for i, (x, y) in enumerate(batches):
        if i == 3:  # a write into the variables' own buffers (Variable.assign copies)
            for m in models:
                m.set_weights([w * 0.5 for w in m.get_weights()])
        logs = [m.train_on_batch(x, y, return_dict=True) for m in models]
        assert logs[0] == logs[1]
    assert _same_weights(*models) and len(_programs(models[1])) == 1


def test_trainable_change_thread_count_and_recompile_start_new_keys():
    batches = _batches((12,), n=4)
    models = [_model(_mlp, eager) for eager in (True, False)]
    for m in models:
        for x, y in batches[:2]:
            m.train_on_batch(x, y)
    assert len(_programs(models[1])) == 1
    for m in models:  # freeze the first layer: other trainable variables, another key
        m.layers[0].trainable = False
        for x, y in batches[2:]:
            m.train_on_batch(x, y)
    assert len(_programs(models[1])) == 2 and _same_weights(*models)
    models[1].compile(optimizer=dl.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert not models[1]._train_programs  # compile drops the programs of the last compilation


def test_a_thread_count_change_is_another_key():
    from dlcore import kernels

    batches = _batches((12,), n=4)
    model = _model(_mlp, False)
    before = kernels.num_threads()
    try:
        for threads, (x, y) in zip((1, 1, 2, 2), batches):
            dl.config.set_num_threads(threads)
            model.train_on_batch(x, y)
    finally:
        dl.config.set_num_threads(before)
    assert sorted(k[1] for k, v in model._train_programs.items() if type(v) is TrainProgram) == [1, 2]


def _uncaptured_as_eager(stack, shape, **kw):
    """(whether the step stayed uncaptured and trained as the eager run did, bit for bit; the model)."""
    (eager, logs_e), (other, logs_o) = _train_both(stack, _batches(shape), **kw)
    return not _programs(other) and logs_o == logs_e and _same_weights(other, eager), other


@pytest.mark.parametrize("seed", [None, 7])
def test_dropout_is_captured_and_draws_as_the_eager_run(seed):
    """Dropout draws its keys inside a kernel call (philox_uniform_drawn): a replayed step draws
    new masks, from the same generator, in the same order as the eager step."""
    def stack():
        return [dl.Input((12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3, seed=seed),
                layers.Dense(5, activation="softmax")]

    from dlcore.utils.random import generator

    runs = []
    for eager in (True, False):
        model = _model(stack, eager)
        logs = [model.train_on_batch(x, y, return_dict=True) for x, y in _batches((12,), n=8)]
        runs.append((model, logs, generator().bit_generator.state, model.layers[1]._rng))
    (eager, logs_e, state_e, rng_e), (captured, logs_c, state_c, rng_c) = runs
    assert len(_programs(captured)) == 1
    assert logs_c == logs_e and _same_weights(captured, eager)
    assert state_c == state_e  # the session generator is where the eager run left it
    if seed is not None:  # and so is the layer's own
        assert rng_c.bit_generator.state == rng_e.bit_generator.state


def test_set_random_seed_between_steps_reaches_the_replayed_draws():
    def stack():
        return [dl.Input((12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3),
                layers.Dense(5, activation="softmax")]

    runs = []
    for eager in (True, False):
        model = _model(stack, eager)
        logs = []
        for i, (x, y) in enumerate(_batches((12,), n=7)):
            if i == 4:  # a new session generator object
                dl.utils.set_random_seed(123)
            logs.append(model.train_on_batch(x, y, return_dict=True))
        runs.append((model, logs))
    assert len(_programs(runs[1][0])) == 1
    assert runs[0][1] == runs[1][1] and _same_weights(runs[0][0], runs[1][0])


def test_a_draw_made_in_python_keeps_the_step_eager():
    def stack():  # GaussianNoise draws its noise with NumPy in the op
        return [dl.Input((12,)), layers.GaussianNoise(0.1), layers.Dense(5, activation="softmax")]

    assert _uncaptured_as_eager(stack, (12,))[0]


def test_batch_normalization_moving_statistics_are_not_captured():
    def stack():
        return [dl.Input((12,)), layers.Dense(16), layers.BatchNormalization(), layers.Activation("relu"),
                layers.Dense(5, activation="softmax")]

    same, model = _uncaptured_as_eager(stack, (12,))
    assert same
    assert not np.allclose(model.layers[1].moving_mean.numpy(), 0.0)  # the updates happened


def test_regularization_losses_are_not_captured():
    def stack():
        return [dl.Input((12,)), layers.Dense(16, activation="relu", kernel_regularizer="l2"),
                layers.Dense(5, activation="softmax")]

    assert _uncaptured_as_eager(stack, (12,))[0]


def test_custom_layers_are_not_captured():
    class Doubled(layers.Layer):
        def call(self, inputs):
            return dl.ops.multiply(inputs, 2.0)

    def stack():
        return [dl.Input((12,)), Doubled(), layers.Dense(5, activation="softmax")]

    assert _uncaptured_as_eager(stack, (12,))[0]


def test_sample_weights_and_loss_scaling_run_eagerly():
    batches = _batches((12,), n=4)
    model = _model(_mlp, False)
    for x, y in batches:
        model.train_on_batch(x, y, sample_weight=np.linspace(0.5, 1.5, len(y)))
    assert not _programs(model)
    model = _model(_mlp, False, loss_weights=None)
    model.optimizer.loss_scale_factor = 4.0
    for x, y in batches:
        model.train_on_batch(x, y)
    assert not _programs(model)


def test_python_work_on_weights_between_kernels_fails_the_check(monkeypatch):
    """A dlcore layer whose call computes something from a weight in NumPy (here, a copy of the
    bias, doubled): replaying would keep the first step's copy, so the capture check (pass A runs
    on other weights) must refuse the key."""
    from dlcore.layers import core

    original = core.Dense.call

    def call(self, inputs):
        out = original(self, inputs)
        return dl.ops.add(out, self.bias.value * 0.0 + self.bias.value.copy() * 1e-3)

    monkeypatch.setattr(core.Dense, "call", call)
    assert _uncaptured_as_eager(_mlp, (12,), optimizer="sgd")[0]


def test_python_work_on_the_batch_between_kernels_fails_the_check(monkeypatch):
    from dlcore.layers import core

    original = core.Dense.call

    def call(self, inputs):  # adds a per-row NumPy sum of the batch (no gradient through it)
        x = inputs.value if hasattr(inputs, "value") else np.asarray(inputs)
        return dl.ops.add(original(self, inputs), x.sum(axis=1, keepdims=True) * 1e-3)

    monkeypatch.setattr(core.Dense, "call", call)
    assert _uncaptured_as_eager(_mlp, (12,), optimizer="sgd")[0]


def test_programs_per_model_are_bounded():
    model = _model(_mlp, False)
    for batch in range(2, 2 + MAX_KEYS + 3):
        for x, y in _batches((12,), n=2, batch=batch, seed=batch):
            model.train_on_batch(x, y)
    assert len(model._train_programs) <= MAX_KEYS


def test_float64_inputs_are_cast_once_and_captured():
    (eager, logs_e), (captured, logs_c) = _train_both(_mlp, _batches((12,), dtype=np.float64))
    assert logs_c == logs_e and _same_weights(captured, eager) and len(_programs(captured)) == 1
    assert list(captured._train_programs)[0][0][0] == ((16, 12), "<f4")


def test_a_float64_model_input_keeps_float64_batches():
    def stack():
        return [dl.Input((12,), dtype="float64"), layers.Dense(5, activation="softmax", dtype="float64")]

    (eager, logs_e), (captured, logs_c) = _train_both(stack, _batches((12,), dtype=np.float64))
    assert logs_c == logs_e and _same_weights(captured, eager)
    assert all(k[0][0][1] == "<f8" for k in captured._train_programs)


def test_loss_reduction_is_the_mean_of_the_per_sample_losses():
    """The reduced loss comes from the sum_all kernel (a double-precision sum): within float32
    rounding of the float64 mean of Keras's per-sample values."""
    rng = np.random.default_rng(4)
    y_pred = rng.dirichlet(np.ones(5), size=32).astype(np.float32)
    y_true = rng.integers(0, 5, 32)
    per_sample = -np.log(np.clip(y_pred[np.arange(32), y_true].astype(np.float64), 1e-7, 1 - 1e-7))
    loss = dl.losses.SparseCategoricalCrossentropy()(y_true, y_pred)
    np.testing.assert_allclose(float(loss.value), per_sample.mean(), rtol=2e-6)
    total = dl.losses.SparseCategoricalCrossentropy(reduction="sum")(y_true, y_pred)
    np.testing.assert_allclose(float(total.value), per_sample.sum(), rtol=2e-6)


def test_a_pickled_or_copied_model_captures_again_and_trains_on():
    import copy
    import pickle

    batches = _batches((12,), n=6)
    model = _model(_mlp, False)
    for x, y in batches[:3]:
        model.train_on_batch(x, y)
    assert len(_programs(model)) == 1
    clones = [pickle.loads(pickle.dumps(model)), copy.deepcopy(model)]
    for clone in clones:
        assert not _programs(clone)
    for x, y in batches[3:]:
        logs = [m.train_on_batch(x, y, return_dict=True) for m in [model] + clones]
        assert logs[0] == logs[1] == logs[2]
    assert _same_weights(model, clones[0]) and _same_weights(model, clones[1])
    assert len(_programs(clones[0])) == 1


def test_python_work_into_a_reused_buffer_fails_the_second_check(monkeypatch):
    """NumPy work written into one cached buffer at every call: passes A and B share it, so the
    replay on the batch reads B's (right) values; the replay on A's inputs shows them stale."""
    from dlcore.layers import core

    from dlcore.tensor import Tensor

    original = core.Dense.call
    cache = {}

    def call(self, inputs):  # the first layer reads a cached copy of the batch
        x = inputs.value if hasattr(inputs, "value") else np.asarray(inputs)
        if x.shape[-1] != 12:
            return original(self, inputs)
        buffer = cache.setdefault((id(self), x.shape), np.empty(x.shape, x.dtype))
        np.copyto(buffer, x)
        return original(self, Tensor(buffer))

    monkeypatch.setattr(core.Dense, "call", call)
    assert _uncaptured_as_eager(_mlp, (12,), optimizer="sgd")[0]


def _residual():
    inputs = dl.Input((12,))
    h = layers.Dense(16, activation="relu")(inputs)
    h = layers.Add()([h, layers.Dense(16, activation="relu")(h)])  # h's gradient: two paths added
    return dl.Model(inputs, layers.Dense(5, activation="softmax")(h))


def _embedding_bag():
    return [dl.Input((6,), dtype="int32"), layers.Embedding(30, 8), layers.GlobalAveragePooling1D(),
            layers.Dense(5, activation="softmax")]


@pytest.mark.parametrize("build,shape,dtype", [(_residual, (12,), np.float32), (_embedding_bag, (6,), np.int32)])
def test_skip_connections_and_embeddings_are_captured(build, shape, dtype):
    rng = np.random.default_rng(8)
    if dtype == np.int32:
        batches = [(rng.integers(0, 30, (16,) + shape).astype(np.int32), rng.integers(0, 5, 16)) for _ in range(6)]
    else:
        batches = _batches(shape)
    (eager, logs_e), (captured, logs_c) = _eager_and_captured(
        build if build is _residual else lambda: dl.Sequential(build()), batches)
    assert len(_programs(captured)) == 1
    assert logs_c == logs_e and _same_weights(captured, eager)


def test_the_runners_transformer_is_captured_and_trains_as_eager():
    """Token and position embeddings (int32 ids), MultiHeadAttention, LayerNormalization, dropout,
    residual Adds: the keras.io encoder block (tiny shapes)."""
    from dlcore.benchmarks import spec as S
    from dlcore.benchmarks.workloads import _keras_api as K

    spec = S.workload_spec("transformer-train", tiny=True)
    ms = spec["model_spec"]
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, ms["vocab"], size=(4, ms["maxlen"])).astype(np.int32), rng.integers(0, ms["classes"], 4))
               for _ in range(6)]
    (eager, logs_e), (captured, logs_c) = _eager_and_captured(lambda: K.build_model(dl, ms), batches, seed=3)
    assert len(_programs(captured)) == 1
    assert logs_c == logs_e and _same_weights(captured, eager)


def test_an_unbuilt_model_trains_its_weights_from_the_first_step():
    """A Sequential with no Input is built by its first forward pass, inside the step: the
    trainable weights are read after it, so the first step trains them (a subclass that overrides
    compute_loss skips the target checks that would build it before the step)."""
    class Model(dl.Sequential):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    dl.utils.set_random_seed(1)
    model = Model([layers.Dense(4, activation="relu"), layers.Dense(5, activation="softmax")])
    model.compile(optimizer=dl.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    x, y = _batches((12,), n=1)[0]
    assert not model.built
    model.train_on_batch(x, y)
    first = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    assert int(model.optimizer.iterations) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(first, model.get_weights()))
