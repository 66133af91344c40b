"""Winograd F(4x4, 3x3) in plain NumPy: the matrices, the tile layout and the transforms
(the oracle of kernels/cpu/winograd.py; re-exported by kernels.reference).
"""
import numpy as np

from .device import array_module


# Winograd F(4x4, 3x3) (Lavin & Gray, 2015). The 4x4 outputs of a 3x3 filter g over a 6x6
# input tile d are
#     Y = A^T [ (G g G^T) * (B^T d B) ] A         (* elementwise)
# so a whole layer is 36 independent matrix products, one per cell ab of the 6x6 tiles,
#     M[ab] = V[ab] @ U[ab]:  (T, K) = (T, C) @ (C, K)     T tiles, C in, K out channels,
# 36 multiplications for 16 outputs where the direct convolution needs 144 (F(2x2, 3x3) needs
# 64). Tile (ty, tx) of image n makes outputs (4ty, 4tx) .. (4ty + 3, 4tx + 3) from input rows
# 4ty - py .. 4ty - py + 5 and columns 4tx - px .. 4tx - px + 5 (zeros outside the image);
# with th = ceil(oh / 4) and tw = ceil(ow / 4) tile rows and columns (winograd_tile_grid),
# tiles are numbered t = (n*th + ty)*tw + tx. Transformed tiles are 36 planes: planes[6a + b,
# t*C + c] in a (36, S) array, S >= T*C (kernels.winograd_plane_size; the dispatch functions
# zero the entries past T*C). The matrices interpolate at 0, 1, -1, 2, -2 and infinity; their
# entries are small (at most 8), which keeps float32 results within about 1e-5 of the direct
# sum, relative to the largest output (F(2x2, 3x3): about 1e-6).
WINOGRAD_STEP = 4                        # outputs per tile side: tiles are 4 pixels apart
WINOGRAD_TILE = WINOGRAD_STEP + 2        # inputs per tile side
WINOGRAD_PLANES = WINOGRAD_TILE ** 2
WINOGRAD_BT = np.array([[4, 0, -5, 0, 1, 0],
                        [0, -4, -4, 1, 1, 0],
                        [0, 4, -4, -1, 1, 0],
                        [0, -2, -1, 2, 1, 0],
                        [0, 2, -1, -2, 1, 0],
                        [0, 4, 0, -5, 0, 1]])
WINOGRAD_G = np.array([[1 / 4, 0, 0],
                       [-1 / 6, -1 / 6, -1 / 6],
                       [-1 / 6, 1 / 6, -1 / 6],
                       [1 / 24, 1 / 12, 1 / 6],
                       [1 / 24, -1 / 12, 1 / 6],
                       [0, 0, 1]])
WINOGRAD_AT = np.array([[1, 1, 1, 1, 1, 0],
                        [0, 1, -1, 2, -2, 0],
                        [0, 1, 1, 4, 4, 0],
                        [0, 1, -1, 8, -8, 1]])


def _store(result, out):
    out[...] = result
    return out


def winograd_tile_grid(oh, ow):
    """(th, tw): the tiles per image, down and across, for an (oh, ow) output."""
    return -(-oh // WINOGRAD_STEP), -(-ow // WINOGRAD_STEP)


def _sandwich(left, tiles, right):
    """[a, b, ...] = sum over i, j of left[a, i] * tiles[i, j, ...] * right[b, j]."""
    xp = array_module(tiles)
    rows = xp.tensordot(xp.asarray(left, tiles.dtype), tiles, axes=(1, 0))            # (a, j, ...)
    return xp.moveaxis(xp.tensordot(xp.asarray(right, tiles.dtype), rows, axes=(1, 1)), 0, 1)


def _tile_cell(padded, i, j, th, tw):
    """(N, C, hp, wp) -> (N, C, th, tw): cell (i, j) of every tile."""
    step = WINOGRAD_STEP
    return padded[:, :, i:i + step * th:step, j:j + step * tw:step]


def _winograd_padded_size(h, w, py, px, th, tw):
    """(hp, wp) of a plane holding the image at (py, px) and every tile."""
    return max(py + h, WINOGRAD_STEP * th + 2), max(px + w, WINOGRAD_STEP * tw + 2)


def winograd_input_transform(x, py, px, th, tw, out):
    """x (N, C, H, W) -> out (36, S): out[6a + b, t*C + c] = (B^T d B)[a, b], d tile t of channel c."""
    xp = array_module(x)
    n, c, h, w = x.shape
    padded = xp.zeros((n, c) + _winograd_padded_size(h, w, py, px, th, tw), x.dtype)
    padded[:, :, py:py + h, px:px + w] = x
    cells = xp.stack([xp.stack([_tile_cell(padded, i, j, th, tw) for j in range(WINOGRAD_TILE)])
                      for i in range(WINOGRAD_TILE)])                            # (6, 6, N, C, th, tw)
    v = _sandwich(WINOGRAD_BT, cells, WINOGRAD_BT)
    out[:, :v[0, 0].size] = v.transpose(0, 1, 2, 4, 5, 3).reshape(WINOGRAD_PLANES, -1)
    return out


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    """v (36, S) -> x (N, C, h, w): the adjoint of winograd_input_transform (B v B^T of every
    tile, summed where tiles overlap)."""
    xp = array_module(v)
    size = WINOGRAD_TILE
    tiles = v[:, :n * th * tw * c].reshape(size, size, n, th, tw, c).transpose(0, 1, 2, 5, 3, 4)
    d = _sandwich(WINOGRAD_BT.T, tiles, WINOGRAD_BT.T)                          # (6, 6, N, C, th, tw)
    padded = xp.zeros((n, c) + _winograd_padded_size(h, w, py, px, th, tw), v.dtype)
    for i in range(size):
        for j in range(size):
            _tile_cell(padded, i, j, th, tw)[...] += d[i, j]
    x = padded[:, :, py:py + h, px:px + w]
    return xp.ascontiguousarray(x) if out is None else _store(x, out)


def winograd_output_transform(m, n, k, oh, ow, out=None):
    """m (36, S) -> y (N, K, oh, ow): A^T m A of every tile, cropped to (oh, ow)."""
    xp = array_module(m)
    (th, tw), size, step = winograd_tile_grid(oh, ow), WINOGRAD_TILE, WINOGRAD_STEP
    y = _sandwich(WINOGRAD_AT, m[:, :n * th * tw * k].reshape(size, size, n, th, tw, k), WINOGRAD_AT)
    y = y.transpose(2, 5, 3, 0, 4, 1).reshape(n, k, step * th, step * tw)[:, :, :oh, :ow]
    return xp.ascontiguousarray(y) if out is None else _store(y, out)


def winograd_output_transform_backward(gy, out):
    """gy (N, K, oh, ow) -> out (36, S): the adjoint of winograd_output_transform (A g A^T of
    every 4x4 tile of gy, zeros past (oh, ow))."""
    xp = array_module(gy)
    n, k, oh, ow = gy.shape
    (th, tw), step = winograd_tile_grid(oh, ow), WINOGRAD_STEP
    whole = xp.zeros((n, k, step * th, step * tw), gy.dtype)
    whole[:, :, :oh, :ow] = gy
    g = whole.reshape(n, k, th, step, tw, step).transpose(3, 5, 0, 2, 4, 1)          # (4, 4, N, th, tw, K)
    out[:, :g[0, 0].size] = _sandwich(WINOGRAD_AT.T, g, WINOGRAD_AT.T).reshape(WINOGRAD_PLANES, -1)
    return out


def winograd_weight_transform(weight):
    """weight (K, C, 3, 3) -> u (36, C, K): u[6a + b] = (G g G^T)[a, b] for every filter g."""
    u = _sandwich(WINOGRAD_G, weight.transpose(2, 3, 1, 0), WINOGRAD_G)           # (6, 6, C, K)
    return array_module(weight).ascontiguousarray(u.reshape((WINOGRAD_PLANES,) + u.shape[2:]))


def winograd_weight_transform_backward(gu):
    """gu (36, C, K) -> gweight (K, C, 3, 3): the adjoint of winograd_weight_transform."""
    size = WINOGRAD_TILE
    g = _sandwich(WINOGRAD_G.T, gu.reshape((size, size) + gu.shape[1:]), WINOGRAD_G.T)   # (3, 3, C, K)
    return array_module(gu).ascontiguousarray(g.transpose(3, 2, 0, 1))


def max_abs(x):
    """max |x| as a 0-d array of x's dtype (0 for an empty array); inf or NaN when x holds one."""
    return array_module(x).asarray(abs(x).max() if x.size else 0, x.dtype)
