"""The kernel contract (kernels/README.md), checked for every name in the kernel table: an entry in
the README with the IN/OUT lines of the kernel's docstring, a reference function in
tests/reference/ that exists, and a test in tests/kernels/ that names the kernel."""
import ast
import re
from pathlib import Path

import pytest

from dlcore import kernels

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "kernels" / "README.md"
REFERENCE_DIR = ROOT / "tests" / "reference"
TEST_DIR = ROOT / "tests" / "kernels"

IN_OUT = re.compile(r"\b(IN|OUT)\b")
ENTRY = re.compile(r"^### `(\w+)` \((\w+)\)$")
REFERENCE = re.compile(r"^reference: `tests/reference/(\w+\.py)::(\w+)`")


def _entries(text):
    """{kernel name: {"family", "reference": (file, function) or None, "lines": [...]}}."""
    entries, current = {}, None
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match:
            current = entries.setdefault(match[1], {"family": match[2], "reference": None, "lines": []})
            continue
        if current is None:
            continue
        if line.startswith("## "):
            current = None
        elif REFERENCE.match(line):
            current["reference"] = REFERENCE.match(line).groups()
        elif line.startswith("- `") and line.endswith("`"):
            current["lines"].append(line[3:-1])
    return entries


def _doc_lines(fn):
    return [line.strip() for line in (fn.__doc__ or "").splitlines() if IN_OUT.search(line)]


def _family_of():
    import importlib

    return {name: family for family in kernels.FAMILIES
            for name in importlib.import_module(f"dlcore.kernels.{family}").KERNELS}


ENTRIES = _entries(README.read_text())
FAMILY = _family_of()
NAMES = kernels.names()
TEST_TEXT = {path.name: path.read_text() for path in TEST_DIR.glob("test_*.py") if path.name != Path(__file__).name}


def _functions(path):
    return {node.name for node in ast.parse(path.read_text()).body if isinstance(node, ast.FunctionDef)}


def _imports_dlcore(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "dlcore" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dlcore":
            return True
    return False


def test_readme_lists_exactly_the_table():
    assert sorted(ENTRIES) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_readme_entry_has_the_docstring_in_out_lines(name):
    entry = ENTRIES.get(name)
    assert entry is not None, f"kernels/README.md has no entry '### `{name}` ({FAMILY[name]})'"
    assert entry["family"] == FAMILY[name]
    doc = _doc_lines(kernels.get(name))
    assert any(IN_OUT.search(line) and "IN" in line for line in doc), f"{name}: no IN line in its docstring"
    assert any("OUT" in line for line in doc), f"{name}: no OUT line in its docstring"
    assert entry["lines"] == doc, f"{name}: README lines differ from the docstring's IN/OUT lines"


@pytest.mark.parametrize("name", NAMES)
def test_reference_exists(name):
    entry = ENTRIES.get(name)
    assert entry is not None and entry["reference"] is not None, f"{name}: no reference line in the README"
    filename, function = entry["reference"]
    path = REFERENCE_DIR / filename
    assert path.is_file(), f"{name}: tests/reference/{filename} does not exist"
    assert function in _functions(path), f"{name}: tests/reference/{filename} defines no {function}()"
    assert not _imports_dlcore(path), f"tests/reference/{filename} imports dlcore (references never do)"


@pytest.mark.parametrize("name", NAMES)
def test_kernel_has_a_test(name):
    word = re.compile(rf"\b{name}\b")
    files = [file for file, text in TEST_TEXT.items() if word.search(text)]
    assert files, f"no test in tests/kernels/ names {name}"
    assert f"test_{FAMILY[name]}.py" in files, f"{name}: its family's test file test_{FAMILY[name]}.py does not name it"


def test_entry_parser_reads_a_well_formed_entry():
    text = "### `k` (fam)\nreference: `tests/reference/f.py::g` (note)\n- `x: (N,) IN`\n- `y: (N,) OUT`\n\n## Next"
    assert _entries(text) == {"k": {"family": "fam", "reference": ("f.py", "g"), "lines": ["x: (N,) IN", "y: (N,) OUT"]}}
