// Lets g++ compile tinycnn's CUDA C (kernels/cuda/*.cu) unchanged, to run it on the CPU.
//
// CUDA's qualifiers become nothing, the built-in thread coordinates become thread-local
// variables, and run_grid() calls a kernel once per (block, thread) of a launch, one after
// the other: faithful for kernels whose threads never talk to each other. Cooperative
// kernels (__shared__ arrays, __syncthreads) run through run_grid_cooperatively() instead:
// one block at a time, each of its threads a fiber (ucontext) with a stack of its own that
// __syncthreads() suspends until every thread of the block has reached the barrier.
// __shared__ is `static`, so the fibers of a block share it. tests/cuda_harness.py picks the
// cooperative runner for the kernels marked TINYCNN_COOPERATIVE (kernels/cuda/common.cuh).
#pragma once

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>
#include <ucontext.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

// Device math the kernels may call. <cmath> supplies expf, powf, sqrtf, fmaxf, ... and the
// float and double overloads of pow, sqrt, exp, isnan that CUDA also has in device code;
// CUDA-only functions are spelled out (__int_as_float(0xff800000) is -inf in float, the
// NVRTC-safe replacement for INFINITY).
using std::exp;
using std::fabs;
using std::isnan;
using std::log;
using std::pow;
using std::sqrt;

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline float rsqrtf(float v) { return 1.0f / std::sqrt(v); }
inline double rsqrt(double v) { return 1.0 / std::sqrt(v); }

// CUDA's __half (cuda_fp16.h) on the host: 16 bits of IEEE binary16, converted to and from
// float with round-to-nearest-even by g++'s _Float16. Kernels do their arithmetic in float
// (Accumulator<__half> in common.cuh), so only the conversions are needed.
struct __half {
    _Float16 value = 0;
    __half() = default;
    __half(float v) : value(static_cast<_Float16>(v)) {}
    __half(double v) : value(static_cast<_Float16>(v)) {}
    __half(int v) : value(static_cast<_Float16>(v)) {}
    operator float() const { return static_cast<float>(value); }
};
static_assert(sizeof(__half) == 2, "a __half array must have numpy.float16's layout");

inline float __int_as_float(int bits)
{
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline double __longlong_as_double(long long bits)
{
    double value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

// Runs thread() for every thread of every block of the launch <<<grid, block>>>.
template <typename Thread>
void run_grid(dim3 grid, dim3 block, Thread thread)
{
    gridDim = grid;
    blockDim = block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx)
                for (unsigned int tz = 0; tz < block.z; ++tz)
                    for (unsigned int ty = 0; ty < block.y; ++ty)
                        for (unsigned int tx = 0; tx < block.x; ++tx) {
                            blockIdx = uint3{bx, by, bz};
                            threadIdx = uint3{tx, ty, tz};
                            thread();
                        }
}

// ---------------------------------------------------------------------------------------------
// Cooperative blocks: fibers and a barrier.

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    uint3 thread;
    bool at_barrier = false;
    bool finished = false;
};

struct CooperativeBlock {
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    const std::function<void()>* body = nullptr;
    Fiber* current = nullptr;
    const void* scheduler_stack = nullptr;
    std::size_t scheduler_stack_size = 0;
};

inline thread_local CooperativeBlock* cooperative_block = nullptr;
constexpr std::size_t FIBER_STACK_BYTES = 256 * 1024;

// Leaves `from`'s stack for `to` (AddressSanitizer is told, so it follows the switch). Not
// inlined: callers' locals stay out of the reach of swapcontext's second return.
__attribute__((noinline)) inline void switch_stack(ucontext_t* from, ucontext_t* to, const void* to_stack,
                                                   std::size_t to_size)
{
#if defined(__SANITIZE_ADDRESS__)
    void* fake_stack = nullptr;  // AddressSanitizer's bookkeeping of the stack being left
    __sanitizer_start_switch_fiber(&fake_stack, to_stack, to_size);
    swapcontext(from, to);
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
    (void)to_stack;
    (void)to_size;
    swapcontext(from, to);
#endif
}

inline void fiber_main()
{
    CooperativeBlock& block = *cooperative_block;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &block.scheduler_stack, &block.scheduler_stack_size);
#endif
    (*block.body)();
    block.current->finished = true;
#if defined(__SANITIZE_ADDRESS__)
    // nullptr: this fiber's stack is done with
    __sanitizer_start_switch_fiber(nullptr, block.scheduler_stack, block.scheduler_stack_size);
#endif
    setcontext(&block.scheduler);
}

// Sets `fiber` to run the kernel from its start as thread `thread`.
__attribute__((noinline)) inline void start_fiber(Fiber& fiber, uint3 thread)
{
    fiber.thread = thread;
    fiber.at_barrier = fiber.finished = false;
    getcontext(&fiber.context);
    fiber.context.uc_stack.ss_sp = fiber.stack.data();
    fiber.context.uc_stack.ss_size = fiber.stack.size();
    fiber.context.uc_link = nullptr;
    makecontext(&fiber.context, fiber_main, 0);
}

// The barrier: this thread waits until every thread of its block has called it.
inline void __syncthreads()
{
    CooperativeBlock* block = cooperative_block;
    if (block == nullptr) {
        std::fprintf(stderr, "__syncthreads() in a kernel run by the non-cooperative run_grid: its source "
                             "file must mention __syncthreads for the harness to run it cooperatively\n");
        std::abort();
    }
    Fiber& self = *block->current;
    self.at_barrier = true;
    switch_stack(&self.context, &block->scheduler, block->scheduler_stack, block->scheduler_stack_size);
}

// Runs thread() for every thread of every block of <<<grid, block>>>, the threads of a block
// as fibers that meet at each __syncthreads().
template <typename Thread>
void run_grid_cooperatively(dim3 grid, dim3 block_dim, Thread thread)
{
    gridDim = grid;
    blockDim = block_dim;
    const std::function<void()> body = thread;
    CooperativeBlock block;
    block.body = &body;
    block.fibers.resize((std::size_t)block_dim.x * block_dim.y * block_dim.z);
    for (Fiber& fiber : block.fibers)
        fiber.stack.resize(FIBER_STACK_BYTES);
    cooperative_block = &block;
    for (unsigned int bz = 0; bz < grid.z; ++bz)
        for (unsigned int by = 0; by < grid.y; ++by)
            for (unsigned int bx = 0; bx < grid.x; ++bx) {
                blockIdx = uint3{bx, by, bz};
                std::size_t index = 0;
                for (unsigned int tz = 0; tz < block_dim.z; ++tz)
                    for (unsigned int ty = 0; ty < block_dim.y; ++ty)
                        for (unsigned int tx = 0; tx < block_dim.x; ++tx)
                            start_fiber(block.fibers[index++], uint3{tx, ty, tz});
                // Rounds: every thread runs to its next barrier (or its end); a round where
                // some threads end while others wait at a barrier is a deadlock on a GPU.
                for (;;) {
                    std::size_t waiting = 0, finished = 0;
                    for (Fiber& fiber : block.fibers) {
                        if (fiber.finished)
                            continue;
                        fiber.at_barrier = false;
                        block.current = &fiber;
                        threadIdx = fiber.thread;
                        switch_stack(&block.scheduler, &fiber.context, fiber.stack.data(), fiber.stack.size());
                        waiting += fiber.at_barrier;
                        finished += fiber.finished;
                    }
                    if (waiting == 0)
                        break;
                    if (finished != 0 || waiting != block.fibers.size()) {
                        std::fprintf(stderr, "__syncthreads(): %zu of the block's %zu threads wait at a barrier "
                                             "that the others never reach\n", waiting, block.fibers.size());
                        std::abort();
                    }
                }
            }
    cooperative_block = nullptr;
}
