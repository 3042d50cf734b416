"""Shared pytest setup: ``tests/`` on sys.path (for ``harness`` and ``reference``, under any import
mode) and a ``fresh_session`` fixture (seeded generators, reset layer names)."""
import os
import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

# The suite's results must not hang on timings: the GEMM path chosen by measurement at first use
# (kernels/_gemm_choice.py) could differ between runs, or between the two ranks of an mpiexec test,
# on a loaded machine. Here the fixed rule decides (inherited by subprocesses); the measuring and
# its cache are tested in tests/kernels/test_gemm.py with their own settings.
os.environ.setdefault("DLCORE_SGEMM_TUNE", "0")


@pytest.fixture
def fresh_session():
    """``dl.utils.set_random_seed(0)`` and ``clear_session()`` before the test, so layer names
    (dense, dense_1, ...) and random draws do not depend on which tests ran earlier."""
    import dlcore as dl

    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    yield
    dl.utils.clear_session()


@pytest.fixture(autouse=True)
def one_caller_again():
    """After a test that ran kernels from several threads, the thread team runs every caller
    alone for 2 ms (kernels/dl_team.h): the next test's counts of shared jobs must not see it."""
    yield
    team = sys.modules.get("dlcore.kernels._team")
    if team is not None:
        team.forget_callers()
