"""What every CPU kernel shares: how it is compiled, and the index arithmetic of windows.

A sliding window along one axis: output position o reads input positions
o*stride - pad + i*dilation for kernel offsets i = 0 .. k-1.

Every public CPU kernel is a small Python function that allocates its outputs with NumPy
and hands them to an @njit loop that fills them. NumPy backs large arrays with huge pages;
Numba's own allocator does not, and first-touching a fresh 75 MB column buffer page by
page costs more (about 25 ms on the development machine) than im2col itself. The loops
release the GIL (nogil=True), so a DataLoader's background thread can prepare the next
batch while they run.
"""
import os

import numba
from numba import njit

# Numba's default threading layer here is OpenMP, whose idle workers spin and then sleep
# while OpenBLAS's own threads spin after every GEMM: on 2 cores the two pools steal each
# other's time slices. Measured on the development machine (im2col then 64 GEMMs of a
# 32-channel 32x32 layer): 172 ms with OpenMP, 26 ms with Numba's own "workqueue" layer,
# 29 ms single-threaded. So tinycnn asks for workqueue unless the user chose a layer.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# TINYCNN_NUMBA_PARALLEL=0 compiles every kernel serially (prange becomes range). Numba
# swallows exceptions raised inside a parallel loop, so the bounds-checked test run
# (NUMBA_BOUNDSCHECK=1) switches parallelism off to see them.
PARALLEL = os.environ.get("TINYCNN_NUMBA_PARALLEL", "1") != "0"

# Kernels that sum long runs of values let LLVM reorder the additions, so a sum becomes
# several vector partial sums instead of one add waiting on the previous one. Only
# reassociation: NaN and infinity keep their IEEE behaviour. BatchNorm statistics over a
# 64 x 32 x 1024 batch: 0.41 ms against 3.75 ms (one thread) on the development machine.
SUMS = {"reassoc"}


@njit(cache=True, nogil=True)
def valid_range(offset, stride, size, out):
    """Outputs o in [lo, hi) (within [0, out)) whose input o*stride + offset lies in [0, size)."""
    lo = 0 if offset >= 0 else (-offset + stride - 1) // stride
    last = size - 1 - offset
    hi = min(last // stride + 1, out) if last >= 0 else 0
    return min(lo, hi), hi


@njit(cache=True, nogil=True)
def pool_count(o, k, stride, pad, size, count_include_pad):
    """Divisor of average pooling along one axis for output o (PyTorch's rule)."""
    start = o * stride - pad
    end = min(start + k, size + pad)
    if count_include_pad:
        return end - start
    return min(end, size) - max(start, 0)
