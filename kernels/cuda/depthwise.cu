// Depthwise 2-D convolution (groups == input channels), computed directly without im2col.
//
//   x, gx            (n, c, h, w)
//   weight, gweight  (c * m, kh, kw)       output channel o reads input channel o / m
//   y, gy            (n, c * m, oh, ow)    y[b, o, oy, ox] = sum over (i, j) of
//                                          weight[o, i, j] * x[b, o / m, oy*sy - py + i*dil_h, ox*sx - px + j*dil_w]
#include "common.cuh"

// One thread per output element.
template <typename T>
__device__ void depthwise_conv2d_forward(const T* x, const T* weight, T* y, int n, int c, int h,
                                         int w, int m, int kh, int kw, int sy, int sx, int py,
                                         int px, int dil_h, int dil_w, int oh, int ow)
{
    const long long total = (long long)n * c * m * oh * ow;
    GRID_STRIDE_LOOP(index, total) {
        const int ox = (int)(index % ow);
        const int oy = (int)(index / ow % oh);
        const long long batch_and_out_channel = index / ow / oh;
        const int out_channel = (int)(batch_and_out_channel % ((long long)c * m));
        const long long batch = batch_and_out_channel / ((long long)c * m);
        const T* plane = x + (batch * c + out_channel / m) * h * w;
        const T* taps = weight + (long long)out_channel * kh * kw;
        T sum = 0;
        for (int i = 0; i < kh; ++i) {
            const int iy = oy * sy - py + i * dil_h;
            if (iy < 0 || iy >= h) {
                continue;
            }
            for (int j = 0; j < kw; ++j) {
                const int ix = ox * sx - px + j * dil_w;
                if (ix >= 0 && ix < w) {
                    sum += taps[i * kw + j] * plane[iy * w + ix];
                }
            }
        }
        y[index] = sum;
    }
}

// One thread per input pixel: sums weight * gy over every output that read it.
template <typename T>
__device__ void depthwise_conv2d_backward_input(const T* gy, const T* weight, T* gx, int n, int c,
                                                int h, int w, int m, int kh, int kw, int sy,
                                                int sx, int py, int px, int dil_h, int dil_w, int oh,
                                                int ow)
{
    const long long total = (long long)n * c * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const long long batch_and_channel = index / w / h;
        const int channel = (int)(batch_and_channel % c);
        // gy planes of output channels channel*m .. channel*m + m-1 of this batch are adjacent
        const T* gy_planes = gy + batch_and_channel * m * oh * ow;
        const T* taps = weight + (long long)channel * m * kh * kw;
        T sum = 0;
        for (int k = 0; k < m; ++k) {
            for (int i = 0; i < kh; ++i) {
                const int oy = output_of_tap(iy + py - i * dil_h, sy, oh);
                if (oy < 0) {
                    continue;
                }
                for (int j = 0; j < kw; ++j) {
                    const int ox = output_of_tap(ix + px - j * dil_w, sx, ow);
                    if (ox >= 0) {
                        sum += taps[(k * kh + i) * kw + j]
                               * gy_planes[((long long)k * oh + oy) * ow + ox];
                    }
                }
            }
        }
        gx[index] = sum;
    }
}

// One thread per weight element: sums x * gy over the batch and every output position.
template <typename T>
__device__ void depthwise_conv2d_backward_weight(const T* x, const T* gy, T* gweight, int n,
                                                 int c, int h, int w, int m, int kh, int kw,
                                                 int sy, int sx, int py, int px, int dil_h, int dil_w,
                                                 int oh, int ow)
{
    const long long total = (long long)c * m * kh * kw;
    GRID_STRIDE_LOOP(index, total) {
        const int j = (int)(index % kw);
        const int i = (int)(index / kw % kh);
        const int out_channel = (int)(index / kw / kh);
        T sum = 0;
        for (int batch = 0; batch < n; ++batch) {
            const T* plane = x + ((long long)batch * c + out_channel / m) * h * w;
            const T* gy_plane = gy + ((long long)batch * c * m + out_channel) * oh * ow;
            for (int oy = 0; oy < oh; ++oy) {
                const int iy = oy * sy - py + i * dil_h;
                if (iy < 0 || iy >= h) {
                    continue;
                }
                for (int ox = 0; ox < ow; ++ox) {
                    const int ix = ox * sx - px + j * dil_w;
                    if (ix >= 0 && ix < w) {
                        sum += plane[iy * w + ix] * gy_plane[oy * ow + ox];
                    }
                }
            }
        }
        gweight[index] = sum;
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define DEPTHWISE_KERNELS(T, SUFFIX)                                                       \
    extern "C" __global__ void depthwise_conv2d_forward_##SUFFIX(                          \
        const T* x, const T* weight, T* y, int n, int c, int h, int w, int m, int kh,      \
        int kw, int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)            \
    {                                                                                      \
        depthwise_conv2d_forward(x, weight, y, n, c, h, w, m, kh, kw, sy, sx, py, px,      \
                                 dil_h, dil_w, oh, ow);                                          \
    }                                                                                      \
    extern "C" __global__ void depthwise_conv2d_backward_input_##SUFFIX(                   \
        const T* gy, const T* weight, T* gx, int n, int c, int h, int w, int m, int kh,    \
        int kw, int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)            \
    {                                                                                      \
        depthwise_conv2d_backward_input(gy, weight, gx, n, c, h, w, m, kh, kw, sy, sx,     \
                                        py, px, dil_h, dil_w, oh, ow);                           \
    }                                                                                      \
    extern "C" __global__ void depthwise_conv2d_backward_weight_##SUFFIX(                  \
        const T* x, const T* gy, T* gweight, int n, int c, int h, int w, int m, int kh,    \
        int kw, int sy, int sx, int py, int px, int dil_h, int dil_w, int oh, int ow)            \
    {                                                                                      \
        depthwise_conv2d_backward_weight(x, gy, gweight, n, c, h, w, m, kh, kw, sy, sx,    \
                                         py, px, dil_h, dil_w, oh, ow);                          \
    }

DEPTHWISE_KERNELS(float, f32)
DEPTHWISE_KERNELS(double, f64)
