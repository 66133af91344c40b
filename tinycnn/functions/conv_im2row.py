"""Convolution as im2row + one long GEMM per chunk (CPU, ungrouped).

One row of R = KH*KW*C window values per output pixel, W the weight as (OC, KH, KW, C):
    rows = im2row(x)           (n*L, R)
    y    = rows @ W.T          (n*L, OC), swapped to (n, OC, L)
    gW   = gy.T @ rows         (OC, R) = (OC, n*L) @ (n*L, R)
    gx   = row2im(gy @ W)      (n*L, R) back onto the image
Each product is one GEMM per chunk whose long side, n*L, is the one BLAS splits between
threads; that pays for the two transposes.
"""
import numpy as np

from .. import kernels
from .conv import Conv2d, sum_parts


class Conv2dIm2row(Conv2d):
    """im2row rows and one GEMM per chunk: ungrouped convolutions on the CPU."""
    name = layout = "im2row"

    @staticmethod
    def refusal(x_shape, weight_shape, stride, padding, dilation, groups, on_cpu):
        if groups != 1:
            return f"im2row runs ungrouped convolutions only, got groups={groups}"
        return None if on_cpu else "im2row runs on the CPU only (the GPU runs im2col)"

    def forward(self, x, weight, bias=None):
        bias4 = self._begin(x, weight, bias)
        self._warn_if_over_workspace()
        n, oc, pixels = x.shape[0], weight.shape[0], self.oh * self.ow
        w_rows_t = self._weight_rows().T                                        # (R, OC)
        y = np.empty((n, oc, self.oh, self.ow), dtype=x.dtype)

        def forward_chunks(chunks):
            for chunk in chunks:
                images = chunk.stop - chunk.start
                y_rows = self._scratch("conv2d.y_rows", (images, pixels, oc))       # (n, L, OC)
                np.matmul(self._rows(x[chunk]), w_rows_t, out=y_rows.reshape(images * pixels, oc))
                kernels.swap_last_axes(y_rows, out=y[chunk].reshape(images, oc, pixels))
                if bias4 is not None:
                    y[chunk] += bias4
        self._map_chunks(forward_chunks)
        return y

    def backward(self, gy):
        x = self.x
        n, c, h, w = x.shape
        oc, _, kh, kw = self.weight.shape
        pixels = self.oh * self.ow
        need_gx, need_gw = self._gradients_needed()
        gy = np.ascontiguousarray(gy)
        w_rows = np.ascontiguousarray(self._weight_rows())                     # (OC, R)
        gx = np.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the weight and bias gradients."""
            gw_rows = np.zeros_like(w_rows) if need_gw else None
            part = np.empty_like(w_rows) if need_gw else None
            gb = np.zeros(oc, gy.dtype) if self.has_bias else None
            for chunk in chunks:
                images = chunk.stop - chunk.start
                gy_rows = self._scratch("conv2d.gy_rows", (images, pixels, oc))      # (n, L, OC)
                kernels.swap_last_axes(gy[chunk].reshape(images, oc, pixels), out=gy_rows)
                gy_rows = gy_rows.reshape(images * pixels, oc)
                if gb is not None:
                    gb += gy_rows.sum(axis=0)
                if need_gw:
                    np.matmul(gy_rows.T, self._rows(x[chunk]), out=part)
                    gw_rows += part
                if need_gx:
                    g_rows = self._scratch("conv2d.rows", (images, self.oh, self.ow, kh, kw, c))
                    np.matmul(gy_rows, w_rows, out=g_rows.reshape(images * pixels, -1))
                    kernels.row2im(g_rows, self._window(), (h, w), out=gx[chunk])
            return gw_rows, gb
        gw_rows, gb = sum_parts(self._map_chunks(backward_chunks))
        gw = np.ascontiguousarray(gw_rows.reshape(oc, kh, kw, c).transpose(0, 3, 1, 2)) if need_gw else None
        return gx, gw, gb

    def _weight_rows(self):
        """The weight as (OC, R) with R = KH*KW*C in im2row's order."""
        return self.weight.transpose(0, 2, 3, 1).reshape(self.weight.shape[0], -1)

    def _rows(self, x):
        """(n*L, R) im2row matrix of a chunk of images, in reused scratch memory."""
        n, c = x.shape[:2]
        kh, kw = self.weight.shape[2:]
        rows = self._scratch("conv2d.rows", (n, self.oh, self.ow, kh, kw, c))
        kernels.im2row(x, self._window(), out=rows)
        return rows.reshape(n * self.oh * self.ow, -1)
