# The process's work-sharing thread team (kernels/dl_team.h, where the design is), owned by
# kernels/_team.pyx. Other extensions `from ._team cimport team_run` (Cython's cross-module cdef
# functions: one team per process, whichever extension calls it).
ctypedef void (*dl_team_fn)(void *arg, Py_ssize_t chunk) noexcept nogil
ctypedef void (*dl_team_whole)(void *arg) noexcept nogil

cdef int team_run(dl_team_fn fn, void *arg, Py_ssize_t chunks, int n_threads,
                  unsigned long long key, dl_team_whole whole=*) noexcept nogil
