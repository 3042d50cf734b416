"""Load ``.dlc`` files one after another in this process and report each as a JSON line:
``{"path", "outcome" ("ok" or the exception's type), "message", "seconds", "growth_mb"}``, where
``growth_mb`` is the peak RSS so far minus the peak after loading the first (benign) file.

The saving tests run this in a subprocess, so that a crash, a hang or a memory blow-up while
loading a hostile file is observed (exit status, timeout, ``ru_maxrss``) instead of suffered.
Usage: ``python load_worker.py LIST.json`` with LIST.json a JSON list of paths.
"""
import json
import resource
import sys
import time
import traceback


def _peak_mb():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def main(list_path):
    import dlcore as dl

    with open(list_path) as f:
        paths = json.load(f)
    dl.models.load_model(paths[0])  # imports and first-use allocations happen here, not in the bound
    base = _peak_mb()
    for path in paths[1:]:
        start = time.perf_counter()
        try:
            dl.models.load_model(path)
            outcome, message = "ok", ""
        except Exception as exc:  # noqa: BLE001  (reported, judged by the test)
            outcome = type(exc).__name__
            message = str(exc)[:400]
            if not isinstance(exc, ValueError):
                message += "\n" + traceback.format_exc()[-3000:]
        print(json.dumps({"path": path, "outcome": outcome, "message": message,
                          "seconds": time.perf_counter() - start, "growth_mb": _peak_mb() - base}), flush=True)
        dl.utils.clear_session()


if __name__ == "__main__":
    main(sys.argv[1])
