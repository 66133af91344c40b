// im2col with the batch inside each row, and its adjoint col2im: the columns of a whole chunk
// of images as one (C*kh*kw, N*oh*ow) matrix, so the weight gradient gW = gy (OC, N*oh*ow) @ col^T
// and the input gradient's columns are one GEMM each.
//
//   x   (n, c, h, w)
//   col (c, kh, kw, n, oh, ow)      col[ch, i, j, b, y, x] = x[b, ch, y*sy - py + i*dil_h, x*sx - px + j*dil_w]
//                                   (0 where that position is outside the input)
#include "common.cuh"

// One thread per column element.
template <typename T>
__device__ void im2col_by_channel(const T* x, T* col, int n, int c, int h, int w, int kh, int kw,
                                  int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)c * kh * kw * n * oh * ow;
    GRID_STRIDE_LOOP(index, total) {
        long long rest = index;
        const int ox = (int)(rest % ow);
        rest /= ow;
        const int oy = (int)(rest % oh);
        rest /= oh;
        const int b = (int)(rest % n);
        rest /= n;
        const int j = (int)(rest % kw);
        rest /= kw;
        const int i = (int)(rest % kh);
        const long long channel = rest / kh;
        const T* plane = x + ((long long)b * c + channel) * h * w;
        col[index] = window_tap(plane, h, w, oy, ox, i, j, sy, sx, py, px, dil_h, dil_w);
    }
}

// One thread per input pixel: it sums every column element that was read from it (sum_of_taps).
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
        const long long tap_stride = (long long)n * oh * ow;
        const T* taps = col + (long long)channel * kh * kw * tap_stride + (long long)b * oh * ow;
        x[index] = T(sum_of_taps(taps, tap_stride, iy, ix, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow));
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define IM2COL_BY_CHANNEL_KERNELS(T, SUFFIX)                                                     \
    extern "C" __global__ void im2col_by_channel_##SUFFIX(                                       \
        const T* x, T* col, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py,  \
        int px, int dil_h, int dil_w, int oh, int ow)                                            \
    {                                                                                            \
        im2col_by_channel(x, col, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);     \
    }                                                                                            \
    extern "C" __global__ void col2im_by_channel_##SUFFIX(                                       \
        const T* col, T* x, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py,  \
        int px, int dil_h, int dil_w, int oh, int ow)                                            \
    {                                                                                            \
        col2im_by_channel(col, x, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);     \
    }

IM2COL_BY_CHANNEL_KERNELS(float, f32)
IM2COL_BY_CHANNEL_KERNELS(double, f64)
IM2COL_BY_CHANNEL_KERNELS(__half, f16)
