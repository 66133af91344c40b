// Helpers shared by every kernel source in this folder.
//
// Rules that all tinycnn CUDA kernels follow (tests/test_cuda_kernels.py relies on them to
// run the same source on the CPU):
//   * one thread per OUTPUT element, inside a grid-stride loop, so any launch shape (even a
//     single thread) covers the whole output;
//   * "backward" kernels gather (each output element sums its own contributions) instead of
//     scattering with atomics, so results do not depend on the order threads run in;
//   * a kernel whose threads cooperate (__shared__ arrays, __syncthreads) is marked
//     TINYCNN_COOPERATIVE, reduces in a fixed tree order (deterministic), works for any
//     blockDim, and reaches each __syncthreads in every thread of its block;
//   * sizes arrive as 32-bit `int` parameters (the Python loader passes numpy.int32 scalars,
//     because CuPy marshals a plain Python int as a 64-bit integer), while flat indices and
//     totals are `long long`, because products of sizes can exceed 2^31.
//   * no INFINITY / CUDART_INF_F: NVRTC does not define them.
//
// The loader pastes this header in place of `#include "common.cuh"` before NVRTC sees a
// source, so CuPy's kernel cache key covers its text too.
#ifndef TINYCNN_COMMON_CUH
#define TINYCNN_COMMON_CUH

// Marks a cooperative kernel; tests/cuda_harness.py runs the blocks of the marked ones as fibers.
#ifndef TINYCNN_COOPERATIVE
#define TINYCNN_COOPERATIVE
#endif

// for (long long i = <this thread's first index>; i < total; i += <threads in the grid>)
#define GRID_STRIDE_LOOP(i, total)                                         \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;   \
         i < (total); i += (long long)blockDim.x * gridDim.x)

// float16 (mixed precision): a kernel instantiated for __half (cuda_fp16.h on the GPU,
// tests/cuda_shim.h on the host) loads each value as Accumulator<T>::type, float, computes
// and sums in float, and rounds once when it stores; float and double compute in themselves.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#include <cuda_fp16.h>
#endif

template <typename T>
struct Accumulator {
    using type = T;
};

template <>
struct Accumulator<__half> {
    using type = float;
};

// Output position whose window tap lands on an input position: a tap at
// input = out * stride - pad + tap_index * dilation  means  offset = input + pad - tap * dilation
// must be a non-negative multiple of `stride` with offset / stride < out_size.
// Returns that output position, or -1 if there is none.
__device__ __forceinline__ int output_of_tap(int offset, int stride, int out_size)
{
    if (offset < 0 || offset % stride != 0) {
        return -1;
    }
    const int out = offset / stride;
    return out < out_size ? out : -1;
}

// First and one-past-last output positions whose (undilated) window of `kernel` cells,
// starting at out * stride - pad, contains input position `in`.
__device__ __forceinline__ int first_window_containing(int in, int kernel, int stride, int pad)
{
    const int last_start = in + pad;  // the window starting here has `in` as its first cell
    return last_start < kernel ? 0 : (last_start - kernel) / stride + 1;
}

__device__ __forceinline__ int end_of_windows_containing(int in, int stride, int pad, int out_size)
{
    const int end = (in + pad) / stride + 1;
    return end < out_size ? end : out_size;
}

// The input value im2col copies for tap (i, j) of output position (oy, ox): plane[iy, ix] with
// iy = oy * sy - py + i * dil_h, ix = ox * sx - px + j * dil_w, or 0 outside the (h, w) plane.
template <typename T>
__device__ __forceinline__ T window_tap(const T* plane, int h, int w, int oy, int ox, int i, int j,
                                        int sy, int sx, int py, int px, int dil_h, int dil_w)
{
    const int iy = oy * sy - py + i * dil_h;
    const int ix = ox * sx - px + j * dil_w;
    const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
    return inside ? plane[(long long)iy * w + ix] : T(0);
}

// col2im's gather: the sum of every column element that window_tap read from input pixel
// (iy, ix), in (i, j) order (deterministic, no atomics). `col` holds an (oh, ow) block per tap,
// block (i, j) at col + (i * kw + j) * tap_stride.
template <typename T>
__device__ __forceinline__ typename Accumulator<T>::type sum_of_taps(
    const T* col, long long tap_stride, int iy, int ix, int kh, int kw, int sy, int sx, int py, int px,
    int dil_h, int dil_w, int oh, int ow)
{
    using Acc = typename Accumulator<T>::type;
    Acc sum = 0;
    for (int i = 0; i < kh; ++i) {
        const int oy = output_of_tap(iy + py - i * dil_h, sy, oh);
        if (oy < 0) {
            continue;
        }
        for (int j = 0; j < kw; ++j) {
            const int ox = output_of_tap(ix + px - j * dil_w, sx, ow);
            if (ox >= 0) {
                sum += Acc(col[(i * kw + j) * tap_stride + (long long)oy * ow + ox]);
            }
        }
    }
    return sum;
}

// Cooperative reductions: REDUCE_THREADS is the most threads a reduction block may have (the
// size of its __shared__ arrays; kernels/cuda/batch_norm.py launches no more).
#define REDUCE_THREADS 256

// a[0] = a[0] + ... + a[blockDim.x - 1], the same for b unless it is null, in a fixed order
// (deterministic). Every thread of the block calls it; a[t], b[t] hold thread t's partial sums.
__device__ __forceinline__ void block_sum(double* a, double* b)
{
    const unsigned t = threadIdx.x;
    unsigned width = blockDim.x;
    __syncthreads();
    while (width > 1) {
        const unsigned half = (width + 1) / 2;
        if (t + half < width) {
            a[t] += a[t + half];
            if (b != nullptr) {
                b[t] += b[t + half];
            }
        }
        __syncthreads();
        width = half;
    }
}

#endif  // TINYCNN_COMMON_CUH
