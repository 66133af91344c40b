// Elementwise kernels: dropout.
#include "common.cuh"

// y = x * mask * scale, mask a bool array of the same size (scale = 1 / (1 - p)).
template <typename T>
__device__ void dropout_apply(const T* x, const bool* mask, T* y, int size,
                              typename Accumulator<T>::type scale)
{
    using Acc = typename Accumulator<T>::type;
    GRID_STRIDE_LOOP(index, size) {
        y[index] = T(Acc(x[index]) * Acc(mask[index]) * scale);
    }
}

// The extern "C" kernels the loader looks up: NAME_f32, NAME_f64 and NAME_f16; SCALE is the
// type of the scale (float for __half).
#define ELEMENTWISE_KERNELS(T, SCALE, SUFFIX)                                              \
    extern "C" __global__ void dropout_apply_##SUFFIX(                                     \
        const T* x, const bool* mask, T* y, int size, SCALE scale)                         \
    {                                                                                      \
        dropout_apply(x, mask, y, size, scale);                                            \
    }

ELEMENTWISE_KERNELS(float, float, f32)
ELEMENTWISE_KERNELS(double, double, f64)
ELEMENTWISE_KERNELS(__half, float, f16)
