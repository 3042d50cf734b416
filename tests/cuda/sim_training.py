"""The GPU device path end to end under NUMBA_ENABLE_CUDASIM=1: a Dense MLP trained on "gpu:0"
equals the CPU run, predictions come back as NumPy, GPU-saved models load on the CPU, and what
the GPU path does not cover fails with a clear error.

Run by tests/cuda/test_cudasim.py in its own process; not collected by the main test run.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

import dlcore as dl  # noqa: E402
from dlcore import devices, kernels  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 12)


def build(optimizer="adam"):
    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(8, activation="relu"),
                           dl.layers.Dense(6, activation="tanh"), dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.parametrize("optimizer", ["adam", lambda: dl.optimizers.SGD(0.1, momentum=0.9, nesterov=True)])
def test_mlp_steps_on_gpu_equal_the_cpu_steps(optimizer):
    make = optimizer if callable(optimizer) else (lambda: optimizer)
    cpu = build(make())
    cpu_logs = cpu.fit(X, Y, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    with dl.device("gpu:0"):
        gpu = build(make())
        assert all(devices.is_device_array(v.value) for v in gpu.trainable_weights)
        gpu_logs = gpu.fit(X, Y, epochs=1, batch_size=6, shuffle=False, verbose=0).history
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        assert isinstance(b, np.ndarray)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu_logs["loss"], cpu_logs["loss"], rtol=1e-4)
    assert gpu_logs["accuracy"] == cpu_logs["accuracy"]
    assert all(isinstance(v.value, np.ndarray) for v in gpu.metrics[1].variables)  # metric state on the host


def test_predict_returns_numpy_equal_to_cpu():
    cpu = build()
    with dl.device("cuda:0"):
        gpu = build()
    probs = gpu.predict(X, batch_size=5, verbose=0)
    assert type(probs) is np.ndarray and probs.shape == (12, 3)
    np.testing.assert_allclose(probs, cpu.predict(X, verbose=0), rtol=1e-5, atol=1e-6)
    on_batch = gpu.predict_on_batch(X[:2])
    assert type(on_batch) is np.ndarray
    np.testing.assert_allclose(on_batch, probs[:2], rtol=1e-6)
    out = gpu(X[:2])  # an eager call keeps the result on the GPU; .numpy() copies it out
    assert devices.is_device_array(out.value)
    np.testing.assert_allclose(out.numpy(), probs[:2], rtol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(X, Y, verbose=0), cpu.evaluate(X, Y, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("ext", ["dlc", "keras"])
def test_saved_on_gpu_loads_on_cpu(tmp_path, ext):
    with dl.device("gpu"):
        gpu = build()
        gpu.fit(X, Y, epochs=1, batch_size=12, verbose=0)
        expected = gpu.predict(X, verbose=0)
        gpu.save(tmp_path / f"m.{ext}")
    cpu = dl.saving.load_model(tmp_path / f"m.{ext}")
    assert all(type(v.value) is np.ndarray for v in cpu.weights)
    np.testing.assert_allclose(cpu.predict(X, verbose=0), expected, rtol=1e-5, atol=1e-6)


def test_set_device_and_list_devices():
    assert dl.config.list_devices() == ["cpu:0", "gpu:0"]
    assert dl.config.list_devices("gpu") == ["gpu:0"]
    try:
        dl.config.set_device("gpu")
        assert dl.config.get_device() == "gpu:0"
        with dl.device("cpu"):
            assert type(dl.Variable(np.ones(2, np.float32)).value) is np.ndarray
        assert devices.is_device_array(dl.Variable(np.ones(2, np.float32)).value)
    finally:
        dl.config.set_device("cpu")
    assert dl.config.get_device() == "cpu"


def test_missing_gpu_index_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'gpu:3'.*1 GPU"):
        with dl.device("gpu:3"):
            pass


def test_cpu_only_ops_are_clear_errors():  # optimizers: sim_optim.py
    with dl.device("gpu:0"):
        square = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(3), dl.layers.Lambda(lambda t: t * t)])
        with pytest.raises(TypeError, match="op Multiply received a GPU array but runs on the CPU only"):
            square.predict(X, verbose=0)


def test_unknown_cuda_kernel_is_a_clear_error():
    with pytest.raises(KeyError, match="no cuda kernel named 'int8_matmul'"):
        kernels.get("int8_matmul", device="cuda")
