"""Shared pieces of the benchmarks: timing, the machine's GEMM ceiling, peak memory, workers."""
import multiprocessing
import os
import platform
import resource
import statistics
import time

import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sgemm_gflops(n=2048, repeats=5):
    """The machine's single-precision GEMM rate through NumPy's BLAS: the CPU path's ceiling."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n ** 3 / min(times) / 1e9


def median_time(step, steps, warmup):
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mib():
    """This process's peak resident memory. Linux's VmHWM, not ru_maxrss: a spawned worker's
    ru_maxrss starts at its parent's peak (it survives the exec), VmHWM at its own."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_subprocess(function, *args):
    """Run function(*args) in a fresh process (so its peak RSS is its own) and return its result."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(function, args)


def header():
    return f"machine: {cpu_model()}, {os.cpu_count()} cores; numpy sgemm ceiling {sgemm_gflops():.0f} GFLOP/s"
