// BatchNorm (+ ReLU) in five launches per training step: one-pass statistics and gradient sums
// (cooperative block reductions, one block per channel), the normalisation and the input
// gradient with either ReLU fused, and the running statistics updated in place.
//
//   x, y, gy, gx  (n, c, l);   mean, var, gamma, beta, ggamma, gbeta, running_*  (c,)
// relu: a ReLU follows BatchNorm (its output y is the mask); relu_input: one comes before it.
// The sums accumulate in double for float32 and float64 alike, in a fixed tree order.
#include "common.cuh"

template <typename T>
__device__ __forceinline__ T relu_if(int relu, T value)
{
    return relu && value < T(0) ? T(0) : value;
}

// One block per channel: mean and biased variance of x (of max(x, 0) with relu_input), from
// one pass of sums of d = x - shift and d^2. The shift, the channel's first value, keeps the
// sum of squares from cancelling when the mean is large against the spread.
template <typename T>
__device__ void batch_norm_statistics(const T* x, T* mean, T* var, int n, int c, int l, int relu_input)
{
    __shared__ double sums[REDUCE_THREADS];
    __shared__ double squares[REDUCE_THREADS];
    const long long m = (long long)n * l;
    for (int channel = blockIdx.x; channel < c; channel += gridDim.x) {
        const double shift = (double)relu_if(relu_input, x[(long long)channel * l]);
        double sum = 0, square = 0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x) {
            const double d = (double)relu_if(relu_input, x[(i / l * c + channel) * l + i % l]) - shift;
            sum += d;
            square += d * d;
        }
        sums[threadIdx.x] = sum;
        squares[threadIdx.x] = square;
        block_sum(sums, squares);
        if (threadIdx.x == 0) {
            const double shifted_mean = sums[0] / (double)m;
            const double variance = squares[0] / (double)m - shifted_mean * shifted_mean;
            mean[channel] = T(shift + shifted_mean);
            var[channel] = T(variance < 0 ? 0.0 : variance);    // round-off only; NaN stays NaN
        }
        __syncthreads();    // thread 0 has read sums[0] before the next channel overwrites it
    }
}

// One thread per element: y = relu?((relu_input? max(x, 0)) - mean) / sqrt(var + eps) * gamma + beta).
template <typename T>
__device__ void batch_norm_relu_normalize(const T* x, const T* mean, const T* var, const T* gamma,
                                          const T* beta, T* y, int n, int c, int l, T eps, int relu,
                                          int relu_input)
{
    const long long total = (long long)n * c * l;
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / l % c);
        const T inv_std = T(1) / sqrt(var[channel] + eps);
        const T value = (relu_if(relu_input, x[index]) - mean[channel]) * inv_std * gamma[channel] + beta[channel];
        y[index] = relu_if(relu, value);
    }
}

// One block per channel: gbeta = sum(g), ggamma = sum(g * xhat), where g is gy masked by the
// fused ReLU's output (relu) and xhat is the normalised max(x, 0) (relu_input) or x.
template <typename T>
__device__ void batch_norm_backward_sums(const T* x, const T* gy, const T* y, const T* mean, const T* var,
                                         T* ggamma, T* gbeta, int n, int c, int l, T eps, int relu,
                                         int relu_input)
{
    __shared__ double g_sums[REDUCE_THREADS];
    __shared__ double gx_sums[REDUCE_THREADS];
    const long long m = (long long)n * l;
    for (int channel = blockIdx.x; channel < c; channel += gridDim.x) {
        const double centre = (double)mean[channel];
        double g_sum = 0, gx_sum = 0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x) {
            const long long at = (i / l * c + channel) * l + i % l;
            const double g = relu && !(y[at] > T(0)) ? 0.0 : (double)gy[at];
            g_sum += g;
            gx_sum += g * ((double)relu_if(relu_input, x[at]) - centre);
        }
        g_sums[threadIdx.x] = g_sum;
        gx_sums[threadIdx.x] = gx_sum;
        block_sum(g_sums, gx_sums);
        if (threadIdx.x == 0) {
            gbeta[channel] = T(g_sums[0]);
            ggamma[channel] = T(gx_sums[0]) * (T(1) / sqrt(var[channel] + eps));
        }
        __syncthreads();
    }
}

// One thread per element of gx, given the sums above over the m = n * l values of a channel:
// gx = gamma * inv_std / m * (m * g - gbeta - xhat * ggamma), 0 where relu_input's x <= 0.
template <typename T>
__device__ void batch_norm_relu_backward(const T* x, const T* gy, const T* y, const T* mean, const T* var,
                                         const T* gamma, const T* gbeta, const T* ggamma, T* gx,
                                         int n, int c, int l, T eps, int relu, int relu_input)
{
    const long long total = (long long)n * c * l;
    const T m = T((long long)n * l);
    GRID_STRIDE_LOOP(index, total) {
        const int channel = (int)(index / l % c);
        const T g = relu && !(y[index] > T(0)) ? T(0) : gy[index];
        const T inv_std = T(1) / sqrt(var[channel] + eps);
        const T xhat = (relu_if(relu_input, x[index]) - mean[channel]) * inv_std;
        const T value = gamma[channel] * inv_std / m * (m * g - gbeta[channel] - xhat * ggamma[channel]);
        gx[index] = relu_input && !(x[index] > T(0)) ? T(0) : value;
    }
}

// One thread per channel: running = keep * running + rate * batch (rate_var carries the
// unbiasing factor count / (count - 1)).
template <typename T>
__device__ void batch_norm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                                          int c, T keep, T rate, T rate_var)
{
    GRID_STRIDE_LOOP(channel, c) {
        running_mean[channel] = running_mean[channel] * keep + rate * mean[channel];
        running_var[channel] = running_var[channel] * keep + rate_var * var[channel];
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define NORM_FUSED_KERNELS(T, SUFFIX)                                                              \
    TINYCNN_COOPERATIVE extern "C" __global__ void batch_norm_statistics_##SUFFIX(                 \
        const T* x, T* mean, T* var, int n, int c, int l, int relu_input)                          \
    {                                                                                              \
        batch_norm_statistics(x, mean, var, n, c, l, relu_input);                                  \
    }                                                                                              \
    extern "C" __global__ void batch_norm_relu_normalize_##SUFFIX(                                 \
        const T* x, const T* mean, const T* var, const T* gamma, const T* beta, T* y,              \
        int n, int c, int l, T eps, int relu, int relu_input)                                      \
    {                                                                                              \
        batch_norm_relu_normalize(x, mean, var, gamma, beta, y, n, c, l, eps, relu, relu_input);   \
    }                                                                                              \
    TINYCNN_COOPERATIVE extern "C" __global__ void batch_norm_backward_sums_##SUFFIX(              \
        const T* x, const T* gy, const T* y, const T* mean, const T* var, T* ggamma, T* gbeta,     \
        int n, int c, int l, T eps, int relu, int relu_input)                                      \
    {                                                                                              \
        batch_norm_backward_sums(x, gy, y, mean, var, ggamma, gbeta, n, c, l, eps, relu,           \
                                 relu_input);                                                      \
    }                                                                                              \
    extern "C" __global__ void batch_norm_relu_backward_##SUFFIX(                                  \
        const T* x, const T* gy, const T* y, const T* mean, const T* var, const T* gamma,          \
        const T* gbeta, const T* ggamma, T* gx, int n, int c, int l, T eps, int relu,              \
        int relu_input)                                                                            \
    {                                                                                              \
        batch_norm_relu_backward(x, gy, y, mean, var, gamma, gbeta, ggamma, gx, n, c, l, eps,      \
                                 relu, relu_input);                                                \
    }                                                                                              \
    extern "C" __global__ void batch_norm_update_running_##SUFFIX(                                 \
        T* running_mean, T* running_var, const T* mean, const T* var, int c, T keep, T rate,       \
        T rate_var)                                                                                \
    {                                                                                              \
        batch_norm_update_running(running_mean, running_var, mean, var, c, keep, rate, rate_var);  \
    }

NORM_FUSED_KERNELS(float, f32)
NORM_FUSED_KERNELS(double, f64)
