"""The Lamb optimizer, as ``keras.optimizers.Lamb`` (two passes per variable, on either device:
``lamb_moments`` forms Adam's moments and the update u, ``sum_squares`` the norms of w and u,
and ``trust_ratio_update`` applies w -= (||w|| / ||u||) lr u; the trust ratio needs both whole
norms, so the update is not a single elementwise pass)."""
import numpy as np

from .. import devices as _devices
from ..registry import register
from .optimizer import _KIND, Optimizer, _zeros


@register(_KIND, "lamb")
class Lamb(Optimizer):
    """Lamb: Adam's moments, update u = m_hat / (sqrt(v_hat) + epsilon), scaled per variable by
    the trust ratio ||w|| / ||u|| (1 where either norm is 0): w -= ratio lr u."""

    runs_on_gpu = True
    _FLAT_VIEWS = {"_flat_m": "_momentums", "_flat_v": "_velocities"}

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
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        w = variable.value.reshape(-1)
        dt = w.dtype.type
        t = dt(self.iterations + 1)
        c_1, c_2 = float(dt(1.0) - dt(self.beta_1) ** t), float(dt(1.0) - dt(self.beta_2) ** t)
        update = _devices.empty(w.shape, w.dtype, w)
        self._kernel_for("lamb_moments")(gradient.reshape(-1), self._flat_m[i], self._flat_v[i], update, c_1, c_2,
                                         float(self.beta_1), float(self.beta_2), float(self.epsilon))
        norms = _zeros((2,), np.float64, w)  # sums of squares of w and of the update
        sum_squares = self._kernel_for("sum_squares")
        sum_squares(w, norms[0:1])
        sum_squares(update, norms[1:2])
        self._kernel_for("trust_ratio_update")(w, update, norms[0:1], norms[1:2], learning_rate)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}
