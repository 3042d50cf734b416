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

/* dl_cpu_avx512(): whether the CPU runs AVX-512 F/BW/VL/DQ intrinsics (checked once), for the
 * kernels whose hand-written AVX-512 form sits beside a portable one (DL_HAVE_CPU_AVX512 where
 * the compiler can target it). */
#if defined(__GNUC__) && defined(__x86_64__)
#define DL_HAVE_CPU_AVX512 1
__attribute__((unused)) static int dl_cpu_avx512(void) {
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    return has;
}
#else
#define DL_HAVE_CPU_AVX512 0
#endif

#endif
