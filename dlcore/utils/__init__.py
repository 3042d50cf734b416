"""Utilities: seeding, session reset, data helpers."""
import numpy as np

from .._lazy import lazy_members
from ..data.py_dataset import PyDataset, Sequence
from ..registry import (CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_name,
                        get_registered_object, register_keras_serializable)
from .random import set_random_seed

# loaded on first use (matplotlib and pydot are imported by the calls): predicting needs none of them
lazy_members(__name__, globals(), {"plot_confusion_matrix": "plotting", "plot_history": "plotting",
                                   "model_to_dot": "model_visualization", "plot_model": "model_visualization",
                                   "normalize": "dataset_utils", "split_dataset": "dataset_utils",
                                   "pad_sequences": "sequences", "timeseries_dataset_from_array": "sequences"})


def clear_session():
    """Reset layer-name counters (dense, dense_1, ...), as keras.utils.clear_session does."""
    from ..layers.layer import reset_names

    reset_names()


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot encode integer class ids: (N,) -> (N, num_classes)."""
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and (y.min() < 0 or np.any(np.mod(y, 1) != 0)):
        raise ValueError("to_categorical: class ids must be non-negative integers")
    y = y.astype(np.int64)
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    elif y.size and y.max() >= num_classes:
        raise ValueError(f"to_categorical: class id {int(y.max())} is out of range for num_classes={num_classes}")
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def pack_x_y_sample_weight(x, y=None, sample_weight=None):
    """Keras's packing of a batch for a step: ``x``, ``(x, y)`` or ``(x, y, sample_weight)``."""
    from ..data.adapters import pack_x_y_sample_weight as pack

    return pack(x, y, sample_weight)


def unpack_x_y_sample_weight(data):
    """``(x, y, sample_weight)`` from a step's ``data`` (missing parts None), as in Keras."""
    from ..data.adapters import unpack_x_y_sample_weight as unpack

    return unpack(data)


__all__ = ["PyDataset", "Sequence", "pack_x_y_sample_weight", "unpack_x_y_sample_weight", "plot_history", "set_random_seed", "clear_session", "to_categorical"]
__all__ += ["plot_confusion_matrix", "model_to_dot", "plot_model"]
__all__ += ["normalize", "split_dataset", "pad_sequences", "timeseries_dataset_from_array"]
__all__ += ["register_keras_serializable", "get_custom_objects", "custom_object_scope", "CustomObjectScope",
            "get_registered_name", "get_registered_object"]
