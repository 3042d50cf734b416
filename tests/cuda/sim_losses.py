"""Losses reduced on the GPU, under NUMBA_ENABLE_CUDASIM=1 (run by tests/cuda/test_cudasim.py in
its own process): the loss kernels against their CPU twins, training steps with each loss equal
to the CPU's with only the scalar loss crossing to the host, and the optimizer state of a saved
model loaded into GPU slots."""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

from numba import cuda  # noqa: E402

import dlcore as dl  # noqa: E402
from dlcore import devices, kernels  # noqa: E402

RNG = np.random.default_rng(2)


def run_both(name, args, outputs):
    cpu = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu = [cuda.to_device(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    kernels.get(name)(*cpu)
    kernels.get(name, device="cuda")(*gpu)
    for i in outputs:
        np.testing.assert_allclose(gpu[i].copy_to_host(), cpu[i], rtol=1e-5, atol=1e-6, err_msg=f"{name} {i}")


def probabilities(m, c):
    p = np.abs(RNG.standard_normal((m, c))).astype(np.float32) + 0.05
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("name,attrs", [("mse", ()), ("mae", ()), ("binary_crossentropy", (False,)),
                                        ("binary_crossentropy", (True,)), ("categorical_crossentropy", (False,)),
                                        ("categorical_crossentropy", (True,))])
def test_loss_kernels_equal_their_cpu_twins(name, attrs):
    m, d = 5, 4
    logits = bool(attrs and attrs[0])
    if name == "categorical_crossentropy":
        t = np.eye(d, dtype=np.float32)[RNG.integers(0, d, m)]
        p = RNG.standard_normal((m, d)).astype(np.float32) if logits else probabilities(m, d)
    elif name == "binary_crossentropy":
        t = RNG.integers(0, 2, (m, d)).astype(np.float32)
        p = RNG.standard_normal((m, d)).astype(np.float32) if logits else RNG.random((m, d)).astype(np.float32)
        if not logits:
            p[0, 0] = 0.0  # outside the clip range: zero gradient
    else:
        t, p = RNG.standard_normal((m, d)).astype(np.float32), RNG.standard_normal((m, d)).astype(np.float32)
        p[1, 1] = t[1, 1]  # mae: sign(0) = 0
    run_both(name + "_forward", [t, p, np.zeros(m, np.float32), *attrs], [2])
    dl_ = RNG.standard_normal(m).astype(np.float32)
    run_both(name + "_backward", [t, p, dl_, np.zeros_like(p), *attrs], [3])


X = RNG.standard_normal((8, 4)).astype(np.float32)
TARGETS = {
    "mse": RNG.standard_normal((8, 3)).astype(np.float32),
    "mae": RNG.standard_normal((8, 3)).astype(np.float32),
    "binary_crossentropy": RNG.integers(0, 2, (8, 3)).astype(np.float32),
    "categorical_crossentropy": np.eye(3, dtype=np.float32)[RNG.integers(0, 3, 8)],
    "sparse_categorical_crossentropy": RNG.integers(0, 3, 8),
}
OUT_ACTIVATION = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax",
                  "sparse_categorical_crossentropy": "softmax"}


def mlp(loss, optimizer="adam"):
    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    model = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(5, activation="tanh"),
                           dl.layers.Dense(3, activation=OUT_ACTIVATION.get(loss))])
    model.compile(optimizer=optimizer, loss=loss)
    return model


@pytest.fixture
def host_copies(monkeypatch):
    """The sizes of every device-to-host copy while the fixture is active."""
    sizes = []
    array_type = type(cuda.device_array(1, np.float32))
    original = array_type.copy_to_host

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        sizes.append(out.size)
        return out

    monkeypatch.setattr(array_type, "copy_to_host", spy)
    return sizes


@pytest.mark.parametrize("loss", list(TARGETS))
def test_loss_reduced_on_gpu_and_only_the_scalar_crosses(loss, host_copies):
    y = TARGETS[loss]
    weights = np.linspace(0.5, 1.5, 8).astype(np.float32)
    cpu = mlp(loss)
    cpu_loss = cpu.train_on_batch(X, y, sample_weight=weights)
    with dl.device("gpu:0"):
        gpu = mlp(loss)
        host_copies.clear()
        gpu_loss = gpu.train_on_batch(X, y, sample_weight=weights)
        assert host_copies == [1]  # the scalar loss: no per-sample losses, gradients or predictions
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gpu.evaluate(X, y, verbose=0), cpu.evaluate(X, y, verbose=0), rtol=1e-5)


@pytest.mark.parametrize("ext", ["dlc", "keras"])
def test_optimizer_state_loads_into_gpu_slots(tmp_path, ext):
    y = TARGETS["mse"]
    with dl.device("gpu:0"):
        trained = mlp("mse")
        trained.fit(X, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        trained.save(tmp_path / f"m.{ext}")
        state = trained.optimizer.get_state()
        loaded = dl.saving.load_model(tmp_path / f"m.{ext}")
        slots = loaded.optimizer.variables[1:]
        assert slots and all(devices.is_device_array(s) for s in slots)
        for saved, restored in zip(state, loaded.optimizer.get_state()):
            np.testing.assert_array_equal(restored, saved)
        gpu_loss = loaded.train_on_batch(X, y)
    cpu = dl.saving.load_model(tmp_path / f"m.{ext}")
    cpu_loss = cpu.train_on_batch(X, y)  # the restored Adam moments drive the same next step
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    for a, b in zip(cpu.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_fanned_out_gradients_add_on_the_device(monkeypatch):
    """A GPU tensor read by two layers gets its two gradients added on the device: a real numba
    device array has no ``+`` (the simulator's has one, so it is disabled here)."""
    array_type = type(cuda.device_array(1, np.float32))

    def no_operators(self, other):
        raise TypeError("numba device arrays have no arithmetic operators")

    y1, y2 = TARGETS["mse"], TARGETS["mae"]

    def build():
        dl.utils.clear_session()
        dl.utils.set_random_seed(5)
        inputs = dl.Input(shape=(4,))
        hidden = dl.layers.Dense(5, activation="tanh")(inputs)
        model = dl.Model(inputs, [dl.layers.Dense(3)(hidden), dl.layers.Dense(3)(hidden)])
        model.compile(optimizer=dl.optimizers.SGD(0.1), loss=["mse", "mae"])
        return model

    cpu = build()
    cpu_loss = cpu.train_on_batch(X, [y1, y2])
    with dl.device("gpu:0"):
        gpu = build()
        monkeypatch.setattr(array_type, "__add__", no_operators, raising=False)
        monkeypatch.setattr(array_type, "__radd__", no_operators, raising=False)
        gpu_loss = gpu.train_on_batch(X, [y1, y2])
    np.testing.assert_allclose(gpu_loss, cpu_loss, rtol=1e-5)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
