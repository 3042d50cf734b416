"""kernels/_config: thread setting, lazy Numba loading (the cache directory and fork safety:
tests/test_runtime_hardening.py)."""
import os
import subprocess
import sys

import numpy as np
import pytest

from dlcore import kernels
from dlcore.kernels import _config


def _run(code, env=None):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_set_num_threads_reaches_numba_and_blas():
    out = _run(
        "import dlcore as dl, numba\n"
        "from dlcore.kernels import _config\n"
        "dl.config.set_num_threads(1)\n"
        "_config.load_numba()\n"
        "print(numba.get_num_threads(), dl.config.num_threads())\n"
    )
    assert out.split() == ["1", "1"]


def test_set_num_threads_rejects_bad_values():
    import pytest

    import dlcore as dl

    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(ValueError, match="set_num_threads"):
            dl.config.set_num_threads(bad)


def test_blas_libraries_are_found_and_set():
    import scipy.linalg  # noqa: F401  (loads scipy's BLAS)

    assert _config.set_blas_threads(_config.num_threads()) >= 1


def test_parallel_kernel_results_do_not_depend_on_thread_count():
    x = np.random.default_rng(0).standard_normal(1 << 17).astype(np.float32)
    u = np.random.default_rng(1).random(x.size, dtype=np.float32)
    outs = []
    original = _config.num_threads()
    for n in (1, 2):
        kernels.set_num_threads(n)
        y = np.empty_like(x)
        m = np.empty(x.size, np.uint8)
        kernels.get("dropout_forward")(x, u, 0.3, y, m)
        outs.append(y)
    kernels.set_num_threads(original)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_threads_for_small_work_is_one():
    assert kernels.threads_for(10) == 1
    assert kernels.threads_for(1 << 24) == kernels.num_threads()


def test_batch_one_products_run_on_one_thread(monkeypatch):
    from dlcore.kernels import _config

    original = kernels.num_threads()
    kernels.set_num_threads(2)
    try:
        # the runner's CNN at batch 1: its largest convolution is 13x13x64 outputs of 3x3x32 taps
        assert kernels.threads_for_macs(13 * 13 * 64 * 3 * 3 * 32) == 1
        assert kernels.threads_for_macs(784 * 512) == 1  # an MLP layer at batch 1
        assert kernels.threads_for_macs(16 * 13 * 13 * 64 * 9 * 32) == 2  # the same convolution at batch 16
        monkeypatch.setattr(_config, "PARALLEL_MIN_MACS", 1000)
        assert kernels.threads_for_macs(784 * 512) == 2
    finally:
        kernels.set_num_threads(original)


@pytest.mark.parametrize("name, default", [("PARALLEL_MIN_MACS", 1 << 22), ("PARALLEL_MIN_WORK", 1 << 17)])
def test_parallel_thresholds_from_the_environment(name, default):
    import subprocess
    import sys

    code = f"from dlcore.kernels import _config; print(_config.{name}, _config.threads_for(200))"
    for value, expected in (("123", "123"), ("junk", str(default)), ("", str(default))):
        env = dict(__import__("os").environ, **{f"DLCORE_{name}": value})
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.split()[0] == expected, out.stderr
    if name == "PARALLEL_MIN_WORK":  # 200 scalar operations go parallel under a threshold of 123
        env = dict(__import__("os").environ, DLCORE_PARALLEL_MIN_WORK="123")
        out = subprocess.run([sys.executable, "-c", "from dlcore.kernels import _config; _config.set_num_threads(2); "
                              "print(_config.threads_for(200), _config.threads_for(100))"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.split() == ["2", "1"], out.stderr


def test_unknown_kernel_and_device_errors():
    import pytest

    with pytest.raises(KeyError, match="no kernel named"):
        kernels.get("does_not_exist")
    with pytest.raises(ValueError, match="device"):
        kernels.get("matmul", device="tpu")


def _ran_beside(call):
    """Loops a second Python thread made while ``call()`` ran on a worker thread. The switch
    interval is raised above the call's duration, so the main thread runs during the call only
    if the call releases the GIL (a held GIL gives 0: see the control below)."""
    import threading

    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        call()
        done.set()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    try:
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        spins = 0
        while not done.is_set():
            spins += 1
        t.join()
    finally:
        sys.setswitchinterval(interval)
    return spins


def test_forward_kernels_release_the_gil():
    """Concurrent predict needs the Cython forward kernels to run without the GIL at the batch-1
    setting (n_threads=1): another Python thread runs while one does."""
    rng = np.random.default_rng(0)
    x = rng.random((8, 64, 64, 32), dtype=np.float32)
    w = rng.random((3, 3, 32, 64), dtype=np.float32)
    y = np.empty((8, 62, 62, 64), np.float32)
    a, b = rng.random((768, 768), dtype=np.float32), rng.random((768, 768), dtype=np.float32)
    c = np.empty((768, 768), np.float32)
    p = np.empty((8, 31, 31, 64), np.float32)
    kernels.get("conv2d_forward")(x, w, None, 1, 1, 0, 0, 1, 1, 1, 1, 0.0, y, 1)  # loaded before timing
    u = 256  # the batch-1 LSTM inference call (x, W, b, z, R, h, c, y), R packed before timing
    lstm = (rng.random((400, 32), dtype=np.float32), rng.random((32, 4 * u), dtype=np.float32), None,
            np.empty((1, 400, 4 * u), np.float32), rng.random((u, 4 * u), dtype=np.float32) * 0.01,
            np.zeros((1, u), np.float32), np.zeros((1, u), np.float32), None)
    kernels.get("lstm_forward_inputs")(*lstm)
    calls = {
        "conv2d_forward": lambda: kernels.get("conv2d_forward")(x, w, None, 1, 1, 0, 0, 1, 1, 1, 1, 0.0, y, 1),
        "dense_forward": lambda: kernels.get("dense_forward")(a, b, None, 1, 0.0, c, 1),
        "max_pool2d_2x2_forward": lambda: [kernels.get("max_pool2d_2x2_forward")(y, p, None, 1) for _ in range(20)],
        "lstm_forward_inputs": lambda: kernels.get("lstm_forward_inputs")(*lstm),
    }
    assert _ran_beside(lambda: sum(range(3_000_000))) == 0  # the control: a call that holds the GIL
    for name, call in calls.items():
        assert _ran_beside(call) > 0, f"{name} held the GIL"


_BLAS_PRODUCTS = (
    "import sys\n"
    "import numpy as np\n"
    "from dlcore import kernels\n"
    "from dlcore.kernels import _blas, _gemm\n"
    "rng = np.random.default_rng(0)\n"
    "worst = 0.0\n"
    "for dtype in ('float32', 'float64'):\n"
    "    for m, n, k in ((1, 37, 29), (23, 1, 29), (19, 31, 41)):\n"  # sgemv/dgemv rows, columns, gemm
    "        a = rng.standard_normal((m, k)).astype(dtype)\n"
    "        b = rng.standard_normal((k, n)).astype(dtype)\n"
    "        c = np.empty((m, n), dtype)\n"
    "        kernels.get('matmul')(a, b, c)\n"
    "        worst = max(worst, float(np.abs(c - a.astype('float64') @ b).max()))\n"
    "a = rng.standard_normal((19, 41)).astype('float32')\n"
    "b = rng.standard_normal((41, 31)).astype('float32')\n"
    "c = np.empty((19, 31), 'float32')\n"
    "_gemm.run_path('blas', 1, a, b, c)\n"  # the float32 BLAS path itself, not the own tiles
    "worst = max(worst, float(np.abs(c - a.astype('float64') @ b).max()))\n"
    "print(worst, _blas.functions()[1], 'scipy' in sys.modules, 'scipy.linalg' in sys.modules)\n"
)


def test_kernels_call_numpys_blas_without_importing_scipy():
    import pytest

    found = _config.loaded_blas_functions(("sgemm", "dgemm", "sgemv", "dgemv"))
    if found is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS the kernels know: they use scipy's")
    worst, int64, scipy_loaded, _ = _run(_BLAS_PRODUCTS).split()
    assert float(worst) < 1e-4
    assert scipy_loaded == "False", "the kernels' BLAS imported scipy"
    assert int64 == str(found[0])  # NumPy's OpenBLAS takes 64-bit integers (NumPy's wheels) or not


def test_kernels_fall_back_to_scipys_blas():
    worst, int64, scipy_loaded, linalg_package = _run(_BLAS_PRODUCTS, env={"DLCORE_BLAS": "scipy"}).split()
    assert float(worst) < 1e-4
    assert (int64, scipy_loaded) == ("False", "True")  # scipy.linalg.cython_blas's LP64 functions
    assert linalg_package == "False"  # the extension alone, not scipy.linalg's package (0.1-0.5 s)


def test_numpys_blas_pool_restarts_with_dlcores_thread_timeout():
    import pytest

    found = _config.loaded_blas_functions(("sgemm",))
    if found is None:
        pytest.skip("NumPy's BLAS here is not an OpenBLAS the kernels know")
    out = _run(  # NumPy first, as users import it: its OpenBLAS pool predates dlcore's settings
        "import os\n"
        "import numpy as np\n"
        "import dlcore as dl\n"
        "from dlcore.kernels import _config, _gemm\n"
        "dl.config.set_num_threads(2)\n"
        "a = np.random.default_rng(0).random((150, 200), dtype=np.float32)\n"
        "c = np.empty((150, 150), np.float32)\n"
        "_gemm.run_path('blas', 2, a, np.ascontiguousarray(a.T), c)\n"  # the pool starts again
        "print(float(np.abs(c - a.astype('float64') @ a.T).max()), os.environ['OPENBLAS_THREAD_TIMEOUT'],\n"
        "      _config.restart_blas_threads(_config.loaded_blas_functions(('sgemm',))[2]))\n"
    )
    worst, timeout, restarted = out.split()
    assert float(worst) < 1e-3 and timeout == "4"  # threaded BLAS right after the restart
    if restarted != "True":
        pytest.skip("NumPy's OpenBLAS here has no pthreads pool to restart (sequential or OpenMP build)")
