#ifndef CQUANTCPU_H
#define CQUANTCPU_H
/// CPU feature bits for run-time kernel dispatch (x86: CPUID + XGETBV; elsewhere all zero).
typedef struct {
    int avx2;        ///< AVX2 + FMA + OS-enabled YMM state
    int avx512;      ///< AVX-512 F/BW/VL/DQ + OS-enabled ZMM state
    int avx512vnni;  ///< AVX-512 VNNI (vpdpbusd)
} qwb_cpu_features;

qwb_cpu_features qwb_detect_cpu(void);
#endif
