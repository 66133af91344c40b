"""im2col / col2im and im2row / row2im for convolution as GEMMs (NCHW).

Both kernels work one (n, c) image plane at a time through a small zero-padded copy of the
plane: every row of a window then lies inside the copy, so there are no border cases, and
each row of the column matrix is one short copy (or add) that LLVM vectorizes. Indices into
the flat arrays are cast to unsigned (``uintp``): Numba then drops its negative-index
wraparound test, which otherwise keeps these short loops scalar.

They run on one thread: convolution calls them on cache-sized chunks between multi-threaded
GEMMs, where a parallel launch costs more than it saves (BENCHMARKS.md, "Design history").
"""
import math

import numpy as np
from numba import njit, uintp


def im2col(x, window, out=None):
    """x (N, C, H, W) -> col (N, C, kh, kw, oh, ow); col[n,c,i,j,y,x] = x[n,c,y*sy-py+i*dil_h, x*sx-px+j*dil_w].
    ``out``, if given, is the (C-contiguous) array to fill."""
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(*x.shape[2:])
    col = np.empty(x.shape[:2] + (kh, kw, oh, ow), x.dtype) if out is None else out
    _im2col(x, sy, sx, py, px, dil_h, dil_w, col)
    return col


def col2im(col, window, size, out=None):
    """col (N, C, kh, kw, oh, ow) -> x (N, C, h, w) with size = (h, w), the adjoint of im2col.
    ``out``, if given, is the (C-contiguous) array to fill."""
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    x = np.empty(col.shape[:2] + tuple(size), col.dtype) if out is None else out
    _col2im(col, sy, sx, py, px, dil_h, dil_w, x)
    return x


@njit(cache=True, nogil=True)
def _padded_plane_shape(h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow):
    """Size of a plane holding the image at offset (py, px) and every window cell."""
    hp = max(py + h, (oh - 1) * sy + (kh - 1) * dil_h + 1)
    wp = max(px + w, (ow - 1) * sx + (kw - 1) * dil_w + 1)
    return hp, wp


@njit(cache=True, nogil=True)
def _copy_rows(padded, wp, col, start, kh, kw, oh, ow, sy, sx, dil_h, dil_w):
    """col[start:] = rows (i, j, y) of one plane's windows: padded row y*sy + i*dil_h, from
    column j*dil_w on, every sx-th entry. Stride 1 has a loop of its own: with a unit step
    LLVM vectorizes it."""
    k = start
    for i in range(kh):
        for j in range(kw):
            for y in range(oh):
                base = (y * sy + i * dil_h) * wp + j * dil_w
                if sx == 1:
                    for o in range(ow):
                        col[uintp(k + o)] = padded[uintp(base + o)]
                else:
                    for o in range(ow):
                        col[uintp(k + o)] = padded[uintp(base + o * sx)]
                k += ow


@njit(cache=True, nogil=True)
def _add_rows(padded, wp, col, start, kh, kw, oh, ow, sy, sx, dil_h, dil_w):
    """The adjoint of _copy_rows: add each row of col back where it was copied from."""
    k = start
    for i in range(kh):
        for j in range(kw):
            for y in range(oh):
                base = (y * sy + i * dil_h) * wp + j * dil_w
                if sx == 1:
                    for o in range(ow):
                        padded[uintp(base + o)] += col[uintp(k + o)]
                else:
                    for o in range(ow):
                        padded[uintp(base + o * sx)] += col[uintp(k + o)]
                k += ow


@njit(cache=True, nogil=True)
def _im2col(x, sy, sx, py, px, dil_h, dil_w, col):
    n_images, channels, h, w = x.shape
    kh, kw, oh, ow = col.shape[2:]
    hp, wp = _padded_plane_shape(h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    padded = np.zeros(hp * wp, x.dtype)             # only its interior is ever written
    image, columns = x.reshape(-1), col.reshape(-1)
    for plane in range(n_images * channels):        # plane = n * channels + c
        for a in range(h):
            for b in range(w):
                padded[uintp((py + a) * wp + px + b)] = image[uintp((plane * h + a) * w + b)]
        _copy_rows(padded, wp, columns, plane * kh * kw * oh * ow, kh, kw, oh, ow, sy, sx, dil_h, dil_w)


@njit(cache=True, nogil=True)
def _col2im(col, sy, sx, py, px, dil_h, dil_w, x):
    # The loop of _im2col run backwards: every column entry is added to the padded-plane
    # cell it was copied from, then the image part of the plane is the gradient. Each
    # pixel sums its contributions in one fixed order (i, j, y ascending): deterministic.
    n_images, channels, kh, kw, oh, ow = col.shape
    h, w = x.shape[2:]
    hp, wp = _padded_plane_shape(h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    padded = np.empty(hp * wp, x.dtype)
    image, columns = x.reshape(-1), col.reshape(-1)
    for plane in range(n_images * channels):
        padded[:] = 0
        _add_rows(padded, wp, columns, plane * kh * kw * oh * ow, kh, kw, oh, ow, sy, sx, dil_h, dil_w)
        for a in range(h):
            for b in range(w):
                image[uintp((plane * h + a) * w + b)] = padded[uintp((py + a) * wp + px + b)]


def im2row(x, window, out=None):
    """x (N, C, H, W) -> rows (N, oh, ow, kh, kw, C); rows[n,y,x,i,j,c] = x[n,c,y*sy-py+i*dil_h, x*sx-px+j*dil_w].
    ``out``, if given, is the (C-contiguous) array to fill."""
    (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    oh, ow = window.output_size(*x.shape[2:])
    rows = np.empty((x.shape[0], oh, ow, kh, kw, x.shape[1]), x.dtype) if out is None else out
    _im2row(x, sy, sx, py, px, dil_h, dil_w, rows)
    return rows


def row2im(rows, window, size, out=None):
    """rows (N, oh, ow, kh, kw, C) -> x (N, C, h, w) with size = (h, w), the adjoint of im2row.
    ``out``, if given, is the (C-contiguous) array to fill."""
    _, (sy, sx), (py, px), (dil_h, dil_w) = window
    x = np.empty((rows.shape[0], rows.shape[5], *size), rows.dtype) if out is None else out
    _row2im(rows, sy, sx, py, px, dil_h, dil_w, x)
    return x


def swap_last_axes(x, out=None):
    """(..., A, B) -> (..., B, A), C-contiguous. ``out``, if given, is the array to fill."""
    shape = x.shape[:-2] + (x.shape[-1], x.shape[-2])
    result = np.empty(shape, x.dtype) if out is None else out
    matrices = math.prod(x.shape[:-2])
    _swap_last_axes(x.reshape(matrices, *x.shape[-2:]), result.reshape(matrices, *shape[-2:]))
    return result


# im2row writes the same windows as im2col, ordered pixel by pixel: one row of kh*kw*C
# values per output pixel. Each image goes first into a zero-padded channels-last copy
# (hp, wp, C), where the kw pixels of a window row, with dilation 1, are kw*C adjacent
# values: a row of the result is kh such copies.

@njit(cache=True, nogil=True)
def _to_padded_channels_last(image, plane_start, channels, h, w, py, px, wp, padded):
    """padded[((py + a) * wp + px + b) * C + c] = image plane (plane_start + c), pixel (a, b)."""
    for c in range(channels):
        source = (plane_start + c) * h * w
        for a in range(h):
            target = ((py + a) * wp + px) * channels + c
            for b in range(w):
                padded[uintp(target + b * channels)] = image[uintp(source + a * w + b)]


@njit(cache=True, nogil=True)
def _from_padded_channels_last(padded, plane_start, channels, h, w, py, px, wp, image):
    """The inverse of _to_padded_channels_last: image plane (plane_start + c), pixel (a, b) =
    padded[((py + a) * wp + px + b) * C + c]."""
    for c in range(channels):
        target = (plane_start + c) * h * w
        for a in range(h):
            source = ((py + a) * wp + px) * channels + c
            for b in range(w):
                image[uintp(target + a * w + b)] = padded[uintp(source + b * channels)]


@njit(cache=True, nogil=True)
def _im2row(x, sy, sx, py, px, dil_h, dil_w, rows):
    n_images, channels, h, w = x.shape
    oh, ow, kh, kw = rows.shape[1:5]
    hp, wp = _padded_plane_shape(h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    padded = np.zeros(hp * wp * channels, x.dtype)      # only its interior is ever written
    image, out = x.reshape(-1), rows.reshape(-1)
    run = kw * channels if dil_w == 1 else channels         # adjacent values per copy
    k = 0
    for n in range(n_images):
        _to_padded_channels_last(image, n * channels, channels, h, w, py, px, wp, padded)
        for y in range(oh):
            for o in range(ow):
                for i in range(kh):
                    for j in range(0, kw, kw if dil_w == 1 else 1):
                        start = ((y * sy + i * dil_h) * wp + o * sx + j * dil_w) * channels
                        for e in range(run):
                            out[uintp(k + e)] = padded[uintp(start + e)]
                        k += run


@njit(cache=True, nogil=True)
def _row2im(rows, sy, sx, py, px, dil_h, dil_w, x):
    # _im2row run backwards, into a zeroed channels-last plane per image, in one fixed order
    # (deterministic); then the interior of the plane, transposed back, is the image.
    n_images, channels, h, w = x.shape
    oh, ow, kh, kw = rows.shape[1:5]
    hp, wp = _padded_plane_shape(h, w, kh, kw, sy, sx, py, px, dil_h, dil_w, oh, ow)
    padded = np.empty(hp * wp * channels, x.dtype)
    image, source = x.reshape(-1), rows.reshape(-1)
    run = kw * channels if dil_w == 1 else channels
    k = 0
    for n in range(n_images):
        padded[:] = 0
        for y in range(oh):
            for o in range(ow):
                for i in range(kh):
                    for j in range(0, kw, kw if dil_w == 1 else 1):
                        start = ((y * sy + i * dil_h) * wp + o * sx + j * dil_w) * channels
                        for e in range(run):
                            padded[uintp(start + e)] += source[uintp(k + e)]
                        k += run
        _from_padded_channels_last(padded, n * channels, channels, h, w, py, px, wp, image)


@njit(cache=True, nogil=True)
def _swap_last_axes(x, out):
    """out[m] = x[m].T for (M, A, B) -> (M, B, A), in 32x32 tiles that stay in the L1 cache.
    The inner loop runs along the longer axis: along the shorter one, with A or B a multiple of
    1024, its 32 accesses lie 4 KiB apart, share one L1 set and evict each other (5x slower)."""
    m, a, b = x.shape
    source, target = x.reshape(-1), out.reshape(-1)
    tile = 32
    for k in range(m):
        base = k * a * b
        for a0 in range(0, a, tile):
            for b0 in range(0, b, tile):
                if a >= b:
                    for j in range(b0, min(b, b0 + tile)):
                        for i in range(a0, min(a, a0 + tile)):
                            target[uintp(base + j * a + i)] = source[uintp(base + i * b + j)]
                else:
                    for i in range(a0, min(a, a0 + tile)):
                        for j in range(b0, min(b, b0 + tile)):
                            target[uintp(base + j * a + i)] = source[uintp(base + i * b + j)]
