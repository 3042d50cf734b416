"""The Adafactor optimizer, as ``keras.optimizers.Adafactor``, on either device: the factored
moments (row and column means), the direction u = g / sqrt(v), the two norms (``sum_squares``)
and the step are kernels (``kernels.optim.adafactor_*``: NumPy on the CPU, CUDA twins)."""
import math

import numpy as np

from .. import devices as _devices
from ..registry import register
from .optimizer import _KIND, Optimizer, _zeros


@register(_KIND, "adafactor")
class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern, 2018), Keras 3 formulas, t = iterations + 1:
    rho = min(lr, 1/sqrt(t)); alpha = max(epsilon_2, rms(w)) rho; beta = 1 - t^beta_2_decay;
    G = g^2 + epsilon_1. A variable of rank >= 2 keeps factored second moments over its last two
    axes, r (shape[:-1]) = beta r + (1 - beta) mean(G, -1) and c (shape[:-2] + shape[-1:]) =
    beta c + (1 - beta) mean(G, -2), and v = r / mean(r, -1) (x) c; a lower-rank one keeps
    v = beta v + (1 - beta) G. u = g / sqrt(v); w -= alpha u / max(1, rms(u) / clip_threshold).
    Slots per variable, in Keras's order: r, c (0-d placeholders below rank 2), v."""

    runs_on_gpu = True

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3,
                 clip_threshold=1.0, relative_step=True, name="adafactor", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if clip_threshold <= 0:
            raise ValueError(f"Argument `clip_threshold` must be > 0. Received: clip_threshold={clip_threshold}")
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._r, self._c, self._v = [], [], []
        for var in var_list:
            shape, dtype = tuple(var.value.shape), var.value.dtype  # a plain tuple (the simulator's takes no -1)
            name = getattr(var, "name", None) or "variable"
            factored = len(shape) >= 2
            for slot_shape in ((shape[:-1], shape[:-2] + shape[-1:]) if factored else ((), ())):
                self.add_variable(slot_shape, dtype=dtype, name=name)
                self._place_like(var.value)
            self._r.append(self._variables[-2])
            self._c.append(self._variables[-1])
            self._v.append(self.add_variable_from_reference(var, "velocity"))

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        r, c, v = self._r[i], self._c[i], self._v[i]
        w = variable.value
        if w.size == 0:
            return
        dt = w.dtype.type
        t = float(self.iterations + 1)
        lr = float(dt(learning_rate))
        if self.relative_step and isinstance(self._learning_rate, float):
            lr = min(lr, 1.0 / math.sqrt(t))
        rho_t = min(lr, 1.0 / math.sqrt(t))
        beta = float(dt(1.0 - t ** float(self.beta_2_decay)))
        kernel = self._kernel_for
        if w.ndim >= 2:
            rows, cols = tuple(w.shape)[-2:]
            b = w.size // (rows * cols)
            kernel("adafactor_factored_moments")(gradient.reshape(b, rows, cols), r.reshape(b, rows),
                                                 c.reshape(b, cols), beta, float(self.epsilon_1),
                                                 v.reshape(b, rows, cols))
        else:
            kernel("adafactor_moments")(gradient.reshape(-1), v.reshape(-1), beta, float(self.epsilon_1))
        flat_w = w.reshape(-1)
        u = _devices.empty(flat_w.shape, w.dtype, w)
        kernel("adafactor_direction")(gradient.reshape(-1), v.reshape(-1), u)
        sums = _zeros((2,), np.float64, w)  # sum w^2 (before the step), sum u^2
        kernel("sum_squares")(flat_w, sums[0:1])
        kernel("sum_squares")(u, sums[1:2])
        kernel("adafactor_apply")(flat_w, u, sums, rho_t, float(self.epsilon_2), float(self.clip_threshold))

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}
