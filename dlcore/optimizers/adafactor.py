"""The Adafactor optimizer, as ``keras.optimizers.Adafactor`` (vectorized NumPy: the factored
moments are row/column means, not an elementwise pass)."""
import math

import numpy as np

from ..registry import register
from .optimizer import _KIND, Optimizer


def _rms(x):
    return math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


@register(_KIND, "adafactor")
class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern, 2018), Keras 3 formulas, t = iterations + 1:
    rho = min(lr, 1/sqrt(t)); alpha = max(epsilon_2, rms(w)) rho; beta = 1 - t^beta_2_decay;
    G = g^2 + epsilon_1. A variable of rank >= 2 keeps factored second moments over its last two
    axes, r (shape[:-1]) = beta r + (1 - beta) mean(G, -1) and c (shape[:-2] + shape[-1:]) =
    beta c + (1 - beta) mean(G, -2), and v = r / mean(r, -1) (x) c; a lower-rank one keeps
    v = beta v + (1 - beta) G. u = g / sqrt(v); w -= alpha u / max(1, rms(u) / clip_threshold).
    Slots per variable, in Keras's order: r, c (0-d placeholders below rank 2), v."""

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
            shape, dtype = var.value.shape, var.value.dtype
            name = getattr(var, "name", None) or "variable"
            if len(shape) < 2:
                self._r.append(self.add_variable((), dtype=dtype, name=name))
                self._c.append(self.add_variable((), dtype=dtype, name=name))
            else:
                self._r.append(self.add_variable(shape[:-1], dtype=dtype, name=name))
                self._c.append(self.add_variable(shape[:-2] + shape[-1:], dtype=dtype, name=name))
            self._v.append(self.add_variable_from_reference(var, "velocity"))

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        r, c, v = self._r[i], self._c[i], self._v[i]
        w = variable.value
        dt = gradient.dtype.type
        t = float(self.iterations + 1)
        lr = float(dt(learning_rate))
        if self.relative_step and isinstance(self._learning_rate, float):
            lr = min(lr, 1.0 / math.sqrt(t))
        rho_t = min(lr, 1.0 / math.sqrt(t))
        alpha_t = dt(max(float(self.epsilon_2), _rms(w)) * rho_t)
        beta = dt(1.0 - t ** float(self.beta_2_decay))
        one_minus_beta = dt(1) - beta
        regulated = np.square(gradient) + dt(self.epsilon_1)
        if w.ndim >= 2:
            r[...] = beta * r + one_minus_beta * np.mean(regulated, axis=-1)
            c[...] = beta * c + one_minus_beta * np.mean(regulated, axis=-2)
            v[...] = (r / np.mean(r, axis=-1, keepdims=True))[..., None] * c[..., None, :]
        else:
            v[...] = beta * v + one_minus_beta * regulated
        u = gradient / np.sqrt(v)
        u /= dt(max(1.0, _rms(u) / float(self.clip_threshold)))
        w -= alpha_t * u

    def get_config(self):
        return {**super().get_config(), "beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1,
                "epsilon_2": self.epsilon_2, "clip_threshold": self.clip_threshold,
                "relative_step": self.relative_step}
