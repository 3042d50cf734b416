"""Helpers shared by the framework modules: synthetic data, the child-process report line."""
import json
import sys
import time

from .. import spec as _spec

REPORT_PREFIX = "BENCH-JSON "
HEAVY_MODULES = ("numba", "torch", "tensorflow", "keras", "onnxruntime", "jax")


def make_data(spec, seed=0):
    """Inputs (batch, *input_shape) float32 in [0, 1) channels_last, and int64 labels."""
    import numpy as np

    rng = np.random.default_rng(seed)
    model = spec["model_spec"]
    x = rng.random((spec["batch"], *_spec.input_shape(model)), dtype=np.float32)
    y = rng.integers(0, model["classes"], size=spec["batch"], dtype=np.int64)
    return x, y


def report(payload):
    """Print the child's result as one line the parent parses."""
    sys.stdout.write(REPORT_PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def loaded_heavy_modules():
    return sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in HEAVY_MODULES})


class Clock:
    """Phase timings since construction, in seconds."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last = self.t0
        self.phases = {}

    def mark(self, name):
        now = time.perf_counter()
        self.phases[name] = now - self.last
        self.last = now

    def total(self):
        return time.perf_counter() - self.t0
