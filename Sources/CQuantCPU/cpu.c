#include "CQuantCPU.h"
#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
static unsigned long long xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
qwb_cpu_features qwb_detect_cpu(void) {
    qwb_cpu_features f = {0, 0, 0};
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return f;
    unsigned long long xcr0 = xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6, zmm = (xcr0 & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
    f.avx2 = ymm && fma && ((b >> 5) & 1);
    int avx512f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    f.avx512 = f.avx2 && zmm && avx512f && dq && bw && vl;
    f.avx512vnni = f.avx512 && ((c >> 11) & 1);
    return f;
}
#else
qwb_cpu_features qwb_detect_cpu(void) { qwb_cpu_features f = {0, 0, 0}; return f; }
#endif

#include <stdlib.h>   /* defines __GLIBC__ on glibc */
#if defined(__GLIBC__)
#include <malloc.h>
int qwb_keep_freed_memory(void) {
    // Large blocks from the heap rather than fresh mmaps, and freed memory kept (never trimmed):
    // a 100 MB logits matrix otherwise pays ~25,000 page faults (about 50 ms) every time it is
    // allocated, and a calibration pass frees and re-faults gigabytes per block. The resident set
    // stays at its peak, which the run reports anyway.
    return mallopt(M_MMAP_MAX, 0) && mallopt(M_TRIM_THRESHOLD, -1);
}
#else
int qwb_keep_freed_memory(void) { return 0; }
#endif
