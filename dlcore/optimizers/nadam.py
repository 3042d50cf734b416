"""The Nadam optimizer, as ``keras.optimizers.Nadam``."""
import numpy as np

from ..registry import register
from .optimizer import _KIND, Optimizer


@register(_KIND, "nadam")
class Nadam(Optimizer):
    """Nadam (Adam with Nesterov momentum and the 0.96 momentum schedule of Keras):
    m_hat = u_{t+1} m / (1 - prod u_1..u_{t+1}) + (1 - u_t) g / (1 - prod u_1..u_t),
    v_hat = v / (1 - beta_2^t), w -= lr m_hat / (sqrt(v_hat) + epsilon),
    u_t = beta_1 (1 - 0.5 * 0.96^t). The running product is a state array after the slots."""

    _kernel_name = "nadam_update"
    _FLAT_VIEWS = {"_flat_m": "_momentums", "_flat_v": "_velocities"}

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="nadam",
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
        self._u_product = self.add_variable((), initializer=1.0, dtype=np.float64, name="u_product")
        self._make_flat_views()
        self._coefficients = None

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        from ..kernels.optim import nadam_coefficients

        c_m, c_g, c_v, u_product = nadam_coefficients(self.iterations + 1, float(self.beta_1),
                                                      float(self._u_product), float(self.beta_2))
        self._u_product[...] = u_product
        self._coefficients = (c_m, c_g, c_v)
        try:
            super()._backend_update_step(grads, trainable_variables, learning_rate)
        finally:
            self._coefficients = None

    def update_step(self, gradient, variable, learning_rate):
        if self._coefficients is None:  # the step's scalars are set by _backend_update_step
            raise RuntimeError("Nadam.update_step runs inside apply() / apply_gradients()")
        c_m, c_g, c_v = self._coefficients
        i = self._get_variable_index(variable)
        self._kernel(variable.value.reshape(-1), gradient.reshape(-1), self._flat_m[i], self._flat_v[i],
                     learning_rate, float(self.beta_1), float(self.beta_2), float(self.epsilon),
                     c_m, c_g, c_v)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
