// Hot loops are compiled for AVX-512, AVX2+FMA and the x86-64 baseline; the loader picks the best
// the CPU has at run time (grid nodes are heterogeneous, so no -march for the whole build).
#pragma once
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define QUIVER_HOT __attribute__((target_clones("arch=skylake-avx512", "arch=haswell", "default")))
#else
#define QUIVER_HOT
#endif
