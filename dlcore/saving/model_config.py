"""Model configs for saving and loading, shared by every file format: serializing a model's
architecture and compile configuration to JSON-able values, and rebuilding a model from them
with every class resolved through ``dlcore.registry`` (or ``custom_objects``) only, never imported
from a module path. Rebuilding checks the config's size and nesting first, and can be given the
shapes of the weights a file holds, so that a layer declaring any other shape is refused before
its weight is allocated and no initializer runs for weights the file will overwrite."""
import contextlib
import json
import math

import numpy as np

from ..registry import KINDS, find, lookup, registered_now
from .archive import check_json_value

MAX_METRIC_STATE = 10**7        # values in one metric's state (thresholds x labels, classes^2)
MAX_BUILD_ELEMENTS = 1 << 24    # values in the zero input that builds a subclassed model
MAX_LAYERS = 20_000             # layers in one model config (rebuilding one costs about 0.2 ms)

def model_config(model):
    from ..layers.core import Lambda
    from ..layers.layer import Layer
    from ..models.model import Model

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


def model_build_config(model):
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


def compile_config(model):
    from .. import losses, metrics, optimizers
    from ..optimizers.schedules import LearningRateSchedule

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


def compile_from_config(model, config, custom_objects, filepath):
    from .. import losses, metrics, optimizers

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

    _check_metric_sizes(config.get("metrics"), f"{filepath!r}: compile_config.metrics")
    _check_metric_sizes(config.get("weighted_metrics"), f"{filepath!r}: compile_config.weighted_metrics")
    try:
        check_classes(config, custom_objects, "compile_config")
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


def _check_metric_sizes(value, where):
    """Refuse metric configs whose state would exceed ``MAX_METRIC_STATE`` elements (thresholds
    times labels, or a classes x classes confusion matrix) before any metric is constructed."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
            continue
        if not isinstance(item, dict):
            continue
        stack.extend(item.values())
        counts = {}
        for key in ("num_thresholds", "num_labels", "num_classes"):
            n = item.get(key)
            if isinstance(n, (int, float)) and not isinstance(n, bool):
                counts[key] = n
        thresholds = item.get("thresholds")
        if isinstance(thresholds, list):
            counts["num_thresholds"] = max(counts.get("num_thresholds", 1), len(thresholds))
        state = max(counts.get("num_thresholds", 1) * counts.get("num_labels", 1), counts.get("num_classes", 1) ** 2)
        if state > MAX_METRIC_STATE:
            raise ValueError(f"{where}: a metric config declares {counts}, a state of more than "
                             f"{MAX_METRIC_STATE} values; refused")


def jsonable(value, where):
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
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"Cannot save: the config key {k!r} at {where} is not a string")
            out[k] = jsonable(v, f"{where}.{k}")
        return out
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size <= 4096:
        return value.tolist()
    raise ValueError(f"Cannot save: the config value at {where} is {type(value).__name__} ({value!r:.80}), "
                     "which is not JSON-serializable. dlcore saves configs as JSON only; give the layer "
                     "plain values (numbers, strings, lists) or a registered object with get_config().")



def check_custom_objects(custom_objects):
    if custom_objects is None:
        return None
    if not isinstance(custom_objects, dict) or not all(isinstance(k, str) for k in custom_objects):
        raise TypeError("custom_objects must be a dict {name: class or function}")
    return custom_objects


def check_model_entry(config, source):
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str) \
            or not isinstance(config.get("config"), dict):
        raise ValueError(f"{source}: the model config must be a JSON object with 'class_name' (a string) "
                         "and 'config' (an object)")


def _is_known(name, custom_objects):
    if custom_objects and name in custom_objects:
        return True
    if any(registered_now(kind, name) for kind in KINDS):  # a loaded family's: no other family loads
        return True
    return any(find(kind, name) is not None for kind in KINDS)


def _is_layer(name, custom_objects):
    return find("layer", name, custom_objects) is not None


def _objects(value, where):
    """Every JSON object in ``value`` with its location (``where.key[i]...``), depth first and
    without recursion; the location is a chain of keys made a string only when asked for."""
    stack = [(value, (where,))]
    while stack:
        item, chain = stack.pop()
        if isinstance(item, dict):
            yield item, chain
            children = item.items()
        else:
            children = enumerate(item)
        stack.extend((child, (chain, key)) for key, child in children if isinstance(child, (dict, list)))


def _location(chain):
    keys = []
    while len(chain) == 2:
        chain, key = chain
        keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
    return chain[0] + "".join(reversed(keys))


def check_classes(value, custom_objects, where):
    """Refuse, before anything is built, any class name that is not registered (or passed in
    ``custom_objects``), any module path and any ``module`` key: nothing is ever imported. More
    than ``MAX_LAYERS`` layers are refused too (rebuilding each costs time and memory)."""
    layers = 0
    for item, chain in _objects(value, where):
        if "class_name" not in item:
            continue
        name = item["class_name"]
        if not isinstance(name, str):
            raise ValueError(f"{_location(chain)}: class_name must be a string, received {name!r:.100}")
        if item.get("module") is not None:
            raise ValueError(f"{_location(chain)}: refusing the module path {item['module']!r:.100} for class "
                             f"{name!r:.100}: dlcore resolves classes through its registry only and never "
                             "imports modules named in a file")
        if name == "__keras_tensor__":
            continue
        if name == "function":
            fn = item.get("config")
            if not isinstance(fn, str) or not _is_known(fn, custom_objects):
                raise ValueError(f"{_location(chain)}: unknown function {fn!r:.100}: not registered with "
                                 "dlcore.registry and not passed in custom_objects")
        elif "." in name or not name.isidentifier():
            raise ValueError(f"{_location(chain)}: refusing class name {name!r:.100}: module paths are not "
                             "accepted; classes are resolved by registered name only")
        elif not _is_known(name, custom_objects):
            raise ValueError(f"{_location(chain)}: unknown class {name!r:.100}: it is not registered with "
                             "dlcore.registry (@dl.registry.register) and was not passed in custom_objects")
        else:
            layers += _is_layer(name, custom_objects)
            if layers > MAX_LAYERS:
                raise ValueError(f"{where}: the config describes more than {MAX_LAYERS} layers; refused")


def resolve_lambdas(value, custom_objects, where):
    """Give each Lambda layer config its function, by name, from ``custom_objects``."""
    from ..layers.core import Lambda

    for item, chain in _objects(value, where):
        name = item.get("class_name")
        if not isinstance(name, str) or not isinstance(item.get("config"), dict):
            continue
        try:
            cls = lookup("layer", name, custom_objects)
        except ValueError:
            continue
        if isinstance(cls, type) and issubclass(cls, Lambda):
            cfg = item["config"]
            fn_name = cfg.get("function")
            fn = (custom_objects or {}).get(fn_name) if isinstance(fn_name, str) else None
            if not callable(fn):
                raise ValueError(f"{_location(chain)}: Lambda layer '{cfg.get('name')!s:.100}' needs its function "
                                 f"{fn_name!r:.100}, which dlcore does not store (nothing executes on load). "
                                 f"Pass it at load: custom_objects={{{fn_name!r:.100}: fn}}.")
            cfg["function"] = fn


@contextlib.contextmanager
def _rng_preserved(active=True):
    """Leave dlcore's global generator as it was (rebuilding a model draws initial weights). One
    not made yet has no state to keep (and loading a saved model never needs numpy.random)."""
    from ..utils import random as dl_random

    if not active or not dl_random.generator_created():
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
    from ..autograd import no_grad
    from ..tensor import Tensor

    shapes = _as_shape_struct(build_config["input_shape"])

    def zeros(struct):
        if isinstance(struct, tuple):
            if any(d is not None and d < 0 for d in struct):
                raise ValueError(f"invalid shape in build_config: {struct!r}")
            if math.prod(1 if d is None else d for d in struct) > MAX_BUILD_ELEMENTS:
                raise ValueError(f"build_config input shape {struct!r} has more than {MAX_BUILD_ELEMENTS} "
                                 "values per sample; refused")
            return Tensor(np.zeros(tuple(1 if d is None else d for d in struct), dtype=model.dtype))
        if isinstance(struct, list):
            return [zeros(s) for s in struct]
        return {k: zeros(v) for k, v in struct.items()}

    with no_grad():
        model(zeros(shapes), training=False)


@contextlib.contextmanager
def _weights_from_file(shapes, shapes_by_layer=None):
    """While rebuilding, ``Layer.add_weight`` takes each weight's shape from ``shapes`` (those the
    file holds, each usable once) and returns zeros instead of running the initializer; a shape the
    file does not hold is refused before anything is allocated. ``shapes`` None: initialize.
    ``shapes_by_layer`` ({layer name: [shapes]}, where the file says): named in the refusal."""
    if shapes is None:
        yield
        return
    from ..layers.layer import WEIGHT_FROM_FILE

    remaining = {}
    for shape in shapes:
        remaining[shape] = remaining.get(shape, 0) + 1

    def from_file(layer, name, shape, dtype):
        if remaining.get(shape, 0) <= 0:
            if shapes_by_layer and layer.name in shapes_by_layer:
                held = f"the file holds shapes {shapes_by_layer[layer.name][:8]} for layer '{layer.name}'"
            else:
                held = f"unused shapes in the file include {sorted(remaining, key=math.prod, reverse=True)[:5]}"
            raise ValueError(f"the config declares weight '{layer.name}/{name}' of shape {shape} (layer "
                             f"'{layer.name}', {type(layer).__name__}), but the file holds no (other) weight of "
                             f"that shape; refused before allocating it ({held})")
        remaining[shape] -= 1
        return np.zeros(shape, dtype=dtype)

    token = WEIGHT_FROM_FILE.set(from_file)
    try:
        yield
    finally:
        WEIGHT_FROM_FILE.reset(token)


def rebuild(config, custom_objects, source, neutral_rng, weight_shapes=None, shapes_by_layer=None):
    """The model described by ``config`` (``{"class_name", "config", "build_config"}``), checked
    first. ``weight_shapes``: the shapes of the weights the file holds; when given, no
    initializer runs and a layer declaring another shape is refused before allocating it
    (``shapes_by_layer``: {layer name: the shapes the file holds for it}, for the message)."""
    from .. import layers as layers_module
    from ..models.model import Model

    check_json_value(config, f"{source}: the model config")
    # a copy (the caller's config is left as it was); the value is plain JSON, bounded in depth
    entry = json.loads(json.dumps({"class_name": config["class_name"], "config": config["config"]}))
    check_classes(entry, custom_objects, "config")  # (the compile config is checked when compiling)
    resolve_lambdas(entry, custom_objects, "config")
    build_config = config.get("build_config")
    if build_config is not None and (not isinstance(build_config, dict) or "input_shape" not in build_config):
        raise ValueError(f"{source}: build_config must be an object with 'input_shape'")
    with _rng_preserved(neutral_rng), _weights_from_file(weight_shapes, shapes_by_layer):
        try:
            model = layers_module.deserialize(entry, custom_objects=custom_objects)
            if not isinstance(model, Model):
                raise ValueError(f"the config describes a {type(model).__name__}, not a Model")
            if build_config is not None and not model.weights:
                _build_subclassed(model, build_config)
        except Exception as exc:  # noqa: BLE001  (whatever a bad config makes a constructor raise)
            raise ValueError(f"{source}: could not rebuild the model from its config "
                             f"({type(exc).__name__}: {str(exc)[:1000]})") from exc
    return model
