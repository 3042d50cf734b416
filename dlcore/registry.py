"""One registry for every named family: layers, losses, metrics, optimizers, activations,
initializers, regularizers. ``compile("adam", "mse")``, ``from_config`` and model loading all
resolve names here, and refuse names they do not know.

User objects: ``register_keras_serializable(package, name)`` adds a class or function to the
global custom objects under ``"package>name"`` (Keras 3's registered name), and
``custom_object_scope`` makes a dict of objects visible for a ``with`` block; ``lookup`` sees
both, for every kind, so ``load_model`` finds them without ``custom_objects``."""
import threading

_REGISTRY = {}
_NAMES = {}  # kind -> the names given explicitly (for error messages)

KINDS = ("layer", "loss", "metric", "optimizer", "activation", "initializer", "regularizer",
         "constraint", "callback", "schedule")


_PLURALS = {"loss": "losses"}

# kind -> [(loader, names)]: loader(name) imports the lazily loaded module that registers ``name``
# (None: every one); names: the names it can register (None: unknown, so it is called on any miss).
# Packages that import their members on first use (dlcore.layers, dlcore.optimizers, ...) add one.
_LOADERS = {}


def add_loader(kind, loader, names=None):
    """Let ``lookup`` call ``loader(name)`` on a miss for one of ``names`` (any name when None), and
    ``names``/``registered`` call ``loader(None)``, so that a lazily imported module registers its
    objects before they are looked up."""
    canonical = None if names is None else {_canonical(n) for n in names}
    _LOADERS.setdefault(kind, []).append((loader, None if names is None else set(names), canonical))


def _load(kind, name):
    for loader, names, canonical in _LOADERS.get(kind, ()):
        if (name is None or names is None or name in names
                or isinstance(name, str) and _canonical(name) in canonical):
            loader(name)


def _lazy_names(kind):
    return {n for _, names, _ in _LOADERS.get(kind, ()) if names is not None for n in names}


def _canonical(name):
    return name.lower().replace("_", "")


def register(kind, *names):
    """Class/function decorator: ``@register("layer")`` registers under the object's __name__
    (and any extra ``names``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {KINDS}")

    def decorate(obj):
        table = _REGISTRY.setdefault(kind, {})
        for name in (obj.__name__,) + names:
            table[name] = obj
            table.setdefault(_canonical(name), obj)
            _NAMES.setdefault(kind, set()).add(name)
        return obj

    return decorate


# ---- user objects: Keras 3's object_registration ---------------------------------------------
_CUSTOM_OBJECTS = {}  # "package>name" (or any key a user sets) -> object
_CUSTOM_NAMES = {}  # object -> "package>name"
_SCOPE = threading.local()  # .objects: the dict of the innermost custom_object_scope


def register_keras_serializable(package="Custom", name=None):
    """Decorator: register a class (it must have ``get_config``) or function as
    ``"package>name"`` (``name`` defaults to its ``__name__``) in the global custom objects, so
    that loading and deserializing find it without ``custom_objects``."""
    for arg, value in (("package", package), ("name", name)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"register_keras_serializable: {arg} must be a string; received "
                            f"{arg}={value!r}")

    def decorator(obj):
        if not callable(obj):
            raise TypeError(f"register_keras_serializable: expected a class or a function; "
                            f"received {obj!r}")
        if isinstance(obj, type) and not hasattr(obj, "get_config"):
            raise ValueError("Cannot register a class that does not have a get_config() method.")
        registered_name = f"{package}>{name if name is not None else obj.__name__}"
        _CUSTOM_OBJECTS[registered_name] = obj
        _CUSTOM_NAMES[obj] = registered_name
        return obj

    return decorator


def get_custom_objects():
    """The global custom objects dict (``"package>name"`` -> object), mutable as in Keras."""
    return _CUSTOM_OBJECTS


def get_registered_name(obj):
    """``"package>name"`` for an object registered with ``register_keras_serializable``, else
    its ``__name__``."""
    return _CUSTOM_NAMES.get(obj, getattr(obj, "__name__", None))


class CustomObjectScope:
    """``with custom_object_scope({"name": obj}):`` makes ``obj`` resolvable by ``name`` inside
    the block (the innermost scope's dict replaces the outer one, as in Keras 3)."""

    def __init__(self, custom_objects):
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise TypeError(f"custom_object_scope expects a dict {{name: object}}; received "
                            f"{type(custom_objects).__name__}")
        self.custom_objects = dict(custom_objects or {})
        self.backup = None

    def __enter__(self):
        self.backup = getattr(_SCOPE, "objects", {})
        _SCOPE.objects = dict(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _SCOPE.objects = self.backup


custom_object_scope = CustomObjectScope


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The object known as ``name`` in the active scope, the global custom objects,
    ``custom_objects`` or ``module_objects`` (in that order), or None."""
    scope = getattr(_SCOPE, "objects", {})
    for table in (scope, _CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


def _custom_by_short_name(name):
    """A global custom object saved under its bare class name ("MyLayer" for "Custom>MyLayer")."""
    found = {id(obj): obj for key, obj in _CUSTOM_OBJECTS.items()
             if key.rpartition(">")[2] == name or getattr(obj, "__name__", None) == name}
    if len(found) > 1:
        candidates = sorted(k for k, obj in _CUSTOM_OBJECTS.items() if id(obj) in found)
        raise ValueError(f"The name {name!r} matches several registered custom objects: {candidates}; "
                         f"pass the one meant in custom_objects")
    return next(iter(found.values()), None)


def registered_now(kind, name):
    """Whether ``name`` is a global custom object or registered as ``kind`` already: no lazily
    loaded family is imported to find out (see ``lookup`` for that)."""
    table = _REGISTRY.get(kind, {})
    return name in table or _canonical(name) in table or get_registered_object(name) is not None


def lookup(kind, name, custom_objects=None):
    """The object known as ``name``: in ``custom_objects``, the active custom_object_scope or the
    global custom objects, then the ``kind`` registry (exact name first, then
    case/underscore-insensitive), then a custom object by its bare class name."""
    obj = find(kind, name, custom_objects)
    if obj is None:
        known = sorted(_NAMES.get(kind, set()) | _lazy_names(kind))
        raise ValueError(f"Unknown {kind} identifier: {name!r}. Known {_PLURALS.get(kind, kind + 's')}: "
                         f"{', '.join(known)}")
    return obj


def find(kind, name, custom_objects=None):
    """What ``lookup`` finds, or None (no error message is built: checks that expect misses)."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    obj = get_registered_object(name)
    if obj is not None:
        return obj
    table = _REGISTRY.get(kind, {})
    obj = table.get(name) or table.get(_canonical(name))
    if obj is None and kind in _LOADERS:
        _load(kind, name)
        table = _REGISTRY.get(kind, {})
        obj = table.get(name) or table.get(_canonical(name))
    if obj is None:
        obj = _custom_by_short_name(name)
    return obj


def names(kind):
    """Every object of ``kind``, by its primary (class or function) name."""
    _load(kind, None)
    table = _REGISTRY.get(kind, {})
    return sorted({obj.__name__: obj for obj in table.values()})


def registered(kind):
    """{primary name: object} for ``kind``."""
    _load(kind, None)
    table = _REGISTRY.get(kind, {})
    return {obj.__name__: obj for obj in table.values()}


# ---- the identifier protocol: get / serialize / deserialize, once for every kind ----------------
def _from_config(cls, config, custom_objects):
    """``cls.from_config(config)``, passing ``custom_objects`` where from_config accepts it."""
    from_config = getattr(cls, "from_config", None)
    if from_config is None:
        return cls(**config)
    code = getattr(getattr(from_config, "__func__", from_config), "__code__", None)
    if code is not None and "custom_objects" in code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]:
        return from_config(config, custom_objects=custom_objects)
    return from_config(config)


def serialize(kind, obj, base=None):
    """Keras 3's serialized form of ``obj``: ``{"class_name": ..., "config": ...}`` for an object
    with ``get_config``, the name for a function, None for None. With ``base``, only instances
    of ``base`` are accepted."""
    if base is not None and not isinstance(obj, base):
        raise ValueError(f"Could not serialize {kind} {obj!r}: expected an instance of {base.__name__}")
    if obj is None:
        return None
    if hasattr(obj, "get_config") and not isinstance(obj, type):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    if callable(obj) and hasattr(obj, "__name__"):
        return obj.__name__
    raise ValueError(f"Could not serialize {kind} {obj!r}")


def deserialize(kind, config, custom_objects=None, names=True, instantiate_names=True):
    """The ``kind`` object described by ``config``: a registered (or ``custom_objects``) name,
    or a dict ``{"class_name": ..., "config": ...}`` (``{"class_name": "function", "config":
    name}``, Keras's form for a function, included). A class is built with ``from_config``; a
    name of a class gives an instance when ``instantiate_names``; ``names=False`` refuses names."""
    if isinstance(config, str) and names:
        obj = lookup(kind, config, custom_objects)
        return obj() if instantiate_names and isinstance(obj, type) else obj
    if not isinstance(config, dict) or "class_name" not in config:
        expected = "a name or a dict" if names else "a dict"
        raise ValueError(f"Could not deserialize {kind}: expected {expected} with 'class_name' and "
                         f"'config', received {config!r}")
    name, inner = config["class_name"], config.get("config")
    if name == "function" and isinstance(inner, str):
        return lookup(kind, inner, custom_objects)
    obj = lookup(kind, name, custom_objects)
    if isinstance(obj, type):
        return _from_config(obj, dict(inner or {}), custom_objects)
    return obj


def get(kind, identifier, custom_objects=None, *, accept=callable, default=None, names=True,
        instantiate_classes=True, wrap=None, what=None):
    """Keras 3's ``<module>.get``: None -> ``default``; a name or a config dict -> deserialized;
    a class -> an instance (``instantiate_classes``); anything ``accept`` admits -> itself;
    another callable -> ``wrap(obj)`` when ``wrap`` is given. ``what`` names the kind in the
    error (``"activation function"``)."""
    if identifier is None:
        return default
    obj = identifier
    if isinstance(identifier, (str, dict)):
        obj = deserialize(kind, identifier, custom_objects, names=names)
    elif isinstance(identifier, type) and instantiate_classes:
        obj = identifier()
    if accept(obj):
        return obj
    if wrap is not None and callable(obj):
        return wrap(obj)
    raise ValueError(f"Could not interpret {what or kind} identifier: {identifier!r}")
