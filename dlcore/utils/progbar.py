"""A Keras-style progress bar: ``12/45 ━━━━━━━━━━━━━━━━━━━━ 0s 2ms/step - accuracy: 0.91 - loss: 0.31``."""
import sys
import time

import numpy as np

from ..distribute.strategy import is_chief


class Progbar:
    """Progress over ``target`` steps (None: unknown); redraws at most every ``interval`` seconds
    (verbose 1)."""

    def __init__(self, target, width=20, verbose=1, interval=0.05, stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose if is_chief() else 0  # distributed training: rank 0's bar only
        self.interval = interval
        self.stream = stream or sys.stdout
        self.start = time.perf_counter()
        self.last_draw = 0.0
        self.seen = 0
        self.drawn = 0  # length of the line on screen, so a shorter redraw erases it

    def _line(self, current, values):
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / max(current, 1)
        if per_step >= 1:
            rate = f"{per_step:.0f}s/step"
        elif per_step >= 1e-3:
            rate = f"{per_step * 1e3:.0f}ms/step"
        else:
            rate = f"{per_step * 1e6:.0f}us/step"
        metrics = "".join(f" - {k}: {_fmt(v)}" for k, v in values)
        if self.verbose == 2 or self.target is None:  # an endless source has no bar (Keras: "Unknown")
            return f"{current}/{self.target or 'Unknown'} - {elapsed:.0f}s - {rate}{metrics}"
        filled = int(self.width * current / max(self.target, 1))
        bar = "━" * filled + " " * (self.width - filled)
        return f"{current}/{self.target} {bar} {elapsed:.0f}s {rate}{metrics}"

    def update(self, current, values=(), finalize=False):
        self.seen = current
        now = time.perf_counter()
        if self.verbose == 1 and (finalize or now - self.last_draw >= self.interval):
            line = self._line(current, values)
            self.stream.write("\r" + line.ljust(self.drawn) + ("\n" if finalize else ""))
            self.drawn = 0 if finalize else len(line)
            self.stream.flush()
            self.last_draw = now
        elif self.verbose == 2 and finalize:
            self.stream.write(self._line(current, values) + "\n")
            self.stream.flush()

    def finish(self, values=()):
        self.update(self.seen or self.target, values, finalize=True)


def _fmt(v):
    """A value as Keras prints it; an array (F1Score per class) by its mean, as Keras's Progbar."""
    v = float(np.mean(v))
    return f"{v:.4e}" if v != 0 and abs(v) < 1e-3 else f"{v:.4f}"

