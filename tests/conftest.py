"""Fixtures shared by the test modules."""
import math

import pytest

from tinycnn.functions import conv as conv_module


@pytest.fixture(scope="module", params=["im2col", "im2row", "winograd"])
def conv_layout(request):
    """Run the requesting tests with each CPU convolution layout forced on every ungrouped
    convolution: im2col columns, im2row rows, then Winograd's transforms for the 3x3 stride-1
    ones (the CPU normally keeps the last two for 16+ input channels, more than the drawn
    cases have). Module scope: hypothesis re-runs a test body many times inside one fixture
    instance."""
    previous = conv_module.ROWS_MIN_CHANNELS, conv_module.WINOGRAD_MIN_CHANNELS
    conv_module.ROWS_MIN_CHANNELS = math.inf if request.param == "im2col" else 1
    conv_module.WINOGRAD_MIN_CHANNELS = 1 if request.param == "winograd" else math.inf
    yield request.param
    conv_module.ROWS_MIN_CHANNELS, conv_module.WINOGRAD_MIN_CHANNELS = previous
