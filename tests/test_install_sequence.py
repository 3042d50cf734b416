"""Issue 10: a newcomer's sequence, replayed in a throwaway virtual environment.

    pip install .        then run a training step (the demo)
    pip install -e .     then import and use dlcore from a fresh interpreter

Before the fix the demo wrote Numba's cache into site-packages/dlcore/kernels/__pycache__, the
editable install's uninstall left that directory behind, and the empty site-packages/dlcore then
shadowed the editable install as a namespace package.

Kept cheap: the venv has ``--system-site-packages`` (numpy, numba, scipy, pip, setuptools and
Cython come from this interpreter) and no pip of its own; installs use ``--no-deps
--no-build-isolation --no-index``; the checkout is copied with ``git ls-files``. Compiling the
Cython kernels is not what is under test, so setup.py is told to build no extension
(``DLCORE_BUILD_ONLY=none``, its developer switch) and the extensions this checkout already built
are copied in place (for the editable install) and into ``build/lib`` (whose whole tree the
wheel of ``pip install .`` packs, so they are installed and recorded like built ones). Measured
on the shared 2-core machine: 15-30 s; with Cython and the C compiler it took 8 minutes.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import dlcore.kernels

ROOT = Path(__file__).resolve().parents[1]
KERNELS_BUILT = Path(dlcore.kernels.__file__).resolve().parent
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"

TRAIN_AND_PREDICT = """
import sys, numpy as np, dlcore as dl
print(dl.__file__)
m = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(8, activation="relu"),
                   dl.layers.Dense(3, activation="softmax")])
m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
x = np.random.default_rng(0).random((16, 4), dtype=np.float32)
m.fit(x, np.arange(16) % 3, epochs=1, batch_size=8, verbose=0)
p = m.predict(x, verbose=0)
assert p.shape == (16, 3) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
print(dl.config.kernel_cache_dir())
"""


def _missing_tools():
    for module in ("pip", "setuptools", "Cython", "wheel", "venv"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if shutil.which("git") is None:
        return "git is not available"
    if not list(KERNELS_BUILT.glob(f"_*{EXT_SUFFIX}")):
        return f"no compiled kernels in {KERNELS_BUILT} to reuse"
    return None


def _tracked_files():
    result = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout")
    return [name for name in result.stdout.split("\0") if name and (ROOT / name).is_file()]


def _copy_checkout(dest):
    """The tracked files of this checkout, with the extensions it built both in place (for the
    editable install) and in the build directory whose tree ``pip install .`` packs."""
    for name in _tracked_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, dest / name)
    build_lib = dest / "build" / "lib" / "dlcore" / "kernels"
    build_lib.mkdir(parents=True)
    for so in KERNELS_BUILT.glob(f"_*{EXT_SUFFIX}"):
        shutil.copyfile(so, dest / "kernels" / so.name)
        shutil.copyfile(so, build_lib / so.name)


def _run(cmd, env, cwd):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.slow
def test_install_then_editable_install_leaves_nothing_behind(tmp_path):
    reason = _missing_tools()
    if reason:
        pytest.skip(reason)
    src, venv, home = tmp_path / "src", tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    _copy_checkout(src)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "DLCORE_CACHE_DIR", "PIP_USER")}
    env.update(HOME=str(home), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONNOUSERSITE="1",
               DLCORE_BUILD_ONLY="none")  # setup.py builds no extension: the copied ones are used
    main_dlcore = _run([sys.executable, "-c", "import dlcore; print(dlcore.__file__)"], env, tmp_path)

    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], env,
                     tmp_path).strip())

    _run(pip + [str(src)], env, tmp_path)  # 1. pip install .
    installed = site / "dlcore"
    assert (installed / "kernels" / "__init__.py").is_file()
    assert len(list((installed / "kernels").glob(f"_*{EXT_SUFFIX}"))) == len(list(KERNELS_BUILT.glob(f"_*{EXT_SUFFIX}")))
    before = _snapshot(installed)
    loaded, cache_dir = _run([python, "-c", TRAIN_AND_PREDICT], env, tmp_path).split()  # 2. the demo
    assert Path(loaded).parent == installed
    assert _snapshot(installed) == before, "running dlcore wrote into site-packages/dlcore"
    assert Path(cache_dir).is_relative_to(home / ".cache" / "dlcore")

    _run(pip + ["-e", str(src)], env, tmp_path)  # 3. pip install -e .
    assert not installed.exists(), f"left behind: {sorted(_snapshot(installed))}"

    code = TRAIN_AND_PREDICT + "import subprocess; print(subprocess.run([sys.executable, '-c', " \
        "'import dlcore; print(dlcore.__file__)'], capture_output=True, text=True).stdout)"
    loaded, _, child_loaded = _run([python, "-c", code], env, tmp_path).split()  # 4. use it
    assert Path(loaded) == src / "dlcore" / "__init__.py"
    assert child_loaded == loaded  # a subprocess sees the editable install too
    assert not installed.exists()
    # this interpreter's own install is untouched
    assert _run([sys.executable, "-c", "import dlcore; print(dlcore.__file__)"], env, tmp_path) == main_dlcore

