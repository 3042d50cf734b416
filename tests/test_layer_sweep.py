"""Every registered layer has a ``check_layer`` case (the harness: shapes, config round trips,
weights, finite differences, a fit step), found by reading the tests, as thinc's
test_layers_api sweeps its registry."""
import ast
import pathlib

import dlcore as dl
from dlcore import registry

TESTS = pathlib.Path(__file__).resolve().parent

# Registered layers the harness cannot take as they are, each with the reason and where it is tested.
NOT_HARNESSED = {
    "Functional": "a model, not a layer to build on one input: tests/models",
    "Sequential": "a model, not a layer to build on one input: tests/models",
    "InputLayer": "has no call on data (it is the graph's input): tests/layers/test_core.py, tests/models",
    "Lambda": "its Python function does not survive a config round trip (Keras needs safe_mode=False "
              "too): tests/layers/test_core.py",
    "StringLookup": "takes strings, which the harness's random inputs are not: "
                    "tests/layers/preprocessing/test_lookup.py (Keras parity, a model with a string Input)",
    "TextVectorization": "takes strings, which the harness's random inputs are not: "
                         "tests/layers/preprocessing/test_text.py (Keras parity, saving, fit/predict on strings)",
}


def _identifiers(node):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute):
            yield sub.attr
        elif isinstance(sub, ast.Name):
            yield sub.id


def _calls_check_layer(function):
    for node in ast.walk(function):
        if isinstance(node, ast.Call):
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if callee == "check_layer":
                return True
    return False


def harnessed_names():
    """Identifiers used by test functions that call check_layer: in their bodies, their
    decorators (parametrize) and, transitively, the module-level tables those name."""
    names = set()
    for path in TESTS.rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        tables = {target.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                  for target in node.targets if isinstance(target, ast.Name)}
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef) or not _calls_check_layer(function):
                continue
            found = set(_identifiers(function))
            pending = [ident for ident in found if ident in tables]
            while pending:
                new = set(_identifiers(tables.pop(pending.pop()))) - found
                found |= new
                pending += [ident for ident in new if ident in tables]
            names |= found
    return names


def _dlcore_layers():
    """dlcore's own registered layers (tests register classes of their own as they run)."""
    return {name: cls for name, cls in registry.registered("layer").items()
            if cls.__module__.startswith("dlcore.")}


def test_every_registered_layer_has_a_check_layer_case():
    harnessed = {getattr(dl.layers, name, None) for name in harnessed_names()}
    missing = sorted(name for name, cls in _dlcore_layers().items()
                     if cls not in harnessed and name not in NOT_HARNESSED)
    assert not missing, f"registered layers without a check_layer case: {missing}"


def test_the_exceptions_are_registered_layers():
    registered = _dlcore_layers()
    stale = sorted(name for name in NOT_HARNESSED if name not in registered)
    assert not stale, f"NOT_HARNESSED names no registered layer: {stale}"
    assert {getattr(dl.layers, name, None) for name in harnessed_names()} & set(registered.values())
