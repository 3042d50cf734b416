"""Settings shared by every kernel family: fastmath flags, thread count, lazy Numba compilation.

Numba is imported on the first call of a Numba kernel, never at import time: inference runs on
the Cython kernels alone, so ``import dlcore`` + ``predict`` stay free of Numba's start-up cost.
"""
import os
import tempfile

# No "nnan"/"ninf": NaN checks and TerminateOnNaN must keep seeing NaN and inf.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

_num_threads = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)

# Below this many scalar operations a kernel runs on one thread: thread start-up costs more.
PARALLEL_MIN_WORK = 1 << 15


def num_threads():
    """The thread count every kernel uses (Cython OpenMP, Numba, BLAS)."""
    return _num_threads


def set_num_threads(n):
    """Set the kernel thread count for OpenMP, BLAS and (once loaded) Numba."""
    global _num_threads
    _num_threads = int(n)
    set_blas_threads(_num_threads)
    if _numba is not None:
        _numba.set_num_threads(min(_num_threads, _numba.config.NUMBA_NUM_THREADS))


# (getter, setter) thread-count symbols of the OpenBLAS builds we know: plain, scipy's LP64 and
# numpy's ILP64 ("64_" suffix).
OPENBLAS_THREAD_SYMBOLS = (
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
)


def blas_thread_hooks():
    """[(library path, getter, setter)]: ctypes thread-count functions of each OpenBLAS loaded in
    this process. Kernels that run single-threaded BLAS inside their own OpenMP chunks take the
    C addresses from here (one discovery for every family)."""
    import ctypes

    hooks = []
    for path in _loaded_blas_libraries():
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
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if ".so" in line}
    except OSError:  # not Linux: leave BLAS to its own default
        return []
    keys = ("openblas", "libmkl_rt", "libblis")
    return sorted(p for p in paths if any(k in os.path.basename(p).lower() for k in keys))


def threads_for(work):
    """Threads worth using for ``work`` scalar operations: 1 for small work, else num_threads()."""
    return 1 if work < PARALLEL_MIN_WORK else _num_threads


def preload_cython_blas():
    """Load scipy's BLAS function table without importing all of ``scipy.linalg``.

    The Cython kernels cimport ``scipy.linalg.cython_blas``; importing it the usual way runs
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


def _writable(path):
    return os.access(path, os.W_OK)


def load_numba():
    """Import numba once, with a writable cache directory, and apply the thread count."""
    global _numba
    if _numba is not None:
        return _numba
    here = os.path.dirname(os.path.abspath(__file__))
    if "NUMBA_CACHE_DIR" not in os.environ and not _writable(here):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        if not (os.path.isdir(base) and _writable(base)) and not _try_makedirs(base):
            base = tempfile.gettempdir()
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "dlcore", "numba")
    import numba

    global prange
    _numba = numba
    prange = numba.prange
    numba.set_num_threads(min(_num_threads, numba.config.NUMBA_NUM_THREADS))
    return numba


def _try_makedirs(path):
    try:
        os.makedirs(path, exist_ok=True)
        return _writable(path)
    except OSError:
        return False


class LazyJit:
    """A Numba kernel compiled on its first call.

    ``@jit(parallel=True)`` keeps the plain Python function until the kernel is first called;
    then numba is imported and the function compiled with ``cache=True`` and the shared
    FASTMATH flags. Other lazy kernels of the module (helpers it may call) are turned into
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
            numba = load_numba()
            self.dispatcher = numba.njit(cache=True, fastmath=FASTMATH, **self.options)(self.py_func)
            serial_options = dict(self.options, parallel=False)
            self.serial = (numba.njit(cache=True, fastmath=FASTMATH, **serial_options)(self.py_func)
                           if self.options.get("parallel") else self.dispatcher)
            globals_ = self.py_func.__globals__
            globals_[self.__name__] = self.dispatcher
            for name, value in list(globals_.items()):  # helpers this kernel may call
                if isinstance(value, LazyJit):
                    globals_[name] = value.compile()
        return self.dispatcher

    def __call__(self, *args):
        if self.dispatcher is None:
            self.compile()
        if self.serial is not self.dispatcher and _num_threads > 1:
            for arg in args:  # the first array argument measures the work
                size = getattr(arg, "size", None)
                if size is not None:
                    if size >= PARALLEL_MIN_WORK:
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
