/* DL_CLONES: compile a function for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and the baseline, the
 * loader's ifunc picking one per CPU (GCC >= 11 on x86-64 Linux; elsewhere the baseline only).
 * The one ISA-clone switch of the kernels' C code (_elementwise, _pool, _recurrent, _normalization). */
#ifndef DL_CLONES_H
#define DL_CLONES_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && (__GNUC__ >= 11)
#define DL_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DL_CLONES
#endif

#endif
