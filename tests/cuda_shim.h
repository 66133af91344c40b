// Lets g++ compile tinycnn's CUDA C (kernels/cuda/*.cu) unchanged, to run it on the CPU.
//
// CUDA's qualifiers become nothing, the built-in thread coordinates become thread-local
// variables, and run_grid() calls a kernel once per (block, thread) of a launch, one after
// the other. This is only faithful for kernels that never let threads talk to each other
// (no shared memory, no __syncthreads, no atomics), which is the rule for tinycnn's kernels.
#pragma once

#include <cmath>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// Device math the kernels may call. <cmath> supplies expf, powf, sqrtf, fmaxf, ... and the
// float and double overloads of pow, sqrt, exp, isnan that CUDA also has in device code;
// CUDA-only functions are spelled out (__int_as_float(0xff800000) is -inf in float, the
// NVRTC-safe replacement for INFINITY).
using std::exp;
using std::fabs;
using std::isnan;
using std::log;
using std::pow;
using std::sqrt;

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline double rsqrt(double v) { return 1.0 / std::sqrt(v); }

inline float __int_as_float(int bits)
{
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline double __longlong_as_double(long long bits)
{
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// Runs thread() for every thread of every block of the launch <<<grid, block>>>.
template <typename Thread>
void run_grid(dim3 grid, dim3 block, Thread thread)
{
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx)
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx) {
                            blockIdx = uint3{bx, by, bz};
                            threadIdx = uint3{tx, ty, tz};
                            thread();
                        }
}
