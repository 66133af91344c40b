// Elementwise kernels: dropout.
#include "common.cuh"

// y = x * mask * scale, mask a bool array of the same size (scale = 1 / (1 - p)).
template <typename T>
__device__ void dropout_apply(const T* x, const bool* mask, T* y, int size, T scale)
{
    GRID_STRIDE_LOOP(index, size) {
        y[index] = x[index] * T(mask[index]) * scale;
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define ELEMENTWISE_KERNELS(T, SUFFIX)                                                     \
    extern "C" __global__ void dropout_apply_##SUFFIX(                                     \
        const T* x, const bool* mask, T* y, int size, T scale)                             \
    {                                                                                      \
        dropout_apply(x, mask, y, size, scale);                                            \
    }

ELEMENTWISE_KERNELS(float, f32)
ELEMENTWISE_KERNELS(double, f64)
