"""The global random state: dropout masks and weight initialisation draw from here.

    >>> import tinycnn
    >>> tinycnn.manual_seed(0)
"""
import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed):
    """Seed tinycnn's generators (NumPy, and CuPy's when present) for reproducible runs."""
    global _rng
    _rng = np.random.default_rng(seed)
    try:
        import cupy
        cupy.random.seed(seed)
    except Exception:
        pass


def get_rng(xp=np):
    """The generator for arrays of module ``xp`` (numpy or cupy)."""
    if xp is np:
        return _rng
    return xp.random


def get_state():
    """The NumPy generator's state (a dict), for checkpoints."""
    return _rng.bit_generator.state


def set_state(state):
    _rng.bit_generator.state = state
