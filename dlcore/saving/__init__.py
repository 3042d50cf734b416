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
from .dlc import FORMAT_VERSION, MODEL_SUFFIX, restore_checkpoint, save_checkpoint
from .model_config import (check_custom_objects, check_model_entry, jsonable, model_build_config, model_config,
                           rebuild)
from .archive import parse_json
from ..registry import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                        get_registered_object, register_keras_serializable)



def _suffix(path):
    lower = path.lower()
    if lower.endswith(".weights.h5"):
        return ".weights.h5"
    return os.path.splitext(lower)[1]


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Write ``model`` to ``filepath``: dlcore's ``.dlc`` format, or Keras 3's ``.keras``."""
    path = dlc._path(filepath)
    if _suffix(path) == ".keras":
        from . import keras_file

        return keras_file.save_model(model, path, overwrite=overwrite, include_optimizer=include_optimizer)
    return dlc.save_model(model, path, overwrite=overwrite, include_optimizer=include_optimizer)


def save_weights(model, filepath, overwrite=True):
    """Write the weights to ``filepath``: ``.weights.dlc`` (dlcore) or ``.weights.h5`` (Keras 3)."""
    path = dlc._path(filepath)
    if _suffix(path) == ".weights.h5":
        from . import keras_file

        return keras_file.save_weights(model, path, overwrite=overwrite)
    return dlc.save_weights(model, path, overwrite=overwrite)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights from a ``.weights.dlc``/``.dlc`` file, a Keras 3 ``.weights.h5`` file or a
    legacy Keras ``.h5`` file (by layer name)."""
    path = dlc._path(filepath)
    if _suffix(path) in (".weights.h5", ".h5", ".hdf5"):
        from . import keras_file

        return keras_file.load_weights(model, path, skip_mismatch=skip_mismatch)
    return dlc.load_weights(model, path, skip_mismatch=skip_mismatch)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in ``filepath``: a ``.dlc`` file (``model.save``), a Keras 3 ``.keras``
    file or a legacy Keras ``.h5`` file. Rebuilt from its config (classes resolved through the
    registry and ``custom_objects`` only), weights loaded, and with ``compile=True`` compiled with
    the saved optimizer state (and, for ``.dlc``, random state) restored. A damaged or tampered
    file raises ValueError. ``safe_mode=True`` (the default) refuses a Keras Lambda layer's
    stored bytecode; nothing else in a file ever runs code."""
    path = dlc._path(filepath)
    suffix = _suffix(path)
    if suffix == ".onnx":
        return load_onnx(path)
    if suffix == ".weights.h5":
        raise ValueError(f"{path!r} is a weights file: build the model in code, then model.load_weights({path!r})")
    if suffix in (".keras", ".h5", ".hdf5"):
        from . import keras_file

        load = keras_file.load_model if suffix == ".keras" else keras_file.load_legacy_model
        return load(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
    return dlc.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def export_onnx(model, filepath, opset=17):
    """Write ``model`` as an ONNX file (needs the ``onnx`` extra); see ``dlcore.saving.onnx_export``."""
    from .onnx_export import export_onnx as export

    return export(model, filepath, opset=opset)


def load_onnx(filepath, channels_last=False, fold_batch_norm=True):
    """A trainable dlcore functional model rebuilt from an ONNX file (needs the ``onnx`` extra);
    see ``dlcore.saving.onnx_import``."""
    from .onnx_import import load_onnx as load

    return load(filepath, channels_last=channels_last, fold_batch_norm=fold_batch_norm)


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
           "save_checkpoint", "restore_checkpoint", "export_onnx", "load_onnx", "FORMAT_VERSION",
           "register_keras_serializable", "get_custom_objects", "custom_object_scope", "CustomObjectScope",
           "get_registered_name", "get_registered_object"]
