"""The Adamax optimizer, as ``keras.optimizers.Adamax``."""
from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "adamax")
class Adamax(Optimizer):
    """Adamax: m += (g - m)(1 - beta_1); u = max(beta_2 u, |g|);
    w -= lr m / ((1 - beta_1^t)(u + epsilon))."""

    _kernel_name = "adamax_update"
    _FLAT_VIEWS = {"_flat_m": "_m", "_flat_u": "_u"}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="adamax",
                 **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._m, self._u = self.add_optimizer_variables(var_list, ["momentum", "norm"])
        self._make_flat_views()

    def _lr_t(self, dtype, learning_rate):
        key = (dtype, self.iterations, learning_rate)
        lr_t = self._step_cache.get(key)
        if lr_t is None:
            dt = dtype.type
            lr_t = float(dt(learning_rate) / (dt(1.0) - dt(self.beta_1) ** dt(self.iterations + 1)))
            if len(self._step_cache) > 8:
                self._step_cache.clear()
            self._step_cache[key] = lr_t
        return lr_t

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        w = variable.value
        self._kernel(w.reshape(-1), gradient.reshape(-1), self._flat_m[i], self._flat_u[i],
                     self._lr_t(w.dtype, learning_rate), float(self.beta_1), float(self.beta_2),
                     float(self.epsilon))

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
