"""tinycnn: a from-scratch deep-learning engine for convolutional networks.

The repository shows three layers side by side (kernels/, tinycnn/, models/);
package_dir installs kernels/ and models/ inside the tinycnn namespace, so
nothing generic like ``models`` lands at the top of site-packages.
"""
import re

from setuptools import find_packages, setup

# The version lives in tinycnn/__init__.py alone; read as text, since importing needs the dependencies.
VERSION = re.search(r'^__version__ = "([^"]+)"', open("tinycnn/__init__.py", encoding="utf-8").read(), re.M).group(1)



def packages(folder, installed_as):
    """The package in ``folder`` and its subpackages, named as they are installed."""
    return [installed_as] + [f"{installed_as}.{name}" for name in find_packages(folder)]


setup(
    name="tinycnn",
    version=VERSION,
    license="MIT",
    description="A small define-by-run deep-learning engine for CNNs on NumPy and CuPy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages("tinycnn", "tinycnn") + packages("kernels", "tinycnn.kernels") + packages("models", "tinycnn.models"),
    package_dir={
        "tinycnn": "tinycnn",
        "tinycnn.kernels": "kernels",
        "tinycnn.models": "models",
    },
    package_data={"tinycnn.kernels.cuda": ["*.cu", "*.cuh"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "matplotlib>=3.7", "tqdm>=4.60", "pillow>=9.0"],
    extras_require={
        # Installs on any platform; tests of an optional package skip where it is missing.
        "test": ["pytest>=7", "hypothesis>=6.80", "safetensors>=0.4", "h5py>=3.8", "onnx>=1.15"],
        # The CUDA tests compile every kernel through CuPy's NVRTC with no GPU present: they need
        # this exact CuPy and the NVRTC runtime matching nvcc 13.0 (Linux x86-64 wheels; .ci/run uses them).
        "cuda-test": ["cupy-cuda13x==14.2.0", "nvidia-cuda-nvrtc==13.0.88"],
        # Pick the CuPy wheel of your CUDA toolkit: cupy-cuda13x (CUDA 13) or cupy-cuda12x (CUDA 12).
        "cuda": ["cupy-cuda13x>=14"],
        "weights": ["safetensors>=0.4", "h5py>=3.8"],      # tinycnn.io: safetensors and Keras files
        "onnx": ["onnx>=1.15"],                             # tinycnn.onnx.export
        "distributed": ["mpi4py>=3.1"],                     # tinycnn.distributed (needs an MPI library)
    },
    entry_points={"console_scripts": ["tinycnn = tinycnn.cli:main"]},
)
