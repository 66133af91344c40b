"""cupy.RawModule of the stand-in: the CUDA C it is given, compiled by g++ and run on the CPU.

The source text passed as ``code`` (what NVRTC would compile on a GPU) is written to a file
named after its hash and built by tests/cuda_harness.py, whose kernels are called like CuPy's,
``kernel(grid, block, args)``, and refuse arguments CuPy would marshal differently. Device
arrays are handed over as the NumPy arrays behind them; a NumPy array is refused, as CuPy
refuses host memory as a kernel argument.
"""
import hashlib
import os
import pathlib
import sys
import tempfile

import numpy

from . import _launches
from ._array import ndarray

TESTS = pathlib.Path(__file__).resolve().parents[2]


def _harness():
    if str(TESTS) not in sys.path:
        sys.path.append(str(TESTS))
    import cuda_harness
    return cuda_harness


def _library(code):
    harness = _harness()
    cache = pathlib.Path(tempfile.gettempdir()) / "tinycnn-cuda-harness"
    cache.mkdir(exist_ok=True)
    source = cache / f"rawmodule-{hashlib.sha256(code.encode()).hexdigest()[:24]}.cu"
    if not source.exists():
        partial = source.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(code)
        os.replace(partial, source)      # atomic: a parallel run never reads half a file
    path, kernels = harness.build_library([source], sanitize=False)
    return harness.KernelLibrary(path, kernels, sanitized=False)


class RawModule:
    """CUDA C source whose ``extern "C"`` kernels ``get_function(name)`` returns, compiled on first use."""

    def __init__(self, code=None, *, path=None, options=(), backend="nvrtc", name_expressions=None,
                 **unused):
        if not isinstance(code, str):
            raise TypeError(f"RawModule: the stand-in compiles source text (code=str), got {type(code).__name__}")
        if not isinstance(options, tuple) or not all(isinstance(o, str) for o in options):
            raise TypeError(f"RawModule: options must be a tuple of str, got {options!r}")
        self.code, self.options, self.backend = code, options, backend
        self._compiled = None

    def get_function(self, name):
        if self._compiled is None:
            self._compiled = _library(self.code)
        return RawKernel(self._compiled.get_function(name))


class RawKernel:
    """A compiled kernel, called as in CuPy: ``kernel(grid, block, args)``."""

    def __init__(self, kernel):
        self.name = kernel.name
        self._kernel = kernel

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None):
        if shared_mem:
            raise ValueError(f"{self.name}: tinycnn's kernels use no shared memory, got shared_mem={shared_mem}")
        if isinstance(args, tuple):
            args = tuple(self._argument(a) for a in args)
        _launches.add("raw_kernels")
        _launches.device_op(lambda: self._kernel(grid, block, args), writes=True)

    def _argument(self, value):
        if isinstance(value, ndarray):
            return value._array
        if isinstance(value, numpy.ndarray):
            raise TypeError(f"{self.name}: Unsupported type {numpy.ndarray}: kernel arguments must be "
                            "device arrays, not host memory")
        return value
