"""Learning-rate schedules, as ``keras.optimizers.schedules`` (Keras 3 names, arguments, formulas).

A schedule is called with the optimizer's step count (an int, the number of updates applied so
far) and returns the learning rate for the next update as a Python float. Pass one as
``learning_rate=`` to any optimizer. Subclass :class:`LearningRateSchedule` and implement
``__call__(step)`` and ``get_config()`` for a custom schedule.
"""
import math

from .. import registry
from ..registry import register

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


@register(_KIND, "piecewise_constant_decay")
class PiecewiseConstantDecay(LearningRateSchedule):
    """A constant rate per interval of steps: ``values[0]`` while ``step <= boundaries[0]``,
    ``values[i]`` while ``boundaries[i - 1] < step <= boundaries[i]``, and ``values[-1]`` after
    ``boundaries[-1]`` (``len(values) == len(boundaries) + 1``)."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError("The length of boundaries should be 1 less than the length of values. "
                             f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                             f"values={values} of length {len(values)}.")
        if any(b2 < b1 for b1, b2 in zip(boundaries[:-1], boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: `boundaries` must be increasing, received {boundaries}")
        self.boundaries = list(boundaries)
        self.values = list(values)
        self.name = name

    def __call__(self, step):
        step = float(step)
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return float(value)
        return float(self.values[-1])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


@register(_KIND, "polynomial_decay")
class PolynomialDecay(LearningRateSchedule):
    """``(initial_learning_rate - end_learning_rate) * (1 - step / decay_steps) ** power +
    end_learning_rate``, with ``step`` capped at ``decay_steps``; with ``cycle=True`` the decay
    restarts: ``decay_steps`` is multiplied by ``ceil(step / decay_steps)`` (1 at step 0)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        if self.decay_steps <= 0:
            raise ValueError("Argument `decay_steps` must be > 0. "
                             f"Received: decay_steps={self.decay_steps}")

    def __call__(self, step):
        step = float(step)
        decay_steps = float(self.decay_steps)
        if self.cycle:
            decay_steps *= 1.0 if step == 0 else math.ceil(step / decay_steps)
        else:
            step = min(step, decay_steps)
        p = step / decay_steps
        initial, end = float(self.initial_learning_rate), float(self.end_learning_rate)
        return (initial - end) * (1.0 - p) ** float(self.power) + end

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


@register(_KIND, "inverse_time_decay")
class InverseTimeDecay(LearningRateSchedule):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with ``staircase=True``
    the ratio ``step / decay_steps`` is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        if self.decay_steps <= 0:
            raise ValueError("Argument `decay_steps` must be > 0. "
                             f"Received: decay_steps={self.decay_steps}")

    def __call__(self, step):
        p = float(step) / float(self.decay_steps)
        if self.staircase:
            p = math.floor(p)
        return float(self.initial_learning_rate) / (1.0 + float(self.decay_rate) * p)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


@register(_KIND, "cosine_decay")
class CosineDecay(LearningRateSchedule):
    """Cosine decay (SGDR without restarts), with an optional linear warmup.

    Without warmup (``warmup_target=None``): ``lr * ((1 - alpha) * 0.5 * (1 + cos(pi * s /
    decay_steps)) + alpha)`` with ``s = min(step, decay_steps)``. With warmup: the rate goes
    linearly from ``initial_learning_rate`` to ``warmup_target`` over ``warmup_steps``, then
    decays from ``warmup_target`` as above over ``decay_steps`` (step counted from the warmup's
    end, capped at ``decay_steps``)."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        if self.decay_steps <= 0:
            raise ValueError("Argument `decay_steps` must be > 0. "
                             f"Received: decay_steps={self.decay_steps}")

    def _decay(self, step, decay_steps, decay_from_lr):
        completed_fraction = step / decay_steps
        cosine_decayed = 0.5 * (1.0 + math.cos(math.pi * completed_fraction))
        decayed = (1.0 - float(self.alpha)) * cosine_decayed + float(self.alpha)
        return decay_from_lr * decayed

    def __call__(self, step):
        initial = float(self.initial_learning_rate)
        decay_steps = float(self.decay_steps)
        step = float(step)
        if self.warmup_target is None:
            return self._decay(min(step, decay_steps), decay_steps, initial)
        target = float(self.warmup_target)
        warmup_steps = float(self.warmup_steps)
        step = min(step, decay_steps + warmup_steps)
        if step < warmup_steps:
            return (target - initial) * (step / warmup_steps) + initial
        return self._decay(step - warmup_steps, decay_steps, target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


@register(_KIND, "cosine_decay_restarts")
class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR, Loshchilov & Hutter): the first period lasts
    ``first_decay_steps``; each period is ``t_mul`` times longer than the previous one and starts
    from a rate ``m_mul`` times the previous start; ``alpha`` is the floor as a fraction of
    ``initial_learning_rate``."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        if self.first_decay_steps <= 0:
            raise ValueError("Argument `first_decay_steps` must be > 0. "
                             f"Received: first_decay_steps={self.first_decay_steps}")

    def __call__(self, step):
        t_mul, m_mul, alpha = float(self._t_mul), float(self._m_mul), float(self.alpha)
        completed_fraction = float(step) / float(self.first_decay_steps)
        if t_mul == 1.0:
            i_restart = math.floor(completed_fraction)
            completed_fraction -= i_restart
        else:
            i_restart = math.floor(math.log(1.0 - completed_fraction * (1.0 - t_mul)) / math.log(t_mul))
            sum_r = (1.0 - t_mul ** i_restart) / (1.0 - t_mul)
            completed_fraction = (completed_fraction - sum_r) / t_mul ** i_restart
        m_fac = m_mul ** i_restart
        cosine_decayed = 0.5 * m_fac * (1.0 + math.cos(math.pi * completed_fraction))
        decayed = (1.0 - alpha) * cosine_decayed + alpha
        return float(self.initial_learning_rate) * decayed

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self._t_mul, "m_mul": self._m_mul,
                "alpha": self.alpha, "name": self.name}


def serialize(learning_rate_schedule):
    """``{"class_name": ..., "config": ...}`` of a schedule."""
    return registry.serialize("learning rate schedule", learning_rate_schedule, base=LearningRateSchedule)


def deserialize(config, custom_objects=None):
    """The schedule described by ``config`` (a ``serialize`` dict, Keras's form included)."""
    return registry.deserialize(_KIND, config, custom_objects, names=False)


def get(identifier, custom_objects=None):
    """A schedule from an instance or a ``serialize`` dict."""
    return registry.get(_KIND, identifier, custom_objects, names=False, instantiate_classes=False,
                        accept=lambda obj: isinstance(obj, LearningRateSchedule),
                        what="learning rate schedule")


__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay",
           "InverseTimeDecay", "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize", "get"]
