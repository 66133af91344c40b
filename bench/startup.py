"""Start-up: seconds from a fresh process to the end of its first MiniVGG training step.

Cold = an empty Numba cache (every kernel compiles); warm = the cache from an earlier run.

    python -m bench.startup
"""
import os
import subprocess
import sys
import tempfile
import time

FIRST_STEP = """
import numpy as np, tinycnn, tinycnn.functions as F
from tinycnn import models
model = tinycnn.nn.fuse(models.get("minivgg", num_classes=10))
optimizer = tinycnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = tinycnn.Tensor(np.zeros((64, 3, 32, 32), dtype=np.float32))
F.softmax_cross_entropy(model(x), np.zeros(64, dtype=np.int64)).backward()
optimizer.step()
"""


def seconds_to_first_step(cache_dir):
    environment = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", FIRST_STEP], env=environment, check=True)
    return time.perf_counter() - start


def main():
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = seconds_to_first_step(cache_dir)
        warm = seconds_to_first_step(cache_dir)
    print(f"first MiniVGG training step of a fresh process: cold cache {cold:.1f} s, warm cache {warm:.1f} s")


if __name__ == "__main__":
    main()
