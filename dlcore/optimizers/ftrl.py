"""The FTRL-Proximal optimizer, as ``keras.optimizers.Ftrl`` (fused kernel
``kernels.optim.ftrl_update``: with the default learning_rate_power=-0.5 it uses sqrt and is
about 20x faster than the unfused NumPy update on 1M float32 weights; other powers need two
general pow calls per element and run at about NumPy's speed)."""
from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "ftrl")
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al., 2013), Keras 3 formulas, p = -learning_rate_power:
    g' = g + 2 l2_shrinkage w; n' = n + g^2; z += g' - (n'^p - n^p) / lr w;
    w = (clip(z, -l1, l1) - z) / (n'^p / lr + 2 (l2 + beta / (2 lr))); n = n'.
    The accumulator n starts at ``initial_accumulator_value``."""

    _kernel_name = "ftrl_update"
    _FLAT_VIEWS = {"_flat_n": "_accumulators", "_flat_z": "_linears"}

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, name="ftrl", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for arg, value in (("initial_accumulator_value", initial_accumulator_value),
                           ("l1_regularization_strength", l1_regularization_strength),
                           ("l2_regularization_strength", l2_regularization_strength),
                           ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength)):
            if value < 0.0:
                raise ValueError(f"`{arg}` needs to be positive or zero. Received: {arg}={value}.")
        if learning_rate_power > 0.0:
            raise ValueError("`learning_rate_power` needs to be negative or zero. Received: "
                             f"learning_rate_power={learning_rate_power}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._accumulators, self._linears = self.add_optimizer_variables(
            var_list, ["accumulator", "linear"],
            initializer=[float(self.initial_accumulator_value), "zeros"])
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        lr = float(variable.value.dtype.type(learning_rate))  # Keras forms beta / (2 lr) in the dtype
        self._kernel(variable.value.reshape(-1), gradient.reshape(-1), self._flat_n[i], self._flat_z[i],
                     learning_rate, -float(self.learning_rate_power), float(self.l1_regularization_strength),
                     float(self.l2_regularization_strength) + float(self.beta) / (2.0 * lr),
                     float(self.l2_shrinkage_regularization_strength))

    def get_config(self):
        return {**super().get_config(),
                "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
                "beta": self.beta}
