"""The Lion optimizer, as ``keras.optimizers.Lion`` (fused kernel ``kernels.optim.lion_update``)."""
from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "lion")
class Lion(Optimizer):
    """Lion: w -= lr sign(beta_1 m + (1 - beta_1) g); then m = beta_2 m + (1 - beta_2) g."""

    _kernel_name = "lion_update"
    _FLAT_VIEWS = {"_flat_m": "_momentums"}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name="lion", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError("Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer "
                             f"degenerates to SignSGD. Received: beta_1={beta_1}.")

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums = self.add_optimizer_variables(var_list, "momentum")
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        self._kernel(variable.value.reshape(-1), gradient.reshape(-1),
                     self._flat_m[self._get_variable_index(variable)], learning_rate,
                     float(self.beta_1), float(self.beta_2))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
