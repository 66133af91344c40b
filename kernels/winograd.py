"""Dispatch of Winograd's F(4x4, 3x3) transforms: a 3x3 stride-1 convolution computed as 36
matrix products per layer; the algorithm, the tile numbering and the (36, S) plane layout are
in kernels/reference.py.
"""
from . import reference
from .device import array_module
from .dispatch import _check_array, _check_float, _check_out, _ints, _run

WINOGRAD_PLANES = reference.WINOGRAD_PLANES
winograd_tile_grid = reference.winograd_tile_grid


def winograd_plane_size(elements):
    """S, the distance between the 36 planes of `elements` (tiles x channels) transformed values:
    rounded up to whole 4 KiB of float32, plus 64 bytes, so the planes fall in different sets
    of the L1 cache (planes a multiple of 4 KiB apart evict each other: 4x slower)."""
    return -(-elements // 1024) * 1024 + 16


def _check_planes(kernel, name, planes, elements):
    """planes: a (36, S) float array with S >= elements."""
    _check_array(kernel, name, planes, 2, "(36, S)")
    if planes.shape[0] != WINOGRAD_PLANES or planes.shape[1] < elements:
        raise ValueError(f"{kernel}: {name} must have shape (36, S) with S >= {elements}, got {planes.shape}")


def _planes_out(kernel, out, like, elements):
    """The (36, S) output planes: `out` checked, or a new array; the entries past `elements`
    (never written by the kernels) zeroed, so results are fully defined."""
    if out is None:
        out = array_module(like).empty((WINOGRAD_PLANES, winograd_plane_size(elements)), like.dtype)
    _check_out(kernel, out, like, shape=None)
    _check_planes(kernel, "out", out, elements)
    out[:, elements:] = 0
    return out


def _tile_grid(kernel, oh, ow):
    oh, ow = _ints(kernel, 1, oh=oh, ow=ow)
    return (oh, ow) + winograd_tile_grid(oh, ow)


def winograd_input_transform(x, py, px, th, tw, out=None):
    """x (N, C, H, W) -> planes (36, S): B^T d B of every 6x6 input tile d (th x tw tiles per
    image, 4 pixels apart, the first at (-py, -px)). ``out``: an optional (36, S) array, S >= N*th*tw*C."""
    name = "winograd_input_transform"
    _check_array(name, "x", x, 4, "(N, C, H, W)")
    py, px = _ints(name, 0, py=py, px=px)
    th, tw = _ints(name, 1, th=th, tw=tw)
    elements = x.shape[0] * th * tw * x.shape[1]
    out = _planes_out(name, out, x, elements)
    return _run(name, x, py, px, th, tw, out)


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    """planes v (36, S) -> x (n, c, h, w), the adjoint of winograd_input_transform: each pixel
    sums B v B^T of the tiles that read it. ``out``: an optional C-contiguous (n, c, h, w) array."""
    name = "winograd_input_transform_backward"
    n, c, h, w, th, tw = _ints(name, 1, n=n, c=c, h=h, w=w, th=th, tw=tw)
    py, px = _ints(name, 0, py=py, px=px)
    _check_planes(name, "v", v, n * th * tw * c)
    _check_out(name, out, v, (n, c, h, w))
    return _run(name, v, n, c, h, w, py, px, th, tw, out=out)


def winograd_output_transform(m, n, k, oh, ow, out=None):
    """planes m (36, S) -> y (n, k, oh, ow): A^T m A of every tile (ceil(oh/4) x ceil(ow/4) per
    image), cropped to (oh, ow). ``out``: an optional C-contiguous (n, k, oh, ow) array."""
    name = "winograd_output_transform"
    n, k = _ints(name, 1, n=n, k=k)
    oh, ow, th, tw = _tile_grid(name, oh, ow)
    _check_planes(name, "m", m, n * th * tw * k)
    _check_out(name, out, m, (n, k, oh, ow))
    return _run(name, m, n, k, oh, ow, out=out)


def winograd_output_transform_backward(gy, out=None):
    """gy (N, K, oh, ow) -> planes (36, S), the adjoint of winograd_output_transform: A g A^T of
    every 4x4 tile g of gy (zeros past the edge). ``out``: an optional (36, S) array, S >= N*th*tw*K."""
    name = "winograd_output_transform_backward"
    _check_array(name, "gy", gy, 4, "(N, K, oh, ow)")
    n, k, oh, ow = gy.shape
    _, _, th, tw = _tile_grid(name, oh, ow)
    elements = n * th * tw * k
    out = _planes_out(name, out, gy, elements)
    return _run(name, gy, out)


def winograd_weight_transform(weight):
    """weight (K, C, 3, 3) -> u (36, C, K): G g G^T of every 3x3 filter g."""
    name = "winograd_weight_transform"
    _check_array(name, "weight", weight, 4, "(K, C, 3, 3)")
    if weight.shape[2:] != (3, 3):
        raise ValueError(f"{name}: weight must be (K, C, 3, 3), got shape {weight.shape}")
    return _run(name, weight)


def winograd_weight_transform_backward(gu):
    """gu (36, C, K) -> gweight (K, C, 3, 3), the adjoint of winograd_weight_transform."""
    name = "winograd_weight_transform_backward"
    _check_array(name, "gu", gu, 3, "(36, C, K)")
    if gu.shape[0] != WINOGRAD_PLANES:
        raise ValueError(f"{name}: gu must be (36, C, K), got shape {gu.shape}")
    return _run(name, gu)


def max_abs(x):
    """max |x| of a float array, as a 0-d array of its dtype (0 when empty); inf or NaN when x
    holds one: the range check that decides whether Winograd's transforms can carry an input.

        >>> import numpy as np
        >>> float(max_abs(np.array([1.0, -3.0]))), float(max_abs(np.array([1.0, np.nan])))
        (3.0, nan)
    """
    _check_float("max_abs", "x", x)
    return _run("max_abs", x)
