"""What every CPU kernel shares: how it is compiled, and the index arithmetic of windows.

A sliding window along one axis: output position o reads input positions
o*stride - pad + i*dilation for kernel offsets i = 0 .. k-1.

Every public CPU kernel is a small Python function that allocates its outputs with NumPy
(which backs large arrays with huge pages, unlike Numba's allocator) and hands them to an
@njit loop that fills them. The loops release the GIL (nogil=True), so a DataLoader's
background thread can prepare the next batch while they run.
"""
import os

import numba
from numba import njit

# OpenMP's spinning workers and OpenBLAS's steal each other's cores: tinycnn asks for Numba's
# "workqueue" layer unless the user chose one (BENCHMARKS.md, "Design history").
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# TINYCNN_NUMBA_PARALLEL=0 compiles every kernel serially (prange becomes range). Numba
# swallows exceptions raised inside a parallel loop, so the bounds-checked test run
# (NUMBA_BOUNDSCHECK=1) switches parallelism off to see them.
PARALLEL = os.environ.get("TINYCNN_NUMBA_PARALLEL", "1") != "0"

# Kernels that sum long runs of values let LLVM reorder the additions into vector partial
# sums; only reassociation: NaN and infinity keep their IEEE behaviour.
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
