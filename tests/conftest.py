"""Fixtures shared by the test modules."""
import math

import pytest

from tinycnn.functions import conv as conv_module


@pytest.fixture(scope="module", params=["im2col", "im2row"])
def conv_layout(request):
    """Run the requesting tests with each CPU convolution layout forced on every ungrouped
    convolution: im2col columns, then im2row rows (which the CPU normally keeps for 16+ input
    channels, more than the drawn cases have). Module scope: hypothesis re-runs a test body
    many times inside one fixture instance."""
    previous = conv_module.ROWS_MIN_CHANNELS
    conv_module.ROWS_MIN_CHANNELS = 1 if request.param == "im2row" else math.inf
    yield request.param
    conv_module.ROWS_MIN_CHANNELS = previous
