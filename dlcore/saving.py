"""Saving and loading models: one ``.dlc`` file, JSON and ``.npy`` arrays in a zip archive.

``model.save("m.dlc")`` writes the architecture, the weights, and (for a compiled model) the
compile configuration, the optimizer state and the random state, so ``dl.models.load_model``
returns a model that predicts bit-identically and whose ``fit`` continues exactly where the saved
one stopped. ``model.save_weights("m.weights.dlc")`` writes the weights alone.

File format (``format_version`` 1): a zip archive (``zipfile``; JSON members deflated, arrays
stored) with these members and nothing else:

``metadata.json``
    ``{"format": "dlcore", "format_version": 1, "kind": "model" | "weights" | "checkpoint",
    "dlcore_version", "numpy_version", "date_saved" (UTC, ISO 8601)}``.
``config.json`` (kind "model")
    ``{"class_name", "config", "build_config", "compile_config"}``: the model's Keras-style config
    (Sequential: its layers in order; Functional: each layer with its ``inbound_nodes``, call
    arguments whose tensors are ``{"class_name": "__keras_tensor__", "config": {"keras_history":
    [layer name, node index, tensor index]}}``, and ``input_layers`` / ``output_layers`` refs in
    the structure of the model's inputs/outputs); ``build_config`` the input shapes a subclassed
    model was built with; ``compile_config`` the optimizer (``{"class_name", "config"}``, a
    learning-rate schedule included), loss(es), loss_weights, metrics and weighted_metrics.
``weights.json``
    ``{"weights": [{"path", "layer" (class name), "name", "shape", "dtype", "member"}, ...]}``,
    one entry per ``model.weights`` entry, in that order.
``weights/00000.npy`` ...
    the weight values, ``.npy`` format 1.0/2.0, numeric dtypes only.
``training_state.json`` (compiled models, and checkpoints)
    ``{"optimizer": {"class_name", "built", "variable_indices" (positions in model.weights of
    the variables the optimizer updates), "variables": [{"name", "shape", "dtype", "member"}]},
    "rng": the bit-generator state of dlcore's global generator, "layer_rngs": the states of
    layers' own seeded generators, "training": {"epoch", "batch"} (checkpoints)}``.
``optimizer/00000.npy`` ...
    the optimizer's state arrays (``optimizer.variables``: iterations, then the slots).

Reading trusts nothing: the archive, every member (CRC), every JSON document and every array
header are checked; classes are resolved only through ``dlcore.registry`` (or ``custom_objects``)
and never imported from a module path; arrays are read with ``np.load(allow_pickle=False)`` after
their headers were checked against the manifest and the rebuilt model. Values are assigned only
after everything has been read and validated, so a bad file raises ``ValueError`` and changes
nothing. Writing goes to a temporary file in the target's directory, fsynced, then
``os.replace``-d over the target, so a failed save leaves the previous file intact.

Random state: ``load_model(..., compile=True)`` of a file saved from a compiled model restores
dlcore's global generator (``dl.utils.set_random_seed``'s) to its state at save time, so
shuffling and dropout in a resumed ``fit`` repeat the uninterrupted run; with ``compile=False``
loading leaves the global generator untouched (rebuilding the model draws no random numbers from
it). ``load_weights`` never touches it.
"""
import contextlib
import datetime
import io
import json
import math
import os
import re
import tempfile
import zipfile

import numpy as np

from .registry import KINDS, lookup

FORMAT_NAME = "dlcore"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".dlc"
WEIGHTS_SUFFIX = ".weights.dlc"

_FILE_KINDS = ("model", "weights", "checkpoint")
_JSON_MEMBERS = ("metadata.json", "config.json", "weights.json", "training_state.json")
_ARRAY_MEMBER = re.compile(r"^(weights|optimizer)/(\d{5,9})\.npy$")
_MAX_JSON_BYTES = 64 * 1024 * 1024
_MAX_NPY_HEADER = 64 * 1024 + 16
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class _FileNotFound(FileNotFoundError, ValueError):
    """A missing file: a FileNotFoundError that is also the ValueError Keras raises."""


# ================================================================================================
# public API
# ================================================================================================
def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Write ``model`` to ``filepath`` (a ``.dlc`` file): architecture, weights and, when the model
    is compiled (and ``include_optimizer``), the compile configuration, the optimizer state and the
    random state. Subclassed models need ``get_config`` (and registration) to be saved whole; use
    ``save_weights`` otherwise."""
    filepath = _check_suffix(filepath, MODEL_SUFFIX, "save")
    _check_overwrite(filepath, overwrite)
    config = {"class_name": type(model).__name__, "config": _model_config(model),
              "build_config": _build_config(model), "compile_config": None}
    training_state = None
    if include_optimizer and getattr(model, "compiled", False) and getattr(model, "optimizer", None) is not None:
        config["compile_config"] = _compile_config(model)
        training_state, optimizer_arrays = _training_state(model)
    else:
        optimizer_arrays = []
    config = _jsonable(config, "config")
    weights_manifest, weight_arrays = _weights_manifest(model)

    def write(writer):
        writer.json("metadata.json", _metadata("model"))
        writer.json("config.json", config)
        writer.json("weights.json", weights_manifest)
        for entry, array in zip(weights_manifest["weights"], weight_arrays):
            writer.array(entry["member"], array)
        if training_state is not None:
            writer.json("training_state.json", training_state)
            for entry, array in zip(training_state["optimizer"]["variables"], optimizer_arrays):
                writer.array(entry["member"], array)

    _atomic_write(filepath, write)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model saved in ``filepath`` by ``model.save``: rebuilt from its config (classes resolved
    through the registry and ``custom_objects`` only), weights loaded, and with ``compile=True``
    compiled with the saved optimizer state and random state restored. A damaged or tampered file
    raises ValueError. (``safe_mode`` is accepted for Keras compatibility: dlcore never executes
    code from a file, so loading is always safe.)"""
    filepath = _path(filepath)
    custom_objects = _check_custom_objects(custom_objects)
    with _Archive(filepath) as archive:
        archive.expect_kind(("model",), "load_model")
        config = archive.json("config.json")
        _check_model_entry(config, filepath)
        model = _rebuild(config, custom_objects, filepath, neutral_rng=True)
        weights = archive.read_weights(model)
        restore = None
        if compile and config.get("compile_config") is not None:
            _compile_from_config(model, config["compile_config"], custom_objects, filepath)
            if archive.has("training_state.json"):
                restore = archive.read_training_state(model)
        elif archive.has("training_state.json"):
            archive.skip_training_state()
        archive.check_all_members_used()
    _assign_weights(model, weights)
    if restore is not None:
        restore()
    return model


def save_weights(model, filepath, overwrite=True):
    """Write ``model.weights`` (values, paths, shapes, dtypes) to ``filepath`` (``.weights.dlc``)."""
    filepath = _check_suffix(filepath, WEIGHTS_SUFFIX, "save_weights")
    _check_overwrite(filepath, overwrite)
    manifest, arrays = _weights_manifest(model)

    def write(writer):
        writer.json("metadata.json", _metadata("weights"))
        writer.json("weights.json", manifest)
        for entry, array in zip(manifest["weights"], arrays):
            writer.array(entry["member"], array)

    _atomic_write(filepath, write)


def load_weights(model, filepath, skip_mismatch=False):
    """Load weights saved by ``save_weights`` (or ``save``) into ``model``, whose architecture must
    match: the same number of weights, each of the same layer class, name, shape and dtype, in
    order (layer names may differ). Nothing is assigned unless every weight checks out; with
    ``skip_mismatch=True`` weights whose shapes differ are skipped (with a warning) instead."""
    filepath = _path(filepath)
    with _Archive(filepath) as archive:
        archive.expect_kind(_FILE_KINDS, "load_weights")
        weights = archive.read_weights(model, skip_mismatch=skip_mismatch)
    _assign_weights(model, weights)


def model_to_json(model, **kwargs):
    """The model's architecture as a JSON string (``json.dumps`` keyword arguments apply)."""
    return json.dumps(_jsonable({"class_name": type(model).__name__, "config": _model_config(model),
                                 "build_config": _build_config(model)}, "config"), **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from ``model.to_json()`` output."""
    custom_objects = _check_custom_objects(custom_objects)
    try:
        config = json.loads(json_string)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"model_from_json: not a valid JSON model description ({exc})") from None
    _check_model_entry(config, "the JSON string")
    return _rebuild(config, custom_objects, "the JSON string", neutral_rng=False)


# ================================================================================================
# checkpoints (BackupAndRestore): weights + optimizer + random state + epoch, no architecture
# ================================================================================================
def save_checkpoint(model, filepath, training=None):
    """Write the training state of ``model`` (weights, optimizer state, random state and the
    ``training`` dict) to ``filepath``; the architecture is not saved (the model object is reused
    on restore)."""
    filepath = _path(filepath)
    weights_manifest, weight_arrays = _weights_manifest(model)
    training_state, optimizer_arrays = _training_state(model)
    training_state["training"] = _jsonable(dict(training or {}), "training")

    def write(writer):
        writer.json("metadata.json", _metadata("checkpoint"))
        writer.json("weights.json", weights_manifest)
        for entry, array in zip(weights_manifest["weights"], weight_arrays):
            writer.array(entry["member"], array)
        writer.json("training_state.json", training_state)
        for entry, array in zip(training_state["optimizer"]["variables"], optimizer_arrays):
            writer.array(entry["member"], array)

    _atomic_write(filepath, write)


def restore_checkpoint(model, filepath):
    """Restore ``save_checkpoint`` output into ``model`` (same architecture; its optimizer built
    on the same variables); returns the saved ``training`` dict. All-or-nothing."""
    filepath = _path(filepath)
    with _Archive(filepath) as archive:
        archive.expect_kind(("checkpoint",), "restore_checkpoint")
        weights = archive.read_weights(model)
        restore = archive.read_training_state(model)
        training = archive.training
        archive.check_all_members_used()
    _assign_weights(model, weights)
    restore()
    return training


# ================================================================================================
# configs
# ================================================================================================
def _model_config(model):
    from .layers.core import Lambda
    from .layers.layer import Layer
    from .models.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"Expected a dlcore Model, received {type(model).__name__}")
    owner = next(klass for klass in type(model).__mro__ if "get_config" in vars(klass))
    if owner in (Model, Layer):
        raise TypeError(
            f"Model '{model.name}' is a subclassed model ({type(model).__name__}) without its own "
            "get_config(), so its architecture cannot be saved. Save its weights with "
            "model.save_weights('model.weights.dlc') (and rebuild the model in code before "
            "load_weights), or implement get_config() returning the __init__ arguments and register "
            "the class with @dl.registry.register('layer') (or pass it as custom_objects to "
            "load_model).")
    functions = {}
    for layer in model._flatten_layers():
        if isinstance(layer, Lambda):
            fn = layer.function
            name = getattr(fn, "__name__", None)
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(
                    f"Layer '{layer.name}' (Lambda) wraps an anonymous function ({name or fn!r}). dlcore "
                    "never saves code, so a Lambda's function must be given again at load time by name: "
                    "define it with `def`, then load with load_model(path, custom_objects={'<name>': "
                    "fn}). (Symbolic arithmetic such as `x + y` on functional-API tensors makes "
                    "anonymous Lambda layers: use the Add/Multiply/... layers instead.)")
            if name in functions and functions[name] is not fn:
                raise ValueError(f"Two Lambda layers wrap different functions named '{name}'; give them "
                                 "distinct names so custom_objects can tell them apart at load time.")
            functions[name] = fn
    return model.get_config()


def _build_config(model):
    shapes = getattr(model, "_build_input_shape", None)
    return None if shapes is None else {"input_shape": shapes}


def _serialize_struct(value, serialize):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize_struct(v, serialize) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize_struct(v, serialize) for k, v in value.items()}
    return serialize(value)


def _compile_config(model):
    from . import losses, metrics, optimizers
    from .optimizers.schedules import LearningRateSchedule

    optimizer = model.optimizer
    lr = getattr(optimizer, "_learning_rate", None)
    if callable(lr) and not isinstance(lr, LearningRateSchedule):
        raise ValueError(f"The optimizer's learning_rate is a plain Python callable ({lr!r}), which "
                         "cannot be saved: use a LearningRateSchedule (dl.optimizers.schedules), or save "
                         "with include_optimizer=False.")
    return {
        "optimizer": optimizers.serialize(optimizer),
        "loss": _serialize_struct(model.loss, losses.serialize),
        "loss_weights": _serialize_struct(getattr(model, "_loss_weights", None), float),
        "metrics": _serialize_struct(getattr(model, "_metrics_arg", None), metrics.serialize),
        "weighted_metrics": _serialize_struct(getattr(model, "_weighted_metrics_arg", None), metrics.serialize),
    }


def _compile_from_config(model, config, custom_objects, filepath):
    from . import losses, metrics, optimizers

    if not isinstance(config, dict):
        raise ValueError(f"{filepath!r}: compile_config must be a JSON object")

    def leaves(value, deserialize):
        if isinstance(value, str):
            return (custom_objects or {}).get(value, value)
        if isinstance(value, dict) and "class_name" in value:
            return deserialize(value, custom_objects)
        if isinstance(value, list):
            return [leaves(v, deserialize) for v in value]
        if isinstance(value, dict):
            return {k: leaves(v, deserialize) for k, v in value.items()}
        return value

    def check_names(value, get):
        # compile resolves names on the first batch; a name unknown here must fail now, not in fit
        if isinstance(value, str):
            if get is not metrics.get or value.lower() not in ("accuracy", "acc"):
                get(value)
        elif isinstance(value, list):
            for v in value:
                check_names(v, get)
        elif isinstance(value, dict):
            for v in value.values():
                check_names(v, get)

    try:
        _check_classes(config, custom_objects, "compile_config")
        optimizer = optimizers.deserialize(config.get("optimizer") or "rmsprop", custom_objects)
        loss = leaves(config.get("loss"), losses.deserialize)
        metric_list = leaves(config.get("metrics"), metrics.deserialize)
        weighted = leaves(config.get("weighted_metrics"), metrics.deserialize)
        check_names(loss, losses.get)
        check_names(metric_list, metrics.get)
        check_names(weighted, metrics.get)
        model.compile(optimizer=optimizer, loss=loss, loss_weights=config.get("loss_weights"),
                      metrics=metric_list, weighted_metrics=weighted)
    except Exception as exc:  # noqa: BLE001  (any failure to rebuild is a bad file, reported as such)
        raise ValueError(f"{filepath!r}: could not compile the loaded model from its saved compile "
                         f"config ({type(exc).__name__}: {exc}). Pass the custom losses/metrics/optimizers "
                         "through custom_objects, or load with compile=False.") from exc


def _jsonable(value, where):
    """``value`` with tuples as lists and NumPy scalars as Python numbers; anything else that JSON
    cannot hold raises a ValueError naming where it is."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"Cannot save: the config key {k!r} at {where} is not a string")
            out[k] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 4096:
        return value.tolist()
    raise ValueError(f"Cannot save: the config value at {where} is {type(value).__name__} ({value!r:.80}), "
                     "which is not JSON-serializable. dlcore saves configs as JSON only; give the layer "
                     "plain values (numbers, strings, lists) or a registered object with get_config().")


def _metadata(kind):
    from . import __version__

    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind,
            "dlcore_version": __version__, "numpy_version": np.__version__,
            "date_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


# ================================================================================================
# weights and training state
# ================================================================================================
def _owners(model):
    owners = {}
    for layer in model._flatten_layers():
        for v in layer._trainable_variables + layer._non_trainable_variables:
            owners.setdefault(id(v), type(layer).__name__)
    return owners


def _weights_manifest(model):
    owners = _owners(model)
    entries, arrays = [], []
    for i, v in enumerate(model.weights):
        array = v.value
        entries.append({"path": str(v.path), "layer": owners.get(id(v), ""), "name": str(v.name),
                        "shape": [int(d) for d in array.shape], "dtype": array.dtype.name,
                        "member": f"weights/{i:05d}.npy"})
        arrays.append(array)
    return {"weights": entries}, arrays


def _rng_state(gen):
    return _jsonable(gen.bit_generator.state, "rng")


def _training_state(model):
    from .utils.random import generator

    optimizer = model.optimizer
    index = {id(v): i for i, v in enumerate(model.weights)}
    built = bool(getattr(optimizer, "built", False))
    indices = []
    if built:
        for v in optimizer._trainable_variables:
            if id(v) not in index:
                raise ValueError(f"Cannot save the optimizer state: the optimizer updates variable "
                                 f"'{getattr(v, 'path', v)}', which is not among the model's weights.")
            indices.append(index[id(v)])
    arrays = [np.asarray(a) for a in optimizer.variables]
    variables = [{"name": str(name), "shape": [int(d) for d in a.shape], "dtype": a.dtype.name,
                  "member": f"optimizer/{i:05d}.npy"}
                 for i, (name, a) in enumerate(zip(optimizer._variable_names, arrays))]
    layer_rngs = []
    for i, layer in enumerate(model._flatten_layers()):
        rng = getattr(layer, "_rng", None)
        if isinstance(rng, np.random.Generator):
            layer_rngs.append({"index": i, "layer": layer.name, "state": _rng_state(rng)})
    state = {"optimizer": {"class_name": type(optimizer).__name__, "built": built,
                           "variable_indices": indices, "variables": variables},
             "rng": _rng_state(generator()), "layer_rngs": layer_rngs}
    return state, arrays


def _assign_weights(model, weights):
    """Assign validated arrays (a list of (variable, array or None))."""
    for variable, array in weights:
        if array is not None:
            np.copyto(variable.value, array)


# ================================================================================================
# rebuilding a model from its config
# ================================================================================================
def _check_custom_objects(custom_objects):
    if custom_objects is None:
        return None
    if not isinstance(custom_objects, dict) or not all(isinstance(k, str) for k in custom_objects):
        raise TypeError("custom_objects must be a dict {name: class or function}")
    return custom_objects


def _check_model_entry(config, source):
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise ValueError(f"{source}: the model config must be a JSON object with 'class_name' (a string) "
                         "and 'config' (an object)")


def _is_known(name, custom_objects):
    if custom_objects and name in custom_objects:
        return True
    for kind in KINDS:
        try:
            lookup(kind, name)
            return True
        except ValueError:
            continue
    return False


def _check_classes(value, custom_objects, where):
    """Refuse, before anything is built, any class name that is not registered (or passed in
    ``custom_objects``), any module path and any ``module`` key: nothing is ever imported."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_classes(item, custom_objects, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if "class_name" in value:
        name = value["class_name"]
        if not isinstance(name, str):
            raise ValueError(f"{where}: class_name must be a string, received {name!r}")
        if value.get("module") is not None:
            raise ValueError(f"{where}: refusing the module path {value['module']!r} for class {name!r}: "
                             "dlcore resolves classes through its registry only and never imports modules "
                             "named in a file")
        if name == "__keras_tensor__":
            pass
        elif name == "function":
            fn = value.get("config")
            if not isinstance(fn, str) or not _is_known(fn, custom_objects):
                raise ValueError(f"{where}: unknown function {fn!r}: not registered with dlcore.registry "
                                 "and not passed in custom_objects")
        elif "." in name or not name.isidentifier():
            raise ValueError(f"{where}: refusing class name {name!r}: module paths are not accepted; "
                             "classes are resolved by registered name only")
        elif not _is_known(name, custom_objects):
            raise ValueError(f"{where}: unknown class {name!r}: it is not registered with dlcore.registry "
                             "(@dl.registry.register) and was not passed in custom_objects")
    for key, item in value.items():
        _check_classes(item, custom_objects, f"{where}.{key}")


def _resolve_lambdas(value, custom_objects, where):
    """Give each Lambda layer config its function, by name, from ``custom_objects``."""
    from .layers.core import Lambda

    if isinstance(value, list):
        for i, item in enumerate(value):
            _resolve_lambdas(item, custom_objects, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    name = value.get("class_name")
    if isinstance(name, str) and isinstance(value.get("config"), dict):
        try:
            cls = lookup("layer", name, custom_objects)
        except ValueError:
            cls = None
        if isinstance(cls, type) and issubclass(cls, Lambda):
            cfg = value["config"]
            fn_name = cfg.get("function")
            fn = (custom_objects or {}).get(fn_name) if isinstance(fn_name, str) else None
            if not callable(fn):
                raise ValueError(f"{where}: Lambda layer '{cfg.get('name')}' needs its function "
                                 f"{fn_name!r}, which dlcore does not store (nothing executes on load). "
                                 f"Pass it at load: custom_objects={{{fn_name!r}: fn}}.")
            cfg["function"] = fn
    for key, item in value.items():
        _resolve_lambdas(item, custom_objects, f"{where}.{key}")


@contextlib.contextmanager
def _rng_preserved(active=True):
    """Leave dlcore's global generator as it was (rebuilding a model draws initial weights)."""
    from .utils import random as dl_random

    if not active:
        yield
        return
    state = dl_random.generator().bit_generator.state
    try:
        yield
    finally:
        dl_random.generator().bit_generator.state = state


def _as_shape_struct(value):
    """JSON shapes back to tuples (a list of ints/None is one shape; other lists are structure)."""
    if isinstance(value, list) and all(v is None or (isinstance(v, int) and not isinstance(v, bool))
                                       for v in value):
        return tuple(value)
    if isinstance(value, list):
        return [_as_shape_struct(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_shape_struct(v) for k, v in value.items()}
    raise ValueError(f"invalid shape in build_config: {value!r}")


def _build_subclassed(model, build_config):
    from .autograd import no_grad
    from .tensor import Tensor

    shapes = _as_shape_struct(build_config["input_shape"])

    def zeros(struct):
        if isinstance(struct, tuple):
            if any(d is not None and d < 0 for d in struct):
                raise ValueError(f"invalid shape in build_config: {struct!r}")
            return Tensor(np.zeros(tuple(1 if d is None else d for d in struct), dtype=model.dtype))
        if isinstance(struct, list):
            return [zeros(s) for s in struct]
        return {k: zeros(v) for k, v in struct.items()}

    with no_grad():
        model(zeros(shapes), training=False)


def _rebuild(config, custom_objects, source, neutral_rng):
    import copy

    from . import layers as layers_module
    from .models.model import Model

    entry = copy.deepcopy({"class_name": config["class_name"], "config": config["config"]})
    _check_classes(entry, custom_objects, "config")  # (the compile config is checked when compiling)
    _resolve_lambdas(entry, custom_objects, "config")
    build_config = config.get("build_config")
    if build_config is not None and (not isinstance(build_config, dict) or "input_shape" not in build_config):
        raise ValueError(f"{source}: build_config must be an object with 'input_shape'")
    with _rng_preserved(neutral_rng):
        try:
            model = layers_module.deserialize(entry, custom_objects=custom_objects)
            if not isinstance(model, Model):
                raise ValueError(f"the config describes a {type(model).__name__}, not a Model")
            if build_config is not None and not model.weights:
                _build_subclassed(model, build_config)
        except Exception as exc:  # noqa: BLE001  (whatever a bad config makes a constructor raise)
            raise ValueError(f"{source}: could not rebuild the model from its config "
                             f"({type(exc).__name__}: {exc})") from exc
    return model


# ================================================================================================
# writing
# ================================================================================================
def _path(filepath):
    try:
        return os.fspath(filepath)
    except TypeError:
        raise TypeError(f"Expected a file path (str or os.PathLike), received {type(filepath).__name__}") from None


def _check_suffix(filepath, suffix, what):
    filepath = _path(filepath)
    if not filepath.endswith(suffix) or (suffix == MODEL_SUFFIX and filepath.endswith(WEIGHTS_SUFFIX)):
        if suffix == MODEL_SUFFIX:
            raise ValueError(f"model.{what}: the file name must end in `{MODEL_SUFFIX}` (dlcore's model format; "
                             f"`{WEIGHTS_SUFFIX}` is for save_weights). Received: filepath={filepath}")
        raise ValueError(f"model.{what}: the file name must end in `{WEIGHTS_SUFFIX}`. "
                         f"Received: filepath={filepath}")
    return filepath


def _check_overwrite(filepath, overwrite):
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")


_UMASK = None


def _umask():
    global _UMASK
    if _UMASK is None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("Umask:"):
                        _UMASK = int(line.split()[1], 8)
                        break
        except OSError:
            pass
        if _UMASK is None:
            _UMASK = 0o022
    return _UMASK


class _Writer:
    def __init__(self, zf):
        self.zf = zf

    def json(self, name, obj):
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        self.zf.writestr(info, json.dumps(obj, indent=1).encode("utf-8"))

    def array(self, name, array):
        array = np.asarray(array)
        if not array.flags.c_contiguous:
            array = array.copy(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
        if array.dtype.kind not in "biuf" or array.dtype.hasobject:
            raise ValueError(f"Cannot save array {name}: dtype {array.dtype} is not numeric")
        info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        with self.zf.open(info, "w", force_zip64=array.nbytes > (1 << 31) - (1 << 20)) as f:
            _write_npy(f, array)


def _write_npy(f, array):
    np.lib.format.write_array(f, array, allow_pickle=False)


def _atomic_write(filepath, write):
    """Write a zip archive with ``write(writer)`` to a temporary file next to ``filepath``, fsync
    it, then replace ``filepath`` with it: readers see the old file or the new one, never a part."""
    directory = os.path.dirname(os.path.abspath(filepath))
    base = os.path.basename(filepath)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
                write(_Writer(zf))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ================================================================================================
# reading
# ================================================================================================
def _shape_of(entry, what):
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ValueError(f"{what}: invalid shape {shape!r} in the manifest")
    return tuple(shape)


def _dtype_of(entry, what):
    name = entry.get("dtype")
    try:
        dtype = np.dtype(name) if isinstance(name, str) else None
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.hasobject or dtype.name != name:
        raise ValueError(f"{what}: invalid or non-numeric dtype {name!r} in the manifest")
    return dtype


class _Archive:
    """A validated view of a .dlc file: readable zip, known members, no duplicates, sizes bounded."""

    def __init__(self, filepath):
        self.filepath = filepath
        if not os.path.exists(filepath):
            raise _FileNotFound(2, f"File not found: filepath={filepath}. Please ensure the file is an "
                                   "accessible `.dlc` file", filepath)
        if os.path.isdir(filepath):
            raise ValueError(f"{filepath!r} is a directory, not a dlcore file")
        try:
            self.zf = zipfile.ZipFile(filepath, "r")
        except PermissionError:
            raise
        except Exception as exc:  # noqa: BLE001  (zipfile raises many kinds on damaged input)
            raise ValueError(f"{filepath!r} is not a valid dlcore file: it is not a readable zip archive "
                             f"({type(exc).__name__}: {exc}); the file may be truncated or corrupted") from None
        self.used = set()
        self.training = None
        try:
            self._index()
        except BaseException:
            self.zf.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zf.close()

    def _fail(self, message):
        raise ValueError(f"{self.filepath!r}: {message}")

    def _index(self):
        self.infos = {}
        for info in self.zf.infolist():
            name = info.filename
            if name in self.infos:
                self._fail(f"duplicate member {name!r} (the archive was tampered with)")
            if name not in _JSON_MEMBERS and not _ARRAY_MEMBER.match(name):
                self._fail(f"unexpected member {name!r}: not part of the dlcore format")
            if info.flag_bits & 0x1:
                self._fail(f"member {name!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                self._fail(f"member {name!r} uses an unsupported compression method ({info.compress_type})")
            self.infos[name] = info
        for required in ("metadata.json", "weights.json"):
            if required not in self.infos:
                self._fail(f"missing member {required!r}: not a dlcore file, or a damaged one")
        meta = self.json("metadata.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            self._fail("metadata.json does not identify a dlcore file")
        version = meta.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            self._fail(f"invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            self._fail(f"written in format version {version} (by dlcore {meta.get('dlcore_version')}); this "
                       f"dlcore reads format versions up to {FORMAT_VERSION}: upgrade dlcore")
        if meta.get("kind") not in _FILE_KINDS:
            self._fail(f"unknown file kind {meta.get('kind')!r}")
        self.meta = meta

    def has(self, name):
        return name in self.infos

    def expect_kind(self, kinds, what):
        kind = self.meta["kind"]
        if kind not in kinds:
            hint = {"weights": " (a weights file: build the model in code, then model.load_weights)",
                    "checkpoint": " (a BackupAndRestore checkpoint)"}.get(kind, "")
            self._fail(f"{what} expects a {' or '.join(kinds)} file, but this is a {kind} file{hint}")
        if kind == "model" and "config.json" not in self.infos:
            self._fail("missing member 'config.json'")

    def _read(self, name):
        info = self.infos.get(name)
        if info is None:
            self._fail(f"missing member {name!r}")
        self.used.add(name)
        try:
            return self.zf.read(info)
        except Exception as exc:  # noqa: BLE001  (BadZipFile, CRC, zlib.error, EOFError, OSError...)
            self._fail(f"member {name!r} is corrupted ({type(exc).__name__}: {exc})")

    def json(self, name):
        info = self.infos.get(name)
        if info is None:
            self._fail(f"missing member {name!r}")
        if info.file_size > _MAX_JSON_BYTES:
            self._fail(f"member {name!r} is implausibly large ({info.file_size} bytes)")
        data = self._read(name)
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self._fail(f"member {name!r} is not valid JSON ({exc})")

    def array(self, member, shape, dtype, what):
        info = self.infos.get(member)
        if info is None:
            self._fail(f"{what}: missing member {member!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        if not nbytes + 10 <= info.file_size <= nbytes + _MAX_NPY_HEADER:
            self._fail(f"{what}: member {member!r} has {info.file_size} bytes, which cannot hold an array of "
                       f"shape {shape} and dtype {dtype}")
        data = self._read(member)
        buf = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(buf)
            if version == (1, 0):
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(buf)
            elif version == (2, 0):
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(buf)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except Exception as exc:  # noqa: BLE001
            self._fail(f"{what}: member {member!r} is not a valid .npy array ({exc})")
        if file_dtype.hasobject or file_dtype.kind not in "biuf":
            self._fail(f"{what}: member {member!r} holds dtype {file_dtype} (Python objects would need "
                       "unpickling, which dlcore never does); refused")
        if tuple(file_shape) != shape or file_dtype != dtype:
            self._fail(f"{what}: member {member!r} holds an array of shape {tuple(file_shape)} and dtype "
                       f"{file_dtype}, but the manifest says shape {shape} and dtype {dtype}")
        if len(data) - buf.tell() != nbytes:
            self._fail(f"{what}: member {member!r} has {len(data) - buf.tell()} data bytes, expected {nbytes}")
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            self._fail(f"{what}: member {member!r} could not be read ({exc})")
        if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
            self._fail(f"{what}: member {member!r} did not decode to shape {shape} and dtype {dtype}")
        return array

    # ---- weights --------------------------------------------------------------------------------
    def read_weights(self, model, skip_mismatch=False):
        """[(variable, array or None)] for ``model.weights``, every entry validated: the same count,
        and for each the same layer class, variable name, shape and dtype, in order. (Paths are
        not compared: layer names may differ, e.g. a subclassed model's auto-named sublayers.)"""
        import warnings

        manifest = self.json("weights.json")
        entries = manifest.get("weights") if isinstance(manifest, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            self._fail("weights.json must be an object with a 'weights' list")
        variables = model.weights
        if not variables and entries:
            raise ValueError(f"Model '{model.name}' has no weights yet, but {self.filepath!r} holds "
                             f"{len(entries)}: build the model first (call it on data, or model.build(shape))")
        if len(entries) != len(variables):
            raise ValueError(f"{self.filepath!r} holds {len(entries)} weights, but model '{model.name}' has "
                             f"{len(variables)}: the architectures differ")
        owners = _owners(model)
        out = []
        for i, (entry, variable) in enumerate(zip(entries, variables)):
            path = entry.get("path")
            what = f"weight {i} ({path!r})"
            if not isinstance(path, str) or entry.get("member") != f"weights/{i:05d}.npy":
                self._fail(f"{what}: invalid manifest entry {entry!r:.200}")
            shape, dtype = _shape_of(entry, what), _dtype_of(entry, what)
            layer_class, name = owners.get(id(variable), ""), variable.name
            if entry.get("layer") != layer_class or entry.get("name") != name:
                raise ValueError(f"{self.filepath!r}: architecture mismatch at weight {i}: the file has "
                                 f"{path!r} ({entry.get('layer')}.{entry.get('name')}), the model has "
                                 f"{variable.path!r} ({layer_class}.{name})")
            if shape != tuple(variable.shape) or dtype != variable.value.dtype:
                if skip_mismatch and dtype == variable.value.dtype:
                    warnings.warn(f"Skipping weight {variable.path!r}: the file holds shape {shape}, the model "
                                  f"expects {tuple(variable.shape)}", stacklevel=3)
                    self.used.add(entry["member"])
                    out.append((variable, None))
                    continue
                raise ValueError(f"{self.filepath!r}: weight {variable.path!r} (weight {i}) expects shape "
                                 f"{tuple(variable.shape)} and dtype {variable.value.dtype}, but the file holds "
                                 f"shape {shape} and dtype {dtype}")
            out.append((variable, self.array(entry["member"], shape, dtype, what)))
        return out

    # ---- optimizer and random state --------------------------------------------------------------
    def read_training_state(self, model):
        """Validate training_state.json and its arrays against ``model`` (compiled); returns a
        function applying them (optimizer state, global and layer random states)."""
        from .utils import random as dl_random

        state = self.json("training_state.json")
        if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
            self._fail("training_state.json must be an object with an 'optimizer' object")
        opt = state["optimizer"]
        optimizer = model.optimizer
        if optimizer is None:
            raise ValueError(f"Model '{model.name}' is not compiled: compile it before restoring a checkpoint")
        if opt.get("class_name") != type(optimizer).__name__:
            raise ValueError(f"{self.filepath!r}: the saved optimizer is {opt.get('class_name')!r}, the model's "
                             f"is {type(optimizer).__name__!r}")
        entries = opt.get("variables")
        indices = opt.get("variable_indices")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries) \
                or not isinstance(indices, list):
            self._fail("invalid optimizer manifest in training_state.json")
        weights = model.weights
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(weights) for i in indices) \
                or len(set(indices)) != len(indices):
            self._fail("invalid optimizer variable_indices")
        targets = [weights[i] for i in indices]
        built = opt.get("built") is True
        apply_steps = []
        if built:
            if optimizer.built:
                known = optimizer._trainable_variables
                if len(known) != len(targets) or any(a is not b for a, b in zip(known, targets)):
                    raise ValueError(f"{self.filepath!r}: the model's optimizer is built on other variables "
                                     "than the saved one")
            else:
                optimizer.build(targets)
            own_names, own_arrays = optimizer._variable_names, optimizer.variables
            if len(entries) != len(own_arrays):
                raise ValueError(f"{self.filepath!r}: the saved optimizer has {len(entries)} state arrays, the "
                                 f"model's has {len(own_arrays)}")
            arrays = []
            for i, (entry, own_name, own) in enumerate(zip(entries, own_names, own_arrays)):
                what = f"optimizer variable {i} ({entry.get('name')!r})"
                if entry.get("member") != f"optimizer/{i:05d}.npy" or not isinstance(entry.get("name"), str):
                    self._fail(f"{what}: invalid manifest entry")
                shape, dtype = _shape_of(entry, what), _dtype_of(entry, what)
                if shape != own.shape or dtype != own.dtype:
                    raise ValueError(f"{self.filepath!r}: optimizer variable {own_name!r} expects shape "
                                     f"{own.shape} and dtype {own.dtype}, but the file holds shape {shape} and "
                                     f"dtype {dtype}")
                arrays.append(self.array(entry["member"], shape, dtype, what))
            apply_steps.append(lambda: optimizer.set_state(arrays))
        else:
            if len(entries) > 1:
                self._fail("an unbuilt optimizer cannot have slot variables")
            for i, entry in enumerate(entries):
                if entry.get("member") != f"optimizer/{i:05d}.npy":
                    self._fail("invalid optimizer manifest entry")
                self.array(entry["member"], _shape_of(entry, "optimizer"), _dtype_of(entry, "optimizer"),
                           "optimizer variable 0")
        rng = state.get("rng")
        if rng is not None:
            checked = _checked_rng_state(dl_random.generator(), rng, self)
            apply_steps.append(lambda: setattr(dl_random.generator().bit_generator, "state", checked))
        layers = model._flatten_layers()
        for item in state.get("layer_rngs") or []:
            if not isinstance(item, dict) or not isinstance(item.get("index"), int) \
                    or not 0 <= item["index"] < len(layers):
                self._fail("invalid layer_rngs entry")
            layer_rng = getattr(layers[item["index"]], "_rng", None)
            if isinstance(layer_rng, np.random.Generator):
                checked_layer = _checked_rng_state(layer_rng, item.get("state"), self)
                apply_steps.append(lambda g=layer_rng, s=checked_layer: setattr(g.bit_generator, "state", s))
        training = state.get("training")
        if training is not None and not isinstance(training, dict):
            self._fail("invalid training metadata")
        self.training = training

        def apply():
            for step in apply_steps:
                step()

        return apply

    def skip_training_state(self):
        """Account for the training state's members without applying them (compile=False)."""
        state = self.json("training_state.json")
        opt = state.get("optimizer") if isinstance(state, dict) else None
        entries = opt.get("variables") if isinstance(opt, dict) else None
        if not isinstance(entries, list):
            self._fail("invalid optimizer manifest in training_state.json")
        for i, entry in enumerate(entries):
            member = f"optimizer/{i:05d}.npy"
            if not isinstance(entry, dict) or entry.get("member") != member or member not in self.infos:
                self._fail("invalid optimizer manifest in training_state.json")
            self.used.add(member)

    def check_all_members_used(self):
        unused = sorted(set(self.infos) - self.used)
        if unused:
            self._fail(f"unexpected members {unused[:5]} that the manifests do not list (tampered file)")


def _checked_rng_state(gen, state, archive):
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if name not in _BIT_GENERATORS or name != type(gen.bit_generator).__name__:
        archive._fail(f"invalid or incompatible random state (bit generator {name!r})")
    try:
        scratch = type(gen.bit_generator)()
        scratch.state = state
    except Exception as exc:  # noqa: BLE001
        archive._fail(f"invalid random state ({exc})")
    return scratch.state


__all__ = ["save_model", "load_model", "save_weights", "load_weights", "model_to_json", "model_from_json",
           "save_checkpoint", "restore_checkpoint", "FORMAT_VERSION"]
