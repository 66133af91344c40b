// The optimizers' steps over flat buffers: every parameter of one group and dtype lies in one
// array (tinycnn/optim/multi_tensor.py packs them), so a step is one launch for all of them.
// Each thread updates its elements in the order of the host's code (tinycnn/optim/*.py), so
// the results round as the host's do.
//   p, g, and the state (buf; m, v, v_max) all of `size` elements
#include "common.cuh"

// SGD: g += weight_decay * p; buf = g (first) or momentum * buf + (1 - dampening) * g;
// g = g + momentum * buf (nesterov) or buf; p -= lr * g. momentum == 0: no buffer.
template <typename T>
__device__ void sgd_step(T* p, const T* g, T* buf, int size, T lr, T momentum, T dampening_complement,
                         T weight_decay, int nesterov, int first)
{
    GRID_STRIDE_LOOP(i, size) {
        T grad = g[i];
        if (weight_decay != T(0)) {
            grad = grad + weight_decay * p[i];
        }
        if (momentum != T(0)) {
            const T b = first ? grad : buf[i] * momentum + dampening_complement * grad;
            buf[i] = b;
            grad = nesterov ? grad + momentum * b : b;
        }
        p[i] = p[i] - lr * grad;
    }
}

// Adam / AdamW (decoupled): p *= decay (AdamW) or g += weight_decay * p (Adam);
// m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g g; v_max = max(v_max, v) (amsgrad);
// p -= step_size * m / (sqrt(v) / bias2_sqrt + eps).
template <typename T>
__device__ void adam_step(T* p, const T* g, T* m, T* v, T* v_max, int size, T step_size, T beta1_complement,
                          T beta2, T beta2_complement, T bias2_sqrt, T eps, T weight_decay, T decay,
                          int decoupled, int amsgrad)
{
    GRID_STRIDE_LOOP(i, size) {
        T grad = g[i];
        if (weight_decay != T(0)) {
            if (decoupled) {
                p[i] = p[i] * decay;
            } else {
                grad = grad + weight_decay * p[i];
            }
        }
        const T first = m[i] + beta1_complement * (grad - m[i]);
        m[i] = first;
        T second = v[i] * beta2 + beta2_complement * grad * grad;
        v[i] = second;
        if (amsgrad) {
            second = v_max[i] > second || isnan(v_max[i]) ? v_max[i] : second;    // numpy.maximum keeps NaN
            v_max[i] = second;
        }
        p[i] = p[i] - step_size * (first / (sqrt(second) / bias2_sqrt + eps));
    }
}

// The extern "C" kernels the loader looks up: NAME_f32 and NAME_f64.
#define OPTIM_KERNELS(T, SUFFIX)                                                                    \
    extern "C" __global__ void sgd_step_##SUFFIX(                                                   \
        T* p, const T* g, T* buf, int size, T lr, T momentum, T dampening_complement,         \
        T weight_decay, int nesterov, int first)                                                    \
    {                                                                                               \
        sgd_step(p, g, buf, size, lr, momentum, dampening_complement, weight_decay, nesterov, first); \
    }                                                                                               \
    extern "C" __global__ void adam_step_##SUFFIX(                                                  \
        T* p, const T* g, T* m, T* v, T* v_max, int size, T step_size, T beta1_complement,    \
        T beta2, T beta2_complement, T bias2_sqrt, T eps, T weight_decay, T decay, int decoupled,   \
        int amsgrad)                                                                                \
    {                                                                                               \
        adam_step(p, g, m, v, v_max, size, step_size, beta1_complement, beta2, beta2_complement,   \
                  bias2_sqrt, eps, weight_decay, decay, decoupled, amsgrad);                        \
    }

OPTIM_KERNELS(float, f32)
OPTIM_KERNELS(double, f64)
