// Local response normalisation (AlexNet) and the elementwise parts of batch normalisation.
//
//   LRN:        x, y, scale, gy, gx   (n, c, hw)
//   BatchNorm:  x, y, gy, gx          (n, c, l);  mean, var, gamma, beta, gbeta, ggamma  (c,)
// The BatchNorm reductions (mean, var, sums of gy) are done by CuPy before these kernels run.
#include "common.cuh"

// One thread per element: scale = k + alpha * (sum of x^2 over the channels
// c - size/2 .. c + (size-1)/2 that exist), y = x * scale^(-beta).
template <typename T>
__device__ void lrn_forward(const T* x, T* y, T* scale, int n, int c, int hw, int size,
                            T alpha, T beta, T k)
{
    const long long total = (long long)n * c * hw;
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / hw % c);
        const T* column = x + (index - (long long)channel * hw);  // x[batch, 0, pixel]
        const int first = max(channel - size / 2, 0);
        const int last = min(channel + (size - 1) / 2, c - 1);
        T sum_of_squares = 0;
        for (int other = first; other <= last; ++other) {
            const T value = column[(long long)other * hw];
            sum_of_squares += value * value;
        }
        const T s = k + alpha * sum_of_squares;
        scale[index] = s;
        y[index] = x[index] * pow(s, -beta);
    }
}

// One thread per element: gx = gy * scale^(-beta) - 2 alpha beta x * sum(gy * y / scale) over
// the channels whose window contains this one: c - (size-1)/2 .. c + size/2.
template <typename T>
__device__ void lrn_backward(const T* x, const T* y, const T* scale, const T* gy, T* gx,
                             int n, int c, int hw, int size, T alpha, T beta)
{
    const long long total = (long long)n * c * hw;
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / hw % c);
        const long long column = index - (long long)channel * hw;  // index of [batch, 0, pixel]
        const int first = max(channel - (size - 1) / 2, 0);
        const int last = min(channel + size / 2, c - 1);
        T sum = 0;
        for (int other = first; other <= last; ++other) {
            const long long at = column + (long long)other * hw;
            sum += gy[at] * y[at] / scale[at];
        }
        gx[index] = gy[index] * pow(scale[index], -beta) - T(2) * alpha * beta * x[index] * sum;
    }
}

// One thread per element: y = (x - mean) / sqrt(var + eps) * gamma + beta. Serves training
// (batch mean/var) and evaluation (running mean/var) alike. relu != 0 fuses a ReLU after it
// (negative values become 0, NaN stays NaN).
template <typename T>
__device__ void batch_norm_normalize(const T* x, const T* mean, const T* var, const T* gamma,
                                     const T* beta, T* y, int n, int c, int l, T eps, int relu)
{
    const long long total = (long long)n * c * l;
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / l % c);
        const T inv_std = T(1) / sqrt(var[channel] + eps);
        const T value = (x[index] - mean[channel]) * inv_std * gamma[channel] + beta[channel];
        y[index] = relu && value < T(0) ? T(0) : value;
    }
}

// One thread per element of gx, given gbeta = sum(gy) and ggamma = sum(gy * xhat) per channel
// over the m = n * l elements of that channel:
// gx = gamma * inv_std / m * (m * gy - gbeta - xhat * ggamma).
template <typename T>
__device__ void batch_norm_backward(const T* x, const T* gy, const T* mean, const T* var,
                                    const T* gamma, const T* gbeta, const T* ggamma, T* gx,
                                    int n, int c, int l, T eps)
{
    const long long total = (long long)n * c * l;
    const T m = T((long long)n * l);
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / l % c);
        const T inv_std = T(1) / sqrt(var[channel] + eps);
        const T xhat = (x[index] - mean[channel]) * inv_std;
        gx[index] = gamma[channel] * inv_std / m
                    * (m * gy[index] - gbeta[channel] - xhat * ggamma[channel]);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define NORM_KERNELS(T, SUFFIX)                                                            \
    extern "C" __global__ void lrn_forward_##SUFFIX(                                       \
        const T* x, T* y, T* scale, int n, int c, int hw, int size, T alpha, T beta, T k)  \
    {                                                                                      \
        lrn_forward(x, y, scale, n, c, hw, size, alpha, beta, k);                          \
    }                                                                                      \
    extern "C" __global__ void lrn_backward_##SUFFIX(                                      \
        const T* x, const T* y, const T* scale, const T* gy, T* gx, int n, int c, int hw,  \
        int size, T alpha, T beta)                                                         \
    {                                                                                      \
        lrn_backward(x, y, scale, gy, gx, n, c, hw, size, alpha, beta);                    \
    }                                                                                      \
    extern "C" __global__ void batch_norm_normalize_##SUFFIX(                              \
        const T* x, const T* mean, const T* var, const T* gamma, const T* beta, T* y,      \
        int n, int c, int l, T eps, int relu)                                              \
    {                                                                                      \
        batch_norm_normalize(x, mean, var, gamma, beta, y, n, c, l, eps, relu);            \
    }                                                                                      \
    extern "C" __global__ void batch_norm_backward_##SUFFIX(                               \
        const T* x, const T* gy, const T* mean, const T* var, const T* gamma,              \
        const T* gbeta, const T* ggamma, T* gx, int n, int c, int l, T eps)                \
    {                                                                                      \
        batch_norm_backward(x, gy, mean, var, gamma, gbeta, ggamma, gx, n, c, l, eps);     \
    }

NORM_KERNELS(float, f32)
NORM_KERNELS(double, f64)
