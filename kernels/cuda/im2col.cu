// im2col and its adjoint col2im, for convolution as one matrix product.
//
//   x   (planes, h, w)                 planes = N * C
//   col (planes, kh, kw, oh, ow)       col[p, i, j, y, x] = x[p, y*sy - py + i*dil_h, x*sx - px + j*dil_w]
//                                      (0 where that position is outside the input)
#include "common.cuh"

// One thread per column element.
template <typename T>
__device__ void im2col(const T* x, T* col, int planes, int h, int w, int kh, int kw,
                       int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)planes * kh * kw * oh * ow;
    GRID_STRIDE_LOOP(index, total) {
        long long rest = index;
        const int ox = (int)(rest % ow);
        rest /= ow;
        const int oy = (int)(rest % oh);
        rest /= oh;
        const int j = (int)(rest % kw);
        rest /= kw;
        const int i = (int)(rest % kh);
        const long long plane = rest / kh;
        const int iy = oy * sy - py + i * dil_h;
        const int ix = ox * sx - px + j * dil_w;
        const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        col[index] = inside ? x[(plane * h + iy) * w + ix] : T(0);
    }
}

// One thread per input pixel: it sums every column element that was read from it, in
// (i, j) order, so the result is deterministic (no atomics).
template <typename T>
__device__ void col2im(const T* col, T* x, int planes, int h, int w, int kh, int kw,
                       int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)planes * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const long long plane = index / w / h;
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
                    sum += Acc(col[(((plane * kh + i) * kw + j) * oh + oy) * ow + ox]);
                }
            }
        }
        x[index] = T(sum);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define IM2COL_KERNELS(T, SUFFIX)                                                          \
    extern "C" __global__ void im2col_##SUFFIX(                                            \
        const T* x, T* col, int planes, int h, int w, int kh, int kw,                      \
        int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)                    \
    {                                                                                      \
        im2col(x, col, planes, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);              \
    }                                                                                      \
    extern "C" __global__ void col2im_##SUFFIX(                                            \
        const T* col, T* x, int planes, int h, int w, int kh, int kw,                      \
        int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)                    \
    {                                                                                      \
        col2im(col, x, planes, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);              \
    }

IM2COL_KERNELS(float, f32)
IM2COL_KERNELS(double, f64)
IM2COL_KERNELS(__half, f16)
