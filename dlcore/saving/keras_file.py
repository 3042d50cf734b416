"""Keras 3 files without TensorFlow: ``.keras`` models, ``.weights.h5`` weights, and legacy
(Keras 2 style) ``.h5`` models for reading.

``.keras`` is a zip archive of ``metadata.json``, ``config.json`` (the architecture and compile
config in Keras's vocabulary, translated by ``keras_config``) and ``model.weights.h5``, whose tree
Keras builds by walking the object graph: a model's ``layers`` list first (each layer under
``snake_case(ClassName)``, deduplicated ``_1``, ``_2``... in list order), then its attributes in
sorted order (private ones last); every layer's own variables (trainable, then non-trainable, in
creation order) at ``<path>/vars/<i>`` with the layer's name as the group's ``name`` attribute;
the optimizer at ``optimizer/vars``: iteration, learning rate, then its slots in creation order.
dlcore's layers and optimizers mirror Keras's attribute names and creation orders, so the same
walk over a dlcore model names the same paths; every shape is checked on both sides.

Reading bounds what ``.dlc`` bounds, through ``archive.py``: a regular file only, the zip's
members known, capped and read in bounded chunks, JSON capped in size and nesting; in HDF5 only
hard links are followed (an external or soft link could read another file), only numeric,
non-virtual datasets with internal storage are read, each after its shape was checked against
the variable it fills. Nothing is assigned unless the whole file checked out. A Lambda's stored
bytecode is refused unless ``safe_mode=False``; nothing else in a file can run code. h5py is an
optional dependency (``pip install dlcore[keras]``), imported only when an HDF5 file is used.
"""
import datetime
import io
import json
import os
import re
import warnings

import numpy as np


from .archive import MAX_JSON_BYTES, ZipReader, atomic_zip_write, open_regular_file, parse_json
from .keras_config import from_keras, to_keras
from .model_config import (check_custom_objects, check_model_entry, compile_config, compile_from_config, jsonable,
                           model_build_config, model_config, rebuild)

KERAS_SUFFIX = ".keras"
WEIGHTS_SUFFIX = ".weights.h5"
LEGACY_SUFFIXES = (".h5", ".hdf5")
KERAS_VERSION = "3.15.1"  # the Keras release whose format this module writes and was verified against
MAX_H5_BYTES = 1 << 34    # the HDF5 member of a .keras file, uncompressed (16 GiB)
_MAX_METADATA_BYTES = 64 * 1024
_WEIGHTS_MEMBER = "model.weights.h5"
_MAX_H5_DEPTH = 100          # group nesting in a weights file (as the JSON bound)
_MAX_H5_OBJECTS = 1_000_000  # groups and datasets listed while reading the stored shapes
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("Reading and writing Keras HDF5 files (.keras, .weights.h5, .h5) needs h5py: "
                          "pip install 'dlcore[keras]' (or pip install h5py)") from None
    return h5py


def is_keras_path(filepath):
    """Whether ``filepath`` names a Keras format (by its extension)."""
    lower = str(filepath).lower()
    return lower.endswith(KERAS_SUFFIX) or lower.endswith(LEGACY_SUFFIXES)


# ================================================================================================
# Keras's object walk, over a dlcore model
# ================================================================================================
def to_snake_case(name):
    """Keras's ``naming.to_snake_case``: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _children(obj, layer_type):
    from ..models.functional import Functional
    from ..models.sequential import Sequential

    if isinstance(obj, (Sequential, Functional)):
        yield "layers", list(obj.layers)
    for attr in sorted(dir(obj), key=lambda a: f"~{a}" if a.startswith("_") else a):
        if attr.startswith("__") or attr in ("optimizer", "_self_setattr_tracking"):
            continue
        try:
            child = getattr(obj, attr)
        except Exception:  # noqa: BLE001  (a property that cannot be computed now, as Keras skips it)
            continue
        if isinstance(child, layer_type) or isinstance(child, (list, tuple)) and child \
                and all(isinstance(c, layer_type) for c in child):
            yield attr, child


def _keras_variable_order(layer, own):
    """``own`` in the order Keras serializes a quantized layer (``variable_serialization_spec``: Dense and
    EinsumDense ``kernel, bias, kernel_scale``, Embedding ``embeddings, embeddings_scale``): the int8
    kernels first, then the other weights, then the scales. dlcore's int8 convolutions and recurrent cells
    (which Keras 3.15 cannot quantize) follow the same rule: ``kernel, bias, kernel_scale, input_scale``;
    ``kernel, recurrent_kernel, bias, kernel_scale, recurrent_kernel_scale``."""
    if getattr(layer, "quantization_mode", None) is None:
        return own
    rank = [0 if v.dtype == np.int8 else 2 if v.name.endswith("_scale") else 1 for v in own]
    return [v for _, _, v in sorted(zip(rank, range(len(own)), own), key=lambda t: t[:2])]


def keras_entries(model):
    """[(h5 path of the ``vars`` group, layer, its own variables)] in Keras's walk order."""
    from ..layers.layer import Layer

    entries, visited = [], set()

    def visit(layer, path):
        if id(layer) in visited:
            return
        visited.add(id(layer))
        own = _keras_variable_order(layer, list(layer._trainable_variables) + list(layer._non_trainable_variables))
        entries.append((f"{path}/vars" if path else "vars", layer, own))
        for attr, child in _children(layer, Layer):
            sub = f"{path}/{attr}" if path else attr
            if isinstance(child, Layer):
                visit(child, sub)
                continue
            used = {}
            for item in child:
                base = to_snake_case(type(item).__name__)
                count = used.get(base, 0)
                used[base] = count + 1
                visit(item, f"{sub}/{base}" if count == 0 else f"{sub}/{base}_{count}")

    visit(model, "")
    return entries


# ================================================================================================
# HDF5: safe reading and writing of the weights tree
# ================================================================================================
class _H5Reader:
    """Bounded access to a Keras weights HDF5 file: hard links only, numeric internal datasets."""

    def __init__(self, source, where):
        h5py = _h5py()
        self.h5py = h5py
        self.where = where
        try:
            self.file = h5py.File(source, "r")
        except Exception as exc:  # noqa: BLE001  (h5py raises OSError and others on damaged data)
            raise ValueError(f"{where}: not a readable HDF5 file ({type(exc).__name__}: {str(exc)[:200]})") from None

    def close(self):
        self.file.close()

    def fail(self, message):
        raise ValueError(f"{self.where}: {message}")

    def get(self, path):
        """The object at ``path`` (None if absent), following hard links only."""
        node = self.file
        for part in [p for p in path.split("/") if p]:
            if not isinstance(node, self.h5py.Group):
                self.fail(f"{path!r}: {node.name!r} is not a group")
            try:
                link = node.get(part, getlink=True)
            except Exception as exc:  # noqa: BLE001
                self.fail(f"{path!r}: unreadable ({type(exc).__name__}: {exc})")
            if link is None:
                return None
            if not isinstance(link, self.h5py.HardLink):
                self.fail(f"{path!r}: {type(link).__name__} refused (a link may point into another file); "
                          "only hard links are followed")
            try:
                node = node[part]
            except Exception as exc:  # noqa: BLE001
                self.fail(f"{path!r}: unreadable ({type(exc).__name__}: {exc})")
        return node

    def attr(self, node, name):
        try:
            value = node.attrs.get(name)
        except Exception:  # noqa: BLE001
            return None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, np.ndarray):
            value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value.ravel()]
        return value

    def dataset(self, node, shape, dtype, what):
        """The array in dataset ``node``, after checking it is numeric, of ``shape``, stored here."""
        if not isinstance(node, self.h5py.Dataset):
            self.fail(f"{what}: expected a dataset, found {type(node).__name__}")
        try:
            file_dtype, file_shape = node.dtype, tuple(node.shape)
            virtual, external = node.is_virtual, node.external
        except Exception as exc:  # noqa: BLE001
            self.fail(f"{what}: unreadable dataset ({type(exc).__name__}: {exc})")
        if file_dtype.kind not in "biuf" or file_dtype.hasobject or file_dtype.fields is not None:
            self.fail(f"{what}: dataset of dtype {file_dtype}, expected a numeric one")
        if virtual or external:
            self.fail(f"{what}: virtual or externally stored dataset refused (it reads other files)")
        if file_shape != tuple(shape):
            raise ValueError(f"{self.where}: {what} expects shape {tuple(shape)}, but the file holds shape "
                             f"{file_shape}")
        out = np.empty(file_shape, dtype=file_dtype)
        try:
            if out.size:
                node.read_direct(out)
        except Exception as exc:  # noqa: BLE001
            self.fail(f"{what}: unreadable data ({type(exc).__name__}: {exc})")
        return out.astype(dtype, copy=False)

    def stored_shapes(self, root="", skip=()):
        """(shapes, by_layer) without reading any data: the shape of every dataset under ``root``
        (hard links only) but those in its groups named in ``skip``, and {layer name: [shapes in
        variable order]} for each ``vars`` group that names its layer (Keras's ``name`` attribute)."""
        top = self.get(root) if root else self.file
        if top is None:
            return [], {}
        shapes, by_layer, stack, seen = [], {}, [(top, 0)], 0
        while stack:
            node, depth = stack.pop()
            if depth > _MAX_H5_DEPTH:
                self.fail(f"{node.name!r}: groups nested more than {_MAX_H5_DEPTH} levels")
            try:
                keys = list(node.keys())
            except Exception as exc:  # noqa: BLE001
                self.fail(f"{node.name!r}: unreadable group ({type(exc).__name__}: {exc})")
            seen += len(keys)
            if seen > _MAX_H5_OBJECTS:
                self.fail(f"more than {_MAX_H5_OBJECTS} objects in the weights file")
            own = {}
            for key in keys:
                if depth == 0 and key in skip:
                    continue
                child = self.get(f"{node.name.rstrip('/')}/{key}")
                if isinstance(child, self.h5py.Group):
                    stack.append((child, depth + 1))
                elif isinstance(child, self.h5py.Dataset) and child.shape is not None:
                    own[key] = tuple(int(d) for d in child.shape)
            shapes.extend(own.values())
            name = self.attr(node, "name") if node.name.rsplit("/", 1)[-1] == "vars" else None
            if isinstance(name, str) and own:
                by_layer.setdefault(name, []).extend(own[k] for k in sorted(own, key=lambda k: (len(k), k)))
        return shapes, by_layer

    def vars_group(self, path, count, what):
        """The datasets ``path/0..count-1``; the group may be absent only when ``count`` is 0."""
        node = self.get(path)
        if node is None:
            if count:
                self.fail(f"{what}: missing group {path!r}")
            return None, []
        if not isinstance(node, self.h5py.Group):
            self.fail(f"{what}: {path!r} is not a group")
        keys = list(node.keys())
        if sorted(keys) != sorted(str(i) for i in range(count)):
            raise ValueError(f"{self.where}: {what} has {count} variables, but the file holds {len(keys)} at "
                             f"{path!r}: the architectures differ")
        return node, [self.get(f"{path}/{i}") for i in range(count)]


def _read_model_weights(reader, model, check_names):
    """[(variable, array)] for every variable of ``model``, from Keras's tree."""
    out = []
    for path, layer, variables in keras_entries(model):
        what = f"layer '{layer.name}' ({type(layer).__name__})"
        node, datasets = reader.vars_group(path, len(variables), what)
        # names are checked where the config gave them (a functional/sequential model's layers)
        if check_names and node is not None and variables and re.fullmatch(r"layers/[^/]+/vars", path):
            name = reader.attr(node, "name")
            if name is not None and name != layer.name:
                reader.fail(f"{path!r} holds the weights of layer {name!r:.100}, expected '{layer.name}'")
        for i, (variable, dataset) in enumerate(zip(variables, datasets)):
            out.append((variable, reader.dataset(dataset, variable.shape, variable.value.dtype,
                                                 f"{what} variable {i} ({variable.name})")))
    return out


def _keras_optimizer_arrays(optimizer):
    """The optimizer's variables in Keras's order: iteration, learning rate (unless a schedule),
    then the slots (dlcore creates them in Keras's order)."""
    from ..optimizers.schedules import LearningRateSchedule

    state = [np.asarray(a) for a in optimizer.variables]
    arrays = [state[0].astype(np.int64)]
    if not isinstance(optimizer._learning_rate, LearningRateSchedule):
        arrays.append(np.asarray(optimizer.learning_rate, dtype=np.float32))
    return arrays + state[1:]


def _read_optimizer(reader, model):
    """A function restoring the optimizer state stored at ``optimizer/vars`` (None when absent
    or unusable, with a warning, as Keras skips an optimizer whose variables do not match)."""
    optimizer = model.optimizer
    node = reader.get("optimizer/vars")
    if node is None or optimizer is None:
        return None
    if not isinstance(node, reader.h5py.Group):
        reader.fail("'optimizer/vars' is not a group")
    count = len(node.keys())
    if count <= 1:
        return None  # an optimizer saved before its first step holds the iteration count only
    was_built = optimizer.built
    if not was_built:
        optimizer.build(model.trainable_variables)
    state = optimizer.variables
    has_lr = count == len(state) + 1
    if count not in (len(state), len(state) + 1):
        warnings.warn(f"Skipping the optimizer state in {reader.where}: optimizer '{optimizer.name}' has "
                      f"{len(state)} variables, the file {count}", stacklevel=4)
        return None
    _, datasets = reader.vars_group("optimizer/vars", count, f"optimizer '{optimizer.name}'")
    iteration = reader.dataset(datasets[0], (), np.int64, "optimizer iteration")
    learning_rate = reader.dataset(datasets[1], (), np.float64, "optimizer learning rate") if has_lr else None
    slots = datasets[2 if has_lr else 1:]
    arrays = [iteration.astype(state[0].dtype)] + [
        reader.dataset(d, s.shape, s.dtype, f"optimizer slot {i}") for i, (d, s) in enumerate(zip(slots, state[1:]))]

    def apply():
        optimizer.set_state(arrays)
        if learning_rate is not None and float(learning_rate) != np.float32(optimizer.learning_rate):
            optimizer.learning_rate = float(learning_rate)

    return apply


def _write_weights_h5(target, model, include_optimizer):
    h5py = _h5py()
    with h5py.File(target, "w") as f:
        for path, layer, variables in keras_entries(model):
            group = f.require_group(path)
            group.attrs["name"] = layer.name
            for i, variable in enumerate(variables):
                group.create_dataset(str(i), data=np.asarray(variable.value))
        optimizer = getattr(model, "optimizer", None)
        if include_optimizer and optimizer is not None and getattr(model, "compiled", False):
            group = f.require_group("optimizer/vars")
            group.attrs["name"] = str(optimizer.name)
            if optimizer.built:
                for i, array in enumerate(_keras_optimizer_arrays(optimizer)):
                    group.create_dataset(str(i), data=array)


def _assign(pairs):
    for variable, array in pairs:
        variable.assign(array)  # host or GPU; an int8 kernel held packed repacks on its next call


# ================================================================================================
# .keras models
# ================================================================================================
def _member_cap(name):
    if name == "metadata.json":
        return _MAX_METADATA_BYTES
    if name == "config.json":
        return MAX_JSON_BYTES
    if name == _WEIGHTS_MEMBER:
        return MAX_H5_BYTES
    if name == "assets/":
        return 0
    return None


def save_model(model, filepath, overwrite=True, include_optimizer=True):
    """Write ``model`` as a Keras 3 ``.keras`` file (config, compile config, weights, optimizer
    state) that Keras's ``load_model`` and dlcore's read back."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    entry = {"class_name": type(model).__name__, "config": model_config(model),
             "build_config": model_build_config(model)}
    compiled = include_optimizer and getattr(model, "compiled", False) and model.optimizer is not None
    config = to_keras(jsonable(entry, "config"), jsonable(compile_config(model), "compile_config") if compiled
                      else None)
    metadata = {"keras_version": KERAS_VERSION, "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buffer = io.BytesIO()
    _write_weights_h5(buffer, model, include_optimizer)

    def write(zf):
        import zipfile

        for name, data, method in (("metadata.json", json.dumps(metadata).encode(), zipfile.ZIP_DEFLATED),
                                   ("config.json", json.dumps(config).encode(), zipfile.ZIP_DEFLATED),
                                   (_WEIGHTS_MEMBER, buffer.getvalue(), zipfile.ZIP_STORED)):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

    atomic_zip_write(filepath, write)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model in the Keras 3 ``.keras`` file ``filepath``, rebuilt with dlcore's layers; with
    ``compile=True`` compiled from its compile config with the optimizer state restored."""
    filepath = os.fspath(filepath)
    custom_objects = check_custom_objects(custom_objects)
    reader = ZipReader(filepath, _member_cap, stored_only=lambda name: False)
    try:
        for required in ("config.json", _WEIGHTS_MEMBER):
            if required not in reader.infos:
                reader.fail(f"missing member {required!r}: not a Keras 3 `.keras` file (or a damaged one)")
        if "metadata.json" in reader.infos:
            reader.json("metadata.json")
        keras_config = reader.json("config.json")
        weights_bytes = reader.read(_WEIGHTS_MEMBER)
    finally:
        reader.close()
    check_model_entry(keras_config, filepath)
    entry, custom_objects = from_keras(keras_config, custom_objects, safe_mode, repr(filepath))
    h5 = _H5Reader(io.BytesIO(weights_bytes), f"{filepath!r}: member {_WEIGHTS_MEMBER!r}")
    try:
        # the stored shapes first: rebuilding allocates only weights of shapes the file holds
        shapes, by_layer = h5.stored_shapes(skip=("optimizer",))
        model = rebuild(entry, custom_objects, repr(filepath), neutral_rng=True, weight_shapes=shapes,
                        shapes_by_layer=by_layer)
        pairs = _read_model_weights(h5, model, check_names=True)
        restore = None
        if compile and entry.get("compile_config") is not None:
            compile_from_config(model, entry["compile_config"], custom_objects, filepath)
            restore = _read_optimizer(h5, model)
    finally:
        h5.close()
    _assign(pairs)
    if restore is not None:
        restore()
    return model


# ================================================================================================
# .weights.h5
# ================================================================================================
def save_weights(model, filepath, overwrite=True):
    """Write the model's weights (and a compiled model's optimizer state, as Keras does) to a
    Keras 3 ``.weights.h5`` file."""
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    buffer = io.BytesIO()
    _write_weights_h5(buffer, model, include_optimizer=True)
    data = buffer.getvalue()
    directory = os.path.dirname(os.path.abspath(filepath))
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(filepath)}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_weights(model, filepath, skip_mismatch=False):
    """Load a Keras 3 ``.weights.h5`` file into ``model`` (built, same architecture); a legacy
    Keras 2 ``.h5`` file is read by layer name. All or nothing."""
    filepath = os.fspath(filepath)
    if not model.weights:
        raise ValueError(f"Model '{model.name}' has no weights yet: build it (call it on data, or "
                         "model.build(shape)) before load_weights")
    f, _ = open_regular_file(filepath)
    try:
        h5 = _H5Reader(f, repr(filepath))
        try:
            if h5.get("model_weights") is not None or h5.get("layers") is None and h5.attr(h5.file, "layer_names"):
                pairs = _read_legacy_weights(h5, model, skip_mismatch)
                restore = None
            else:
                pairs = _read_model_weights(h5, model, check_names=False)
                restore = _read_optimizer(h5, model) if getattr(model, "compiled", False) else None
        finally:
            h5.close()
    finally:
        f.close()
    _assign(pairs)
    if restore is not None:
        restore()


# ================================================================================================
# legacy Keras 2 style .h5 (reading)
# ================================================================================================
def _legacy_nodes(entry):
    """Keras 2 ``inbound_nodes`` ([[name, node, tensor, kwargs], ...] per node) in Keras 3's form."""
    nodes = entry.get("inbound_nodes")
    if not isinstance(nodes, list) or not nodes or isinstance(nodes[0], dict):
        return nodes
    out = []
    for node in nodes:
        if not isinstance(node, list):
            raise ValueError(f"invalid legacy inbound node {node!r:.100}")
        tensors = [{"class_name": "__keras_tensor__", "config": {"keras_history": list(ref[:3])}} for ref in node
                   if isinstance(ref, list) and len(ref) >= 3]
        kwargs = node[0][3] if node and isinstance(node[0], list) and len(node[0]) > 3 \
            and isinstance(node[0][3], dict) else {}
        out.append({"args": [tensors[0] if len(tensors) == 1 else tensors], "kwargs": kwargs})
    return out


def _read_legacy_weights(h5, model, skip_mismatch=False):
    root = h5.get("model_weights")
    root = h5.file if root is None else root
    names = h5.attr(root, "layer_names") or []
    by_name = {layer.name: layer for layer in model._flatten_layers() if layer is not model}
    out = []
    for name in names:
        layer = by_name.get(name)
        group = h5.get(f"{root.name}/{name}")
        weight_names = h5.attr(group, "weight_names") or [] if group is not None else []
        if layer is None:
            if weight_names:
                h5.fail(f"the file holds weights for layer {name!r:.100}, which the model does not have")
            continue
        variables = layer.weights
        if len(weight_names) != len(variables):
            h5.fail(f"layer '{name}' has {len(variables)} weights, the file {len(weight_names)}")
        for weight_name, variable in zip(weight_names, variables):
            node = h5.get(f"{group.name}/{weight_name}")
            if node is None:
                h5.fail(f"missing weight {weight_name!r:.100} of layer '{name}'")
            try:
                out.append((variable, h5.dataset(node, variable.shape, variable.value.dtype,
                                                 f"layer '{name}' weight {weight_name!r:.100}")))
            except ValueError:
                if not skip_mismatch:
                    raise
                warnings.warn(f"Skipping weight {variable.path!r}: its shape differs in the file", stacklevel=4)
    return out


def load_legacy_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """The model in a legacy (Keras 2 style) ``.h5`` file: ``model_config`` and ``training_config``
    attributes, weights under ``model_weights`` by layer and weight name (optimizer state not
    restored: a warning says so)."""
    filepath = os.fspath(filepath)
    custom_objects = check_custom_objects(custom_objects)
    f, _ = open_regular_file(filepath)
    try:
        h5 = _H5Reader(f, repr(filepath))
        try:
            raw = h5.attr(h5.file, "model_config")
            if not isinstance(raw, str):
                h5.fail("no 'model_config' attribute: a weights-only file (use model.load_weights), or not a "
                        "Keras model file")
            keras_config = parse_json(raw, f"{filepath!r}: model_config")
            check_model_entry(keras_config, filepath)
            layers = keras_config["config"].get("layers")
            if isinstance(layers, list):
                for layer_entry in layers:
                    if isinstance(layer_entry, dict) and "inbound_nodes" in layer_entry:
                        layer_entry["inbound_nodes"] = _legacy_nodes(layer_entry)
            training = h5.attr(h5.file, "training_config")
            if compile and isinstance(training, str):
                training = parse_json(training, f"{filepath!r}: training_config")
                keras_config["compile_config"] = {
                    "optimizer": training.get("optimizer_config"), "loss": training.get("loss"),
                    "loss_weights": training.get("loss_weights"), "metrics": _legacy_metrics(training),
                    "weighted_metrics": training.get("weighted_metrics")}
            entry, custom_objects = from_keras(keras_config, custom_objects, safe_mode, repr(filepath))
            root = "model_weights" if h5.get("model_weights") is not None else ""
            shapes, _ = h5.stored_shapes(root, skip=("optimizer_weights",))
            model = rebuild(entry, custom_objects, repr(filepath), neutral_rng=True, weight_shapes=shapes)
            pairs = _read_legacy_weights(h5, model)
            if h5.get("optimizer_weights") is not None and compile:
                warnings.warn(f"{filepath!r}: the optimizer state of a legacy .h5 file is not restored",
                              stacklevel=2)
        finally:
            h5.close()
    finally:
        f.close()
    if compile and entry.get("compile_config") is not None:
        compile_from_config(model, entry["compile_config"], custom_objects, filepath)
    _assign(pairs)
    return model


def _legacy_metrics(training):
    metrics = training.get("metrics")
    if isinstance(metrics, list) and len(metrics) == 1 and isinstance(metrics[0], list):
        return metrics[0]  # Keras 3's legacy writer nests a single output's metrics
    return metrics
