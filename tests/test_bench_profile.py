"""bench/profile.py: the per-op table of a training step or an inference pass, and with
--convolutions the GEMMs and kernels inside the convolutions. Run in a subprocess: it wraps the
engine's Functions and kernels for the rest of its process."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def profile(*arguments):
    result = subprocess.run([sys.executable, "-m", "bench.profile", "--model", "minivgg", "--batch", "2",
                             "--steps", "1", "--plain", *arguments],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    return result.stdout


def rows(output):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(\S[^\n]*?)\s+(-?\d+\.\d+)\b", output, re.M)}


@pytest.mark.parametrize("mode", ["training", "inference"])
def test_the_profile_names_the_ops_and_times_inside_the_convolutions(mode):
    output = profile("--convolutions", *(["--eval"] if mode == "inference" else []))
    assert ("per inference pass" in output) == (mode == "inference")
    times = rows(output)
    assert times["Conv2dWinograd"] > 0 and times["BatchNorm"] > 0
    assert times["Winograd GEMMs (np.matmul)"] > 0 and times["winograd_input_transform"] > 0
    assert ("winograd_input_transform_backward" in times) == (mode == "training")
