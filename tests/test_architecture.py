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
               "cython", "libc", "functools"}
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
