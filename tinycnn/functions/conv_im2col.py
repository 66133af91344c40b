"""Convolution as im2col + one GEMM per image and group (CPU and GPU).

Shapes, with G groups, Cg = C/G input and OCg = OC/G output channels per group,
K = Cg*KH*KW and L = OH*OW:
    col = im2col(x)            (n, C, KH, KW, OH, OW) viewed as (n, G, K, L)
    y   = W @ col              (n, G, OCg, L) = (G, OCg, K) @ (n, G, K, L), already NCHW
    gW  = sum_i gy[i] @ col[i].T      (on the GPU one GEMM: gy as (G, OCg, n*L) @ columns (G, K, n*L).T)
    gx  = col2im(W.T @ gy)
The columns are built for one chunk of images at a time and rebuilt in backward, not kept.
A 1x1 stride-1 unpadded convolution needs no columns: x itself is (n, G, Cg, H*W).
"""
import numpy as np

from .. import kernels
from .conv import Conv2d, sum_parts


class Conv2dIm2col(Conv2d):
    """im2col columns and one GEMM per image and group: any convolution, on the CPU and the GPU."""
    name = layout = "im2col"

    def forward(self, x, weight, bias=None):
        bias4 = self._begin(x, weight, bias)
        self._warn_if_over_workspace()
        n, oc, groups = x.shape[0], weight.shape[0], self.groups
        y = self.xp.empty((n, oc, self.oh, self.ow), dtype=x.dtype)
        w_groups = weight.reshape(groups, oc // groups, -1)                  # (G, OCg, K)
        y_groups = y.reshape(n, groups, oc // groups, -1)                     # (N, G, OCg, L)

        def forward_chunks(chunks):
            for chunk in chunks:
                self._matmul(w_groups, self._columns(x[chunk]), y_groups[chunk])
                if bias4 is not None:     # while the chunk is in the cache; in place on the view
                    part = y[chunk]
                    part += bias4
        self._map_chunks(forward_chunks)
        return y

    def backward(self, gy):
        x, weight, groups, xp = self.x, self.weight, self.groups, self.xp
        n, c, h, w = x.shape
        oc = weight.shape[0]
        need_gx, need_gw = self._gradients_needed()
        gy = xp.ascontiguousarray(gy)
        gy_groups = gy.reshape(n, groups, oc // groups, -1)                              # (N, G, OCg, L)
        w_groups_t = xp.ascontiguousarray(weight.reshape(groups, oc // groups, -1).swapaxes(-1, -2))  # (G, K, OCg)
        gx = xp.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the weight and bias gradients."""
            gw_shape = (groups, oc // groups, w_groups_t.shape[1])
            # the GPU's first GEMM writes gw without reading it
            gw = (xp.zeros(gw_shape, weight.dtype) if self.on_cpu else xp.empty(gw_shape, weight.dtype)) \
                if need_gw else None
            gb = None
            for chunk in chunks:
                if self.has_bias:
                    part = gy[chunk].sum(axis=(0, 2, 3))
                    if gb is None:
                        gb = part
                    else:
                        gb += part
                if need_gw and not self.on_cpu:
                    self._add_weight_gradient_gemm(gw, gy[chunk], x[chunk], accumulate=chunk is not chunks[0])
                elif need_gw:
                    self._add_weight_gradient(gw, gy_groups[chunk], self._columns(x[chunk]))
                if not need_gx:
                    continue
                col_shape = (chunk.stop - chunk.start, groups, w_groups_t.shape[1], self.oh * self.ow)
                if self._is_pointwise():
                    self._matmul(w_groups_t, gy_groups[chunk], gx[chunk].reshape(col_shape))
                else:
                    gcol = self._column_buffer("conv2d.gcol", col_shape[0])
                    self._matmul(w_groups_t, gy_groups[chunk], gcol.reshape(col_shape))
                    kernels.col2im(gcol, h, w, *self._window()[2:], out=gx[chunk])
            return gw, gb
        gw, gb = sum_parts(self._map_chunks(backward_chunks))
        return gx, gw.reshape(weight.shape) if need_gw else None, gb

    def _image_bytes(self):
        return 0 if self._is_pointwise() else super()._image_bytes()

    def _column_buffer(self, name, n):
        """Space for the (n, C, KH, KW, OH, OW) columns of n images."""
        return self._scratch(name, (n, self.x.shape[1], *self.weight.shape[2:], self.oh, self.ow))

    def _columns(self, x):
        """(n, G, K, L) view of the im2col matrix of a chunk of images."""
        n, c = x.shape[:2]
        if self._is_pointwise():
            return x.reshape(n, self.groups, c // self.groups, -1)
        col = kernels.im2col(x, *self._window(), self.oh, self.ow, out=self._column_buffer("conv2d.col", n))
        return col.reshape(n, self.groups, -1, self.oh * self.ow)

    def _matmul(self, a, b, out):
        """out[i] = a @ b[i] for every image i: (G, M, K) @ (n, G, K, L) -> (n, G, M, L). NumPy: one
        BLAS call per image (a broadcast batch falls out of BLAS); CuPy: one batched cuBLAS call."""
        if not self.on_cpu:
            self.xp.matmul(a, b, out=out)
            return
        for image in range(b.shape[0]):
            np.matmul(a, b[image], out=out[image])

    def _add_weight_gradient(self, gw, gy, col):
        """gw += sum over images of gy[i] @ col[i].T: (G, OCg, K) += (n, G, OCg, L) @ (n, G, L, K)."""
        for image in range(col.shape[0]):
            gw += gy[image] @ col[image].swapaxes(-1, -2)

    def _add_weight_gradient_gemm(self, gw, gy, x, accumulate):
        """GPU: gw[g] (+)= gy_g (OCg, n*L) @ col_g (K, n*L).T, one cuBLAS GEMM per group over the
        whole chunk: the columns are built with the batch inside each row (im2col_by_channel) and
        cuBLAS reads col_g transposed in place; only gy (OC x n*L, smaller than the columns) is
        transposed, and there are no per-image partial gradients."""
        from cupy import cublas
        n, groups = x.shape[0], self.groups
        gy_rows = self.xp.ascontiguousarray(gy.swapaxes(0, 1)).reshape(groups, gw.shape[1], -1)
        if self._is_pointwise():
            col_rows = self.xp.ascontiguousarray(x.swapaxes(0, 1)).reshape(groups, gw.shape[2], -1)
        else:
            col = self._scratch("conv2d.col_by_channel", (x.shape[1], *self.weight.shape[2:], n, self.oh, self.ow))
            col_rows = kernels.im2col_by_channel(x, *self._window(), self.oh, self.ow, out=col).reshape(
                groups, gw.shape[2], -1)
        for group in range(groups):
            cublas.gemm("N", "T", gy_rows[group], col_rows[group], out=gw[group], beta=1.0 if accumulate else 0.0)
