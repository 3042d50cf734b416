"""Lazy package members: ``dl.layers.LSTM`` imports ``dlcore.layers.recurrent`` on first use, so that
``import dlcore`` + loading a saved model + predicting imports only the modules that model needs.

Imports nothing of dlcore but the registry, which it tells how to load a member by name (a saved
model names its layers; ``compile("adam")`` names its optimizer).
"""
import importlib


def lazy_members(package, namespace, members, kind=None):
    """Install PEP 562 ``__getattr__``/``__dir__`` in ``namespace`` (a package's globals).

    members: {attribute: submodule relative to ``package``}; the attribute is the submodule's
    attribute of that name, or the submodule itself when the attribute is the submodule's name.
    kind: the registry kind the submodules register (their members are loaded on a lookup miss).
    """
    canonical = {_canonical(name): sub for name, sub in members.items()}

    def load(sub):
        return importlib.import_module(f"{package}.{sub}")

    def __getattr__(name):
        sub = members.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = load(sub)
        value = module if sub.rpartition(".")[2] == name else getattr(module, name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(members))

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__
    if kind is not None:
        from . import registry

        def loader(name):
            sub = None if name is None else members.get(name) or canonical.get(_canonical(name))
            for s in [sub] if sub is not None else sorted(set(members.values())):
                load(s)

        registry.add_loader(kind, loader, members)


def _canonical(name):
    return name.lower().replace("_", "")
