"""dlcore.models: Model (functional and subclassed) and Sequential."""
from .functional import Functional
from .model import Model
from .sequential import Sequential
from ..saving import load_model, model_from_json, save_model  # noqa: E402  (saving imports models lazily)

__all__ = ["Model", "Sequential", "Functional", "load_model", "save_model", "model_from_json"]
