"""Convolution as im2col + one GEMM per image and group (CPU and GPU).

Shapes, with G groups, Cg = C/G input and OCg = OC/G output channels per group,
K = Cg*KH*KW and L = OH*OW:
    col = im2col(x)            (n, C, KH, KW, OH, OW) viewed as (n, G, K, L)
    y   = W @ col              (n, G, OCg, L) = (G, OCg, K) @ (n, G, K, L), already NCHW
    gW  = sum_i gy[i] @ col[i].T
    gx  = col2im(W.T @ gy)
On the GPU both gradients are one GEMM per group over the chunk, on columns (G, K, n*L) with the
batch inside each row (im2col_by_channel / col2im_by_channel) and gy transposed once.
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
        k = weight.size // oc
        w_groups_t = xp.ascontiguousarray(weight.reshape(groups, oc // groups, k).swapaxes(-1, -2)) \
            if self.on_cpu else None                                                          # (G, K, OCg)
        gx = xp.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the weight and bias gradients."""
            gw_shape = (groups, oc // groups, k)
            # the GPU's first GEMM writes gw without reading it
            gw = (xp.zeros(gw_shape, weight.dtype) if self.on_cpu else xp.empty(gw_shape, weight.dtype)) \
                if need_gw else None
            gb = None
            for chunk in chunks:
                if not self.on_cpu:
                    part = self._backward_gemms(gw, gx[chunk] if need_gx else None, gy[chunk], x[chunk],
                                                accumulate=chunk is not chunks[0])
                    gb = part if gb is None else gb + part
                    continue
                if self.has_bias:
                    part = gy[chunk].sum(axis=(0, 2, 3))
                    if gb is None:
                        gb = part
                    else:
                        gb += part
                if need_gw:
                    self._add_weight_gradient(gw, gy_groups[chunk], self._columns(x[chunk]))
                if not need_gx:
                    continue
                col_shape = (chunk.stop - chunk.start, groups, k, self.oh * self.ow)
                if self._is_pointwise():
                    self._matmul(w_groups_t, gy_groups[chunk], gx[chunk].reshape(col_shape))
                else:
                    gcol = self._column_buffer("conv2d.gcol", col_shape[0])
                    self._matmul(w_groups_t, gy_groups[chunk], gcol.reshape(col_shape))
                    kernels.col2im(gcol, self._window(), (h, w), out=gx[chunk])
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
        col = kernels.im2col(x, self._window(), out=self._column_buffer("conv2d.col", n))
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

    def _backward_gemms(self, gw, gx, gy, x, accumulate):
        """GPU: a chunk's weight and input gradients as one cuBLAS GEMM each per group, on columns
        with the batch inside each row: gy is transposed once to (G, OCg, n*L); gw_g (+)= gy_g @
        col_g.T with col (G, K, n*L) from im2col_by_channel, read transposed in place; gcol_g =
        W_g.T @ gy_g, gathered into gx by col2im_by_channel. No per-image partial gradients, no
        transposed copy of the weights or the columns. ``gw``/``gx`` None: not needed. Returns the
        chunk's bias gradient (summed while gy is transposed, one launch for both) or None."""
        from cupy import cublas
        xp, n, groups, pointwise = self.xp, x.shape[0], self.groups, self._is_pointwise()
        oc, k = self.weight.shape[0], self.weight.size // self.weight.shape[0]
        gy_rows, gb = kernels.channel_rows_and_sums(gy, self.has_bias)
        gy_rows = gy_rows.reshape(groups, oc // groups, -1)
        by_channel = (x.shape[1], *self.weight.shape[2:], n, self.oh, self.ow)
        if gw is not None:
            if pointwise:
                col = xp.ascontiguousarray(x.swapaxes(0, 1))
            else:
                col = kernels.im2col_by_channel(x, self._window(),
                                                out=self._scratch("conv2d.col_by_channel", by_channel))
            col_rows = col.reshape(groups, k, -1)
            for group in range(groups):
                cublas.gemm("N", "T", gy_rows[group], col_rows[group], out=gw[group], beta=1.0 if accumulate else 0.0)
        if gx is not None:
            gcol = self._scratch("conv2d.gcol_by_channel", (x.shape[1], n) + x.shape[2:] if pointwise else by_channel)
            w_rows, gcol_rows = self.weight.reshape(groups, oc // groups, k), gcol.reshape(groups, k, -1)
            for group in range(groups):
                cublas.gemm("T", "N", w_rows[group], gy_rows[group], out=gcol_rows[group])
            if pointwise:
                gx[...] = gcol.swapaxes(0, 1)
            else:
                kernels.col2im_by_channel(gcol, self._window(), x.shape[2:], out=gx)
        return gb
