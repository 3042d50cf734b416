"""Settings shared by every kernel family: fastmath flags, thread count, lazy Numba compilation,
where Numba's compiled-kernel cache lives, and what a forked child may run.

Numba is imported on the first call of a Numba kernel, never at import time: inference runs on
the Cython kernels alone, so ``import dlcore`` + ``predict`` stay free of Numba's start-up cost.
"""
import functools
import os
import sys
import tempfile

# No "nnan"/"ninf": NaN checks and TerminateOnNaN must keep seeing NaN and inf.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# Division by zero gives inf/NaN (IEEE), never ZeroDivisionError: the loop bodies of a parallel
# kernel's prange already compile this way (Numba's parfors), and its serial twin (njit's default
# "python" model) tested every divisor and raised, which kept its loops from vectorizing: Adam's
# serial twin ran 1.2 ms per 524k floats against 0.16 ms for the same loop as a parfor on one
# thread (the serial twin runs everything at 1 thread and small arrays at any count), and the
# twins disagreed on a zero divisor. Part of the cache file names (Numba's cache key omits it).
ERROR_MODEL = "numpy"

_num_threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

def _env_int(name, default):
    value = os.environ.get(name, "")
    try:
        return max(0, int(value)) if value.strip() else default
    except ValueError:
        return default


# Below this many scalar operations (elements, for the elementwise and reduction kernels) a kernel
# runs on one thread: waking the sleeping team member costs more than it saves. Between kernels
# the team sleeps (OMP_WAIT_POLICY=PASSIVE, see dlcore._runtime), and on the 2-core VM a region
# after a 200 us gap took at best 27 us more on 2 threads than on 1 (add_forward on 64 K floats:
# 8 us on 1 thread), while below 2^17 elements the kernels' 1-thread times are 5-50 us (ReLU,
# column sums, residual adds, LayerNorm). mlp-train at 2 threads (batch 128, 64 K-element
# activations), medians of 300 steps at load 2.3-2.8: ReLU backward 0.24 -> 0.05 ms and the bias
# sums 0.21 -> 0.04 ms a step with 2^17 instead of 2^15. DLCORE_PARALLEL_MIN_WORK overrides it.
PARALLEL_MIN_WORK = _env_int("DLCORE_PARALLEL_MIN_WORK", 1 << 17)


# Below this many multiply-adds a matrix product or convolution runs on one thread (4 M is about
# 80-150 us of one core). Waking the OpenMP team costs tens of microseconds on a VM, and a
# descheduled team member stalls the whole product: on a 2-core VM with other processes running,
# the CNN's batch-1 predict took 408 us with 2 threads above 32 K multiply-adds, 261 us above 1 M
# and 162 us above 4 M (1 thread: 168 us; ONNX Runtime, 2 threads: 108 us). Its larger layers at
# batch 16 (50 M) stay parallel. DLCORE_PARALLEL_MIN_MACS overrides it.
PARALLEL_MIN_MACS = _env_int("DLCORE_PARALLEL_MIN_MACS", 1 << 22)

# From TEAM_MIN_MACS multiply-adds up to TEAM_MAX_MACS, the kernels that have a team path (the
# batch-1 GEMV, the own GEMM, the attention forward, the batch-1 convolutions) run on
# kernels/_team.pyx's spinning thread team instead of OpenMP: a chunk costs ~1 us to hand over,
# a late worker at most the chunk it claimed, where an OpenMP region waits at its barrier for a
# member the OS has not run yet (kernels/dl_team.h). 16 M covers every batch-1 layer of the
# runner's models (the transformer's FFN products are 8 M: on OpenMP at 2 threads, with both
# cores busy with other processes, 370-400 us against 200 us on one thread; attention 4 M:
# 340-470 us against 130) and leaves training-sized products (mlp-train's 17 M and 51 M, batch
# 128) on OpenMP and the tuned BLAS/own choice, as measured for training (on the team, one
# alternated pair at 2 threads on a noisy host gave mlp-train 0.97x / 0.85x PyTorch against 1.09x /
# 1.03x). DLCORE_TEAM_MIN_MACS / DLCORE_TEAM_MAX_MACS override them.
TEAM_MIN_MACS = _env_int("DLCORE_TEAM_MIN_MACS", 1 << 16)
TEAM_MAX_MACS = _env_int("DLCORE_TEAM_MAX_MACS", 1 << 24)

# Called with the new count by set_num_threads (kernels/_team.pyx stops its workers there).
_thread_listeners = []


def add_thread_listener(fn):
    """Call ``fn(n)`` whenever set_num_threads(n) changes the count."""
    _thread_listeners.append(fn)


# Allowed to exceed the CPU count up to this many threads, so that code tuned on a workstation
# (2-8 threads) still runs on a 1-CPU container.
MIN_THREAD_CEILING = 8

# Whether this process started kernel threads (an OpenMP team or Numba's threading layer), and
# whether it is a fork of a process that had: libgomp keeps its thread pool across fork() as
# threads that no longer exist, and a parallel region in the child waits for them forever.
_threads_started = False
_forked_after_threads = False


def num_threads():
    """The thread count every kernel uses (Cython OpenMP, Numba, BLAS)."""
    return _num_threads


def max_threads():
    """The largest thread count :func:`set_num_threads` accepts: the machine's logical CPUs
    (``os.cpu_count()``), but at least MIN_THREAD_CEILING.

    Threads beyond the logical CPUs only take turns on them while each one costs a stack and its
    own scratch buffers in the conv and recurrent kernels, and Numba refuses more than
    NUMBA_NUM_THREADS (the CPU count by default). Unbounded counts crashed the process: libgomp
    exits when it cannot create 32768 threads and 65536 overflowed the per-thread buffers.
    """
    return max(MIN_THREAD_CEILING, os.cpu_count() or 1)


def set_num_threads(n):
    """Set the kernel thread count for OpenMP, BLAS and (once loaded) Numba.

    ``n`` must be an integer in [1, max_threads()]. In a process forked after its parent ran
    multi-threaded kernels, only 1 is allowed (see :func:`_after_fork_in_child`).
    """
    global _num_threads
    if isinstance(n, bool) or not hasattr(n, "__index__"):
        raise TypeError(f"set_num_threads expects an integer thread count, received {n!r}")
    n = int(n)
    ceiling = max_threads()
    if not 1 <= n <= ceiling:
        raise ValueError(f"set_num_threads expects a thread count in [1, {ceiling}] (this machine's "
                         f"logical CPUs, at least {MIN_THREAD_CEILING}), received {n}")
    if n > 1 and _forked_after_threads:
        raise RuntimeError(
            f"set_num_threads({n}): this process was forked after its parent ran multi-threaded "
            "kernels, and OpenMP cannot start threads again in a forked child (it would hang), so "
            "kernels here run on 1 thread. Start worker processes with "
            "multiprocessing.get_context('spawn') or 'forkserver' to use several threads in them.")
    _num_threads = n
    set_blas_threads(_num_threads)
    for listener in _thread_listeners:
        listener(n)
    if _numba is not None:
        _numba.set_num_threads(min(_num_threads, _numba.config.NUMBA_NUM_THREADS))


def _after_fork_in_child():
    """In a child of ``os.fork()``: run every kernel on one thread.

    The Cython kernels' OpenMP regions take their team size from ``threads_for`` and Numba
    kernels switch to their serial twins when the count is 1, so the child never enters
    libgomp's pool inherited from the parent nor Numba's threading layer (its OpenMP layer
    terminates a forked child). OpenBLAS is fork-safe; it gets the same count for one policy.
    """
    global _num_threads, _forked_after_threads
    _forked_after_threads = _forked_after_threads or _threads_started or _numba is not None
    _num_threads = 1
    try:
        set_blas_threads(1)
    except Exception:  # noqa: BLE001  (a child must start even if /proc or ctypes is unusable)
        pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# (getter, setter) thread-count symbols of the OpenBLAS builds we know: plain, scipy's LP64 and
# numpy's ILP64 ("64_" suffix).
OPENBLAS_THREAD_SYMBOLS = (
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
)


def blas_thread_hooks(paths=None):
    """[(library path, getter, setter)]: ctypes thread-count functions of each OpenBLAS loaded in
    this process (or of ``paths``, from ``_loaded_blas_libraries()``). Kernels that run
    single-threaded BLAS inside their own OpenMP chunks take the C addresses from here (one
    discovery for every family)."""
    import ctypes

    hooks = []
    for path in _loaded_blas_libraries() if paths is None else paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get_name, set_name in OPENBLAS_THREAD_SYMBOLS:
            getter, setter = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if getter is not None and setter is not None:
                hooks.append((path, getter, setter))
                break
    return hooks


def set_blas_threads(n):
    """Apply ``n`` to every OpenBLAS loaded in this process (numpy's and scipy's)."""
    import ctypes

    hooks = blas_thread_hooks()
    for _, _, setter in hooks:
        setter(ctypes.c_int(n))
    return len(hooks)


def _loaded_blas_libraries():
    """Paths of the BLAS libraries loaded in this process (reading /proc/self/maps: ~1 ms)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux: leave BLAS to its own default
        return []
    keys = ("openblas", "libmkl_rt", "libblis")
    return sorted(p for p in paths if any(k in os.path.basename(p).lower() for k in keys))


def threads_for(work):
    """Threads worth using for ``work`` scalar operations: 1 for small work, else num_threads()."""
    global _threads_started
    if work < PARALLEL_MIN_WORK or _num_threads == 1:
        return 1
    _threads_started = True
    return _num_threads


def team_threads_for_macs(macs):
    """Threads for a product of ``macs`` multiply-adds whose kernel runs the team below
    TEAM_MAX_MACS (and OpenMP from there; paths without a team, from PARALLEL_MIN_MACS): 1 below
    TEAM_MIN_MACS, else num_threads()."""
    global _threads_started
    if macs < TEAM_MIN_MACS or _num_threads == 1:
        return 1
    if macs >= PARALLEL_MIN_MACS:  # a kernel without a team path (im2col) takes OpenMP from there
        _threads_started = True
    return _num_threads


def threads_for_macs(macs):
    """Threads worth using for a matrix product or convolution of ``macs`` multiply-adds: 1 below
    PARALLEL_MIN_MACS (batch-1 layers), else num_threads()."""
    global _threads_started
    if macs < PARALLEL_MIN_MACS or _num_threads == 1:
        return 1
    _threads_started = True
    return _num_threads


# Fortran BLAS symbol patterns of the OpenBLAS builds NumPy ships, with whether they take 64-bit
# integers: NumPy >= 2 wheels (scipy-openblas64), NumPy 1.22-1.26 wheels (openblas64_), and
# scipy-openblas32. A plain "sgemm_" is taken only from an OpenBLAS that reports its integer width.
BLAS_SYMBOL_PATTERNS = (("scipy_{}_64_", True), ("{}_64_", True), ("scipy_{}_", False))


def restart_blas_threads(path):
    """Make the OpenBLAS at ``path`` (a pthreads build) re-read its environment and stop its thread
    pool, which it starts again at its next threaded call. NumPy's OpenBLAS, when NumPy was
    imported before dlcore, started its pool before dlcore._runtime set OPENBLAS_THREAD_TIMEOUT: its
    idle workers would then spin ~0.1 s after each threaded call, on the cores the kernels' OpenMP
    threads run on next. Stopping the pool joins its workers (0.1-10 ms, by the machine's load),
    so a single-threaded OpenBLAS is left alone. Returns whether it was restarted."""
    import ctypes

    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return False
    parallel = next((getattr(lib, name) for name in ("scipy_openblas_get_parallel64_", "scipy_openblas_get_parallel",
                                                     "openblas_get_parallel64_", "openblas_get_parallel")
                     if hasattr(lib, name)), None)
    read_env, shutdown = getattr(lib, "openblas_read_env", None), getattr(lib, "blas_thread_shutdown_", None)
    if parallel is None or read_env is None or shutdown is None or parallel() != 1:  # 1: OpenBLAS's own pthreads
        return False
    hooks = [getter for hook_path, getter, _ in blas_thread_hooks([path]) if hook_path == path]
    if hooks and hooks[0]() <= 1:  # no worker threads (OPENBLAS_NUM_THREADS=1, one core): nothing to restart
        return False
    read_env()
    shutdown()
    return True


def loaded_blas_functions(names, paths=None):
    """(int64, [address of each Fortran BLAS function in ``names``], library path) from an OpenBLAS
    already loaded in this process (NumPy's; or among ``paths``), or None where there is none we
    know how to call (then the kernels take scipy.linalg.cython_blas's; ``DLCORE_BLAS=scipy``
    forces that)."""
    import ctypes

    if os.environ.get("DLCORE_BLAS", "").strip().lower() == "scipy":
        return None
    for path in _loaded_blas_libraries() if paths is None else paths:
        if "openblas" not in os.path.basename(path).lower():
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        patterns = list(BLAS_SYMBOL_PATTERNS)
        config = getattr(lib, "openblas_get_config", None)
        if config is not None:
            config.restype = ctypes.c_char_p
            patterns.append(("{}_", b"USE64BITINT" in (config() or b"")))
        for pattern, int64 in patterns:
            found = [getattr(lib, pattern.format(name), None) for name in names]
            if all(f is not None for f in found):
                return int64, [ctypes.cast(f, ctypes.c_void_p).value for f in found], path
    return None


def preload_cython_blas():
    """Load scipy's BLAS function table without importing all of ``scipy.linalg``.

    The kernels fall back to ``scipy.linalg.cython_blas`` where NumPy's BLAS is not one that
    :func:`loaded_blas_functions` knows (kernels/_blas.py); importing it the usual way runs
    ``scipy/linalg/__init__.py`` first, which costs 0.1-0.5 s of dlcore's cold start here. The
    extension itself needs nothing from that package, so it is loaded from its file and
    registered under its own name. Any surprise falls back to the ordinary import.
    """
    import importlib.util
    import sys

    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return
    try:
        import scipy

        folder = os.path.join(os.path.dirname(scipy.__file__), "linalg")
        path = next(os.path.join(folder, f) for f in sorted(os.listdir(folder))
                    if f.startswith("cython_blas.") and f.endswith((".so", ".pyd")))
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception:  # an unexpected scipy layout: let the normal import do it
        sys.modules.pop(name, None)


_numba = None

# Numba kernels write `for i in _config.prange(n)`; it becomes numba.prange once numba loads
# (kernels are compiled only after that), so kernel modules never import numba themselves.
prange = range


def load_numba():
    """Import numba once and apply the thread count (the cache directory is chosen per kernel,
    see :func:`numba_cache_dir`, so it holds even when the user imported numba first)."""
    global _numba
    if _numba is not None:
        return _numba
    import numba

    global prange
    _numba = numba
    prange = numba.prange
    numba.set_num_threads(min(_num_threads, numba.config.NUMBA_NUM_THREADS))
    return numba


# ---------------------------------------------------------------------------------------------
# Numba's on-disk cache. Numba's own default writes next to the source file, i.e. into the
# installed package (__pycache__ inside site-packages/dlcore/kernels): a read-only or shared
# install must never be written into, and a directory left there by `pip uninstall` turned
# site-packages/dlcore into an empty namespace package shadowing later installs. dlcore's
# kernels therefore get a cache locator of their own, whatever numba's global configuration.

CACHE_DIR_ENV = "DLCORE_CACHE_DIR"

_cache_dir_chosen = False
_cache_dir = None
_cache_classes = {}


def _env_path(name):
    value = os.environ.get(name, "").strip()
    return os.path.abspath(os.path.expanduser(value)) if value else None


def _usable_dir(path, private=False):
    """Create ``path`` if needed and check that a file can be written in it (os.access says
    yes to root on a read-only mount). ``private``: a directory in a shared temp folder must be
    ours and no symlink."""
    try:
        os.makedirs(path, mode=0o700 if private else 0o777, exist_ok=True)
        if private:
            st = os.lstat(path)
            if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.getuid():
                return False
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _fnv1a(text):
    """A stable 32-bit hash (str hashes are salted per process)."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{h:08x}"


@functools.lru_cache(maxsize=None)
def cpu_fingerprint():
    """A short key of this CPU (model and feature flags, else the architecture name)."""
    text = os.uname().machine if hasattr(os, "uname") else sys.platform
    try:
        with open("/proc/cpuinfo") as info:
            wanted = [line for line in info if line.startswith(("model name", "flags", "Features", "CPU part"))]
        text += "".join(sorted(set(wanted)))
    except OSError:
        pass
    return _fnv1a(text)


@functools.lru_cache(maxsize=None)
def _package_version():
    """dlcore's installed version, read from the name of its metadata directory on sys.path (as
    importlib.metadata finds it, without importing it: that imports the email package, 13 ms of a
    cold start), or "source" for a tree that was never installed."""
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if stem.startswith("dlcore-") and dot and suffix in ("dist-info", "egg-info"):
                return stem[len("dlcore-"):]
    return "source"


def default_cache_root():
    """The first usable per-user location for dlcore's caches, or None: $XDG_CACHE_HOME/dlcore,
    ~/.cache/dlcore, then <tempdir>/dlcore-<uid> (when home is not writable)."""
    candidates = []
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec ignores relative values
        candidates.append(os.path.join(xdg, "dlcore"))
    home = os.path.expanduser("~")
    if home != "~":
        candidates.append(os.path.join(home, ".cache", "dlcore"))
    for path in candidates:
        if _usable_dir(path):
            return path
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    path = os.path.join(tempfile.gettempdir(), f"dlcore-{uid}")
    return path if _usable_dir(path, private=True) else None


def numba_cache_dir():
    """Where dlcore's Numba kernels are cached (chosen once per process), or None (no disk cache).

    In order: ``$DLCORE_CACHE_DIR/numba-<version>-<cpu>``; ``$NUMBA_CACHE_DIR`` as given (Numba's
    own setting); ``<per-user cache>/numba-<version>-<cpu>`` (see :func:`default_cache_root`).
    The version and CPU key keep an upgrade or another machine sharing the home directory from
    loading stale or foreign machine code. Never a directory inside the installed package.
    """
    global _cache_dir_chosen, _cache_dir
    if _cache_dir_chosen:
        return _cache_dir
    leaf = f"numba-{_package_version()}-{cpu_fingerprint()}"
    for name, path in ((CACHE_DIR_ENV, _env_path(CACHE_DIR_ENV)), ("NUMBA_CACHE_DIR", _env_path("NUMBA_CACHE_DIR"))):
        if path is None:
            continue
        chosen = os.path.join(path, leaf) if name == CACHE_DIR_ENV else path
        if not _usable_dir(chosen):
            raise ValueError(f"{name}={os.environ[name]!r}: dlcore's kernel cache needs a writable "
                             f"directory there, and {chosen!r} is not one")
        break
    else:
        root = default_cache_root()
        chosen = None if root is None else os.path.join(root, leaf)
    _cache_dir, _cache_dir_chosen = chosen, True
    return chosen


def _numba_cache_class(variant):
    """A numba FunctionCache class storing under numba_cache_dir(), with ``variant`` ("parallel"
    or "serial", then the error model: "serial-numpy") in the file names: a kernel's twins share one Python function, and numba's
    index key (signature, CPU, bytecode) would otherwise hand one twin the other's machine code.
    None when there is no usable directory or numba's caching internals are not the known ones."""
    if variant in _cache_classes:
        return _cache_classes[variant]
    directory = numba_cache_dir()
    cache_class = None
    if directory is not None:
        try:
            from numba.core import caching

            base_locator = getattr(caching, "UserProvidedCacheLocator", None) or caching._UserProvidedCacheLocator
            base_impl = caching.CompileResultCacheImpl

            class Locator(base_locator):
                def __init__(self, py_func, py_file):
                    self._py_file = py_file
                    self._lineno = py_func.__code__.co_firstlineno
                    self._cache_path = os.path.join(directory, self.get_suitable_cache_subpath(py_file))

                @classmethod
                def from_function(cls, py_func, py_file):
                    return super(base_locator, cls).from_function(py_func, py_file)

                def get_disambiguator(self):
                    return f"{self._lineno}-{variant}"

            class Impl(base_impl):
                _locator_classes = [Locator]

            class Cache(caching.FunctionCache):
                _impl_class = Impl

            cache_class = Cache
        except (ImportError, AttributeError, TypeError):  # a numba whose caching moved: no disk cache
            cache_class = None
    _cache_classes[variant] = cache_class
    return cache_class


def _njit(py_func, options, variant):
    """numba.njit with FASTMATH and ERROR_MODEL, cached under numba_cache_dir() (never next to the
    source)."""
    options = dict({"error_model": ERROR_MODEL}, **options)
    dispatcher = _numba.njit(cache=False, fastmath=FASTMATH, **options)(py_func)
    cache_class = _numba_cache_class(f"{variant}-{options['error_model']}")
    if cache_class is not None:
        try:
            dispatcher._cache = cache_class(py_func)
        except RuntimeError:  # no locator accepted the directory (it vanished): compile in memory
            pass
    return dispatcher


class LazyJit:
    """A Numba kernel compiled on its first call.

    ``@jit(parallel=True)`` keeps the plain Python function until the kernel is first called;
    then numba is imported and the function compiled with the shared FASTMATH flags and cached
    under numba_cache_dir(). Other lazy kernels of the module (helpers it may call) are turned into
    dispatchers first, so Numba sees real dispatchers when it types the caller.

    A parallel kernel also gets a serial twin from the same function (as umap does): calls whose
    first array holds fewer than PARALLEL_MIN_WORK elements run serially, because waking
    threads for small work costs more than the work, and a descheduled thread stalls the
    whole call on a busy machine.
    """

    def __init__(self, fn, options):
        self.py_func = fn
        self.options = options
        self.dispatcher = None
        self.serial = None
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn

    def compile(self):
        """The Numba dispatcher (created once; Numba compiles it per signature on first call)."""
        if self.dispatcher is None:
            load_numba()
            parallel = bool(self.options.get("parallel"))
            self.dispatcher = _njit(self.py_func, self.options, "parallel" if parallel else "serial")
            self.serial = (_njit(self.py_func, dict(self.options, parallel=False), "serial")
                           if parallel else self.dispatcher)
            globals_ = self.py_func.__globals__
            globals_[self.__name__] = self.dispatcher
            for name, value in list(globals_.items()):  # helpers this kernel may call
                if isinstance(value, LazyJit):
                    globals_[name] = value.compile()
        return self.dispatcher

    def __call__(self, *args):
        global _threads_started
        if self.dispatcher is None:
            self.compile()
        if self.serial is not self.dispatcher and _num_threads > 1:
            for arg in args:  # the first array argument measures the work
                size = getattr(arg, "size", None)
                if size is not None:
                    if size >= PARALLEL_MIN_WORK:
                        _threads_started = True
                        return self.dispatcher(*args)
                    break
        return self.serial(*args)

    def __repr__(self):
        state = "compiled" if self.dispatcher is not None else "not compiled yet"
        return f"<numba kernel {self.__module__}.{self.__name__} ({state})>"


def jit(**options):
    """Decorator for Numba kernels: ``@jit()`` or ``@jit(parallel=True)``; compiled on first call."""

    def wrap(fn):
        return LazyJit(fn, options)

    return wrap
