"""Convolution by Winograd's F(4x4, 3x3) (Lavin & Gray, 2015), and the check that keeps it to inputs
it computes correctly. CPU, ungrouped 3x3 stride-1 undilated convolutions.

With T tiles of 4x4 outputs per chunk (the transforms are in kernels/reference.py):
    v  = input_transform(x)                 (36, T, C)   B^T d B of every 6x6 input tile
    u  = weight_transform(W)                (36, C, OC)  G g G^T of every filter
    m  = v @ u                              (36, T, OC)  36 GEMMs, one per tile cell
    y  = output_transform(m)                (n, OC, OH, OW)
    gm = output_transform_backward(gy)      (36, T, OC)
    gu = v.T @ gm                           (36, C, OC), then weight_transform_backward
    gv = gm @ u.T                           (36, T, C),  then input_transform_backward
The GEMMs do 36 multiply-adds per 16 outputs and input channel where im2row's do 144.

The transforms multiply input values by up to 8 and add up to 36 of them, so an intermediate
value can be far larger than any output. ``winograd_fits`` bounds that growth: with at most
``terms`` products of magnitude at most max|a| * max|b| summed, every intermediate value of the
forward pass and of both gradients stays below

    WINOGRAD_GROWTH * terms * max|a| * max|b|

(the products of the transform matrices' absolute row or column sums are 36,100 for the forward
pass, 230,400 for the input gradient and 62,500 for the weight gradient; WINOGRAD_GROWTH = 2**20
leaves a 4x margin for the kernels' partial sums). When that bound reaches the dtype's largest
value, or an input holds inf or NaN, the convolution takes the direct path (im2row) instead, in
"auto" and when Winograd is forced alike (``function.layout`` then says "im2row"): there one inf
pixel makes inf in exactly the outputs that read it, as PyTorch's, where Winograd would spread
NaN over whole 6x6 tiles. The check costs one pass over the input per forward pass (and over the
output gradient per backward pass): ``kernels.max_abs``, an integer max of the floats' bits.

    >>> import numpy as np
    >>> x, w = np.full((1, 16, 8, 8), 3e37, np.float32), np.full((4, 16, 3, 3), 1e-3, np.float32)
    >>> winograd_fits(np.float32, 16, kernels.max_abs(x), kernels.max_abs(w))
    False
    >>> winograd_fits(np.float32, 16, kernels.max_abs(x / 1e30), kernels.max_abs(w))
    True
"""
import numpy as np

from .. import kernels
from .conv import sum_parts
from .conv_im2row import Conv2dIm2row

WINOGRAD_GROWTH = 2**20


def winograd_fits(dtype, terms, *maxima):
    """True when sums of `terms` products of values of magnitudes `maxima`, grown by the
    transforms, stay finite in `dtype`; False for an infinite or NaN maximum."""
    bound = float(WINOGRAD_GROWTH * terms)
    for value in maxima:
        bound *= float(value)
    return bound < float(np.finfo(dtype).max)     # False for inf and NaN (0 * inf is NaN)


class Conv2dWinograd(Conv2dIm2row):
    """Winograd's F(4x4, 3x3) on transformed tiles; im2row (the parent class) for inputs the
    transforms cannot carry (see the module docstring)."""
    name, layout = "winograd", "Winograd"

    @staticmethod
    def refusal(x_shape, weight_shape, stride, padding, dilation, groups, on_cpu):
        if groups != 1 or tuple(weight_shape[2:]) != (3, 3) or stride != (1, 1) or dilation != (1, 1):
            return (f"Winograd F(4x4, 3x3) needs an ungrouped 3x3 kernel with stride 1 and dilation 1, got "
                    f"a {weight_shape[2]}x{weight_shape[3]} kernel, groups={groups}")
        return None if on_cpu else "Winograd runs on the CPU only (the GPU runs im2col)"

    def forward(self, x, weight, bias=None):
        bias4 = self._begin(x, weight, bias)
        self.x_max, self.w_max = float(kernels.max_abs(x)), float(kernels.max_abs(weight))
        if not winograd_fits(x.dtype, x.shape[1], self.x_max, self.w_max):
            self.layout = Conv2dIm2row.layout
            return super().forward(x, weight, bias)
        self._warn_if_over_workspace()
        n, oc = x.shape[0], weight.shape[0]
        u = self.u = kernels.winograd_weight_transform(weight)               # (36, C, OC)
        y = np.empty((n, oc, self.oh, self.ow), dtype=x.dtype)

        def forward_chunks(chunks):
            for chunk in chunks:
                images = chunk.stop - chunk.start
                v = self._input_planes(x[chunk])                            # (36, T, C)
                m_buffer, m = self._planes("conv2d.m", images, oc)          # (36, T, OC)
                np.matmul(v, u, out=m)
                kernels.winograd_output_transform(m_buffer, images, oc, self.oh, self.ow, out=y[chunk])
                if bias4 is not None:
                    y[chunk] += bias4
        self._map_chunks(forward_chunks)
        return y

    def backward(self, gy):
        need_gx, need_gw = self._gradients_needed()
        gy = np.ascontiguousarray(gy)
        if self.layout != "Winograd" or not self._fits_backward(gy, need_gx, need_gw):
            self.layout = Conv2dIm2row.layout
            return super().backward(gy)
        x = self.x
        n, c, h, w = x.shape
        oc = self.weight.shape[0]
        (py, px), (th, tw) = self.padding, self._tile_grid()
        u_t = np.ascontiguousarray(self.u.transpose(0, 2, 1))                   # (36, OC, C)
        gx = np.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the transformed weight gradient
            (36, C, OC) and of the bias gradient."""
            gu = np.zeros((kernels.WINOGRAD_PLANES, c, oc), x.dtype) if need_gw else None
            part = np.empty_like(gu) if need_gw else None
            gb = np.zeros(oc, gy.dtype) if self.has_bias else None
            for chunk in chunks:
                images = chunk.stop - chunk.start
                if gb is not None:
                    gb += gy[chunk].sum(axis=(0, 2, 3))
                gm_buffer, gm = self._planes("conv2d.m", images, oc)        # (36, T, OC)
                kernels.winograd_output_transform_backward(gy[chunk], out=gm_buffer)
                if need_gw:
                    v = self._input_planes(x[chunk])                        # (36, T, C)
                    np.matmul(v.transpose(0, 2, 1), gm, out=part)
                    gu += part
                if need_gx:     # gv takes v's scratch memory: v is no longer needed
                    gv_buffer, gv = self._planes("conv2d.v", images, c)
                    np.matmul(gm, u_t, out=gv)
                    kernels.winograd_input_transform_backward(gv_buffer, images, c, h, w, py, px, th, tw,
                                                              out=gx[chunk])
            return gu, gb
        gu, gb = sum_parts(self._map_chunks(backward_chunks))
        gw = kernels.winograd_weight_transform_backward(gu) if need_gw else None
        return gx, gw, gb

    def _fits_backward(self, gy, need_gx, need_gw):
        """Checks gy for the gradients asked for: gx sums OC terms of gy * w, gw one per tile of
        x * gy."""
        th, tw = self._tile_grid()
        gy_max, oc, tiles = float(kernels.max_abs(gy)), self.weight.shape[0], self.x.shape[0] * th * tw
        return ((not need_gx or winograd_fits(gy.dtype, oc, gy_max, self.w_max))
                and (not need_gw or winograd_fits(gy.dtype, tiles, gy_max, self.x_max)))

    def _image_bytes(self):
        """One image's input and output tile planes (its rows once it falls back to im2row)."""
        if self.layout != "Winograd":
            return super()._image_bytes()
        th, tw = self._tile_grid()
        return kernels.WINOGRAD_PLANES * th * tw * (self.x.shape[1] + self.weight.shape[0]) * self.x.itemsize

    def _tile_grid(self):
        """(th, tw): Winograd's 4x4 output tiles per image, down and across."""
        return kernels.winograd_tile_grid(self.oh, self.ow)

    def _planes(self, name, images, channels):
        """(buffer, view): reused scratch memory for the 36 planes of `images` images' tiles
        (kernels.winograd_input_transform's layout), and the planes as (36, tiles, channels)."""
        th, tw = self._tile_grid()
        elements = images * th * tw * channels
        planes = kernels.WINOGRAD_PLANES
        buffer = self._scratch(name, (planes, kernels.winograd_plane_size(elements)))
        return buffer, buffer[:, :elements].reshape(planes, images * th * tw, channels)

    def _input_planes(self, x):
        """Winograd-transformed input tiles of a chunk of images, as (36, T, C)."""
        (py, px), (th, tw) = self.padding, self._tile_grid()
        buffer, planes = self._planes("conv2d.v", x.shape[0], x.shape[1])
        kernels.winograd_input_transform(x, py, px, th, tw, out=buffer)
        return planes
