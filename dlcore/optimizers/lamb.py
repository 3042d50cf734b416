"""The Lamb optimizer, as ``keras.optimizers.Lamb`` (vectorized NumPy, in place: the trust
ratio needs two whole-array norms per step, so the update is not a single elementwise pass)."""
import math

import numpy as np

from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "lamb")
class Lamb(Optimizer):
    """Lamb: Adam's moments, update u = m_hat / (sqrt(v_hat) + epsilon), scaled per variable by
    the trust ratio ||w|| / ||u|| (1 where either norm is 0): w -= ratio lr u."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="lamb",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        m, v = self._momentums[i], self._velocities[i]
        w = variable.value
        dt = gradient.dtype.type
        t = dt(self.iterations + 1)
        beta_1_power, beta_2_power = dt(self.beta_1) ** t, dt(self.beta_2) ** t
        m += (gradient - m) * dt(1 - self.beta_1)
        v += (np.square(gradient) - v) * dt(1 - self.beta_2)
        update = (m / (dt(1.0) - beta_1_power)) / (np.sqrt(v / (dt(1.0) - beta_2_power)) + dt(self.epsilon))
        w_norm = math.sqrt(float(np.sum(np.square(w))))
        u_norm = math.sqrt(float(np.sum(np.square(update))))
        ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
        w -= dt(ratio) * dt(learning_rate) * update

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
