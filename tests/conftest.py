"""Shared pytest setup: ``tests/`` on sys.path (for ``harness`` and ``reference``, under any import
mode) and a ``fresh_session`` fixture (seeded generators, reset layer names)."""
import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def fresh_session():
    """``dl.utils.set_random_seed(0)`` and ``clear_session()`` before the test, so layer names
    (dense, dense_1, ...) and random draws do not depend on which tests ran earlier."""
    import dlcore as dl

    dl.utils.clear_session()
    dl.utils.set_random_seed(0)
    yield
    dl.utils.clear_session()
