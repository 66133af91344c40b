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
        col[index] = window_tap(x + plane * h * w, h, w, oy, ox, i, j, sy, sx, py, px, dil_h, dil_w);
    }
}

// One thread per input pixel: it sums every column element that was read from it (sum_of_taps).
template <typename T>
__device__ void col2im(const T* col, T* x, int planes, int h, int w, int kh, int kw,
                       int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)planes * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const long long plane = index / w / h;
        const long long tap_stride = (long long)oh * ow;
        const T* taps = col + plane * kh * kw * tap_stride;
        x[index] = T(sum_of_taps(taps, tap_stride, iy, ix, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow));
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
