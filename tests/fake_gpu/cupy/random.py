"""cupy.random of the stand-in: one seeded NumPy Generator (PCG64) drawing on the device.

``seed(s)`` then ``random(shape)`` gives the values ``numpy.random.default_rng(s).random(shape)``
gives (real CuPy's stream differs; tests on a GPU must not rely on it).
"""
import numpy

from . import _launches
from ._array import wrap

_generator = numpy.random.default_rng()


def seed(seed=None):
    global _generator
    _generator = numpy.random.default_rng(seed)


def random(size=None, dtype=float):
    """Uniform [0, 1) values of `dtype` (float64 by default, as in CuPy). During a stream capture
    nothing is drawn: each launch of the graph draws the next values into the same array."""
    if not _launches.capturing():
        return wrap(numpy.asarray(_generator.random(size, dtype=dtype)))
    values = numpy.full(size, numpy.nan, dtype=dtype)
    _launches.device_op(lambda: values.__setitem__(..., _generator.random(size, dtype=dtype)), writes=True)
    return wrap(values)
