"""The CUDA harness runs cooperative kernels faithfully: a block's threads are fibers that meet at
every __syncthreads() and share the block's __shared__ arrays (tests/cuda_shim.h).

Each kernel here gives a wrong answer unless the barrier and the shared memory behave as on a
GPU: a block reverses its values through shared memory (a thread reads what another wrote
before the barrier), and a tree reduction sums through log2(blockDim) barriers. A barrier
that only some threads reach, and a __syncthreads() in a kernel not marked cooperative, abort
the process with a message instead of giving a wrong answer.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cuda_harness

TESTS = Path(__file__).resolve().parent

SOURCE = textwrap.dedent("""
    #include "common.cuh"

    // out[block][t] = in[block][blockDim - 1 - t], through shared memory
    TINYCNN_COOPERATIVE extern "C" __global__ void reverse_blocks(const float* in, float* out)
    {
        __shared__ float values[64];
        const long long at = (long long)blockIdx.x * blockDim.x;
        values[threadIdx.x] = in[at + threadIdx.x];
        __syncthreads();
        out[at + threadIdx.x] = values[blockDim.x - 1 - threadIdx.x];
    }

    // sums[block] = sum of x over this block's rows (a grid-stride loop over rows), tree order
    TINYCNN_COOPERATIVE extern "C" __global__ void row_sums(const double* x, double* sums, int rows, int width)
    {
        __shared__ double partial[128];
        for (int row = blockIdx.x; row < rows; row += gridDim.x) {
            double sum = 0;
            for (int i = threadIdx.x; i < width; i += blockDim.x)
                sum += x[(long long)row * width + i];
            partial[threadIdx.x] = sum;
            __syncthreads();
            for (unsigned width_left = blockDim.x; width_left > 1;) {
                const unsigned half = (width_left + 1) / 2;
                if (threadIdx.x + half < width_left)
                    partial[threadIdx.x] += partial[threadIdx.x + half];
                __syncthreads();
                width_left = half;
            }
            if (threadIdx.x == 0)
                sums[row] = partial[0];
            __syncthreads();
        }
    }

    // threads 0..blockDim-2 wait at a barrier the last thread never reaches
    TINYCNN_COOPERATIVE extern "C" __global__ void divergent_barrier(float* x)
    {
        if (threadIdx.x + 1 < blockDim.x) {
            __syncthreads();
        }
        x[threadIdx.x] = 1;
    }

    // a barrier in a kernel the harness runs thread after thread
    extern "C" __global__ void unmarked_barrier(float* x)
    {
        __syncthreads();
        x[threadIdx.x] = 1;
    }
""")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("cooperative") / "cooperative.cu"
    path.write_text(SOURCE)
    return path


def library(source, sanitize=False):
    return cuda_harness.KernelLibrary(*cuda_harness.build_library([source], sanitize), sanitized=sanitize)


def test_the_harness_runs_only_the_marked_kernels_cooperatively(source):
    launcher = Path(cuda_harness.build_library([source], False)[0])
    assert launcher.exists()
    marked = cuda_harness._COOPERATIVE.findall(cuda_harness._preprocess([source]))
    assert sorted(marked) == ["divergent_barrier", "reverse_blocks", "row_sums"]


@pytest.mark.parametrize("threads", [1, 7, 32, 64])
def test_threads_of_a_block_see_each_others_shared_writes_after_the_barrier(source, threads):
    x = np.arange(3 * threads, dtype=np.float32)
    out = np.full_like(x, np.nan)
    library(source).get_function("reverse_blocks")((3,), (threads,), (x, out))
    np.testing.assert_array_equal(out, x.reshape(3, threads)[:, ::-1].ravel())


@pytest.mark.parametrize("threads, blocks", [(1, 1), (5, 2), (32, 3), (128, 8)])
def test_a_tree_reduction_through_shared_memory_sums_every_row(source, threads, blocks):
    x = np.random.default_rng(threads).integers(-1000, 1000, (6, 301)).astype(np.float64)
    sums = np.full(6, np.nan)
    library(source).get_function("row_sums")((blocks,), (threads,), (x, sums, np.int32(6), np.int32(301)))
    np.testing.assert_array_equal(sums, x.sum(axis=1))      # integers: exact in any order


def _run(script, **env):
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=TESTS,
                          env={**os.environ, **env})


@pytest.mark.parametrize("kernel, message", [
    ("divergent_barrier", "wait at a barrier that the others never reach"),
    ("unmarked_barrier", "non-cooperative run_grid")])
def test_a_barrier_not_every_thread_reaches_aborts_with_a_message(source, kernel, message):
    script = (f"import numpy as np, cuda_harness\n"
              f"library = cuda_harness.KernelLibrary(*cuda_harness.build_library([{str(source)!r}], False), False)\n"
              f"library.get_function({kernel!r})((1,), (4,), (np.zeros(4, np.float32),))\n")
    result = _run(script)
    assert result.returncode != 0
    assert message in result.stderr


def test_cooperative_kernels_run_clean_under_the_sanitizers(source):
    script = (f"import numpy as np, cuda_harness\n"
              f"library = cuda_harness.KernelLibrary(*cuda_harness.build_library([{str(source)!r}], True), True)\n"
              f"x = np.arange(6.0).reshape(2, 3); sums = np.zeros(2)\n"
              f"library.get_function('row_sums')((1,), (3,), (x, sums, np.int32(2), np.int32(3)))\n"
              f"print(sums.tolist())\n")
    result = _run(script, LD_PRELOAD=cuda_harness.asan_runtime(), ASAN_OPTIONS="detect_leaks=0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[3.0, 12.0]"
    assert "Sanitizer" not in result.stderr
