"""Winograd F(4x4, 3x3) transforms (see kernels.reference for the algorithm and layouts).

Every kernel works on one image at a time through a channels-last plane whose columns are
split by their remainder mod 4 (tiles are STEP = 4 pixels apart): pixel (Y, X) of channel c
sits at ((4Y + X % 4) * part + X // 4) * C + c. Column j of tile (ty, tx) is then column
4 tx + j = remainder j % 4, part-column tx + j // 4, so for one tile row and one tile cell
(i, j) the values of all tiles and all channels form a single run of tw * C adjacent floats,
the same run the planes hold. Each transform is two 1-D transforms (rows, then columns), and
each 1-D transform is a few loops of the form ``out[J] = sum of weight * run[J]``: one store
stream and at most six load streams, which LLVM vectorizes (a loop storing to all planes at
once needs too many run-time alias checks and stays scalar). The transformed planes lie
``plane_size`` apart (kernels.winograd_plane_size): planes a multiple of 4 KiB apart would
share one set of the L1 cache and evict each other.
"""
import numpy as np
from numba import njit, prange, uintp

from .common import PARALLEL
from ..reference import WINOGRAD_AT, WINOGRAD_BT, WINOGRAD_G, WINOGRAD_STEP as STEP, WINOGRAD_TILE as TILE

# The matrices as constants of the kernels, one row per 1-D combination of six runs (A, 6 x 4,
# gets two zero columns). Each row is kept as its nonzero terms only (_terms): a third of B's and
# A's entries are 0, and a combination then loads only the runs it needs.
def _terms(matrix):
    """(weights, index, count): each row's nonzero weights first, the run each multiplies, how many.
    The unused places repeat the first term's run with weight 0."""
    rows = matrix.shape[0]
    weights, index, count = np.zeros((rows, TILE)), np.zeros((rows, TILE), np.intp), np.zeros(rows, np.intp)
    for r in range(rows):
        nonzero = np.flatnonzero(matrix[r])
        count[r] = len(nonzero)
        weights[r, :len(nonzero)] = matrix[r, nonzero]
        index[r] = nonzero[0]
        index[r, :len(nonzero)] = nonzero
    return weights, index, count


_A = np.zeros((TILE, TILE))
_A[:, :STEP] = WINOGRAD_AT.T
_BT, _B, _AT, _A = (_terms(np.asarray(m, np.float64)) for m in (WINOGRAD_BT, WINOGRAD_BT.T, WINOGRAD_AT, _A))


def max_abs(x):
    # On the bits: with the sign bit cleared, a float's bits as an unsigned int order as its
    # magnitude, NaN above inf above every finite value, and an integer max vectorizes.
    bits = x.reshape(-1).view(np.uint32 if x.dtype == np.float32 else np.uint64)
    magnitude = bits.dtype.type(np.iinfo(bits.dtype).max >> 1)
    largest = _max_bits(bits, magnitude) if bits.size else bits.dtype.type(0)
    return np.array(largest, bits.dtype).view(x.dtype)


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _max_bits(bits, magnitude):
    largest = bits[0] & magnitude
    for i in prange(bits.size):
        largest = max(largest, bits[i] & magnitude)
    return largest


def winograd_weight_transform(weight):
    k, c = weight.shape[:2]
    u = np.empty((TILE * TILE, c, k), weight.dtype)
    by_channel = np.ascontiguousarray(weight.transpose(1, 2, 3, 0))          # (C, 3, 3, K)
    _weight_transform(by_channel, WINOGRAD_G.astype(weight.dtype), u)
    return u


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _weight_transform(w, g, u):
    # u[6a + b, c] = (G w G^T)[a, b] for all K filters of input channel c at once: row a of
    # r = G w (3 x K), then r G^T. Every loop runs along K, contiguous in w (C, 3, 3, K) and u.
    c_count, k_count = w.shape[0], w.shape[3]
    for c in prange(c_count):
        r = np.empty((3, k_count), w.dtype)
        for a in range(TILE):
            for j in range(3):
                for k in range(k_count):
                    r[j, k] = g[a, 0] * w[c, 0, j, k] + g[a, 1] * w[c, 1, j, k] + g[a, 2] * w[c, 2, j, k]
            for b in range(TILE):
                for k in range(k_count):
                    u[TILE * a + b, c, k] = r[0, k] * g[b, 0] + r[1, k] * g[b, 1] + r[2, k] * g[b, 2]


def winograd_weight_transform_backward(gu):
    c, k = gu.shape[1:]
    by_channel = np.empty((c, 3, 3, k), gu.dtype)
    _weight_transform_backward(gu, WINOGRAD_G.astype(gu.dtype), by_channel)
    return np.ascontiguousarray(by_channel.transpose(3, 0, 1, 2))            # (K, C, 3, 3)


@njit(cache=True, nogil=True, parallel=PARALLEL)
def _weight_transform_backward(gu, g, gw):
    # The adjoint: gw[c] = G^T du G with du = gu[:, c] as 6 x 6 (per filter): s = du G row by
    # row (row a: 3 x K), then gw[c, i] += G[a, i] s, along K as in the forward.
    c_count, k_count = gu.shape[1:]
    for c in prange(c_count):
        s = np.empty((3, k_count), gu.dtype)
        gw[c] = 0
        for a in range(TILE):
            for j in range(3):
                for k in range(k_count):
                    total = gu.dtype.type(0)
                    for b in range(TILE):
                        total += gu[TILE * a + b, c, k] * g[b, j]
                    s[j, k] = total
            for i in range(3):
                for j in range(3):
                    for k in range(k_count):
                        gw[c, i, j, k] += g[a, i] * s[j, k]


def winograd_input_transform(x, py, px, th, tw, out):
    _input_transform(x, py, px, th, tw, out)
    return out


def winograd_input_transform_backward(v, n, c, h, w, py, px, th, tw, out=None):
    gx = np.empty((n, c, h, w), v.dtype) if out is None else out
    _input_transform_backward(v, py, px, th, tw, gx)
    return gx


def winograd_output_transform(m, n, k, oh, ow, out=None):
    y = np.empty((n, k, oh, ow), m.dtype) if out is None else out
    _output_transform(m, y)
    return y


def winograd_output_transform_backward(gy, out):
    _output_transform_backward(gy, out)
    return out


@njit(cache=True, nogil=True, inline="always")
def _combine(out, o, src, starts, terms, row, length, add):
    """out[o + J] (+)= sum over the nonzero weights w[i] of `row` of w[i] * src[starts[i] + J], for
    J < length: one loop per count of terms, so that each loads only the runs it needs."""
    weights, index, counts = terms
    k, zero = counts[row], src.dtype.type(0)
    w0, w1, w2 = src.dtype.type(weights[row, 0]), src.dtype.type(weights[row, 1]), src.dtype.type(weights[row, 2])
    w3, w4, w5 = src.dtype.type(weights[row, 3]), src.dtype.type(weights[row, 4]), src.dtype.type(weights[row, 5])
    s0, s1, s2 = starts[index[row, 0]], starts[index[row, 1]], starts[index[row, 2]]
    s3, s4, s5 = starts[index[row, 3]], starts[index[row, 4]], starts[index[row, 5]]
    if k == 1:
        for J in range(length):
            out[uintp(o + J)] = (out[uintp(o + J)] if add else zero) + w0 * src[uintp(s0 + J)]
    elif k <= 3:
        for J in range(length):
            out[uintp(o + J)] = (out[uintp(o + J)] if add else zero) + (
                w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)] + w2 * src[uintp(s2 + J)])
    elif k == 4:
        for J in range(length):
            out[uintp(o + J)] = (out[uintp(o + J)] if add else zero) + (
                w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)] + w2 * src[uintp(s2 + J)]
                + w3 * src[uintp(s3 + J)])
    elif k == 5:
        for J in range(length):
            out[uintp(o + J)] = (out[uintp(o + J)] if add else zero) + (
                w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)] + w2 * src[uintp(s2 + J)]
                + w3 * src[uintp(s3 + J)] + w4 * src[uintp(s4 + J)])
    else:
        for J in range(length):
            out[uintp(o + J)] = (out[uintp(o + J)] if add else zero) + (
                w0 * src[uintp(s0 + J)] + w1 * src[uintp(s1 + J)] + w2 * src[uintp(s2 + J)]
                + w3 * src[uintp(s3 + J)] + w4 * src[uintp(s4 + J)] + w5 * src[uintp(s5 + J)])


@njit(cache=True, nogil=True, inline="always")
def _run(y, j, part, channels):
    """Where column j of tile 0 in plane row y starts (the run then covers every tile of the row)."""
    return ((STEP * y + j % STEP) * part + j // STEP) * channels


@njit(cache=True, nogil=True, inline="always")
def _rows(first, part, j, channels):
    """The runs of column j in the six plane rows from `first` on."""
    return (_run(first, j, part, channels), _run(first + 1, j, part, channels),
            _run(first + 2, j, part, channels), _run(first + 3, j, part, channels),
            _run(first + 4, j, part, channels), _run(first + 5, j, part, channels))


@njit(cache=True, nogil=True, inline="always")
def _spaced(first, distance):
    """Six runs `distance` apart from `first` on (six planes, or six scratch runs)."""
    return (first, first + distance, first + 2 * distance, first + 3 * distance, first + 4 * distance,
            first + 5 * distance)


@njit(cache=True, nogil=True)
def _to_split_columns(image, plane_start, channels, h, w, py, px, part, plane):
    """plane[run of pixel (py + a, px + b), channel c] = image plane (plane_start + c), pixel (a, b)."""
    for c in range(channels):
        for a in range(h):
            source = ((plane_start + c) * h + a) * w
            for b in range(w):
                x = px + b
                plane[uintp(((STEP * (py + a) + x % STEP) * part + x // STEP) * channels + c)] = \
                    image[uintp(source + b)]


@njit(cache=True, nogil=True)
def _from_split_columns(plane, plane_start, channels, h, w, py, px, part, image):
    """The inverse of _to_split_columns."""
    for c in range(channels):
        for a in range(h):
            target = ((plane_start + c) * h + a) * w
            for b in range(w):
                x = px + b
                image[uintp(target + b)] = \
                    plane[uintp(((STEP * (py + a) + x % STEP) * part + x // STEP) * channels + c)]


@njit(cache=True, nogil=True, inline="always")
def _input_plane_size(h, w, py, px, th, tw):
    """(rows, part): the plane rows and part-columns holding the image at (py, px) and every tile."""
    return max(py + h, STEP * th + 2), max((px + w + STEP - 1) // STEP, tw + 1)


@njit(cache=True, nogil=True)
def _input_transform(x, py, px, th, tw, out):
    n_images, channels, h, w = x.shape
    rows, part = _input_plane_size(h, w, py, px, th, tw)
    padded = np.zeros(rows * STEP * part * channels, x.dtype)    # only its interior is ever written
    length = tw * channels                                        # one tile row, all channels
    e = np.empty(TILE * length, x.dtype)
    image, planes = x.reshape(-1), out.reshape(-1)
    plane = out.shape[1]
    for n in range(n_images):
        _to_split_columns(image, n * channels, channels, h, w, py, px, part, padded)
        for ty in range(th):
            t = (n * th + ty) * length
            for r in range(TILE):
                for j in range(TILE):       # e[j] = sum over u of B^T[r, u] d[u, j]
                    _combine(e, j * length, padded, _rows(STEP * ty, part, j, channels), _BT, r, length, False)
                for s in range(TILE):       # v[r, s] = sum over j of B^T[s, j] e[j]
                    _combine(planes, (TILE * r + s) * plane + t, e, _spaced(0, length), _BT, s, length, False)


@njit(cache=True, nogil=True)
def _input_transform_backward(v, py, px, th, tw, gx):
    # The adjoint of _input_transform: B dv B^T of every tile is added onto the plane where the
    # tile was read (tiles overlap by 2 pixels; one fixed order, so the sums are deterministic),
    # then the image part of the plane goes into gx.
    n_images, channels, h, w = gx.shape
    rows, part = _input_plane_size(h, w, py, px, th, tw)
    padded = np.empty(rows * STEP * part * channels, gx.dtype)
    length = tw * channels
    e = np.empty(TILE * length, gx.dtype)
    planes, image = v.reshape(-1), gx.reshape(-1)
    plane = v.shape[1]
    for n in range(n_images):
        padded[:] = 0
        for ty in range(th):
            t = (n * th + ty) * length
            for j in range(TILE):
                for r in range(TILE):       # e[r] = sum over s of B[j, s] dv[r, s]
                    _combine(e, r * length, planes, _spaced(TILE * r * plane + t, plane), _B, j, length, False)
                for u in range(TILE):       # dd[u, j] += sum over r of B[u, r] e[r]
                    _combine(padded, _run(STEP * ty + u, j, part, channels), e, _spaced(0, length), _B, u,
                             length, True)
        _from_split_columns(padded, n * channels, channels, h, w, py, px, part, image)


@njit(cache=True, nogil=True)
def _output_transform(m, y):
    # A^T m A of every tile into a plane of whole tiles, then the part inside (oh, ow) into y.
    n_images, channels, oh, ow = y.shape
    th, tw = -(-oh // STEP), -(-ow // STEP)
    tiles = np.empty(STEP * th * STEP * tw * channels, y.dtype)
    length = tw * channels
    q = np.empty(TILE * length, y.dtype)
    planes, image = m.reshape(-1), y.reshape(-1)
    plane = m.shape[1]
    for n in range(n_images):
        for ty in range(th):
            t = (n * th + ty) * length
            for j in range(STEP):
                for r in range(TILE):       # q[r] = sum over s of A^T[j, s] m[r, s]
                    _combine(q, r * length, planes, _spaced(TILE * r * plane + t, plane), _AT, j, length, False)
                for i in range(STEP):       # y[i, j] = sum over r of A^T[i, r] q[r]
                    _combine(tiles, _run(STEP * ty + i, j, tw, channels), q, _spaced(0, length), _AT, i, length,
                             False)
        _from_split_columns(tiles, n * channels, channels, oh, ow, 0, 0, tw, image)


@njit(cache=True, nogil=True)
def _output_transform_backward(gy, out):
    # The adjoint of _output_transform: gy into a plane of whole tiles (zero past (oh, ow)),
    # then A g A^T of every 4x4 tile.
    n_images, channels, oh, ow = gy.shape
    th, tw = -(-oh // STEP), -(-ow // STEP)
    tiles = np.zeros(STEP * th * STEP * tw * channels, gy.dtype)   # only (oh, ow) is ever written
    length = tw * channels
    w = np.empty(STEP * length, gy.dtype)
    planes, image = out.reshape(-1), gy.reshape(-1)
    plane = out.shape[1]
    for n in range(n_images):
        _to_split_columns(image, n * channels, channels, oh, ow, 0, 0, tw, tiles)
        for ty in range(th):
            t = (n * th + ty) * length
            for s in range(TILE):
                for i in range(STEP):       # w[i] = sum over j of A[s, j] g[i, j]
                    first = _run(STEP * ty + i, 0, tw, channels)
                    starts = (first, first + length, first + 2 * length, first + 3 * length, first, first)
                    _combine(w, i * length, tiles, starts, _A, s, length, False)
                starts = (0, length, 2 * length, 3 * length, 0, 0)
                for r in range(TILE):       # du[r, s] = sum over i of A[r, i] w[i]
                    _combine(planes, (TILE * r + s) * plane + t, w, starts, _A, r, length, False)
