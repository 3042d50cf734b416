"""dlcore.models: Model (functional and subclassed), Sequential, clone_model."""
from .cloning import clone_model
from .functional import Functional
from .model import Model
from .sequential import Sequential

_FROM_SAVING = ("load_model", "model_from_json", "save_model")


def __getattr__(name):
    """``models.load_model`` and friends, taken from ``dlcore.saving`` on first use: saving builds
    models, so models import it lazily and the module-level import graph stays acyclic."""
    if name in _FROM_SAVING:
        from .. import saving

        return getattr(saving, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Model", "Sequential", "Functional", "clone_model", "load_model", "save_model", "model_from_json"]
