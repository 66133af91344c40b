// The output gradient of a convolution in the layout its GEMMs read, and the bias gradient, in
// one pass: one block per channel copies gy[:, c, :] into row c and sums it (a cooperative
// block reduction in double, fixed order).
//
//   gy (n, c, l)      rows (c, n, l)      sums (c,)
#include "common.cuh"

template <typename T>
__device__ void channel_rows_and_sums(const T* gy, T* rows, T* sums, int n, int c, int l, int with_sums)
{
    __shared__ double partial[REDUCE_THREADS];
    const long long m = (long long)n * l;
    for (int channel = blockIdx.x; channel < c; channel += gridDim.x) {
        double sum = 0;
        for (long long i = threadIdx.x; i < m; i += blockDim.x) {
            const T value = gy[(i / l * c + channel) * l + i % l];
            rows[(long long)channel * m + i] = value;
            sum += (double)(typename Accumulator<T>::type)value;
        }
        partial[threadIdx.x] = sum;
        block_sum(partial, nullptr);
        if (threadIdx.x == 0 && with_sums) {
            sums[channel] = T((typename Accumulator<T>::type)partial[0]);
        }
        __syncthreads();    // thread 0 has read partial[0] before the next channel overwrites it
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16.
#define CHANNEL_ROWS_KERNELS(T, SUFFIX)                                                              \
    TINYCNN_COOPERATIVE extern "C" __global__ void channel_rows_and_sums_##SUFFIX(                   \
        const T* gy, T* rows, T* sums, int n, int c, int l, int with_sums)                           \
    {                                                                                                \
        channel_rows_and_sums(gy, rows, sums, n, c, l, with_sums);                                   \
    }

CHANNEL_ROWS_KERNELS(float, f32)
CHANNEL_ROWS_KERNELS(double, f64)
CHANNEL_ROWS_KERNELS(__half, f16)
