# The BLAS thread switch shared by the extensions that call BLAS from OpenMP threads (_conv,
# _recurrent, _rows_matmul): declarations of dl_blas_threads.h, where the design is. Each such
# extension also defines `def bind_blas_threads(size_t address): dl_blas_bind(address)`, which
# kernels/_blas.py calls with the address of the process's one state.
cdef extern from "dl_blas_threads.h" nogil:
    void dl_blas_bind(size_t address)
    int dl_blas_bound()
    int dl_blas_serial_enter(int n_threads)
    void dl_blas_serial_exit()
