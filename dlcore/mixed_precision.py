"""Dtype policies (``keras.mixed_precision`` / ``keras.dtype_policies``): which dtype a layer keeps
its variables in and which it computes in.

    dl.mixed_precision.set_global_policy("mixed_bfloat16")   # or dl.config.set_dtype_policy
    layer = dl.layers.Dense(8, dtype="mixed_float16")        # a name, a DTypePolicy or its config

Policies: "float32", "float64" (variables and compute in that dtype), "float16", "bfloat16"
(both in the low precision), "mixed_float16", "mixed_bfloat16" (variables float32, compute low);
any other NumPy dtype name ("int32", "bool", ...) is a policy too, as in Keras (the output dtype
of preprocessing layers), but not a global one.

How dlcore holds the low precisions (see ARCHITECTURE.md, "Precision policies"):
- float16 outputs are NumPy float16 arrays, as in Keras. Inside a layer the computation runs on
  float32 copies of the float16 values (CPUs have no float16 arithmetic worth using), and the
  outputs are rounded to float16.
- bfloat16 values are held in float32 arrays whose values are exactly bfloat16 (round to
  nearest even at each layer boundary); NumPy has no bfloat16 dtype, and ``ml_dtypes`` arrays
  would be a runtime dependency that every kernel would have to learn. The GEMM kernels
  (Dense, matmul) then compute with bfloat16 operands and float32 sums on the CPU's
  AVX512_BF16 instructions where present (kernels/dl_bf16gemm.h).
- Variables are float32 arrays under every float16/bfloat16 policy (the master copies
  mixed precision keeps); under the pure "float16"/"bfloat16" policies their values are rounded
  to that precision when they are created. The bfloat16 GEMM and conv read them rounded; float16
  layers read them in float32 (see ARCHITECTURE.md).
"""
import numpy as np

_LOW = ("float16", "bfloat16")
_FLOATS = ("float16", "bfloat16", "float32", "float64")
_ERROR = ("Cannot convert {value!r} to a mixed precision DTypePolicy. Valid policies include 'mixed_float16', "
          "'mixed_bfloat16', and the name of any float dtype such as 'float32'.")


class DTypePolicy:
    """``DTypePolicy(name=None)``: ``name`` (default: floatx), ``compute_dtype``,
    ``variable_dtype``; ``quantization_mode`` is None (int8 policies live in dlcore.quantizers)."""

    def __init__(self, name=None):
        if name is None:
            from .config import floatx

            name = floatx()
        if isinstance(name, (np.dtype, type)):  # np.float32, float, np.dtype("float64"), ...
            try:
                name = np.dtype(name).name
            except TypeError:
                raise ValueError(_ERROR.format(value=name)) from None
        if not isinstance(name, str):
            raise TypeError(f"DTypePolicy: `name` must be a string, received name={name!r} "
                            f"({type(name).__name__})")
        if name.startswith("mixed_"):
            compute, variable = name[len("mixed_"):], "float32"
            if compute not in _LOW:
                raise ValueError(_ERROR.format(value=name))
        elif name in _FLOATS or name == "string":
            compute = variable = name
        else:  # any other NumPy dtype (int32, bool, ...): preprocessing layers' output dtypes, as Keras
            try:
                name = compute = variable = np.dtype(name).name
            except TypeError:
                raise ValueError(_ERROR.format(value=name)) from None
        self._name, self._compute_dtype, self._variable_dtype = name, compute, variable

    name = property(lambda self: self._name)
    compute_dtype = property(lambda self: self._compute_dtype)
    variable_dtype = property(lambda self: self._variable_dtype)
    quantization_mode = None

    @property
    def low_precision(self):
        """"float16" or "bfloat16" when the policy computes in one of them, else None."""
        return self._compute_dtype if self._compute_dtype in _LOW else None

    @property
    def storage_dtype(self):
        """The NumPy dtype dlcore keeps this policy's variables (and computes) in."""
        if self._variable_dtype == "string":
            return np.dtype(object)
        return np.dtype("float32" if self._variable_dtype in _LOW else self._variable_dtype)

    def get_config(self):
        return {"name": self._name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(other) is type(self) and other._name == self._name

    def __hash__(self):
        return hash(self._name)

    def __repr__(self):
        return f'<DTypePolicy "{self._name}">'


Policy = FloatDTypePolicy = DTypePolicy  # Keras's older and alias names

_global_policy = None  # None: the floatx policy


def get(identifier):
    """A DTypePolicy from a policy, its name, a float dtype or Keras's serialized dict."""
    if isinstance(identifier, DTypePolicy):
        return identifier
    if isinstance(identifier, dict):
        config = identifier.get("config")
        if identifier.get("class_name") not in ("DTypePolicy", "FloatDTypePolicy", "Policy") or not isinstance(
                config, dict) or not isinstance(config.get("name"), str):
            raise ValueError(f"Cannot interpret dtype policy {identifier!r:.200}: expected "
                             "{'class_name': 'DTypePolicy', 'config': {'name': ...}}")
        return DTypePolicy(config["name"])
    if identifier is None or isinstance(identifier, (str, np.dtype, type)):
        return DTypePolicy(identifier)
    raise ValueError(_ERROR.format(value=identifier))


def serialize(policy):
    """Keras's config of ``policy`` (as written in a .keras config.json)."""
    return {"module": "keras", "class_name": "DTypePolicy", "config": policy.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    return get(config)


def set_global_policy(policy):
    """The policy of the layers created from now on without a ``dtype`` (a policy or its name;
    None resets it to floatx)."""
    global _global_policy
    if policy is None:
        _global_policy = None
        return
    try:
        new = get(policy)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"set_global_policy: invalid `policy`. {exc}") from None
    if new.compute_dtype not in _FLOATS:
        raise ValueError("set_global_policy() can only be used to set the global policy to floating-point "
                         f"policies, such as 'float32' and 'mixed_float16', but got policy: {new.name}")
    _global_policy = new


def global_policy():
    """The policy new layers get without a ``dtype`` (the floatx policy unless one was set)."""
    return _global_policy if _global_policy is not None else DTypePolicy()


def explicit_global_policy():
    """The policy set by set_global_policy, or None (layers then follow floatx)."""
    return _global_policy


set_dtype_policy, dtype_policy = set_global_policy, global_policy


def __getattr__(name):
    if name == "LossScaleOptimizer":  # imported on request: the optimizers load lazily
        from .optimizers import LossScaleOptimizer

        return LossScaleOptimizer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DTypePolicy", "FloatDTypePolicy", "Policy", "LossScaleOptimizer", "get", "serialize", "deserialize",
           "set_global_policy", "global_policy", "set_dtype_policy", "dtype_policy"]
