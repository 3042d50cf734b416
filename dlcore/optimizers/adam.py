"""The Adam optimizer, as ``keras.optimizers.Adam``."""
import numpy as np

from ..registry import register
from .optimizer import _KIND, Optimizer, _empty


@register(_KIND, "adam")
class Adam(Optimizer):
    """Adam: m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2); ``amsgrad``: vhat =
    max(vhat, v) replaces v; w -= alpha m / (sqrt(v) + epsilon), alpha = lr sqrt(1 - beta_2^t) /
    (1 - beta_1^t), t = iterations + 1."""

    _kernel_name = "adam_update"
    _FLAT_VIEWS = {"_flat_m": "_momentums", "_flat_v": "_velocities", "_flat_vhat": "_velocity_hats"}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 name="adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._velocity_hats = []
        if self.amsgrad:
            self._velocity_hats = self.add_optimizer_variables(var_list, "velocity_hat")
        self._make_flat_views()

    def _alpha(self, dtype, learning_rate):
        key = (dtype, self.iterations, learning_rate)
        alpha = self._step_cache.get(key)
        if alpha is None:
            dt = dtype.type
            t = dt(self.iterations + 1)
            one = dt(1.0)
            alpha = float(dt(learning_rate) * np.sqrt(one - dt(self.beta_2) ** t)
                          / (one - dt(self.beta_1) ** t))
            if len(self._step_cache) > 8:
                self._step_cache.clear()
            self._step_cache[key] = alpha
        return alpha

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        w = variable.value
        vhat = self._flat_vhat[i] if self._flat_vhat else _empty(w.dtype)
        self._kernel(w.reshape(-1), gradient.reshape(-1), self._flat_m[i], self._flat_v[i], vhat,
                     self._alpha(w.dtype, learning_rate), float(self.beta_1), float(self.beta_2),
                     float(self.epsilon), bool(self.amsgrad))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}
