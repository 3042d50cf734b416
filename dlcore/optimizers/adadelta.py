"""The Adadelta optimizer, as ``keras.optimizers.Adadelta`` (vectorized NumPy, in place: the
update is four elementwise passes and no fused kernel is needed at its usage scale)."""
import numpy as np

from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "adadelta")
class Adadelta(Optimizer):
    """Adadelta: acc_g = rho acc_g + (1 - rho) g^2; d = -sqrt(acc_d + eps) g / sqrt(acc_g + eps);
    acc_d = rho acc_d + (1 - rho) d^2; w += lr d."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="adadelta", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulated_grads, self._accumulated_delta_vars = self.add_optimizer_variables(
            var_list, ["accumulated_grad", "accumulated_delta_var"])

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        acc_g, acc_d = self._accumulated_grads[i], self._accumulated_delta_vars[i]
        dt = gradient.dtype.type
        rho, one_minus_rho, eps = dt(self.rho), dt(1 - self.rho), dt(self.epsilon)
        acc_g *= rho
        acc_g += one_minus_rho * np.square(gradient)
        delta = -(np.sqrt(acc_d + eps) * gradient / np.sqrt(acc_g + eps))
        acc_d *= rho
        acc_d += one_minus_rho * np.square(delta)
        variable.value += dt(learning_rate) * delta

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
