"""Translating model configs between Keras 3's vocabulary and dlcore's.

dlcore's configs already follow Keras's (class names, constructor arguments, functional
``inbound_nodes`` with ``__keras_tensor__`` references); a Keras file adds what dlcore does not
use or spells differently: ``module`` and ``registered_name`` on every object, ``DTypePolicy``
objects for ``dtype``, per-layer ``build_config`` / ``shared_object_id``, Keras-only arguments
left at their defaults (``quantization_config``, ``lora_rank``, ``optional``...), and Lambda
functions as marshalled bytecode. ``from_keras`` maps a Keras config to dlcore's (refusing what
dlcore cannot honour, by layer and argument); ``to_keras`` adds Keras's spelling back. Classes
are still resolved only through ``dlcore.registry`` or ``custom_objects``: a ``module`` is read
as a hint of the object's kind and never imported."""
import base64
import inspect

from ..registry import get_registered_name, lookup

# the module Keras writes for each kind of object (Keras resolves built-ins through it)
_KERAS_MODULES = {"layer": "keras.layers", "initializer": "keras.initializers", "regularizer": "keras.regularizers",
                  "constraint": "keras.constraints", "optimizer": "keras.optimizers", "loss": "keras.losses",
                  "metric": "keras.metrics", "schedule": "keras.optimizers.schedules"}
_MODEL_MODULES = {"Functional": "keras.src.models.functional", "Sequential": "keras"}
_DTYPE_POLICIES = ("DTypePolicy", "FloatDTypePolicy")
# Keras keys of a serialized object (or layer entry) that carry nothing dlcore rebuilds from
_DROPPED_KEYS = ("module", "registered_name", "build_config", "shared_object_id", "compile_config")
# values of a Keras-only constructor argument that mean "feature off": dropped; others are refused
_NEUTRAL = (None, False, {}, [], (), "")
_MODEL_KEYS = ("name", "trainable", "layers", "input_layers", "output_layers")
_COMPILE_KEYS = ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics")


class KerasConfigError(ValueError):
    """A Keras config dlcore cannot rebuild faithfully."""


def _layer_class(name, custom_objects):
    try:
        return lookup("layer", name, custom_objects)
    except ValueError:
        return None


def _base_layer():
    from ..layers.layer import Layer

    return Layer


def _accepted_arguments(cls):
    """The named constructor arguments of ``cls`` and its bases (None: unknown, accept any)."""
    if not getattr(cls, "__module__", "").startswith("dlcore."):
        return None  # a user's class receives the file's arguments and checks them itself
    names = {"name", "trainable", "dtype"}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            return None
        names.update(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
        if not any(p.kind == p.VAR_KEYWORD for p in params) or klass is _base_layer():
            return names  # (Layer's own **kwargs only collects the unknown arguments it refuses)
    return None  # every constructor passes **kwargs on: the class checks them itself


def _is_default_int8_config(config):
    """Whether a translated Keras ``quantization_config`` is the one Keras writes for ``quantize("int8")``
    (abs-max int8 inputs over [-127, 127], default weights): dlcore's only scheme, so it is dropped."""
    if not isinstance(config, dict) or config.get("class_name") != "Int8QuantizationConfig":
        return False
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    activation = inner.get("activation_quantizer")
    if inner.get("weight_quantizer") is not None or set(inner) - {"weight_quantizer", "activation_quantizer"}:
        return False
    if activation is None:
        return True
    settings = activation.get("config") if isinstance(activation, dict) else None
    return activation.get("class_name") == "AbsMaxQuantizer" and isinstance(settings, dict) \
        and list(settings.get("value_range", [-127, 127])) == [-127, 127] \
        and settings.get("epsilon", 1e-7) == 1e-7 and settings.get("output_dtype", "int8") == "int8" \
        and settings.get("axis", -1) in (-1, [-1]) \
        and set(settings) <= {"value_range", "epsilon", "output_dtype", "axis"}


def _history(ref):
    if isinstance(ref, dict) and ref.get("class_name") == "__keras_tensor__" and isinstance(ref.get("config"), dict):
        history = ref["config"].get("keras_history")
        if isinstance(history, list) and history and isinstance(history[0], str):
            return history[0]
    return None


def _implicit_masks(config, where):
    """Keras 3 records an ``Embedding(mask_zero=True)``'s mask as a ``NotEqual(x, 0)`` op node
    passed to later layers as ``mask=``; dlcore propagates that mask itself, so such nodes and
    the ``mask`` arguments that name them are dropped (any other op node is refused later)."""
    layers = config.get("layers")
    if not isinstance(layers, list):
        return
    masked_inputs = set()
    for entry in layers:
        if isinstance(entry, dict) and entry.get("class_name") == "Embedding" \
                and isinstance(entry.get("config"), dict) and entry["config"].get("mask_zero") is True:
            for node in entry.get("inbound_nodes") or []:
                if isinstance(node, dict) and isinstance(node.get("args"), list) and node["args"]:
                    masked_inputs.add(_history(node["args"][0]))
    dropped = set()
    for entry in layers:
        if not isinstance(entry, dict) or entry.get("class_name") != "NotEqual":
            continue
        nodes = entry.get("inbound_nodes")
        args = nodes[0].get("args") if isinstance(nodes, list) and len(nodes) == 1 and isinstance(nodes[0], dict) else None
        if isinstance(args, list) and len(args) == 2 and args[1] == 0 and _history(args[0]) in masked_inputs - {None}:
            dropped.add(entry.get("name"))
    if not dropped:
        return
    config["layers"] = [e for e in layers if not (isinstance(e, dict) and e.get("name") in dropped)]
    for entry in config["layers"]:
        for node in entry.get("inbound_nodes") or []:
            kwargs = node.get("kwargs") if isinstance(node, dict) else None
            if isinstance(kwargs, dict) and _history(kwargs.get("mask")) in dropped:
                del kwargs["mask"]


class _FromKeras:
    def __init__(self, custom_objects, safe_mode, where):
        self.custom_objects = dict(custom_objects or {})
        self.safe_mode = safe_mode
        self.where = where

    def value(self, value, path):
        if isinstance(value, list):
            return [self.value(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):
            return value
        name = value.get("class_name")
        if name == "QuantizedDTypePolicy":
            return self.quantized_policy(value, path)
        if name in _DTYPE_POLICIES:
            policy = value.get("config", {}).get("name") if isinstance(value.get("config"), dict) else None
            if not isinstance(policy, str):
                raise KerasConfigError(f"{self.where}: {path}: invalid DTypePolicy {value!r:.200}")
            return policy
        if name == "__lambda__":
            return self.lambda_function(value, path)
        out = {}
        for key, item in value.items():
            if key in _DROPPED_KEYS:
                continue
            out[key] = self.value(item, f"{path}.{key}")
        registered = value.get("registered_name")
        if isinstance(registered, str) and isinstance(name, str) and registered not in (name, "function") \
                and registered in self.custom_objects:
            out["class_name"] = registered  # a custom object registered by Keras as "package>Name"
        if isinstance(out.get("class_name"), str) and isinstance(out.get("config"), dict):
            cls = _layer_class(out["class_name"], self.custom_objects)
            if cls is not None:
                out["config"] = self.layer_arguments(cls, out["class_name"], out["config"], path)
        return out

    def quantized_policy(self, value, path):
        """``"int8_from_float32"`` of Keras's ``QuantizedDTypePolicy`` dict (a mode dlcore has, else refused)."""
        from ..quantizers import MODES

        config = value.get("config") if isinstance(value.get("config"), dict) else {}
        mode, source = config.get("mode"), config.get("source_name", "float32")
        if mode not in MODES or not isinstance(source, str):
            raise KerasConfigError(f"{self.where}: {path}: quantization mode {mode!r:.50} (source {source!r:.50}) is "
                                   f"not one dlcore runs; dlcore quantizes to {list(MODES)}")
        return f"{mode}_from_{source}"

    def layer_arguments(self, cls, class_name, config, path):
        if _is_default_int8_config(config.get("quantization_config")):
            config = {k: v for k, v in config.items() if k != "quantization_config"}
        if class_name in _MODEL_MODULES:  # rebuilt by from_config, whose keys dlcore shares with Keras
            _implicit_masks(config, f"{self.where}: {path}")
            extra = {k: v for k, v in config.items() if k not in _MODEL_KEYS}
            if extra.get("dtype", "float32") not in ("float32", None):
                raise KerasConfigError(f"{self.where}: {path}: model '{config.get('name')!s:.100}' has dtype "
                                       f"{extra['dtype']!r:.100}; dlcore loads float32 models")
            return {k: v for k, v in config.items() if k in _MODEL_KEYS}
        if class_name == "Lambda" and isinstance(config.get("function"), dict) \
                and config["function"].get("class_name") == "function":
            config = {**config, "function": config["function"].get("config")}
        accepted = _accepted_arguments(cls)
        if accepted is None:
            return config
        out = {}
        for key, item in config.items():
            if key in accepted:
                out[key] = item
            elif item not in _NEUTRAL or isinstance(item, bool) and item:
                raise KerasConfigError(
                    f"{self.where}: {path}: Keras layer '{config.get('name')!s:.100}' ({class_name}) has "
                    f"argument {key}={item!r:.100}, which dlcore's {class_name} does not support")
        return out

    def lambda_function(self, value, path):
        """A Lambda's marshalled bytecode: refused in safe mode; otherwise rebuilt (as Keras does
        with ``safe_mode=False``) and handed to the Lambda by a generated name."""
        if self.safe_mode:
            raise KerasConfigError(
                f"{self.where}: {path}: the file holds a Lambda layer whose function is stored as Python "
                "bytecode. Loading it would execute code from the file, which is unsafe, so it is refused "
                "in safe mode. If you trust the source of this file, pass `safe_mode=False` to load_model "
                "(or define the function with `def` and save it by name).")
        import marshal
        import types

        config = value.get("config")
        code = config.get("code") if isinstance(config, dict) else None
        if not isinstance(code, str) or config.get("closure") is not None:
            raise KerasConfigError(f"{self.where}: {path}: invalid or unsupported Lambda function (a closure "
                                   "cannot be rebuilt)")
        try:
            function = types.FunctionType(marshal.loads(base64.b64decode(code.encode("ascii"))), globals())
        except Exception as exc:  # noqa: BLE001  (bytecode from another Python version, damaged data)
            raise KerasConfigError(f"{self.where}: {path}: cannot rebuild the Lambda function from its bytecode "
                                   f"({type(exc).__name__}: {exc}); it may come from another Python version")
        defaults = config.get("defaults")
        if isinstance(defaults, list):
            function.__defaults__ = tuple(defaults)
        name = f"__keras_lambda_{len(self.custom_objects)}"
        self.custom_objects[name] = function
        return name


def from_keras(config, custom_objects=None, safe_mode=True, where="config"):
    """``(dlcore config, custom_objects)``: the Keras model entry ``config`` (``{"class_name",
    "config", ...}``) in dlcore's vocabulary, and ``custom_objects`` plus any Lambda functions
    rebuilt with ``safe_mode=False``. Raises ValueError on what dlcore cannot rebuild."""
    translator = _FromKeras(custom_objects, safe_mode, where)
    entry = translator.value({"class_name": config.get("class_name"), "config": config.get("config")}, "config")
    build = config.get("build_config")
    if isinstance(build, dict) and build.get("input_shape") is not None:
        entry["build_config"] = {"input_shape": build["input_shape"]}
    compile_config = config.get("compile_config")
    if isinstance(compile_config, dict):
        entry["compile_config"] = translator.value({k: compile_config.get(k) for k in _COMPILE_KEYS},
                                                   "compile_config")
    return entry, (translator.custom_objects or None)


def _kind_of(name):
    for kind in _KERAS_MODULES:
        try:
            lookup(kind, name)
            return kind
        except ValueError:
            continue
    return None


def _to_keras_value(value, kind_hint=None):
    if isinstance(value, list):
        return [_to_keras_value(v, kind_hint) for v in value]
    if not isinstance(value, dict):
        return value
    name = value.get("class_name")
    if not isinstance(name, str) or name == "__keras_tensor__" or "config" not in value:
        return {key: _to_keras_value(item) for key, item in value.items()}
    kind = "function" if name == "function" else kind_hint or _kind_of(name)
    if name in _MODEL_MODULES:
        module = _MODEL_MODULES[name]
    elif kind in _KERAS_MODULES and getattr(lookup(kind, name), "__module__", "").startswith("dlcore."):
        module = _KERAS_MODULES[kind]
    else:
        module = None  # a user's registered class: Keras needs it registered (or custom_objects) too
    out = {"module": module}
    for key, item in value.items():
        if key == "config" and isinstance(item, dict):
            item = {k: _to_keras_value(v) for k, v in item.items()}
            if kind == "layer" and name != "InputLayer" and isinstance(item.get("dtype"), str):
                item["dtype"] = _keras_policy(item["dtype"])
        else:
            item = _to_keras_value(item)
        out[key] = item
    out["registered_name"] = None if module is not None else _registered_name(kind, name)
    return out


def _keras_policy(dtype):
    """Keras's serialized dtype policy of a dlcore ``dtype`` string: ``QuantizedDTypePolicy`` for
    ``"int8_from_float32"`` (what Keras writes for a quantized layer), else ``DTypePolicy``."""
    if "_from_" in dtype:
        mode, _, source = dtype.partition("_from_")
        return {"module": "keras.dtype_policies", "class_name": "QuantizedDTypePolicy",
                "config": {"mode": mode, "source_name": source}, "registered_name": None}
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def _registered_name(kind, name):
    """The ``"package>name"`` under which Keras finds a user's registered class (else ``name``)."""
    if kind is None:
        return name
    try:
        return get_registered_name(lookup(kind, name)) or name
    except ValueError:
        return name


def to_keras(entry, compile_config=None):
    """The dlcore model entry (``{"class_name", "config", "build_config"}``) and compile config in
    Keras 3's ``config.json`` vocabulary."""
    out = _to_keras_value({"class_name": entry["class_name"], "config": entry["config"]}, "layer")
    out["build_config"] = entry.get("build_config") or {"input_shape": None}
    if compile_config is not None:
        hints = {"optimizer": "optimizer", "loss": "loss", "metrics": "metric", "weighted_metrics": "metric"}
        keras_compile = {key: _to_keras_value(compile_config.get(key), hints.get(key)) for key in _COMPILE_KEYS}
        keras_compile.update({"run_eagerly": False, "steps_per_execution": 1, "jit_compile": False})
        out["compile_config"] = keras_compile
    return out
