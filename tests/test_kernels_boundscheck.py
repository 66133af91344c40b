"""The Numba kernels never index out of bounds on the hand-picked border cases.

Runs the edge-case tests of test_kernels.py in a subprocess with NUMBA_BOUNDSCHECK=1, so
every array access is checked and raises IndexError instead of reading stray memory.
Numba swallows exceptions raised inside a parallel loop, so the kernels are compiled
serially there (TINYCNN_NUMBA_PARALLEL=0), and into a private cache directory: Numba's
cache key ignores both settings, so sharing the normal cache would mix the builds.
"""
import os
import subprocess
import sys
from pathlib import Path


def test_cpu_kernels_stay_in_bounds_on_edge_cases(tmp_path):
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", TINYCNN_NUMBA_PARALLEL="0",
               NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    test_file = Path(__file__).with_name("test_kernels.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(test_file), "-q", "-x", "-k", "edge_cases",
         "-p", "no:cacheprovider"],
        env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert " passed" in result.stdout
