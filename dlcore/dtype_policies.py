"""``keras.dtype_policies``: the dtype policy classes and their get/serialize/deserialize (defined in
dlcore.mixed_precision; the int8 policies are in dlcore.quantizers)."""
from .mixed_precision import DTypePolicy, FloatDTypePolicy, deserialize, get, serialize

__all__ = ["DTypePolicy", "FloatDTypePolicy", "get", "serialize", "deserialize"]
