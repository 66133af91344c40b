"""cupy.random of the stand-in: one seeded NumPy Generator (PCG64) drawing on the device.

``seed(s)`` then ``random(shape)`` gives the values ``numpy.random.default_rng(s).random(shape)``
gives (real CuPy's stream differs; tests on a GPU must not rely on it).
"""
import numpy

from ._array import wrap

_generator = numpy.random.default_rng()


def seed(seed=None):
    global _generator
    _generator = numpy.random.default_rng(seed)


def random(size=None, dtype=float):
    """Uniform [0, 1) values of `dtype` (float64 by default, as in CuPy)."""
    return wrap(numpy.asarray(_generator.random(size, dtype=dtype)))
