// Hot loops are compiled for x86-64-v4 (AVX-512), v3 (AVX2+FMA) and the baseline; the loader picks the best
// the CPU has at run time (grid nodes are heterogeneous, so no -march for the whole build). ISA levels,
// not CPU names: GCC resolves "arch=<cpu>" clones by CPU model, which misses AMD EPYC with AVX-512.
// Not under ASan or TSan: the clones' IFUNC resolvers run while the loader relocates, before the
// sanitizer runtime is up, and instrumented resolvers crash there.
#pragma once
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(QUIVER_TSAN)
#define QUIVER_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define QUIVER_HOT
#endif
