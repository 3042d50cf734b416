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

Reading trusts nothing, and bounds time and memory before it parses or allocates (limits in
``archive.py`` and ``model_config.py``): only a regular file is opened; array members must be
stored (their sizes are then bounded by the file's), JSON members are capped in bytes (8 MiB;
metadata 64 KiB), containers and nesting (100 levels), and every member is read in bounded chunks
with its CRC checked. Every ``.npy`` header is checked against the manifest before the model is
rebuilt; rebuilding then takes each weight's shape from those headers (a layer that declares any
other shape is refused before its weight is allocated) and runs no initializer, as the file's
values overwrite the weights. Classes are resolved only through ``dlcore.registry`` (or
``custom_objects``) and never imported from a module path; arrays are never unpickled. Values are
assigned only after everything has been read and validated, so a bad file raises ``ValueError``
and changes nothing. Writing goes to a temporary file in the target's directory, fsynced, then
``os.replace``-d over the target, so a failed save leaves the previous file intact (and the next
save removes the temporary file of a save that was killed).

Random state: ``load_model(..., compile=True)`` of a file saved from a compiled model restores
dlcore's global generator (``dl.utils.set_random_seed``'s) to its state at save time, so
shuffling and dropout in a resumed ``fit`` repeat the uninterrupted run; with ``compile=False``
loading leaves the global generator untouched (rebuilding the model draws no random numbers from
it). ``load_weights`` never touches it.
"""
import datetime
import io
import json
import math
import os
import re
import warnings
import zipfile

import numpy as np

from .. import devices

from .archive import MAX_JSON_BYTES, ZipReader, atomic_zip_write
from .model_config import (check_custom_objects, check_model_entry, compile_config, compile_from_config,
                           jsonable, model_build_config, model_config, rebuild)

FORMAT_NAME = "dlcore"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".dlc"
WEIGHTS_SUFFIX = ".weights.dlc"

_FILE_KINDS = ("model", "weights", "checkpoint")
_JSON_MEMBERS = ("metadata.json", "config.json", "weights.json", "training_state.json")
_ARRAY_MEMBER = re.compile(r"^(weights|optimizer)/(\d{5,9})\.npy$")
_MAX_METADATA_BYTES = 64 * 1024
_MAX_NPY_HEADER = 64 * 1024 + 16
_ARRAY_CAP = 1 << 62  # (array members are stored uncompressed: the file's own size bounds them)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


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
    config = {"class_name": type(model).__name__, "config": model_config(model),
              "build_config": model_build_config(model), "compile_config": None}
    training_state = None
    if include_optimizer and getattr(model, "compiled", False) and getattr(model, "optimizer", None) is not None:
        config["compile_config"] = compile_config(model)
        training_state, optimizer_arrays = _training_state(model)
    else:
        optimizer_arrays = []
    config = jsonable(config, "config")
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
    custom_objects = check_custom_objects(custom_objects)
    with _Archive(filepath) as archive:
        archive.expect_kind(("model",), "load_model")
        config = archive.json("config.json")
        check_model_entry(config, filepath)
        model = rebuild(config, custom_objects, filepath, neutral_rng=True,
                        weight_shapes=archive.stored_weight_shapes())
        weights = archive.read_weights(model)
        restore = None
        if compile and config.get("compile_config") is not None:
            compile_from_config(model, config["compile_config"], custom_objects, filepath)
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
    training_state["training"] = jsonable(dict(training or {}), "training")

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


def _metadata(kind):
    from .. import __version__

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
        array = v.numpy()  # GPU weights are copied out
        entries.append({"path": str(v.path), "layer": owners.get(id(v), ""), "name": str(v.name),
                        "shape": [int(d) for d in array.shape], "dtype": array.dtype.name,
                        "member": f"weights/{i:05d}.npy"})
        arrays.append(array)
    return {"weights": entries}, arrays


def _rng_state(gen):
    return jsonable(gen.bit_generator.state, "rng")


def _training_state(model):
    from ..utils.random import generator

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
    arrays = [np.asarray(devices.to_host(a)) for a in optimizer.variables]
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
            variable.assign(array)  # host or GPU; an int8 kernel held packed repacks on its next call


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
    atomic_zip_write(filepath, lambda zf: write(_Writer(zf)))


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


def _member_cap(name):
    if name == "metadata.json":
        return _MAX_METADATA_BYTES
    if name in _JSON_MEMBERS:
        return MAX_JSON_BYTES
    return _ARRAY_CAP if _ARRAY_MEMBER.match(name) else None


class _Archive:
    """A validated view of a .dlc file: a regular file, a readable zip, known members, no
    duplicates, every member's size bounded (arrays stored, so the file's size bounds them)."""

    def __init__(self, filepath):
        self.filepath = filepath
        self.reader = ZipReader(filepath, _member_cap, stored_only=_ARRAY_MEMBER.match)
        self.infos = self.reader.infos
        self.used = set()
        self.training = None
        self._manifest = None
        try:
            self._check_metadata()
        except BaseException:
            self.reader.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.reader.close()

    def _fail(self, message):
        self.reader.fail(message)

    def _check_metadata(self):
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
            self._fail(f"written in format version {version} (by dlcore {meta.get('dlcore_version')!r:.40}); "
                       f"this dlcore reads format versions up to {FORMAT_VERSION}: upgrade dlcore")
        if meta.get("kind") not in _FILE_KINDS:
            self._fail(f"unknown file kind {meta.get('kind')!r:.40}")
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

    def json(self, name):
        self.used.add(name)
        return self.reader.json(name)

    def _header(self, member, shape, dtype, what):
        """The data offset of .npy member ``member`` after checking its size and header (read
        alone, in a bounded way) against ``shape`` and ``dtype``; also whether it is Fortran-ordered."""
        info = self.infos.get(member)
        if info is None:
            self._fail(f"{what}: missing member {member!r}")
        nbytes = math.prod(shape) * dtype.itemsize
        if not nbytes + 10 <= info.file_size <= nbytes + _MAX_NPY_HEADER:
            self._fail(f"{what}: member {member!r} has {info.file_size} bytes, which cannot hold an array of "
                       f"shape {shape} and dtype {dtype}")
        buf = io.BytesIO(self.reader.read(member, limit=min(info.file_size, _MAX_NPY_HEADER)))
        try:
            version = np.lib.format.read_magic(buf)
            if version == (1, 0):
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_1_0(buf)
            elif version == (2, 0):
                file_shape, fortran, file_dtype = np.lib.format.read_array_header_2_0(buf)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except Exception as exc:  # noqa: BLE001
            self._fail(f"{what}: member {member!r} is not a valid .npy array ({str(exc)[:200]})")
        if file_dtype.hasobject or file_dtype.kind not in "biuf":
            self._fail(f"{what}: member {member!r} holds dtype {file_dtype} (Python objects would need "
                       "unpickling, which dlcore never does); refused")
        if tuple(file_shape) != shape or file_dtype != dtype:
            self._fail(f"{what}: member {member!r} holds an array of shape {tuple(file_shape)} and dtype "
                       f"{file_dtype}, but the manifest says shape {shape} and dtype {dtype}")
        if info.file_size - buf.tell() != nbytes:
            self._fail(f"{what}: member {member!r} has {info.file_size - buf.tell()} data bytes, expected {nbytes}")
        return buf.tell(), fortran

    def array(self, member, shape, dtype, what):
        offset, fortran = self._header(member, shape, dtype, what)
        data = self.reader.read(member)
        self.used.add(member)
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype)
        flat = np.frombuffer(data, dtype=dtype, offset=offset)
        array = flat.reshape(shape[::-1]).T if fortran else flat.reshape(shape)
        return np.array(array, order="C")  # (writable, owning its memory)

    def weight_entries(self):
        """The checked weights.json entries: [(entry, shape, dtype, what)], every member present with
        a .npy header that agrees with its entry."""
        if self._manifest is None:
            manifest = self.json("weights.json")
            entries = manifest.get("weights") if isinstance(manifest, dict) else None
            if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
                self._fail("weights.json must be an object with a 'weights' list")
            checked = []
            for i, entry in enumerate(entries):
                path = entry.get("path")
                what = f"weight {i} ({path!r:.200})"
                if not isinstance(path, str) or entry.get("member") != f"weights/{i:05d}.npy":
                    self._fail(f"{what}: invalid manifest entry {entry!r:.200}")
                shape, dtype = _shape_of(entry, what), _dtype_of(entry, what)
                self._header(entry["member"], shape, dtype, what)
                checked.append((entry, shape, dtype, what))
            self._manifest = checked
        return self._manifest

    def stored_weight_shapes(self):
        """The shapes of the weights the file holds (checked against their .npy headers)."""
        return [shape for _, shape, _, _ in self.weight_entries()]

    # ---- weights --------------------------------------------------------------------------------
    def read_weights(self, model, skip_mismatch=False):
        """[(variable, array or None)] for ``model.weights``, every entry validated: the same count,
        and for each the same layer class, variable name, shape and dtype, in order. (Paths are
        not compared: layer names may differ, e.g. a subclassed model's auto-named sublayers.)"""
        entries = self.weight_entries()
        variables = model.weights
        if not variables and entries:
            raise ValueError(f"Model '{model.name}' has no weights yet, but {self.filepath!r} holds "
                             f"{len(entries)}: build the model first (call it on data, or model.build(shape))")
        if len(entries) != len(variables):
            raise ValueError(f"{self.filepath!r} holds {len(entries)} weights, but model '{model.name}' has "
                             f"{len(variables)}: the architectures differ")
        owners = _owners(model)
        out = []
        for i, ((entry, shape, dtype, what), variable) in enumerate(zip(entries, variables)):
            path = entry["path"]
            layer_class, name = owners.get(id(variable), ""), variable.name
            if entry.get("layer") != layer_class or entry.get("name") != name:
                raise ValueError(f"{self.filepath!r}: architecture mismatch at weight {i}: the file has "
                                 f"{path!r:.200} ({entry.get('layer')!r:.100}.{entry.get('name')!r:.100}), "
                                 "the model has "
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
        from ..utils import random as dl_random

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
