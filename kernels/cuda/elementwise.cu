// Small elementwise kernels: dropout, channel shuffle, bias + ReLU.
#include "common.cuh"

// y = x * mask * scale, mask a bool array of the same size (scale = 1 / (1 - p)).
template <typename T>
__device__ void dropout_apply(const T* x, const bool* mask, T* y, int size, T scale)
{
    GRID_STRIDE_LOOP(index, size) {
        y[index] = x[index] * T(mask[index]) * scale;
    }
}

// x (n, c, hw) with c = groups * per_group, seen as (n, groups, per_group, hw), is written
// transposed as (n, per_group, groups, hw): output channel j*groups + g reads input channel
// g*per_group + j. One thread per output element.
template <typename T>
__device__ void channel_shuffle(const T* x, T* y, int n, int c, int hw, int groups)
{
    const long long total = (long long)n * c * hw;
    const int per_group = c / groups;
    GRID_STRIDE_LOOP(index, total) {
        const int pixel = (int)(index % hw);
        const int out_channel = (int)(index / hw % c);
        const long long batch = index / hw / c;
        const int in_channel = out_channel % groups * per_group + out_channel / groups;
        y[index] = x[(batch * c + in_channel) * hw + pixel];
    }
}

// x (n, c, l), bias (c,): y = max(x + bias[channel], 0); a NaN stays NaN, as in PyTorch.
template <typename T>
__device__ void bias_relu(const T* x, const T* bias, T* y, int n, int c, int l)
{
    const long long total = (long long)n * c * l;
    GRID_STRIDE_LOOP(index, total) {
        const T value = x[index] + bias[index / l % c];
        y[index] = value < T(0) ? T(0) : value;
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define ELEMENTWISE_KERNELS(T, SUFFIX)                                                     \
    extern "C" __global__ void dropout_apply_##SUFFIX(                                     \
        const T* x, const bool* mask, T* y, int size, T scale)                             \
    {                                                                                      \
        dropout_apply(x, mask, y, size, scale);                                            \
    }                                                                                      \
    extern "C" __global__ void channel_shuffle_##SUFFIX(                                   \
        const T* x, T* y, int n, int c, int hw, int groups)                                \
    {                                                                                      \
        channel_shuffle(x, y, n, c, hw, groups);                                           \
    }                                                                                      \
    extern "C" __global__ void bias_relu_##SUFFIX(                                         \
        const T* x, const T* bias, T* y, int n, int c, int l)                              \
    {                                                                                      \
        bias_relu(x, bias, y, n, c, l);                                                    \
    }

ELEMENTWISE_KERNELS(float, f32)
ELEMENTWISE_KERNELS(double, f64)
