"""The AdamW optimizer, as ``keras.optimizers.AdamW``."""
from ..registry import register
from .adam import Adam
from .optimizer import _KIND


@register(_KIND, "adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay (``weight_decay``, default 0.004): w -= w * weight_decay
    * lr before each Adam update (see ``exclude_from_weight_decay``)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, name="adamw", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, weight_decay=weight_decay, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")
