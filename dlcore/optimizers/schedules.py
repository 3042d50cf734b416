"""Learning-rate schedules, as ``keras.optimizers.schedules`` (Keras 3 names, arguments, formulas).

A schedule is called with the optimizer's step count (an int, the number of updates applied so
far) and returns the learning rate for the next update as a Python float. Pass one as
``learning_rate=`` to any optimizer. Subclass :class:`LearningRateSchedule` and implement
``__call__(step)`` and ``get_config()`` for a custom schedule.
"""
import math

from ..registry import lookup, register

_KIND = "schedule"


class LearningRateSchedule:
    """Base class: ``schedule(step) -> float``; serializable through ``get_config``."""

    def __call__(self, step):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`__call__(self, step)`.")

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must override "
                                  "`get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        try:
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            args = ""
        return f"{type(self).__name__}({args})"


@register(_KIND, "exponential_decay")
class ExponentialDecay(LearningRateSchedule):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase=True``
    the exponent is ``floor(step / decay_steps)``, so the rate decays in discrete intervals."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        if self.decay_steps <= 0:
            raise ValueError("Argument `decay_steps` must be > 0, "
                             f"received: decay_steps={self.decay_steps}")

    def __call__(self, step):
        p = float(step) / float(self.decay_steps)
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) * float(self.decay_rate) ** p

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "staircase": self.staircase,
            "name": self.name,
        }


def serialize(learning_rate_schedule):
    """``{"class_name": ..., "config": ...}`` of a schedule."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise ValueError("Could not serialize learning rate schedule: expected a "
                         f"LearningRateSchedule, received {learning_rate_schedule!r}")
    return {"class_name": type(learning_rate_schedule).__name__,
            "config": learning_rate_schedule.get_config()}


def deserialize(config, custom_objects=None):
    """The schedule described by ``config`` (a ``serialize`` dict, Keras's form included)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError("Could not deserialize learning rate schedule: expected a dict with "
                         f"'class_name' and 'config', received {config!r}")
    cls = lookup(_KIND, config["class_name"], custom_objects)
    cfg = dict(config.get("config") or {})
    return cls.from_config(cfg) if hasattr(cls, "from_config") else cls(**cfg)


def get(identifier, custom_objects=None):
    """A schedule from an instance or a ``serialize`` dict."""
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if isinstance(identifier, dict):
        return deserialize(identifier, custom_objects)
    raise ValueError(f"Could not interpret learning rate schedule identifier: {identifier!r}")


__all__ = ["LearningRateSchedule", "ExponentialDecay", "serialize", "deserialize", "get"]
