#ifndef CQUANTCPU_H
#define CQUANTCPU_H
/// CPU feature bits for run-time kernel dispatch (x86: CPUID + XGETBV; elsewhere all zero).
typedef struct {
    int avx2;        ///< AVX2 + FMA + OS-enabled YMM state
    int avx512;      ///< AVX-512 F/BW/VL/DQ + OS-enabled ZMM state
    int avx512vnni;  ///< AVX-512 VNNI (vpdpbusd)
} qwb_cpu_features;

qwb_cpu_features qwb_detect_cpu(void);

/// glibc: serve large allocations from the heap and keep freed memory (no mmap/munmap and page
/// faults per large array). Returns 1 when applied, 0 elsewhere.
int qwb_keep_freed_memory(void);

/// A spin-wait hint (`pause` on x86, `yield` on arm64).
static inline void qwb_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
#endif
