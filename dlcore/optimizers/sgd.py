"""The SGD optimizer, as ``keras.optimizers.SGD``."""
from ..registry import register
from .optimizer import _KIND, Optimizer, _empty, _is_number


@register(_KIND, "sgd")
class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum: ``momentum == 0``: w -= lr g; else
    m = momentum m - lr g and w += m (or w += momentum m - lr g with ``nesterov``)."""

    _kernel_name = "sgd_update"
    _FLAT_VIEWS = {"_flat": "momentums"}

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not _is_number(momentum) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = []
        if self.momentum != 0:
            self.momentums = self.add_optimizer_variables(var_list, "momentum")
        self._make_flat_views()

    def update_step(self, gradient, variable, learning_rate):
        w = variable.value
        m = self._flat[self._get_variable_index(variable)] if self._flat else _empty(w.dtype)
        self._kernel(w.reshape(-1), gradient.reshape(-1), m, learning_rate, self.momentum, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
