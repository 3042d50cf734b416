"""One registry for every named family: layers, losses, metrics, optimizers, activations,
initializers, regularizers. ``compile("adam", "mse")``, ``from_config`` and model loading all
resolve names here, and refuse names they do not know."""

_REGISTRY = {}
_NAMES = {}  # kind -> the names given explicitly (for error messages)

KINDS = ("layer", "loss", "metric", "optimizer", "activation", "initializer", "regularizer",
         "constraint", "callback", "schedule")


_PLURALS = {"loss": "losses"}


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
    if obj is None:
        known = sorted(_NAMES.get(kind, ()))
        raise ValueError(f"Unknown {kind} identifier: {name!r}. Known {_PLURALS.get(kind, kind + 's')}: "
                         f"{', '.join(known)}")
    return obj


def names(kind):
    """Every object of ``kind``, by its primary (class or function) name."""
    table = _REGISTRY.get(kind, {})
    return sorted({obj.__name__: obj for obj in table.values()})


def registered(kind):
    """{primary name: object} for ``kind``."""
    table = _REGISTRY.get(kind, {})
    return {obj.__name__: obj for obj in table.values()}
