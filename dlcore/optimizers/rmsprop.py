"""The RMSprop optimizer, as ``keras.optimizers.RMSprop``."""
from ..registry import register
from .optimizer import _KIND, Optimizer, _empty


@register(_KIND, "rmsprop")
class RMSprop(Optimizer):
    """RMSprop: v = rho v + (1 - rho) g^2; ``centered``: mg = rho mg + (1 - rho) g and
    denominator v - mg^2 + epsilon (else v + epsilon); inc = lr g / sqrt(denominator);
    ``momentum > 0``: mom = momentum mom + inc, w -= mom; else w -= inc."""

    _kernel_name = "rmsprop_update"
    _FLAT_VIEWS = {"_flat_v": "_velocities", "_flat_mom": "_momentums", "_flat_mg": "_average_gradients"}

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")
        self._momentums = []
        if self.momentum > 0:
            self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._average_gradients = []
        if self.centered:
            self._average_gradients = self.add_optimizer_variables(var_list, "average_gradient")
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        w = variable.value
        mg = self._flat_mg[i] if self._flat_mg else _empty(w.dtype)
        mom = self._flat_mom[i] if self._flat_mom else _empty(w.dtype)
        self._kernel(w.reshape(-1), gradient.reshape(-1), self._flat_v[i], mg, mom, learning_rate,
                     float(self.rho), float(self.momentum), float(self.epsilon), bool(self.centered))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}
