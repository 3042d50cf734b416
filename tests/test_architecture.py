"""The tier rules of DESIGN.md, checked mechanically."""
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            yield ("." * node.level) + (node.module or ""), node.lineno


def test_kernels_import_only_numpy_scipy_numba():
    allowed = {"numpy", "scipy", "numba", "os", "sys", "tempfile", "importlib", "math", "ctypes", "threading",
               "cython", "libc", "functools", "json", "time"}
    for path in list((ROOT / "kernels").rglob("*.py")) + list((ROOT / "kernels").rglob("*.pyx")):
        if path.suffix == ".pyx":
            text = path.read_text()
            assert "dlcore" not in text.replace("dlcore.kernels", ""), f"{path} mentions dlcore"
            continue
        for name, line in _imports(path):
            if name.startswith("."):
                assert not name.startswith(".."), f"{path}:{line} imports {name} from outside kernels/"
                continue
            assert name.split(".")[0] in allowed, f"{path}:{line} imports {name}"


def test_layers_do_not_import_kernels_directly():
    for path in (ROOT / "dlcore" / "layers").rglob("*.py"):
        for name, line in _imports(path):
            assert "kernels" not in name, f"{path}:{line}: layers call ops, never kernels ({name})"


def test_ops_do_not_import_layers_or_models():
    for path in (ROOT / "dlcore" / "ops").rglob("*.py"):
        for name, line in _imports(path):
            for upper in ("layers", "models", "training"):
                assert upper not in name.split("."), f"{path}:{line}: ops import {name}"


def test_no_hardcoded_fastmath():
    for path in (ROOT / "kernels").rglob("*.py"):
        if path.name == "_config.py":
            continue
        assert "fastmath=" not in path.read_text(), f"{path}: use _config.FASTMATH via @jit()"


def _fresh(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests",
                          timeout=120)


def test_import_build_predict_never_imports_numba():
    code = (
        "import sys, numpy as np, dlcore as dl\n"
        "m = dl.Sequential([dl.Input(shape=(8,)), dl.layers.Dense(4, activation='relu'),"
        " dl.layers.Dropout(0.5), dl.layers.Dense(3, activation='softmax')])\n"
        "p = m.predict(np.ones((2, 8), np.float32), verbose=0)\n"
        "m.summary(print_fn=lambda s: None)\n"
        "assert p.shape == (2, 3)\n"
        "bad = [k for k in sys.modules if k == 'numba' or k.startswith('numba.') or k.startswith('torch')"
        " or k.startswith('tensorflow')]\n"
        "print('LOADED', bad)\n"
    )
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert "LOADED []" in result.stdout, result.stdout


def test_first_training_step_imports_numba():
    code = (
        "import sys, numpy as np, dlcore as dl\n"
        "m = dl.Sequential([dl.Input(shape=(8,)), dl.layers.Dense(3)])\n"
        "m.compile(optimizer='sgd', loss='mse')\n"
        "m.train_on_batch(np.ones((2, 8), np.float32), np.zeros((2, 3), np.float32))\n"
        "print('NUMBA', 'numba' in sys.modules)\n"
    )
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert "NUMBA True" in result.stdout


# ---- the import graph of dlcore --------------------------------------------------------------
def _dlcore_modules():
    """{dotted name: path} for every module of dlcore (kernels/ and benchmarks/ excluded: they
    are tier 3 and tools, checked above). A package (``saving/``) is its ``__init__``."""
    modules = {}
    for path in (ROOT / "dlcore").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[1] in ("kernels", "benchmarks"):
            continue
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _module_level_imports(tree):
    """Import statements that run when the module is imported: everywhere except inside function
    bodies (class bodies run at import time, so they count)."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        else:
            stack.extend(ast.iter_child_nodes(node))


def _all_imports(tree):
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _import_graph(which=_module_level_imports):
    """{module: {dlcore modules it imports}}. ``from pkg import name`` points at ``pkg.name`` when
    that is a module, else at ``pkg``; a module's own ancestor packages (always initialised
    first) are not edges."""
    modules = _dlcore_modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in which(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                subs = [f"{base}.{alias.name}" for alias in node.names]
                candidates = [s for s in subs if s in modules]
                if len(candidates) < len(subs):
                    candidates.append(base)
            targets.update(t for t in candidates if t in modules and t != name and not name.startswith(t + "."))
        graph[name] = targets
    return graph


def _cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_module_level_import_graph_has_no_cycles():
    """No cycle among the imports that run at import time. Imports inside functions are allowed
    (lazy loading: saving builds models and models save themselves, training creates callbacks
    that save models), and are left out of this graph on purpose. Works for ``saving.py`` and a
    ``saving/`` package alike."""
    graph = _import_graph()
    assert "dlcore.autograd" in graph and "dlcore.models.model" in graph
    cycle = _cycle(graph)
    assert cycle is None, "import cycle at module level: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_engine_core_imports_nothing_above_it_even_lazily():
    """tensor, autograd, the tree helpers, the registry and the ops import no layer, model,
    symbolic tensor, trainer, callback or saving module, not even inside a function."""
    graph = _import_graph(_all_imports)
    upper = ("dlcore.layers", "dlcore.models", "dlcore.symbolic", "dlcore.training", "dlcore.callbacks",
             "dlcore.saving")
    core = [m for m in graph if m in ("dlcore.tensor", "dlcore.autograd", "dlcore._tree", "dlcore.registry")
            or m.startswith("dlcore.ops")]
    for module in core:
        bad = [t for t in graph[module] if t.startswith(upper)]
        assert not bad, f"{module} imports {bad}"
