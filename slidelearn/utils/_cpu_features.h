/* CPU feature levels for the runtime-dispatched kernels (see slidelearn/utils/_cpu.pyx).
 *
 *   0 generic       portable C, any CPU
 *   1 avx2          AVX2 + FMA (256-bit fp32 FMA)
 *   2 avx512        AVX-512 F/BW/VL (512-bit fp32 FMA)
 *   3 avx512_bf16   AVX-512 + AVX512_BF16 (vdpbf16ps, vcvtne2ps2bf16)
 *
 * Levels are cumulative: a level is reported only if every lower one is present too.
 * The wide code is compiled with per-function target attributes, never with global
 * -m flags, so one build runs on any x86-64 CPU. AVX and AVX-512 features are read with
 * __builtin_cpu_supports, which also checks that the OS saves the wide registers
 * (XGETBV); AVX512_BF16 is read with cpuid leaf 7 sub-leaf 1 (EAX bit 5), because
 * __builtin_cpu_supports("avx512bf16") is missing from older compilers.
 * Compilers without x86 target attributes (or non-x86 CPUs) get the generic level only.
 */
#ifndef SLIDELEARN_CPU_FEATURES_H
#define SLIDELEARN_CPU_FEATURES_H

#if defined(__x86_64__) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 10))
#define SL_X86_DISPATCH 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define SL_X86_DISPATCH 0
#endif

enum {
    SL_CPU_GENERIC = 0,
    SL_CPU_AVX2 = 1,
    SL_CPU_AVX512 = 2,
    SL_CPU_AVX512_BF16 = 3
};

/* Highest level this CPU and this build support. */
static inline int sl_cpu_max_level(void) {
#if SL_X86_DISPATCH
    unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
    __builtin_cpu_init();
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
        return SL_CPU_GENERIC;
    if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
          && __builtin_cpu_supports("avx512vl")))
        return SL_CPU_AVX2;
    if (__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 5)))
        return SL_CPU_AVX512_BF16;
    return SL_CPU_AVX512;
#else
    return SL_CPU_GENERIC;
#endif
}

#endif
