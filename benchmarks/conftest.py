"""pytest setup for the micro-benchmarks: ``pytest benchmarks/ --benchmark-only``.

Collects ``bench_*.py`` (the test suite's ``testpaths`` is ``tests/``, so these never run with
plain ``pytest``), puts the repository root on sys.path, applies ``--dl-threads``, and prints
the GFLOPS (or GB/s) of every benchmark at the end of the run.
"""
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_addoption(parser):
    parser.addoption("--dl-threads", type=int, default=None,
                     help="dl.config.set_num_threads for the micro-benchmarks (default: the cores available)")


def pytest_configure(config):
    n = config.getoption("--dl-threads")
    if n:
        import dlcore as dl

        dl.config.set_num_threads(n)


def pytest_collect_file(file_path, parent):
    # A file named on the command line is collected by pytest itself, whatever its name.
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_terminal_summary(terminalreporter):
    from benchmarks import _bench

    if not _bench.RESULTS:
        return
    terminalreporter.section("dlcore rates (median)")
    width = max(len(r["name"]) for r in _bench.RESULTS)
    for r in _bench.RESULTS:
        terminalreporter.write_line(f"{r['name']:<{width}}  {r['text']}")
