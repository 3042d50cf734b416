"""Saving and loading models and weights.

``load_model`` dispatches on the file's extension: ``.dlc`` is dlcore's native format
(``dlcore.saving.dlc``: JSON and ``.npy`` arrays in a zip archive). Every reader goes through
``dlcore.saving.archive``, which refuses anything but a regular file and bounds every member's size
and every JSON document's size and nesting before parsing or allocating; a damaged, tampered or
hostile file raises ``ValueError`` and changes nothing.
"""
import json
import os

from . import dlc
from .dlc import (FORMAT_VERSION, MODEL_SUFFIX, load_weights, restore_checkpoint, save_checkpoint, save_model,
                  save_weights)
from .model_config import (check_custom_objects, check_model_entry, jsonable, model_build_config, model_config,
                           rebuild)
from .archive import parse_json

_OTHER_FORMATS = {".keras": "Keras 3", ".h5": "HDF5 (Keras 2)", ".hdf5": "HDF5 (Keras 2)", ".onnx": "ONNX"}


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in ``filepath`` by ``model.save``: rebuilt from its config (classes resolved
    through the registry and ``custom_objects`` only), weights loaded, and with ``compile=True``
    compiled with the saved optimizer state and random state restored. A damaged or tampered file
    raises ValueError. (``safe_mode`` is accepted for Keras compatibility: dlcore never executes
    code from a file, so loading is always safe.)"""
    path = dlc._path(filepath)
    suffix = os.path.splitext(path)[1].lower()
    if suffix in _OTHER_FORMATS:
        raise ValueError(f"File format not supported: filepath={path}. This dlcore loads its own `{MODEL_SUFFIX}` "
                         f"files; {_OTHER_FORMATS[suffix]} files are not supported.")
    return dlc.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_to_json(model, **kwargs):
    """The model's architecture as a JSON string (``json.dumps`` keyword arguments apply)."""
    return json.dumps(jsonable({"class_name": type(model).__name__, "config": model_config(model),
                                "build_config": model_build_config(model)}, "config"), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from ``model.to_json()`` output."""
    custom_objects = check_custom_objects(custom_objects)
    if not isinstance(json_string, (str, bytes, bytearray)):
        raise ValueError(f"model_from_json: expected a JSON string, received {type(json_string).__name__}")
    config = parse_json(bytes(json_string) if isinstance(json_string, bytearray) else json_string,
                        "model_from_json")
    check_model_entry(config, "the JSON string")
    return rebuild(config, custom_objects, "the JSON string", neutral_rng=False)


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_to_json", "model_from_json",
           "save_checkpoint", "restore_checkpoint", "FORMAT_VERSION"]
