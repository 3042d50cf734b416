"""The CNN path on the GPU end to end under NUMBA_ENABLE_CUDASIM=1: the seed CNN
(Conv2D-BatchNormalization-ReLU-MaxPooling2D-Dropout-Dense) trained one step on "gpu:0" equals the
CPU step, predicts the same, and a model saved on the GPU loads on the CPU; Conv1D, DepthwiseConv2D,
LayerNormalization, average and global pooling steps too; what the GPU does not run fails with a clear error.

Run by tests/cuda/test_cudasim.py in its own process; not collected by the main test run.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

import dlcore as dl  # noqa: E402
from dlcore import devices  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((6, 6, 6, 2)).astype(np.float32)
Y = RNG.integers(0, 3, 6)


def build(pool="max", conv=None):
    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    conv = conv or dl.layers.Conv2D(3, 3, padding="same", use_bias=False)  # BatchNormalization follows
    pooling = dl.layers.MaxPooling2D(2) if pool == "max" else dl.layers.AveragePooling2D(3, strides=2, padding="same")
    model = dl.Sequential([dl.Input(shape=(6, 6, 2)), conv, dl.layers.BatchNormalization(), dl.layers.ReLU(),
                           pooling, dl.layers.Dropout(0.25, seed=3), dl.layers.Flatten(),
                           dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _equal_steps(make):
    cpu = make()
    cpu_logs = cpu.fit(X, Y, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    with dl.device("gpu:0"):
        gpu = make()
        assert all(devices.is_device_array(v.value) for v in gpu.weights)  # moving statistics included
        gpu_logs = gpu.fit(X, Y, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    assert all(devices.is_device_array(v.value) for v in gpu.weights)  # updated in place on the device
    assert devices.is_device_array(devices.zeros_like(gpu.weights[0].value))
    for w, a, b in zip(cpu.weights, cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6, err_msg=w.path)
    np.testing.assert_allclose(gpu_logs["loss"], cpu_logs["loss"], rtol=1e-4)
    assert gpu_logs["accuracy"] == cpu_logs["accuracy"]
    return cpu, gpu


def test_seed_cnn_step_on_gpu_equals_the_cpu_step_predicts_the_same_and_loads_on_cpu(tmp_path):
    cpu, gpu = _equal_steps(build)
    moving = [w for w in cpu.weights if "moving" in w.path]
    assert moving and not np.allclose(moving[0].numpy(), 0.0)  # the step moved the statistics
    expected = gpu.predict(X, batch_size=4, verbose=0)
    assert type(expected) is np.ndarray
    np.testing.assert_allclose(expected, cpu.predict(X, verbose=0), rtol=1e-4, atol=1e-6)
    gpu.save(tmp_path / "cnn.keras")
    loaded = dl.saving.load_model(tmp_path / "cnn.keras")
    assert all(type(v.value) is np.ndarray for v in loaded.weights)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), expected, rtol=1e-4, atol=1e-6)


def test_average_pooling_and_depthwise_conv_steps_on_gpu():
    _equal_steps(lambda: build("average", dl.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="tanh")))


def test_conv1d_layer_normalization_and_global_pooling_on_gpu():
    def make():
        dl.utils.clear_session()
        dl.utils.set_random_seed(0)
        model = dl.Sequential([dl.Input(shape=(6, 2)), dl.layers.Conv1D(3, 2, activation="relu"),
                               dl.layers.LayerNormalization(), dl.layers.GlobalMaxPooling1D(),
                               dl.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    x1 = X[:, 0]
    cpu = make()
    cpu.fit(x1, Y, epochs=1, batch_size=6, verbose=0)
    with dl.device("gpu:0"):
        gpu = make()
        gpu.fit(x1, Y, epochs=1, batch_size=6, verbose=0)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_conv2d_transpose_and_conv1d_transpose_steps_on_gpu():
    def make():
        dl.utils.clear_session()
        dl.utils.set_random_seed(0)
        model = dl.Sequential([dl.Input(shape=(6, 6, 2)), dl.layers.Conv2D(3, 3, strides=2, activation="relu"),
                               dl.layers.Conv2DTranspose(2, 3, strides=2, padding="same", output_padding=1,
                                                         activation="tanh"),
                               dl.layers.Reshape((16, 2)),
                               dl.layers.Conv1DTranspose(2, 3, dilation_rate=2, use_bias=False),
                               dl.layers.Flatten(), dl.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    cpu, gpu = _equal_steps(make)
    assert tuple(gpu.layers[1].kernel.shape) == (3, 3, 2, 3) and gpu.layers[1].bias is not None
    np.testing.assert_allclose(gpu.predict(X, verbose=0), cpu.predict(X, verbose=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("rank,kwargs", [(1, {"strides": 2, "padding": "same"}),
                                         (2, {"strides": (2, 1), "dilation_rate": (1, 2), "output_padding": (1, 0)})])
def test_conv_transpose_op_gradients_on_gpu_equal_the_cpu(rank, kwargs):
    x = RNG.standard_normal((2,) + (5,) * rank + (3,)).astype(np.float32)
    w = RNG.standard_normal((3,) * rank + (4, 3)).astype(np.float32)
    b = RNG.standard_normal(4).astype(np.float32)
    results = []
    for where in ("cpu", "gpu:0"):
        with dl.device(where):
            move = devices.to_device if where != "cpu" else (lambda a: a)
            tensors = [dl.Tensor(move(a)) for a in (x, w, b)]
            with dl.GradientTape() as tape:
                tape.watch(tensors)
                y = dl.ops.conv_transpose_bias(tensors[0], tensors[1], tensors[2], **kwargs)
            size = int(np.prod(y.shape))
            seed = dl.Tensor(move(np.sin(np.arange(size, dtype=np.float32)).reshape(tuple(y.shape))))
            grads = tape.gradient(y, tensors, output_gradients=seed)
        results.append([devices.to_host(t.value) for t in [y, *grads]])
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(results[0][0], dl.ops.conv_transpose(x, w, **kwargs).numpy() + b, rtol=1e-6)


def test_conv3d_steps_on_gpu_equal_the_cpu_step():
    x3 = RNG.standard_normal((6, 4, 3, 3, 2)).astype(np.float32)

    def make():
        dl.utils.clear_session()
        dl.utils.set_random_seed(0)
        model = dl.Sequential([dl.Input(shape=(4, 3, 3, 2)),
                               dl.layers.Conv3D(2, 3, strides=(2, 1, 1), padding="same", activation="relu"),
                               dl.layers.Conv3D(2, (2, 2, 2), dilation_rate=(1, 1, 1), groups=2),
                               dl.layers.Flatten(), dl.layers.Dense(3, activation="softmax")])
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    cpu = make()
    cpu_loss = cpu.train_on_batch(x3, Y)
    with dl.device("gpu:0"):
        gpu = make()
        gpu_loss = gpu.train_on_batch(x3, Y)
    assert all(devices.is_device_array(v.value) for v in gpu.weights)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-4)
    np.testing.assert_allclose(gpu.predict_on_batch(x3), cpu.predict_on_batch(x3), rtol=1e-4, atol=1e-6)


def test_what_the_gpu_does_not_run_is_a_clear_error():
    with dl.device("gpu:0"):
        model = dl.Sequential([dl.Input(shape=(6, 6, 2)), dl.layers.Conv2D(2, 3, padding="reflect")])
        with pytest.raises(ValueError, match="padding='reflect' run on the CPU only"):
            model.predict(X, verbose=0)
        x = devices.to_device(X)
        with pytest.raises(ValueError, match="noise_shape .* on the CPU only"):
            dl.ops.dropout(x, 0.5, noise_shape=(6, 1, 1, 2), seed=1)
        with pytest.raises(ValueError, match="normalizes the last axis only"):
            dl.ops.batch_normalization_training(x, axis=1)
        flat = dl.ops.reshape(x, (6, -1))  # a view of the GPU array
        assert devices.is_device_array(flat.value) and tuple(flat.shape) == (6, 72)
        with pytest.raises(ValueError, match=r"cannot reshape array of size 432 into shape \(5, -1\)"):
            dl.ops.reshape(x, (5, -1))
