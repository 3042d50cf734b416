"""The Adagrad optimizer, as ``keras.optimizers.Adagrad``."""
from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "adagrad")
class Adagrad(Optimizer):
    """Adagrad: acc += g^2; w -= lr g / sqrt(acc + epsilon); acc starts at
    ``initial_accumulator_value``."""

    _kernel_name = "adagrad_update"
    _FLAT_VIEWS = {"_flat": "_accumulators"}

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators = self.add_optimizer_variables(
            var_list, "accumulator", initializer=float(self.initial_accumulator_value))
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        acc = self._flat[self._get_variable_index(variable)]
        self._kernel(variable.value.reshape(-1), gradient.reshape(-1), acc, learning_rate,
                     float(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
