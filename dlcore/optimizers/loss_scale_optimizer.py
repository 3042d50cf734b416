"""Dynamic loss scaling, as ``keras.optimizers.LossScaleOptimizer``: wraps another optimizer,
multiplies the loss by a scale (``scale_loss``) and divides the gradients back before the inner
optimizer applies them. A step whose gradients are not all finite is skipped and halves the
scale; ``dynamic_growth_steps`` finite steps in a row double it."""
import math

import numpy as np

from ..registry import register
from ..tensor import Tensor
from .optimizer import _KIND, Optimizer, _is_number

_BASE_DEFAULTS = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None,
                  "use_ema": False, "ema_momentum": 0.99, "ema_overwrite_frequency": None,
                  "loss_scale_factor": None, "gradient_accumulation_steps": None}


def _unscale(grad, scale):
    """``grad / scale``, in the gradient's float dtype."""
    return grad / (grad.dtype.type(scale) if grad.dtype.kind == "f" else scale)


@register(_KIND, "loss_scale_optimizer")
class LossScaleOptimizer(Optimizer):
    """``LossScaleOptimizer(inner_optimizer, initial_scale=2**15, dynamic_growth_steps=2000)``.

    State (``variables``): its own iteration counter (unused, as in Keras), ``step_counter``
    (0-d int64: finite steps since the last scale change), ``dynamic_scale`` (0-d float32), then
    the inner optimizer's variables. ``iterations`` and ``learning_rate`` are the inner
    optimizer's."""

    def __init__(self, inner_optimizer, initial_scale=2.0 ** 15, dynamic_growth_steps=2000, name=None,
                 **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError("LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set "
                             "`loss_scale_factor` directly on the `inner_optimizer`.")
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on "
                                 "the `inner_optimizer`.")
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError("LossScaleOptimizer: `inner_optimizer` must be a dlcore Optimizer; received "
                            f"{type(inner_optimizer).__name__}")
        if not _is_number(initial_scale) or not math.isfinite(initial_scale) or initial_scale <= 0:
            raise ValueError("LossScaleOptimizer: `initial_scale` must be a finite number > 0. Received: "
                             f"initial_scale={initial_scale!r}")
        if (not isinstance(dynamic_growth_steps, (int, np.integer)) or isinstance(dynamic_growth_steps, bool)
                or dynamic_growth_steps < 1):
            raise ValueError("LossScaleOptimizer: `dynamic_growth_steps` must be an integer >= 1. "
                             f"Received: dynamic_growth_steps={dynamic_growth_steps!r}")
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.initial_scale = float(initial_scale)
        self.dynamic_growth_steps = int(dynamic_growth_steps)
        self.inner_optimizer.loss_scale_factor = None

    # ---- state ------------------------------------------------------------------------------
    @property
    def _variable_names(self):
        inner = self.__dict__.get("inner_optimizer")
        own = self.__dict__["_own_variable_names"]
        return own + inner._variable_names if inner is not None and self.built else own[:]

    @_variable_names.setter
    def _variable_names(self, names):
        self.__dict__["_own_variable_names"] = names

    def _track_variable(self, array, name):
        self._variables.append(array)
        self.__dict__["_own_variable_names"].append(name)

    @property
    def variables(self):
        """Its own state arrays, then (once built) the inner optimizer's."""
        own = self._variables[:]
        return own + self.inner_optimizer.variables if self.built else own

    def get_state(self):
        return [np.array(v, copy=True) for v in self.variables]

    def set_state(self, state):
        state = list(state)
        n = len(self._variables)
        if not self.built or len(state) != len(self.variables):
            raise ValueError(f"Optimizer '{self.name}' has {len(self.variables)} state arrays (built: "
                             f"{self.built}) but the given state has {len(state)}.")
        own = [np.asarray(s.value if isinstance(s, Tensor) else s) for s in state[:n]]
        for target, name, value in zip(self._variables, self._own_variable_names, own):
            if value.shape != target.shape:
                raise ValueError(f"Optimizer '{self.name}': state array '{name}' has shape "
                                 f"{target.shape}, received {value.shape}")
        self.inner_optimizer.set_state(state[n:])
        for target, value in zip(self._variables, own):
            target[...] = value

    set_weights = set_state

    def build(self, var_list):
        if self.built:
            return
        var_list = list(var_list)
        self.step_counter = self.add_variable((), dtype=np.int64, name="step_counter")
        self.dynamic_scale = self.add_variable((), initializer=self.initial_scale, dtype=np.float32,
                                               name="dynamic_scale")
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    # ---- delegation -------------------------------------------------------------------------
    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        inner = self.__dict__.get("inner_optimizer")
        if inner is None:  # the base constructor's placeholder
            Optimizer.learning_rate.fset(self, learning_rate)
        else:
            inner.learning_rate = learning_rate

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)

    def scale_loss(self, loss):
        """``loss * scale``: the current dynamic scale once built, else ``initial_scale``."""
        return loss * (float(self.dynamic_scale) if self.built else self.initial_scale)

    # ---- applying ---------------------------------------------------------------------------
    def apply(self, grads, trainable_variables=None):
        """Unscale ``grads`` and apply them with the inner optimizer when all are finite; else
        skip the step and halve the scale. Updates the scale (see the class docstring)."""
        grads = [g.value if isinstance(g, Tensor) else g for g in grads]
        if not grads:
            return
        if not self.built:
            if trainable_variables is None:
                raise ValueError("When passing `grads` without `variables`, the optimizer must already "
                                 "be built on a list of variables. Call "
                                 "`optimizer.build(trainable_variables)` first.")
            self.build(trainable_variables)
        if all(g is None or bool(np.all(np.isfinite(g))) for g in grads):
            scale = float(self.dynamic_scale)
            unscaled = [None if g is None else _unscale(np.asarray(g), scale) for g in grads]
            self.inner_optimizer.apply(unscaled, trainable_variables=trainable_variables)
            if int(self.step_counter) == self.dynamic_growth_steps - 1:
                self.step_counter[...] = 0
                self.dynamic_scale *= np.float32(2.0)
            else:
                self.step_counter += 1
        else:
            self.step_counter[...] = 0
            self.dynamic_scale *= np.float32(0.5)

    # ---- configuration ----------------------------------------------------------------------
    def get_config(self):
        from . import serialize

        return {"name": self.name, "inner_optimizer": serialize(self.inner_optimizer),
                "initial_scale": self.initial_scale, "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from . import deserialize

        config = dict(config)
        inner = deserialize(config.pop("inner_optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)

    def __repr__(self):
        return (f"<LossScaleOptimizer name={self.name} inner={self.inner_optimizer!r} "
                f"scale={float(self.dynamic_scale) if self.built else self.initial_scale}>")
