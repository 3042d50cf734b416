"""One framework's benchmark process, driven by the runner over stdin/stdout (JSON lines).

    python -m benchmarks.worker FRAMEWORK --threads N [--device gpu]

(the runner starts it through ``compare_processes.bootstrap``, which loads this package by path).

Each framework runs in its own process, so imports, thread pools and memory stay isolated; the
runner keeps one worker per framework alive and sends them measurements in turn (alternating
frameworks run by run), while the idle workers wait on stdin. Anything the framework prints goes
to stderr; stdout carries the protocol only. With ``--device gpu`` the framework's module sets
itself up on the GPU (``setup(threads, "gpu")``, only for modules whose ``DEVICES`` has "gpu"),
every spec carries ``"device": "gpu"``, and a workload the framework cannot run there is
answered ``{"skip": reason}``.

Commands: supports {workload, tiny, onnx_path}; params {workload, tiny};
build {key, workload, tiny, batch, onnx_path, variant}; warmup {key, min_iters, min_s, max_s};
run {key, iters}; concurrent {key, callers, seconds}; free {key}; export {model, tiny, path} (torch);
save {workload, path, tiny}; layers {tiny, min_s} (dlcore); quit. Replies: {"ok": true, ...} or {"ok": false, "error": ...}.
"""
import argparse
import json
import os
import sys
import threading
import time
import traceback

from . import spec as _spec
from .workloads import _common, load  # noqa: E402


def _timed(step, iters, max_s=None):
    """Per-iteration seconds of ``iters`` calls (fewer if ``max_s`` seconds have passed)."""
    times = []
    clock = time.perf_counter
    start = clock()
    for _ in range(iters):
        t = clock()
        step()
        times.append(clock() - t)
        if max_s is not None and t - start > max_s:
            break
    return times


class Worker:
    def __init__(self, framework, threads, device="cpu"):
        self.framework = framework
        self.threads = threads
        self.device = device
        self.module = load(framework)
        self.runners = {}

    def hello(self):
        if self.device == "cpu":
            info = self.module.setup(self.threads)
        elif self.device in getattr(self.module, "DEVICES", ("cpu",)):
            info = self.module.setup(self.threads, device=self.device)
        else:
            raise ValueError(f"{_spec.FRAMEWORK_LABELS[self.framework]} runs on the CPU only in this "
                             f"comparison, received device {self.device!r}")
        return {"info": info, "pid": os.getpid()}

    def _spec(self, workload, **kwargs):
        spec = _spec.workload_spec(workload, **kwargs)
        if self.device != "cpu":
            spec["device"] = self.device
        return spec

    def supports(self, workload, tiny=False, onnx_path=None):
        spec = self._spec(workload, tiny=tiny)
        if onnx_path:
            spec["onnx_path"] = onnx_path
        return {"na": self.module.supports(spec)}

    def build(self, key, workload, tiny=False, batch=None, onnx_path=None, variant=None):
        spec = self._spec(workload, tiny=tiny, batch=batch, variant=variant)
        if onnx_path:
            spec["onnx_path"] = onnx_path
        reason = self.module.supports(spec)
        if reason:
            return {"na": reason}
        try:
            runner = self.module.build(spec)
        except _common.Unsupported as exc:
            return {"skip": str(exc)}
        self.runners[key] = runner
        return {"params": runner.params, "info": runner.info}

    def params(self, workload, tiny=False):
        """Trainable parameters of the workload's model, built without data or optimizer."""
        spec = _spec.workload_spec(workload, tiny=tiny)
        reason = self.module.supports(spec)
        return {"na": reason} if reason else {"params": self.module.count_params(spec)}

    def warmup(self, key, min_iters=2, min_s=0.0, max_s=30.0):
        step = self.runners[key].step
        times, start = [], time.perf_counter()
        while True:
            times += _timed(step, 1)
            elapsed = time.perf_counter() - start
            if (len(times) >= min_iters and elapsed >= min_s) or elapsed >= max_s:
                return {"times": times}

    def run(self, key, iters, max_s=None):
        return {"times": _timed(self.runners[key].step, int(iters), max_s)}

    def concurrent(self, key, callers, seconds):
        """``callers`` Python threads calling the runner's step together for about ``seconds`` (one
        model shared by all): the calls made, the seconds and process CPU seconds they took, and
        the median seconds of one call (a call of a thread that is descheduled, or waits for the
        GIL, takes longer; a shared machine's descheduling moves the median little)."""
        step = self.runners[key].step
        callers = int(callers)
        start = threading.Barrier(callers + 1)
        stop = threading.Event()
        times = [[] for _ in range(callers)]
        errors = []
        clock = time.perf_counter

        def loop(i):
            mine = times[i]
            start.wait()
            try:
                while not stop.is_set():
                    t = clock()
                    step()
                    mine.append(clock() - t)
            except Exception as exc:  # reported to the runner below
                errors.append(f"{type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        start.wait()
        t0, cpu0 = clock(), time.process_time()
        time.sleep(float(seconds))
        stop.set()
        for t in threads:
            t.join()
        elapsed, cpu = clock() - t0, time.process_time() - cpu0
        if errors:
            raise RuntimeError(f"concurrent predict failed: {errors[0]}")
        every = sorted(t for mine in times for t in mine)
        return {"calls": len(every), "per_caller": [len(m) for m in times], "seconds": elapsed,
                "cpu_seconds": cpu, "call_s": every[len(every) // 2] if every else None}

    def save(self, workload, path, tiny=False):
        """Save the workload's model for a cold start from the file; returns the file's path."""
        spec = _spec.workload_spec(workload, tiny=tiny)
        return {"path": self.module.save_model(spec, path)}

    def free(self, key):
        self.runners.pop(key, None)
        import gc

        gc.collect()
        return {}

    def export(self, model, path, tiny=False):
        spec = {"kind": "infer", "model": model, "model_spec": _spec.model_spec(model, tiny), "batch": 1}
        return {"exporter": self.module.export_onnx(spec, path)}

    def layers(self, tiny=False, min_s=0.2):
        out = []
        for name, flops, call in self.module.layer_rates(tiny):
            _timed(call, 2)  # build + warm
            start, times = time.perf_counter(), []
            while time.perf_counter() - start < min_s or len(times) < 3:
                times += _timed(call, 1)
            out.append({"name": name, "flops": flops, "times": times})
        return {"layers": out}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=_spec.FRAMEWORKS)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args(argv)

    # The protocol gets a private copy of stdout; whatever else writes to fd 1 goes to stderr.
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj):
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    worker = Worker(args.framework, args.threads, args.device)
    try:
        send({"ok": True, **worker.hello()})
    except Exception as exc:  # the framework does not import or set up: every workload is n/a
        send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        return 1
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        op = cmd.pop("op")
        if op == "quit":
            send({"ok": True})
            break
        try:
            send({"ok": True, **getattr(worker, op)(**cmd)})
        except Exception as exc:
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
