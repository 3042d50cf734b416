"""Issue 10, runtime: where Numba's compiled-kernel cache goes (never into the installed package),
fork safety after multi-threaded work, and the bounds of set_num_threads.

Everything that depends on process state (environment, fork, a fresh Numba) runs in a subprocess
with a timeout, so a regression fails the test instead of hanging the suite."""
import compileall
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import dlcore as dl
from dlcore.kernels import _config

PACKAGE = Path(dl.__file__).resolve().parent
CACHE_VARS = ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR", "DLCORE_CACHE_DIR", "HOME", "TMPDIR", "PYTHONPATH")

# A training step that compiles a Numba kernel (sgd_update), then prints where the cache went.
TRAIN_STEP = """
import numpy as np, dlcore as dl
m = dl.Sequential([dl.Input(shape=(4,)), dl.layers.Dense(2)])
m.compile(optimizer="sgd", loss="mse")
m.train_on_batch(np.ones((2, 4), np.float32), np.zeros((2, 2), np.float32))
print(dl.config.kernel_cache_dir())
"""


def _python(code, env, timeout=240):
    """Run ``code`` in a fresh interpreter with ``env`` (cache variables cleared unless given)."""
    base = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    base["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout, env={**base, **env}, cwd="/")
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout.strip().splitlines()


def _cache_files(root):
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.suffix in (".nbi", ".nbc"))


def _snapshot(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in Path(root).rglob("*")}


def _read_only_copy(dest):
    """dlcore as pip installs it (kernels inside, .pyc precompiled), with every write bit off."""
    ignore = shutil.ignore_patterns("__pycache__", "benchmarks", "*.nbi", "*.nbc")
    shutil.copytree(PACKAGE, dest / "dlcore", ignore=ignore, symlinks=False)
    compileall.compile_dir(dest / "dlcore", quiet=1)
    for path in [dest / "dlcore", *(dest / "dlcore").rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return dest / "dlcore"


@pytest.fixture
def read_only_install(tmp_path):
    site = tmp_path / "site"
    package = _read_only_copy(site)
    yield site, package
    for path in [package, *package.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


@pytest.mark.parametrize("numba_first", [False, True], ids=["dlcore-first", "numba-imported-first"])
def test_read_only_install_caches_kernels_in_the_user_cache(read_only_install, tmp_path, numba_first):
    site, package = read_only_install
    home = tmp_path / "home"
    home.mkdir()
    before = _snapshot(package)
    code = ("import numba\n" if numba_first else "") + "import dlcore\nprint(dlcore.__file__)\n" + TRAIN_STEP
    loaded_from, cache_dir = _python(code, {"HOME": str(home), "PYTHONPATH": str(site)})
    assert Path(loaded_from).parent == package
    assert Path(cache_dir).parent == home / ".cache" / "dlcore"
    assert Path(cache_dir).name.startswith(f"numba-{_config._package_version()}-{_config.cpu_fingerprint()}")
    assert any("sgd_update" in name for name in _cache_files(cache_dir)), _cache_files(home)
    assert _snapshot(package) == before, "the installed package was written into"


def test_numba_cache_dir_set_by_the_user_is_honoured(tmp_path):
    target = tmp_path / "numba-cache"
    kernels_dir = (PACKAGE / "kernels").resolve()
    before = {name: (kernels_dir / name).stat().st_mtime_ns for name in _cache_files(kernels_dir)}
    code = "import numba\n" + TRAIN_STEP  # numba configured (and imported) before dlcore
    (cache_dir,) = _python(code, {"HOME": str(tmp_path), "NUMBA_CACHE_DIR": str(target)})
    assert Path(cache_dir) == target
    assert any("sgd_update" in name for name in _cache_files(target))
    assert not (tmp_path / ".cache").exists()
    assert {name: (kernels_dir / name).stat().st_mtime_ns for name in _cache_files(kernels_dir)} == before


def test_parallel_and_serial_twins_have_their_own_cache_entries(tmp_path):
    # Both twins come from one Python function; sharing an index would hand one the other's code.
    code = """
    import numpy as np
    from dlcore.kernels import _config, dropout
    _config.set_num_threads(2)
    for n in (64, 1 << 16):  # the serial twin, then the parallel one
        x = np.ones(n, np.float32); u = np.linspace(0, 1, n, dtype=np.float32)
        y = np.empty_like(x); m = np.empty(n, np.uint8)
        dropout.dropout_forward(x, u, 0.5, y, m)
        assert np.array_equal(y, np.where(u >= 0.5, 2.0, 0.0).astype(np.float32)), n
    print(_config.numba_cache_dir())
    """
    (cache_dir,) = _python(code, {"DLCORE_CACHE_DIR": str(tmp_path)})
    names = _cache_files(cache_dir)
    assert any("dropout_forward" in n and "-serial" in n for n in names), names
    assert any("dropout_forward" in n and "-parallel" in n for n in names), names
    again = _python(code, {"DLCORE_CACHE_DIR": str(tmp_path)})  # warm cache: each twin loads its own
    assert again == [cache_dir]


def _resolved_cache_dir(env):
    (line,) = _python("import dlcore; print(dlcore.config.kernel_cache_dir())", env, timeout=120)
    return line


def test_cache_directory_resolution_order(tmp_path):
    leaf = f"numba-{_config._package_version()}-{_config.cpu_fingerprint()}"
    home, xdg, own = tmp_path / "home", tmp_path / "xdg", tmp_path / "own"
    home.mkdir()
    assert _resolved_cache_dir({"HOME": str(home)}) == str(home / ".cache" / "dlcore" / leaf)
    assert _resolved_cache_dir({"HOME": str(home), "XDG_CACHE_HOME": str(xdg)}) == str(xdg / "dlcore" / leaf)
    assert _resolved_cache_dir({"HOME": str(home), "XDG_CACHE_HOME": "relative/ignored"}) == str(
        home / ".cache" / "dlcore" / leaf)
    assert _resolved_cache_dir({"HOME": str(home), "DLCORE_CACHE_DIR": str(own),
                                "NUMBA_CACHE_DIR": str(tmp_path / "nb")}) == str(own / leaf)


def test_unwritable_home_falls_back_to_a_private_temp_dir(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    # Under a regular file nothing can be created, even by root.
    blocked = tmp_path / "file"
    blocked.write_text("")
    env = {"HOME": str(blocked / "home"), "XDG_CACHE_HOME": str(blocked / "xdg"), "TMPDIR": str(tmp)}
    resolved = Path(_resolved_cache_dir(env))
    uid = os.getuid()
    assert resolved.parent == tmp / f"dlcore-{uid}"
    assert stat.S_IMODE(resolved.parent.stat().st_mode) == 0o700


def test_unusable_explicit_cache_dir_is_a_clear_error(monkeypatch, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setattr(_config, "_cache_dir_chosen", False)
    monkeypatch.setattr(_config, "_cache_dir", None)
    for name in ("DLCORE_CACHE_DIR", "NUMBA_CACHE_DIR"):
        monkeypatch.delenv("DLCORE_CACHE_DIR", raising=False)
        monkeypatch.setenv(name, str(blocked / "cache"))
        with pytest.raises(ValueError, match=f"{name}=.*writable"):
            _config.numba_cache_dir()
        monkeypatch.delenv(name)


def test_no_writable_location_means_no_disk_cache(monkeypatch):
    monkeypatch.setattr(_config, "_usable_dir", lambda path, private=False: False)
    assert _config.default_cache_root() is None


# ---------------------------------------------------------------------------------------------
# fork safety

FORK_PARENT = """
import os, sys, pickle, numpy as np, dlcore as dl
from dlcore.kernels import _config

def model():  # dense, conv, batch norm and pooling kernels (OpenMP), adam and softmax (Numba)
    dl.utils.set_random_seed(0)
    m = dl.Sequential([dl.Input(shape=(24, 24, 4)), dl.layers.Conv2D(16, 3, activation="relu"),
                       dl.layers.BatchNormalization(), dl.layers.MaxPooling2D(), dl.layers.Flatten(),
                       dl.layers.Dense(128, activation="relu"), dl.layers.Dense(10, activation="softmax")])
    m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return m

rng = np.random.default_rng(0)
# 24x24 inputs: the activations of a 64-image batch (484 K elements) are above the kernels'
# one-thread threshold (PARALLEL_MIN_WORK), so the parent runs parallel regions
x = rng.random((128, 24, 24, 4), dtype=np.float32)
y = rng.integers(0, 10, 128)
a = rng.random((512, 512), dtype=np.float32)
dl.config.set_num_threads(2)
gram = a @ a.T  # OpenBLAS's own threads
m = model()
m.fit(x, y, epochs=1, batch_size=64, verbose=0)  # 2 OpenMP threads and Numba's parallel layer
expected = m.predict(x, verbose=0)
assert _config._threads_started, "the parent did not run multi-threaded kernels"

def child_work():
    assert dl.config.num_threads() == 1
    np.testing.assert_allclose(a @ a.T, gram, rtol=1e-5)
    p = m.predict(x, verbose=0)
    m2 = model()
    m2.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    try:
        dl.config.set_num_threads(2)
        refused = False
    except RuntimeError as exc:
        refused = "spawn" in str(exc)
    return p, [w.copy() for w in m2.get_weights()], refused
"""


@pytest.mark.parametrize("how", ["os.fork", "multiprocessing-fork"])
def test_forked_child_predicts_and_fits_after_parallel_parent(how):
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")
    if how == "os.fork":
        run_child = """
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:  # the child never returns into the parent's code
                os.close(r)
                with os.fdopen(w, "wb") as out:
                    pickle.dump(child_work(), out)
                status = 0
            finally:
                os._exit(status)
        os.close(w)
        with os.fdopen(r, "rb") as inp:
            result = pickle.load(inp)
        assert os.waitpid(pid, 0)[1] == 0
        """
    else:
        run_child = """
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(1) as pool:
            result = pool.apply(child_work)
        """
    check = """
    p, child_weights, refused = result
    np.testing.assert_allclose(p, expected, rtol=1e-6, atol=1e-7)
    dl.config.set_num_threads(1)
    m2 = model()
    m2.fit(x, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    for a, b in zip(child_weights, m2.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert refused, "set_num_threads(2) in the forked child was not refused"
    print("OK", dl.config.num_threads())
    """
    code = FORK_PARENT + textwrap.dedent(run_child) + textwrap.dedent(check)
    assert _python(code, {}, timeout=180)[-1] == "OK 1"


def test_child_forked_before_any_kernel_may_use_threads():
    code = """
    import os, numpy as np, dlcore as dl
    dl.config.set_num_threads(2)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            assert dl.config.num_threads() == 1  # a forked child starts on one thread
            dl.config.set_num_threads(2)         # allowed: the parent started no threads
            m = dl.Sequential([dl.Input(shape=(256,)), dl.layers.Dense(256)])
            m.compile(optimizer="adam", loss="mse")
            x = np.ones((256, 256), np.float32)
            m.fit(x, x, epochs=1, batch_size=256, verbose=0)
            code = 0
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    print("OK")
    """
    assert _python(code, {}, timeout=180) == ["OK"]


# ---------------------------------------------------------------------------------------------
# thread-count bounds

@pytest.mark.parametrize("n", [65536, 32768, "max+1"])
def test_set_num_threads_rejects_counts_above_the_ceiling(n):
    before = dl.config.num_threads()
    n = dl.config.max_threads() + 1 if n == "max+1" else n
    with pytest.raises(ValueError, match=rf"set_num_threads.*\[1, {dl.config.max_threads()}\].*received {n}"):
        dl.config.set_num_threads(n)
    assert dl.config.num_threads() == before


def test_thread_ceiling_is_the_cpu_count_or_the_floor():
    assert dl.config.max_threads() == max(_config.MIN_THREAD_CEILING, os.cpu_count() or 1)
    before = dl.config.num_threads()
    try:
        dl.config.set_num_threads(dl.config.max_threads())  # the ceiling itself is allowed
        assert dl.config.num_threads() == dl.config.max_threads()
    finally:
        dl.config.set_num_threads(before)


def test_kernel_level_set_num_threads_checks_type_and_range():
    with pytest.raises(TypeError, match="integer"):
        _config.set_num_threads("2")
    with pytest.raises(ValueError, match="received 0"):
        _config.set_num_threads(0)
