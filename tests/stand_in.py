"""The CPU stand-in for CuPy (tests/fake_gpu), shared by the tests of the GPU path.

A test file of the GPU path runs twice: in the normal session, where ``cp`` is a real CuPy that
sees a device (or None, and its device tests skip), and in a subprocess whose ``import cupy``
gets the stand-in (``STAND_IN``), started by a test of the normal session through
``assert_passes_on_the_stand_in``. tests/test_cuda_backend.py says more.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FAKE_GPU = TESTS / "fake_gpu"


def cupy_with_a_device():
    """The cupy module when it sees a CUDA device (the stand-in always does), else None."""
    try:
        import cupy
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:            # no CuPy, or CuPy without a driver or a device
        return None


cp = cupy_with_a_device()
STAND_IN = getattr(cp, "IS_STAND_IN", False)
needs_device = pytest.mark.skipif(cp is None, reason="no CUDA device (the stand-in subprocess runs this)")


def assert_passes_on_the_stand_in(test_file, *pytest_args):
    """Run ``test_file`` again in a subprocess with the stand-in first on PYTHONPATH: every selected
    test passes and none is skipped for want of a device (NumPy's warnings may be counted)."""
    if STAND_IN:
        pytest.skip("this is the stand-in run")
    path = os.pathsep.join(filter(None, [str(FAKE_GPU), os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider",
                             *pytest_args], capture_output=True, text=True, cwd=TESTS.parent,
                            env={**os.environ, "PYTHONPATH": path})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert re.search(r"^\d+ passed, \d+ deselected(, \d+ warnings?)? in ", output, re.MULTILINE), output[-3000:]
