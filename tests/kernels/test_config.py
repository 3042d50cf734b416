"""kernels/_config: thread setting, lazy Numba loading (the cache directory and fork safety:
tests/test_runtime_hardening.py)."""
import os
import subprocess
import sys

import numpy as np

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


def test_threads_for_own_threshold():
    original = kernels.num_threads()
    kernels.set_num_threads(2)
    try:
        assert kernels.threads_for(1 << 20) == 2
        assert kernels.threads_for(1 << 20, kernels.CONV_PARALLEL_MIN_MACS) == 1
        assert kernels.threads_for(kernels.CONV_PARALLEL_MIN_MACS, kernels.CONV_PARALLEL_MIN_MACS) == 2
    finally:
        kernels.set_num_threads(original)


def test_unknown_kernel_and_device_errors():
    import pytest

    with pytest.raises(KeyError, match="no kernel named"):
        kernels.get("does_not_exist")
    with pytest.raises(ValueError, match="device"):
        kernels.get("matmul", device="tpu")
