// 2-D max and average pooling, forward and backward.
//
//   x, gx    (planes, h, w)     planes = N * C
//   y, gy    (planes, oh, ow)   window of output (oy, ox) starts at (oy*sy - py, ox*sx - px)
//   argmax   (planes, oh, ow)   int32 flat index iy * w + ix of the window's maximum
#include "common.cuh"

// One thread per output. Keeps the FIRST maximum in scan order (strict >); a NaN is the
// maximum and ends the scan, as in PyTorch. Padding cells are skipped, which is the same as
// reading -inf there; the caller guarantees each window holds at least one input pixel.
template <typename T>
__device__ void max_pool2d_forward(const T* x, T* y, int* argmax, int planes, int h, int w,
                                   int kh, int kw, int sy, int sx, int py, int px, int oh, int ow)
{
    const long long total = (long long)planes * oh * ow;
    GRID_STRIDE_LOOP(index, total) {
        const int ox = (int)(index % ow);
        const int oy = (int)(index / ow % oh);
        const T* plane = x + index / ow / oh * h * w;
        using Acc = typename Accumulator<T>::type;
        Acc best = 0;
        int best_at = -1;
        bool found_nan = false;
        for (int iy = max(oy * sy - py, 0); iy < min(oy * sy - py + kh, h) && !found_nan; ++iy) {
            for (int ix = max(ox * sx - px, 0); ix < min(ox * sx - px + kw, w); ++ix) {
                const Acc value = Acc(plane[iy * w + ix]);
                if (best_at < 0 || value > best || isnan(value)) {
                    best = value;
                    best_at = iy * w + ix;
                    found_nan = isnan(value);
                    if (found_nan) {
                        break;
                    }
                }
            }
        }
        y[index] = T(best);
        argmax[index] = best_at;
    }
}

// One thread per input pixel: sums gy over the windows that contain it and chose it.
template <typename T>
__device__ void max_pool2d_backward(const T* gy, const int* argmax, T* gx, int planes, int h,
                                    int w, int kh, int kw, int sy, int sx, int py, int px,
                                    int oh, int ow)
{
    const long long total = (long long)planes * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const long long plane_start = index / w / h * oh * ow;
        const int oy_end = end_of_windows_containing(iy, sy, py, oh);
        const int ox_end = end_of_windows_containing(ix, sx, px, ow);
        using Acc = typename Accumulator<T>::type;
        Acc sum = 0;
        for (int oy = first_window_containing(iy, kh, sy, py); oy < oy_end; ++oy) {
            for (int ox = first_window_containing(ix, kw, sx, px); ox < ox_end; ++ox) {
                const long long out = plane_start + oy * ow + ox;
                if (argmax[out] == iy * w + ix) {
                    sum += Acc(gy[out]);
                }
            }
        }
        gx[index] = T(sum);
    }
}

// PyTorch's average-pooling divisor for the window starting at (ys, xs): the window is first
// clipped to the padded input, then to the input; count_include_pad divides by the former.
__device__ __forceinline__ int avg_pool_divisor(int ys, int xs, int h, int w, int kh, int kw,
                                                int py, int px, int count_include_pad)
{
    const int padded_ye = min(ys + kh, h + py);
    const int padded_xe = min(xs + kw, w + px);
    if (count_include_pad) {
        return (padded_ye - ys) * (padded_xe - xs);
    }
    return (min(padded_ye, h) - max(ys, 0)) * (min(padded_xe, w) - max(xs, 0));
}

// One thread per output: the mean of its window's input pixels.
template <typename T>
__device__ void avg_pool2d_forward(const T* x, T* y, int planes, int h, int w, int kh, int kw,
                                   int sy, int sx, int py, int px, int oh, int ow,
                                   int count_include_pad)
{
    const long long total = (long long)planes * oh * ow;
    GRID_STRIDE_LOOP(index, total) {
        const int ox = (int)(index % ow);
        const int oy = (int)(index / ow % oh);
        const T* plane = x + index / ow / oh * h * w;
        const int ys = oy * sy - py;
        const int xs = ox * sx - px;
        using Acc = typename Accumulator<T>::type;
        Acc sum = 0;
        for (int iy = max(ys, 0); iy < min(ys + kh, h); ++iy) {
            for (int ix = max(xs, 0); ix < min(xs + kw, w); ++ix) {
                sum += Acc(plane[iy * w + ix]);
            }
        }
        y[index] = T(sum / Acc(avg_pool_divisor(ys, xs, h, w, kh, kw, py, px, count_include_pad)));
    }
}

// One thread per input pixel: sums gy / divisor over the windows that contain it.
template <typename T>
__device__ void avg_pool2d_backward(const T* gy, T* gx, int planes, int h, int w, int kh,
                                    int kw, int sy, int sx, int py, int px, int oh, int ow,
                                    int count_include_pad)
{
    const long long total = (long long)planes * h * w;
    GRID_STRIDE_LOOP(index, total) {
        const int ix = (int)(index % w);
        const int iy = (int)(index / w % h);
        const T* gy_plane = gy + index / w / h * oh * ow;
        const int oy_end = end_of_windows_containing(iy, sy, py, oh);
        const int ox_end = end_of_windows_containing(ix, sx, px, ow);
        using Acc = typename Accumulator<T>::type;
        Acc sum = 0;
        for (int oy = first_window_containing(iy, kh, sy, py); oy < oy_end; ++oy) {
            for (int ox = first_window_containing(ix, kw, sx, px); ox < ox_end; ++ox) {
                const int divisor = avg_pool_divisor(oy * sy - py, ox * sx - px, h, w, kh, kw,
                                                     py, px, count_include_pad);
                sum += Acc(gy_plane[oy * ow + ox]) / Acc(divisor);
            }
        }
        gx[index] = T(sum);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define POOL_KERNELS(T, SUFFIX)                                                            \
    extern "C" __global__ void max_pool2d_forward_##SUFFIX(                                \
        const T* x, T* y, int* argmax, int planes, int h, int w, int kh, int kw,           \
        int sy, int sx, int py, int px, int oh, int ow)                                    \
    {                                                                                      \
        max_pool2d_forward(x, y, argmax, planes, h, w, kh, kw, sy, sx, py, px, oh, ow);    \
    }                                                                                      \
    extern "C" __global__ void max_pool2d_backward_##SUFFIX(                               \
        const T* gy, const int* argmax, T* gx, int planes, int h, int w, int kh, int kw,   \
        int sy, int sx, int py, int px, int oh, int ow)                                    \
    {                                                                                      \
        max_pool2d_backward(gy, argmax, gx, planes, h, w, kh, kw, sy, sx, py, px, oh, ow); \
    }                                                                                      \
    extern "C" __global__ void avg_pool2d_forward_##SUFFIX(                                \
        const T* x, T* y, int planes, int h, int w, int kh, int kw,                        \
        int sy, int sx, int py, int px, int oh, int ow, int count_include_pad)             \
    {                                                                                      \
        avg_pool2d_forward(x, y, planes, h, w, kh, kw, sy, sx, py, px, oh, ow,             \
                           count_include_pad);                                             \
    }                                                                                      \
    extern "C" __global__ void avg_pool2d_backward_##SUFFIX(                               \
        const T* gy, T* gx, int planes, int h, int w, int kh, int kw,                      \
        int sy, int sx, int py, int px, int oh, int ow, int count_include_pad)             \
    {                                                                                      \
        avg_pool2d_backward(gy, gx, planes, h, w, kh, kw, sy, sx, py, px, oh, ow,          \
                            count_include_pad);                                            \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
POOL_KERNELS(__half, f16)
