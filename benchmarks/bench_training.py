"""One training step of each standard workload on dlcore (``benchmarks.spec``, built by
``workloads/dlcore_.py`` exactly as the comparison runner builds it): samples/s and GFLOPS
(training counted as 3x the forward FLOPs). Workloads whose layers dlcore lacks are skipped."""
import pytest

from benchmarks import spec
from benchmarks._bench import measure
from benchmarks.workloads import dlcore_

TRAIN = [name for name, w in spec.WORKLOADS.items() if w["kind"] == "train"]
INFER = [name for name, w in spec.WORKLOADS.items() if w["kind"] == "infer"]


def _runner(name):
    wl = spec.workload_spec(name)
    reason = dlcore_.supports(wl)
    if reason:
        pytest.skip(reason)
    runner = dlcore_.build(wl)
    runner.step()  # build, trace, compile the Numba kernels
    runner.step()
    return wl, runner


@pytest.mark.parametrize("name", TRAIN)
def test_train_step(benchmark, name):
    wl, runner = _runner(name)
    measure(benchmark, runner.step, flops=spec.workload_flops(wl), samples=wl["batch"])


@pytest.mark.parametrize("name", INFER)
def test_predict_on_batch(benchmark, name):
    wl, runner = _runner(name)
    measure(benchmark, runner.step, flops=spec.workload_flops(wl), samples=wl["batch"])
