"""Every optimizer on the GPU under NUMBA_ENABLE_CUDASIM=1: the CUDA update kernels against their
CPU twins, one MLP step per optimizer on "gpu:0" equal to the CPU step, and clipping, weight
decay, EMA and gradient accumulation done on the device.

Run by tests/cuda/test_cudasim.py in its own process; not collected by the main test run.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and os.environ.get("DLCORE_CUDA_HARDWARE") != "1":
    pytest.skip("run through tests/cuda/test_cudasim.py (NUMBA_ENABLE_CUDASIM=1) or, on a GPU, "
                "benchmarks/gpu_check.py (DLCORE_CUDA_HARDWARE=1)", allow_module_level=True)

from numba import cuda  # noqa: E402

import dlcore as dl  # noqa: E402
from dlcore import devices, kernels  # noqa: E402

RNG = np.random.default_rng(3)
N = 37  # more than two simulator blocks, not a multiple of the block


def vec(scale=1.0, positive=False, dtype=np.float32):
    x = RNG.standard_normal(N) * scale
    return (np.abs(x) + 0.1 if positive else x).astype(dtype)


def both(name, args, outs, rtol=1e-5):
    """Run the CPU and the CUDA kernel on copies of ``args``; compare the arrays at ``outs``."""
    cpu = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    gpu = [cuda.to_device(a.copy()) if isinstance(a, np.ndarray) else a for a in args]
    kernels.get(name)(*cpu)
    kernels.get(name, device="cuda")(*gpu)
    for i in outs:
        np.testing.assert_allclose(gpu[i].copy_to_host(), cpu[i], rtol=rtol, atol=1e-6, err_msg=f"{name} arg {i}")


EMPTY = np.empty(0, np.float32)
CASES = {
    "adagrad_update": lambda: ([vec(), vec(), vec(positive=True), 0.1, 1e-7], [0, 2]),
    "rmsprop_update": lambda: ([vec(), vec(), vec(positive=True), vec(0.1), vec(), 0.01, 0.9, 0.5, 1e-7, True],
                               [0, 2, 3, 4]),
    "rmsprop_update/plain": lambda: ([vec(), vec(), vec(positive=True), EMPTY, EMPTY, 0.01, 0.9, 0.0, 1e-7, False],
                                     [0, 2]),
    "adam_update/amsgrad": lambda: ([vec(), vec(), vec(), vec(positive=True), vec(positive=True), 0.01, 0.9, 0.999,
                                     1e-7, True], [0, 2, 3, 4]),
    "decay_weights": lambda: ([vec(), 0.004], [0]),
    "adamax_update": lambda: ([vec(), vec(), vec(), vec(positive=True), 0.02, 0.9, 0.999, 1e-7], [0, 2, 3]),
    "nadam_update": lambda: ([vec(), vec(), vec(), vec(positive=True), 0.01, 0.9, 0.999, 1e-7, 0.8, 0.3, 9.5],
                             [0, 2, 3]),
    "adadelta_update": lambda: ([vec(), vec(), vec(positive=True), vec(positive=True), 1.0, 0.95, 1e-7], [0, 2, 3]),
    "lion_update": lambda: ([vec(), np.where(np.arange(N) == 3, 0.0, vec()).astype(np.float32),
                             np.where(np.arange(N) == 3, 0.0, vec()).astype(np.float32), 0.01, 0.9, 0.99], [0, 2]),
    "ftrl_update": lambda: ([vec(), vec(), vec(positive=True), vec(), 0.1, 0.5, 0.01, 0.2, 0.05], [0, 2, 3]),
    "ftrl_update/power": lambda: ([vec(), vec(), vec(positive=True), vec(), 0.1, 0.3, 0.0, 0.0, 0.0], [0, 2, 3]),
    "axpby": lambda: ([vec(), 0.7, vec(), -0.3, np.zeros(N, np.float32)], [4]),
    "axpby/scale": lambda: ([np.where(np.arange(N) == 2, np.inf, vec()).astype(np.float32), 0.25,
                             np.full(N, np.nan, np.float32), 0.0, np.zeros(N, np.float32)], [4]),
    "sum_squares": lambda: ([vec(), np.array([1.5])], [1]),
    "scale_by_norm": lambda: ([vec(), np.array([30.0]), 2.0, False, np.zeros(N, np.float32)], [4]),
    "scale_by_norm/inside": lambda: ([vec(), np.array([3.0]), 2.0, True, np.zeros(N, np.float32)], [4]),
    "scale_by_norm/inf": lambda: ([vec(), np.array([np.inf]), 2.0, True, np.zeros(N, np.float32)], [4]),
    "clip_values": lambda: ([vec(2.0), 0.5, np.zeros(N, np.float32)], [2]),
    "lamb_moments": lambda: ([vec(), vec(), vec(positive=True), np.zeros(N, np.float32), 0.1, 0.01, 0.9, 0.999,
                              1e-6], [1, 2, 3]),
    "trust_ratio_update": lambda: ([vec(), vec(), np.array([4.0]), np.array([9.0]), 0.01], [0]),
    "adafactor_moments": lambda: ([vec(), vec(positive=True), 0.3, 1e-30], [1]),
    "adafactor_direction": lambda: ([vec(), vec(positive=True), np.zeros(N, np.float32)], [2]),
    "adafactor_apply": lambda: ([vec(), vec(), np.array([40.0, 90.0]), 0.05, 1e-3, 0.5], [0]),
    "adafactor_apply/unclipped": lambda: ([vec(), vec(), np.array([1e-6, 1.0]), 0.05, 1e-3, 1.0], [0]),
    "adafactor_factored_moments": lambda: ([RNG.standard_normal((2, 3, 5)).astype(np.float32),
                                            vec(positive=True)[:6].reshape(2, 3), vec(positive=True)[:10].reshape(2, 5),
                                            0.3, 1e-30, np.zeros((2, 3, 5), np.float32)], [1, 2, 5]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_update_kernel_equals_its_cpu_twin(case):
    args, outs = CASES[case]()
    both(case.split("/")[0], args, outs)


def test_float64_updates_and_global_norm_over_two_arrays():
    both("rmsprop_update", [vec(dtype=np.float64), vec(dtype=np.float64), vec(positive=True, dtype=np.float64),
                            np.empty(0), vec(dtype=np.float64), 0.01, 0.9, 0.5, 1e-7, False], [0, 2, 4], rtol=1e-12)
    a, b = vec(), vec()
    total = cuda.to_device(np.zeros(1))
    for x in (a, b):
        kernels.get("sum_squares", device="cuda")(cuda.to_device(x), total)
    np.testing.assert_allclose(total.copy_to_host()[0], np.sum(a.astype(np.float64) ** 2 + b.astype(np.float64) ** 2),
                               rtol=1e-12)


def test_nan_norm_gives_nan_and_nan_gradients_stay_nan():
    both("scale_by_norm", [vec(), np.array([np.nan]), 1.0, False, np.zeros(N, np.float32)], [4])
    x = vec()
    x[5] = np.nan
    both("clip_values", [x, 0.5, np.zeros(N, np.float32)], [2])


X = RNG.standard_normal((10, 4)).astype(np.float32)
Y = RNG.integers(0, 3, 10)
OPTIMIZERS = {
    "sgd": lambda: dl.optimizers.SGD(0.1, momentum=0.9, clipnorm=0.5),
    "adam": lambda: dl.optimizers.Adam(0.05, amsgrad=True, global_clipnorm=0.3),
    "adamw": lambda: dl.optimizers.AdamW(0.05, weight_decay=0.1),
    "rmsprop": lambda: dl.optimizers.RMSprop(0.05, momentum=0.5, centered=True, clipvalue=0.05),
    "adagrad": lambda: dl.optimizers.Adagrad(0.1, weight_decay=0.01),
    "adadelta": lambda: dl.optimizers.Adadelta(1.0),
    "adamax": lambda: dl.optimizers.Adamax(0.05, use_ema=True, ema_momentum=0.5, ema_overwrite_frequency=1),
    "nadam": lambda: dl.optimizers.Nadam(0.05),
    "lion": lambda: dl.optimizers.Lion(0.01),
    "ftrl": lambda: dl.optimizers.Ftrl(0.1, l1_regularization_strength=0.01, l2_regularization_strength=0.01,
                                       l2_shrinkage_regularization_strength=0.01, beta=0.1),
    "lamb": lambda: dl.optimizers.Lamb(0.05),
    "adafactor": lambda: dl.optimizers.Adafactor(0.1, clip_threshold=0.5),
}


def mlp(optimizer):
    dl.utils.clear_session()
    dl.utils.set_random_seed(1)
    model = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(3, activation="tanh"),
                           dl.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mlp_step_per_optimizer_on_gpu_equals_the_cpu_step(name):
    cpu = mlp(OPTIMIZERS[name]())
    cpu.train_on_batch(X, Y)
    with dl.device("gpu:0"):
        gpu = mlp(OPTIMIZERS[name]())
        gpu.train_on_batch(X, Y)
    assert all(devices.is_device_array(v.value) for v in gpu.trainable_weights)
    assert all(devices.is_device_array(s) for s in gpu.optimizer.variables[1:] if s.ndim)
    for a, b in zip(cpu.get_weights(), gpu.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)
    for a, b in zip(cpu.optimizer.get_state(), gpu.optimizer.get_state()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: dl.optimizers.Lamb(0.05, gradient_accumulation_steps=2, clipvalue=0.3),
                                  lambda: dl.optimizers.SGD(0.1, momentum=0.5, use_ema=True, ema_momentum=0.7,
                                                            ema_overwrite_frequency=3, global_clipnorm=0.5,
                                                            loss_scale_factor=8.0)])
def test_three_steps_with_accumulation_ema_or_loss_scale_on_gpu_equal_the_cpu_steps(make):
    weights = [RNG.standard_normal((3, 2)).astype(np.float32), RNG.standard_normal(2).astype(np.float32)]
    grads = [[RNG.standard_normal(w.shape).astype(np.float32) for w in weights] for _ in range(3)]
    finals = []
    for where in ("cpu", "gpu:0"):
        with dl.device(where):
            variables = [dl.Variable(w.copy(), name=f"v{i}") for i, w in enumerate(weights)]
        opt = make()
        for step in grads:
            opt.apply_gradients(zip([cuda.to_device(g) if where != "cpu" else g for g in step], variables))
        finals.append([*(v.numpy() for v in variables), *opt.get_state()])
    for cpu, gpu in zip(*finals):
        np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)
    assert not np.allclose(finals[0][0], weights[0])


def test_clipping_leaves_the_callers_gradients_unchanged():
    with dl.device("gpu:0"):
        w = dl.Variable(np.ones(3, np.float32), name="w")
    g = cuda.to_device(np.float32([3.0, 4.0, 0.0]))
    opt = dl.optimizers.SGD(1.0, clipnorm=1.0)
    opt.apply_gradients([(g, w)])
    np.testing.assert_allclose(w.numpy(), [1 - 0.6, 1 - 0.8, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(g.copy_to_host(), [3.0, 4.0, 0.0])


def test_what_has_no_gpu_update_is_a_clear_error():
    with dl.device("gpu:0"):
        w = dl.Variable(np.ones((2, 3), np.float32), name="w")
    g = cuda.to_device(np.ones((2, 3), np.float32))
    class NumpySGD(dl.optimizers.Optimizer):  # a custom update_step on NumPy arrays
        def update_step(self, gradient, variable, learning_rate):
            self.assign_sub(variable, gradient * learning_rate)

    with pytest.raises(ValueError, match="Optimizer 'numpy_sgd' on the GPU: NumpySGD has no GPU update"):
        NumpySGD(0.1).apply_gradients([(g, w)])
    host = dl.Variable(np.ones(2, np.float32), name="h")
    for order in ([w, host], [host, w]):
        with pytest.raises(ValueError, match=r"all on the host; received host variables \['h'\]"):
            dl.optimizers.SGD().build(order)
