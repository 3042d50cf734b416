"""Process-level defaults applied by ``import dlcore`` (dlcore/_runtime.py), checked in fresh
interpreters so that nothing set by the test process leaks in."""
import os
import subprocess
import sys

import pytest

GLIBC = sys.platform.startswith("linux") and bool(os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else "")

# Like a training step: 20 times, 8 live buffers of 4 MB (activations, gradients), then all
# freed. Prints the page faults of the 20 rounds and whether dlcore changed the allocator.
PROBE = """
import resource
import numpy as np
import dlcore

def step():
    return [np.ones(1 << 20, np.float32) for _ in range(8)]

step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, dlcore._runtime.memory_reuse)
"""


def run_probe(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    clean.pop("DLCORE_RETAIN_FREED_MEMORY", None)
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), out[1] == "True"


@pytest.mark.skipif(not GLIBC, reason="the allocator tuning is glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults():
    faults, tuned = run_probe()
    assert tuned
    assert faults < 1000, faults  # 20 x 8 x 1,024 pages if every buffer came on fresh pages


@pytest.mark.skipif(not GLIBC, reason="the allocator tuning is glibc's mallopt")
@pytest.mark.parametrize("env", [{"DLCORE_RETAIN_FREED_MEMORY": "0"}, {"MALLOC_ARENA_MAX": "2"}],
                         ids=["opt-out", "user-malloc-setting"])
def test_user_settings_win(env):
    faults, tuned = run_probe(**env)
    assert not tuned
    assert faults > 20 * 1000, faults  # glibc's default returns the freed heap top to the OS


def test_thread_waiting_defaults_do_not_override_the_user():
    names = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT")
    code = f"import os, dlcore; print(*(os.environ[n] for n in {names!r}))"
    env = {k: v for k, v in os.environ.items() if k not in names}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["PASSIVE", "1000", "4"]
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "7"},
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ACTIVE", "7", "4"]
