"""One registry for every named family: layers, losses, metrics, optimizers, activations,
initializers, regularizers. ``compile("adam", "mse")``, ``from_config`` and model loading all
resolve names here, and refuse names they do not know."""

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
    _LOADERS.setdefault(kind, []).append((loader, None if names is None else set(names)))


def _load(kind, name):
    for loader, names in _LOADERS.get(kind, ()):
        if name is None or names is None or name in names or any(_canonical(name) == _canonical(n)
                                                                 for n in names):
            loader(name)


def _lazy_names(kind):
    return {n for _, names in _LOADERS.get(kind, ()) if names is not None for n in names}


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


def lookup(kind, name, custom_objects=None):
    """The object registered as ``name`` (exact name first, then case/underscore-insensitive)."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    table = _REGISTRY.get(kind, {})
    obj = table.get(name) or table.get(_canonical(name))
    if obj is None and kind in _LOADERS:
        _load(kind, name)
        table = _REGISTRY.get(kind, {})
        obj = table.get(name) or table.get(_canonical(name))
    if obj is None:
        known = sorted(_NAMES.get(kind, set()) | _lazy_names(kind))
        raise ValueError(f"Unknown {kind} identifier: {name!r}. Known {_PLURALS.get(kind, kind + 's')}: "
                         f"{', '.join(known)}")
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
