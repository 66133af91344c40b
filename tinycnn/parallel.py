"""Convolution chunks on every core: one worker thread per core, each with one BLAS thread.

OpenBLAS spreads each GEMM over the cores, but the copies between the GEMMs of a
convolution (im2row, row2im, transposes) run on one core while the others wait. Here each
worker takes every k-th chunk of the batch and runs all of its steps with OpenBLAS held to
one thread in that worker, so every core stays busy. OpenBLAS 0.3.27+ sets
that thread count per calling thread (``openblas_set_num_threads_local``), so the rest of
the process keeps its BLAS threads; where the function is missing (another BLAS, a system
without /proc/self/maps) the chunks run in the calling thread as before.
Workers must not launch Numba ``parallel=True`` kernels: the workqueue threading layer
does not allow concurrent launches.

    >>> import tinycnn
    >>> tinycnn.set_num_threads(1)        # every chunk in the calling thread
    >>> tinycnn.get_num_threads()
    1
    >>> tinycnn.set_num_threads(None)     # back to TINYCNN_NUM_THREADS, else one per core
"""
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor


def _openblas_set_num_threads_local():
    """OpenBLAS's per-thread thread-count setter, from the library NumPy loaded, or None."""
    import numpy  # noqa: F401  (loads the BLAS library)
    try:
        with open("/proc/self/maps") as maps:
            paths = {fields[-1] for fields in map(str.split, maps)
                     if len(fields) >= 6 and "openblas" in os.path.basename(fields[-1]).lower()}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes, setter.restype = [ctypes.c_int], ctypes.c_int
        return setter
    return None


_set_blas_threads = _openblas_set_num_threads_local()
_local = threading.local()
_lock = threading.Lock()
_pool = None
_num_threads = None


def _default_num_threads():
    value = os.environ.get("TINYCNN_NUM_THREADS")
    if value:
        return _check("TINYCNN_NUM_THREADS", value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _check(what, value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise ValueError(f"{what}: expected a positive number of threads, got {value!r}")
    return n


def set_num_threads(n):
    """Threads that share a convolution's chunks on the CPU (None: TINYCNN_NUM_THREADS, else
    one per core available to the process)."""
    global _num_threads, _pool
    n = _default_num_threads() if n is None else _check("set_num_threads", n)
    with _lock:
        _num_threads, old, _pool = n, _pool, None
    if old is not None:
        old.shutdown(wait=False)


def get_num_threads():
    return _num_threads


def workers():
    """How many threads map_parts uses: get_num_threads(), or 1 without OpenBLAS's per-thread
    setting or inside a worker."""
    if _set_blas_threads is None or getattr(_local, "is_worker", False):
        return 1
    return _num_threads


def _start_worker():
    _local.is_worker = True
    _set_blas_threads(1)


def map_parts(work, items):
    """[work(items[0::k]), ..., work(items[k-1::k])] with k = min(workers(), len(items)),
    each part in its own worker thread (one part, in the calling thread, when k is 1)."""
    global _pool
    k = min(workers(), len(items))
    if k <= 1:
        return [work(items)]
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_num_threads, "tinycnn-worker", initializer=_start_worker)
        pool = _pool
    futures = [pool.submit(work, items[i::k]) for i in range(k)]
    return [future.result() for future in futures]


set_num_threads(None)
