"""The GPU path's tests, from the main test run: the CUDA-simulator suites (sim_*.py) in their own
process with NUMBA_ENABLE_CUDASIM=1, and the errors a user sees without numba-cuda or a GPU, each
in a fresh process so this one never imports numba.cuda."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlcore as dl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def _python(code, sim, timeout=120):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    if sim:
        env["NUMBA_ENABLE_CUDASIM"] = "1"
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout)


def test_cuda_kernels_and_gpu_training_under_the_simulator():
    probe = _python(["-c", "from numba import cuda; assert cuda.is_available()"], sim=True)
    if probe.returncode != 0:
        pytest.skip(f"numba's CUDA simulator is unavailable: {probe.stderr.strip().splitlines()[-1:]}")
    suites = [str(path) for path in sorted(HERE.glob("sim_*.py"))]
    run = _python(["-m", "pytest", "-q", "-p", "no:cacheprovider", *suites], sim=True, timeout=400)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout.splitlines()[-1]


def test_no_gpu_is_a_clear_error_not_a_cpu_fallback():
    code = ("import dlcore as dl\n"
            "from numba import cuda\n"
            "if cuda.is_available(): print('HAS-GPU'); raise SystemExit\n"
            "assert dl.config.list_devices() == ['cpu:0'], dl.config.list_devices()\n"
            "try:\n"
            "    with dl.device('gpu:0'): pass\n"
            "except RuntimeError as e: print('ERR', e)\n")
    run = _python(["-c", code], sim=False)
    if "HAS-GPU" in run.stdout:
        pytest.skip("this machine has a CUDA GPU")
    assert "ERR device 'gpu:0': no CUDA GPU is available" in run.stdout, run.stdout + run.stderr
    assert "does not fall back to the CPU" in run.stdout


def test_missing_numba_cuda_is_a_clear_error():
    code = ("import sys; sys.modules['numba.cuda'] = None\n"
            "import dlcore as dl\n"
            "assert dl.config.list_devices() == ['cpu:0']\n"
            "for call in (lambda: dl.config.set_device('gpu'), lambda: dl.device('cuda').__enter__()):\n"
            "    try: call()\n"
            "    except RuntimeError as e: print('ERR', e)\n"
            "try: dl.kernels.get('matmul', device='cuda')\n"
            "except ImportError as e: print('IMPORT', e)\n"
            "assert dl.config.get_device() == 'cpu'\n")
    run = _python(["-c", code], sim=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("ERR dlcore's GPU device needs numba's CUDA support") == 2, run.stdout
    assert "pip install dlcore[cuda]" in run.stdout and "IMPORT dlcore's GPU kernels need" in run.stdout


def test_import_dlcore_and_cpu_device_never_import_numba_cuda():
    code = ("import sys, numpy as np, dlcore as dl\n"
            "with dl.device('cpu'):\n"
            "    m = dl.Sequential([dl.Input(shape=(3,)), dl.layers.Dense(2)])\n"
            "    m.predict(np.ones((1, 3), 'float32'), verbose=0)\n"
            "print(sorted(k for k in sys.modules if k.startswith('numba.cuda')))\n")
    run = _python(["-c", code], sim=False)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr


@pytest.mark.parametrize("name", ["tpu", "gpu:-1", "cpu:1", "gpu0", 0, None])
def test_bad_device_names(name):
    with pytest.raises(ValueError, match="device"):
        with dl.device(name):
            pass


def test_device_spellings_and_bad_arguments():
    from dlcore import devices

    assert [devices.parse(n) for n in ("cpu", "CPU:0", "gpu", "gpu:1", "cuda", "cuda:2")] == [
        "cpu", "cpu", "gpu:0", "gpu:1", "gpu:0", "gpu:2"]
    with dl.device("cpu") as where:
        assert where == "cpu" and dl.config.get_device() == "cpu"
    with pytest.raises(ValueError, match="device_type must be None, 'cpu' or 'gpu', received 'npu'"):
        dl.config.list_devices("npu")
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda', received 'tpu'"):
        dl.kernels.get("matmul", device="tpu")


def test_device_scope_is_per_thread(monkeypatch):
    import threading

    from dlcore import devices

    monkeypatch.setattr(devices, "_require_gpu", lambda canonical: None)  # scope only: no array is made
    seen = []
    with dl.device("cuda:1"):
        worker = threading.Thread(target=lambda: seen.append(dl.config.get_device()))
        worker.start()
        worker.join()
        assert dl.config.get_device() == "gpu:1"
    assert seen == ["cpu"] and dl.config.get_device() == "cpu"
