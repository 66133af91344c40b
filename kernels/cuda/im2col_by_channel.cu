// im2col with the batch inside each row: the columns of a whole chunk of images as one
// (C*kh*kw, N*oh*ow) matrix, so the weight gradient gW = gy (OC, N*oh*ow) @ col^T is one GEMM.
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
        const int iy = oy * sy - py + i * dil_h;
        const int ix = ox * sx - px + j * dil_w;
        const bool inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
        col[index] = inside ? x[(((long long)b * c + channel) * h + iy) * w + ix] : T(0);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define IM2COL_BY_CHANNEL_KERNELS(T, SUFFIX)                                                     \
    extern "C" __global__ void im2col_by_channel_##SUFFIX(                                       \
        const T* x, T* col, int n, int c, int h, int w, int kh, int kw, int sy, int sx, int py,  \
        int px, int dil_h, int dil_w, int oh, int ow)                                            \
    {                                                                                            \
        im2col_by_channel(x, col, n, c, h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow);     \
    }

IM2COL_BY_CHANNEL_KERNELS(float, f32)
IM2COL_BY_CHANNEL_KERNELS(double, f64)
IM2COL_BY_CHANNEL_KERNELS(__half, f16)
