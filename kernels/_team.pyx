# Design: the one thread team of the process for short parallel regions (dl_team.h has the
# protocol: spinning pthread workers, chunks claimed by CAS on a generation ticket, the caller
# working too and waiting only for chunks others claimed). This module owns the state; the
# kernels reach it through team_run (_team.pxd). Used between TEAM_MIN_MACS and
# TEAM_MAX_MACS (kernels/_config.py): the batch-1 GEMV, the own GEMM's products, the attention
# forward and the batch-1 convolutions; OpenMP keeps the large (training) products.
from . import _config

cdef extern from "dl_team.h" nogil:
    ctypedef struct dl_team:
        unsigned long long jobs_shared
        unsigned long long chunks_by_workers
        unsigned long long late_worker_ns
        int workers_from_front
        unsigned long long jobs_solo
        int guard
        long long spin_ns
        long long callers_met_ns
        int n_workers
    void dl_team_init(dl_team *t)
    ctypedef void (*dl_team_fn_c "dl_team_fn")(void *arg, Py_ssize_t chunk) noexcept nogil
    ctypedef void (*dl_team_whole_c "dl_team_whole_fn")(void *arg) noexcept nogil
    int dl_team_run(dl_team *t, dl_team_fn_c fn, void *arg, Py_ssize_t chunks, int n_threads,
                    unsigned long long key, dl_team_whole_c whole)
    int dl_team_resize(dl_team *t, int n_threads)
    void dl_team_after_fork_child(dl_team *t)
    int dl_team_try_own(dl_team *t)
    void dl_team_release(dl_team *t)

cdef extern from "pthread.h" nogil:
    ctypedef unsigned long pthread_t
    pthread_t pthread_self()
    int pthread_equal(pthread_t a, pthread_t b)
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil,
                       void (*child)() noexcept nogil)

from libc.stdlib cimport malloc

cdef dl_team *_TEAM = <dl_team *>malloc(sizeof(dl_team))
if _TEAM == NULL:
    raise MemoryError()
dl_team_init(_TEAM)


cdef void _child() noexcept nogil:
    dl_team_after_fork_child(_TEAM)


pthread_atfork(NULL, NULL, _child)


cdef int team_run(dl_team_fn fn, void *arg, Py_ssize_t chunks, int n_threads,
                  unsigned long long key, dl_team_whole whole=NULL) noexcept nogil:
    """fn(arg, c) for c in [0, chunks) on up to n_threads threads; returns the threads that took
    part (1: the caller ran every chunk, e.g. when another caller held the team, or the load
    guard measured the caller alone faster for this kind of job). key: what tells this job's
    kind apart among those of fn (e.g. the product's shape), for the load guard; whole: the job
    in one serial call, for the guard's runs on the caller alone (NULL: the chunks in turn)."""
    return dl_team_run(_TEAM, <dl_team_fn_c>fn, arg, chunks, n_threads, key, <dl_team_whole_c>whole)


def resize(int n_threads):
    """Run the team with n_threads - 1 workers (0: none); returns the workers running."""
    if n_threads < 1:
        raise ValueError(f"team resize: expected a thread count >= 1, received {n_threads}")
    with nogil:
        n = dl_team_resize(_TEAM, n_threads)
    return n


def workers():
    """The worker threads running now."""
    return _TEAM.n_workers


def stats():
    """(jobs run with the workers, chunks the workers ran) since import: tests, measurements."""
    return int(_TEAM.jobs_shared), int(_TEAM.chunks_by_workers)


def solo_jobs():
    """Multi-threaded jobs the load guard ran on the caller alone since import."""
    return int(_TEAM.jobs_solo)


def set_load_guard(bint on):
    """Turn the load guard (dl_team.h) on or off; returns the previous setting. Tests that count
    shared jobs turn it off: on a loaded host it would run some of them alone."""
    previous = bool(_TEAM.guard)
    _TEAM.guard = on
    return previous


def forget_callers():
    """Close the window in which every caller runs alone after two met (dl_team.h's
    DL_TEAM_CALLERS_NS): tests that count shared jobs after others predicted from threads."""
    _TEAM.callers_met_ns = 0


def set_spin(double seconds):
    """How long an idle worker spins before it sleeps (measurements); returns the previous."""
    previous = _TEAM.spin_ns / 1e9
    _TEAM.spin_ns = <long long>(max(seconds, 0.0) * 1e9)
    return previous


def set_late_worker(double seconds):
    """Tests: each worker sleeps ``seconds`` after claiming a chunk (0: off); returns the previous."""
    previous = _TEAM.late_worker_ns / 1e9
    _TEAM.late_worker_ns = <unsigned long long>(max(seconds, 0.0) * 1e9)
    return previous


def set_workers_from_front(bint on):
    """Measurements: workers claim chunks from the front as the caller does (one-ended claims)
    instead of from the back; returns the previous setting."""
    previous = bool(_TEAM.workers_from_front)
    _TEAM.workers_from_front = on
    return previous


# Tests: a job whose chunk c writes out[c] = owner-independent values after `spin` ns of work,
# and owner[c] = 1 where a worker ran it (0: the caller).
cdef struct _Fill:
    double *out
    Py_ssize_t width
    long spin_iters
    pthread_t caller
    unsigned char *owner


cdef void _fill_chunk(void *arg, Py_ssize_t c) noexcept nogil:
    cdef _Fill *f = <_Fill *>arg
    cdef Py_ssize_t j
    cdef double acc = c
    cdef long i
    for i in range(f.spin_iters):
        acc = acc * 0.999999 + 1.0
    for j in range(f.width):
        f.out[c * f.width + j] = c * 1000.0 + j + (acc - acc)
    if f.owner != NULL:
        f.owner[c] = 0 if pthread_equal(pthread_self(), f.caller) else 1


def fill_test(double[:, ::1] out, int n_threads, long spin_iters=0, unsigned char[::1] owner=None):
    """Tests: out[c, j] = 1000 c + j, one chunk per row c, through team_run, and owner[c] = 1
    where a worker ran chunk c (0: the caller), if given; returns the threads that took part."""
    cdef _Fill f
    cdef int used
    if out.shape[0] == 0:
        return 1
    if owner is not None and owner.shape[0] != out.shape[0]:
        raise ValueError(f"fill_test: expected owner ({out.shape[0]},), received ({owner.shape[0]},)")
    f.out = &out[0, 0]
    f.width = out.shape[1]
    f.spin_iters = spin_iters
    f.caller = pthread_self()
    f.owner = &owner[0] if owner is not None else NULL
    with nogil:
        used = team_run(_fill_chunk, &f, out.shape[0], n_threads,
                        out.shape[0] * 1000003 + spin_iters)
    return used


def _on_thread_count(int n_threads):
    """set_num_threads: stop workers of another count (they start again at the next job)."""
    if _TEAM.n_workers != n_threads - 1:
        resize(1)


_config.add_thread_listener(_on_thread_count)
