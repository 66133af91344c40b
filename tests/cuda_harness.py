"""Run tinycnn's CUDA kernels on the CPU: g++ + tests/cuda_shim.h + ctypes.

The unchanged kernels/cuda/*.cu sources are compiled into a shared library together with a
generated launcher per kernel, ``launch_NAME(grid, block, args)``, that runs the kernel body
for every (block, thread) of the launch. ``load_library().get_function(name)`` returns an
object called exactly like a CuPy kernel, ``kernel(grid, block, args)``, with numpy arrays in
place of cupy arrays. It refuses the arguments CuPy would marshal differently from the C
parameter (a Python int for an ``int``, a float64 array for a ``float*``, a non-contiguous
array, ...), so a loader bug that the GPU would turn into garbage fails here loudly.

Kernels marked ``TINYCNN_COOPERATIVE`` (kernels/cuda/common.cuh) are cooperative: each block runs
as fibers, one per thread, that meet at every ``__syncthreads()`` and share the block's
``__shared__`` arrays (tests/cuda_shim.h); the other kernels run thread after thread.

``TINYCNN_SANITIZE=1`` selects a build with -fsanitize=address,undefined; loading it needs
the ASan runtime first in the process (LD_PRELOAD=$(g++ -print-file-name=libasan.so)).

Libraries are cached in the temp directory, keyed on the hash of everything that goes into
them, so each is compiled once.
"""
import ctypes
import functools
import hashlib
import os
import pathlib
import re
import subprocess
import tempfile

import numpy as np

from tinycnn.kernels import cuda

SHIM = pathlib.Path(__file__).with_name("cuda_shim.h")
COMPILER = "g++"
FLAGS = ("-O1", "-shared", "-fPIC", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-x", "c++")
SANITIZE_FLAGS = ("-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer")

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)')
_COOPERATIVE = re.compile(r'tinycnn_cooperative\s+extern\s+"C"\s+__global__\s+void\s+(\w+)')
_SCALARS = {"int": np.int32, "float": np.float32, "double": np.float64}
_POINTEES = {"int": np.int32, "float": np.float32, "double": np.float64, "bool": np.bool_, "__half": np.float16}
_MAX_THREADS_PER_BLOCK = 1024
_MAX_GRID = (2**31 - 1, 65535, 65535)
_MAX_BLOCK = (1024, 1024, 64)


def sanitize_requested():
    """True when TINYCNN_SANITIZE=1 asks for the sanitizer build."""
    return os.environ.get("TINYCNN_SANITIZE", "") == "1"


def asan_runtime():
    """Path of g++'s shared AddressSanitizer runtime (for LD_PRELOAD)."""
    return subprocess.run([COMPILER, "-print-file-name=libasan.so"], capture_output=True,
                          text=True, check=True).stdout.strip()


class Parameter:
    """One kernel parameter: `ctype` as written in C ("const float*", "int"), and its name."""

    def __init__(self, declaration):
        *words, self.name = declaration.replace("*", " * ").split()
        words = [word for word in words if word != "__restrict__"]
        self.ctype = " ".join(words).replace(" *", "*")
        self.is_pointer = words[-1] == "*"
        self.is_const = "const" in words
        base = " ".join(word for word in words if word not in ("const", "*"))
        self.dtype = np.dtype(_POINTEES[base] if self.is_pointer else _SCALARS[base])


def parse_kernels(source):
    """{name: [Parameter, ...]} for every extern "C" __global__ kernel of preprocessed source."""
    return {name: [Parameter(p) for p in params.split(",")]
            for name, params in _KERNEL.findall(source)}


def _preprocess(files):
    """The sources after the C preprocessor (so macro-made kernels show their real types)."""
    command = [COMPILER, "-E", "-P", "-x", "c++", f"-I{cuda.SOURCE_DIR}",
               "-DTINYCNN_COOPERATIVE=tinycnn_cooperative"]
    return "".join(subprocess.run(command + [str(f)], capture_output=True, text=True,
                                  check=True).stdout for f in files)


def _launcher_source(files, kernels, cooperative):
    lines = [f'#include "{SHIM}"'] + [f'#include "{pathlib.Path(f).resolve()}"' for f in files]
    for name, params in kernels.items():
        args = ", ".join(f"*static_cast<{p.ctype}*>(args[{i}])" for i, p in enumerate(params))
        runner = "run_grid_cooperatively" if name in cooperative else "run_grid"
        lines += [
            f'extern "C" void launch_{name}(const unsigned* grid, const unsigned* block, void** args)',
            "{",
            f"    {runner}(dim3{{grid[0], grid[1], grid[2]}}, dim3{{block[0], block[1], block[2]}},",
            f"             [&] {{ {name}({args}); }});",
            "}",
        ]
    return "\n".join(lines) + "\n"


def build_library(files, sanitize):
    """Compile `files` (CUDA sources) with the shim into a cached shared library -> (path, kernels)."""
    files = [pathlib.Path(f).resolve() for f in files]
    source = _preprocess(files)
    kernels = parse_kernels(source)
    launcher = _launcher_source(files, kernels, set(_COOPERATIVE.findall(source)))
    flags = FLAGS + (SANITIZE_FLAGS if sanitize else ())
    key = hashlib.sha256("\0".join(
        [launcher, SHIM.read_text(), " ".join(flags), (cuda.SOURCE_DIR / "common.cuh").read_text()]
        + [f.read_text() for f in files]).encode()).hexdigest()[:24]
    cache = pathlib.Path(tempfile.gettempdir()) / "tinycnn-cuda-harness"
    cache.mkdir(exist_ok=True)
    library = cache / f"kernels-{key}.so"
    if not library.exists():
        with tempfile.TemporaryDirectory(dir=cache) as work:
            launcher_path = pathlib.Path(work) / "launcher.cpp"
            launcher_path.write_text(launcher)
            built = pathlib.Path(work) / "kernels.so"
            result = subprocess.run([COMPILER, *flags, f"-I{cuda.SOURCE_DIR}", "-o", str(built),
                                     str(launcher_path)], capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"g++ could not build the kernels:\n{result.stderr}")
            os.replace(built, library)   # atomic: parallel sessions never see half a file
    return library, kernels


@functools.cache
def load_library(sanitize=None):
    """All of kernels/cuda as a KernelLibrary; sanitize=None follows TINYCNN_SANITIZE."""
    if sanitize is None:
        sanitize = sanitize_requested()
    if sanitize and "libasan" not in os.environ.get("LD_PRELOAD", ""):
        raise RuntimeError("the sanitizer build needs LD_PRELOAD=" + asan_runtime())
    return KernelLibrary(*build_library(cuda.source_files(), sanitize), sanitized=sanitize)


class KernelLibrary:
    """A compiled library; get_function(name) plays cupy.RawModule.get_function."""

    def __init__(self, path, kernels, sanitized):
        self.path = path
        self.sanitized = sanitized
        self._dll = ctypes.CDLL(str(path))
        self._kernels = kernels

    def names(self):
        return sorted(self._kernels)

    def get_function(self, name):
        if name not in self._kernels:
            raise KeyError(f"no kernel named {name!r}; have {self.names()}")
        launcher = getattr(self._dll, f"launch_{name}")
        launcher.argtypes = [ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_uint),
                             ctypes.POINTER(ctypes.c_void_p)]
        launcher.restype = None
        return Kernel(name, self._kernels[name], launcher)


def _dims(value, what, limits):
    dims = (value,) if isinstance(value, int) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, int) and d >= 1 for d in dims):
        raise ValueError(f"{what} must be 1 to 3 positive ints, got {value!r}")
    dims += (1,) * (3 - len(dims))
    if any(d > limit for d, limit in zip(dims, limits)):
        raise ValueError(f"{what} {dims} exceeds CUDA's limits {limits}")
    return (ctypes.c_uint * 3)(*dims)


class Kernel:
    """Called like a CuPy kernel: kernel(grid, block, args) with a tuple of numpy arguments."""

    def __init__(self, name, params, launcher):
        self.name = name
        self.params = params
        self._launcher = launcher

    def _slot(self, param, arg):
        """A ctypes object holding the value CuPy would put in this parameter's slot."""
        where = f"{self.name}: parameter {param.name} ({param.ctype})"
        if param.is_pointer:
            if not isinstance(arg, np.ndarray):
                raise TypeError(f"{where} needs an array, got {type(arg).__name__}")
            if arg.dtype != param.dtype:
                raise TypeError(f"{where} needs a {param.dtype} array, got {arg.dtype}")
            if not arg.flags.c_contiguous:
                raise TypeError(f"{where} got a non-contiguous array: the kernel would read "
                                "its buffer as if it were contiguous")
            if not param.is_const and not arg.flags.writeable:
                raise TypeError(f"{where} is written by the kernel but the array is read-only")
            return ctypes.c_void_p(arg.ctypes.data)
        # CuPy passes a Python int as int64, a Python float as double, a numpy scalar as its dtype
        if param.dtype == np.float64 and type(arg) is float:
            return ctypes.c_double(arg)
        if type(arg) is not param.dtype.type:
            raise TypeError(f"{where} needs a numpy {param.dtype} scalar, got "
                            f"{type(arg).__name__} (CuPy would pass it with a different width)")
        return np.ctypeslib.as_ctypes_type(param.dtype)(arg)

    def __call__(self, grid, block, args):
        if not isinstance(args, tuple):
            raise TypeError(f"{self.name}: args must be a tuple, got {type(args).__name__}")
        if len(args) != len(self.params):
            raise TypeError(f"{self.name}: takes {len(self.params)} arguments, got {len(args)}")
        grid = _dims(grid, "grid", _MAX_GRID)
        block = _dims(block, "block", _MAX_BLOCK)
        if block[0] * block[1] * block[2] > _MAX_THREADS_PER_BLOCK:
            raise ValueError(f"{self.name}: more than {_MAX_THREADS_PER_BLOCK} threads per block")
        slots = [self._slot(p, a) for p, a in zip(self.params, args)]
        pointers = (ctypes.c_void_p * len(slots))(*[ctypes.addressof(s) for s in slots])
        self._launcher(grid, block, pointers)
