"""Fixtures shared by the test modules, and hypothesis's profile.

Under CI (the environment variable CI set, as .ci/run runs) hypothesis draws the same examples at
every run, so a red CI points at the change and not at a new draw; a run anywhere else draws new
examples each time and finds what the fixed ones miss (a failure is kept in .hypothesis/).
"""
import os

import pytest
from hypothesis import settings

import tinycnn.functions as F

settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="module", params=["im2col", "im2row", "winograd"])
def conv_layout(request):
    """Run the requesting tests with each CPU convolution algorithm preferred wherever it can run
    (F.conv_algorithm(..., strict=False)): im2col columns, im2row rows, then Winograd's transforms
    for the 3x3 stride-1 ones (im2row for the rest); depthwise convolutions keep their kernel.
    The auto rule keeps the last two for 16+ input channels, more than the drawn cases have.
    Module scope: hypothesis re-runs a test body many times inside one fixture instance."""
    with F.conv_algorithm(request.param, strict=False):
        yield request.param
