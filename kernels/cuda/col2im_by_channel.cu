// col2im from the batch-inside-each-row layout of im2col_by_channel: the adjoint that turns
// the input gradient's columns, one (C*kh*kw, N*oh*ow) matrix from a single GEMM, into the image.
//
//   col (c, kh, kw, n, oh, ow)      x (n, c, h, w)
#include "common.cuh"

// One thread per input pixel: it sums every column element that was read from it, in (i, j)
// order (deterministic, no atomics).
template <typename T>
__device__ void col2im_by_channel(const T* col, T* x, int n, int c, int h, int w, int kh, int kw,
                                  int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)n * c * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const int channel = (int)(index / w / h % c);
        const int b = (int)(index / w / h / c);
        typename Accumulator<T>::type sum = 0;        // float for __half: rounded once, at the store
        for (int i = 0; i < kh; ++i) {
            const int oy = output_of_tap(iy + py - i * dil_h, sy, oh);
            if (oy < 0) {
                continue;
            }
            for (int j = 0; j < kw; ++j) {
                const int ox = output_of_tap(ix + px - j * dil_w, sx, ow);
                if (ox >= 0) {
                    sum += (typename Accumulator<T>::type)col[(((((long long)channel * kh + i) * kw + j) * n + b) * oh + oy) * ow + ox];
                }
            }
        }
        x[index] = T(sum);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define COL2IM_BY_CHANNEL_KERNELS(T, SUFFIX)                                                     \
    extern "C" __global__ void col2im_by_channel_##SUFFIX(                                       \
        const T* col, T* x, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py,  \
        int px, int dil_h, int dil_w, int oh, int ow)                                            \
    {                                                                                            \
        col2im_by_channel(col, x, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);     \
    }

COL2IM_BY_CHANNEL_KERNELS(float, f32)
COL2IM_BY_CHANNEL_KERNELS(double, f64)
COL2IM_BY_CHANNEL_KERNELS(__half, f16)
