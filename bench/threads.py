"""Numba's threading layer against OpenBLAS's threads: im2col, then one GEMM per image.

    NUMBA_THREADING_LAYER=omp python -m bench.threads
    python -m bench.threads                      # tinycnn's choice, workqueue
"""
import numba
import numpy as np

from tinycnn import kernels

from . import common


def _threading_layer():
    try:
        return numba.threading_layer()
    except ValueError:      # no parallel kernel ran, so Numba started no threads
        return f"{numba.config.THREADING_LAYER} (not started)"


def main():
    rng = np.random.default_rng(0)
    x = rng.random((64, 32, 32, 32), dtype=np.float32)
    weight = rng.random((32, 288), dtype=np.float32)

    def layer():
        col = kernels.im2col(x, kernels.Window.of(3, padding=1)).reshape(64, 288, 1024)
        for image in col:
            weight @ image

    seconds = common.median_time(layer, steps=10, warmup=2)
    print(f"threading layer {_threading_layer()}, {numba.get_num_threads()} threads: "
          f"im2col + 64 GEMMs (32 channels, 32x32, 3x3) {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
