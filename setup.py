"""tinycnn: a from-scratch deep-learning engine for convolutional networks.

The repository shows three layers side by side (kernels/, tinycnn/, models/);
package_dir installs kernels/ and models/ inside the tinycnn namespace, so
nothing generic like ``models`` lands at the top of site-packages.
"""
from setuptools import setup

setup(
    name="tinycnn",
    version="0.1.0",
    description="A small define-by-run deep-learning engine for CNNs on NumPy and CuPy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "tinycnn",
        "tinycnn.functions",
        "tinycnn.nn",
        "tinycnn.optim",
        "tinycnn.data",
        "tinycnn.train",
        "tinycnn.kernels",
        "tinycnn.kernels.cpu",
        "tinycnn.kernels.cuda",
        "tinycnn.models",
    ],
    package_dir={
        "tinycnn": "tinycnn",
        "tinycnn.kernels": "kernels",
        "tinycnn.models": "models",
    },
    package_data={"tinycnn.kernels.cuda": ["*.cu", "*.cuh"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "matplotlib>=3.7", "tqdm>=4.60", "pillow>=9.0"],
    extras_require={
        # The CUDA tests compile every kernel through CuPy's NVRTC with no GPU present:
        # they need this exact CuPy and the NVRTC runtime matching nvcc 13.0.
        "test": ["pytest>=7", "hypothesis>=6.80", "cupy-cuda13x==14.2.0", "nvidia-cuda-nvrtc==13.0.88"],
        # Pick the CuPy wheel of your CUDA toolkit: cupy-cuda13x (CUDA 13) or cupy-cuda12x (CUDA 12).
        "cuda": ["cupy-cuda13x>=14"],
    },
    entry_points={"console_scripts": ["tinycnn = tinycnn.cli:main"]},
)
