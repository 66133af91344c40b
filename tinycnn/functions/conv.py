"""2-D convolution: im2col + one (batched) GEMM, NCHW.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.ones((1, 3, 8, 8)))
    >>> w = tinycnn.Tensor(np.ones((16, 3, 3, 3)))
    >>> F.conv2d(x, w, padding=1).shape
    (1, 16, 8, 8)
"""
import warnings

import numpy as np

from .. import kernels, parallel
from ..backend import get_array_module
from ..config import WorkspaceWarning, get_workspace_limit
from ..scratch import scratch
from ..tensor import Function, Tensor
from .array import pad as pad_tensor
from .conv_winograd import WinogradConv, sum_parts
from .validate import integer, out_size, pair, require_float, require_ndim, require_same_dtype


# Column bytes per chunk on the CPU. MiniVGG's 32-channel 32x32 layer, batch 64, on the
# development machine (L2 2 MiB per core, L3 32 MiB): forward 21 ms with 4-image (4.7 MB)
# chunks against 27 ms with the whole batch (75 MB) in one chunk; backward 54 against 67 ms.
CPU_CHUNK_BYTES = 4 * 2**20
# Fewer input channels than this keep the im2col layout on the CPU: an RGB image's rows are
# 27 values long, too short for both the row copies and the GEMM (MiniVGG's first layer:
# forward 1.8 ms with im2col against 5.6 ms with im2row, backward 5 against 10).
ROWS_MIN_CHANNELS = 16
# 3x3 stride-1 convolutions with at least this many input channels run Winograd's
# F(4x4, 3x3) on the CPU (``_forward_winograd``), the rest im2row / im2col.
WINOGRAD_MIN_CHANNELS = 16
# Bytes of transformed tiles (input and output planes) per chunk of a Winograd convolution:
# its 36 small GEMMs run from the L2 cache (2 MiB per core on the development machine).
WINOGRAD_CHUNK_BYTES = 2 * 2**20


class Conv2d(WinogradConv, Function):
    """Grouped convolution as one batched matmul over (image, group).

    Shapes, with G groups, Cg = C/G input and OCg = OC/G output channels per
    group, K = Cg*KH*KW and L = OH*OW:
        col = im2col(x)                         (n, C, KH, KW, OH, OW) viewed as (n, G, K, L)
        y   = W @ col                           (n, G, OCg, L) = (G, OCg, K) @ (n, G, K, L)
    which lands directly in NCHW order, no transpose. The product is taken one image
    at a time (``_batched_matmul``): NumPy's matmul leaves BLAS when an operand is
    broadcast over the batch (measured 20x slower here). The column buffer is built
    for a chunk of images at a time so it stays under the workspace limit
    (tinycnn.set_workspace_limit), and it is rebuilt in backward instead of kept.
    On the CPU the chunks are also small enough to stay in the L3 cache between im2col
    and the GEMMs that read it (``CPU_CHUNK_BYTES``), and the column buffers are reused
    from call to call (tinycnn.scratch) instead of allocated fresh, and the chunks are
    shared by one worker thread per core (tinycnn.parallel), each worker summing its own
    part of the weight gradient.
    A 1x1 stride-1 unpadded convolution needs no im2col: x itself is (N, G, Cg, H*W).
    Depthwise convolution (groups == C, one input channel per filter) runs a direct kernel.

    On the CPU an ungrouped convolution of at least ROWS_MIN_CHANNELS channels takes the
    transposed layout, one row of columns per output pixel (``im2row``), R = KH*KW*C:
        rows = im2row(x)                        (n*L, R)
        y    = rows @ W.T                       (n*L, OC), swapped to (n, OC, L)
        dW   = dy.T @ rows                      (OC, R) = (OC, n*L) @ (n*L, R)
        drow = dy @ W                           (n*L, R), then row2im
    with W the weight as (OC, KH, KW, C). Each product is one GEMM per chunk whose long side,
    n*L, is the one OpenBLAS splits between threads; per-image products with the short
    (OC, L) layout measured 1.2-1.9x slower on the development machine (MiniVGG's 32-channel
    32x32 layer: dW 0.88 -> 0.58 ms, dX 0.84 -> 0.44 ms per 4 images), far more than the
    two transposes cost.

    On the CPU a 3x3 stride-1 convolution of at least WINOGRAD_MIN_CHANNELS channels takes
    Winograd's F(4x4, 3x3) instead (Lavin & Gray, 2015; the transforms are in
    kernels/reference.py), with T tiles of 4x4 outputs per chunk:
        v  = input_transform(x)                 (36, T, C)   B^T d B of every 6x6 input tile
        u  = weight_transform(W)                (36, C, OC)  G g G^T of every filter
        m  = v @ u                              (36, T, OC)  36 GEMMs, one per tile cell
        y  = output_transform(m)                (n, OC, OH, OW)
        gm = output_transform_backward(gy)      (36, T, OC)
        gu = v.T @ gm                           (36, C, OC), then weight_transform_backward
        gv = gm @ u.T                           (36, T, C),  then input_transform_backward
    The GEMMs do 36 multiply-adds per 16 outputs and input channel where im2row's do 144 (and
    F(2x2, 3x3)'s 64), and the transforms write 2.25 values per input pixel where im2row writes
    9. Chunks are small (WINOGRAD_CHUNK_BYTES): the 36 GEMMs are short (C and OC below a few
    hundred) and only reach 80-100 GFLOP/s per core from the L2 cache. An input with inf, NaN or
    values large enough for the transforms to overflow takes im2row instead (conv_winograd).

    The workspace limit splits the batch, never one image: when one image's columns (or rows,
    or planes) alone exceed it, the convolution uses what that image needs and warns once per
    layer shape and limit (a tinycnn.config.WorkspaceWarning), since cutting an image into bands of
    output rows would need a second, row-offset version of every layout and of its adjoint.
    An empty batch (N = 0) or an input without channels (C = 0) runs no kernel: the output is the
    bias alone (zeros without one), the input and weight gradients are zeros.
    """

    saved_inputs, saves_outputs = (0, 1), False     # backward reads x and the weight, never the bias

    def __init__(self, stride, padding, dilation, groups):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups

    def forward(self, x, weight, bias=None):
        (sy, sx), (py, px), (dy, dx), groups = self.stride, self.padding, self.dilation, self.groups
        n, c, h, w = x.shape
        oc, cg, kh, kw = weight.shape
        self.oh, self.ow = out_size("conv2d", h, kh, sy, py, dy), out_size("conv2d", w, kw, sx, px, dx)
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        self.depthwise = groups == c and cg == 1 and groups > 1
        self.empty = x.size == 0
        bias4 = None if bias is None else bias.reshape(1, -1, 1, 1)
        self.winograd = (not self.empty and get_array_module(x) is np and groups == 1 and (kh, kw) == (3, 3)
                         and self.stride == (1, 1) and self.dilation == (1, 1) and c >= WINOGRAD_MIN_CHANNELS
                         and self._winograd_fits_forward())
        if not (self.empty or self.depthwise or self._is_pointwise()):
            self._warn_if_over_workspace()
        if self.empty:          # an empty sum: the output is the bias
            y = get_array_module(x).zeros((n, oc, self.oh, self.ow), dtype=x.dtype)
            if bias4 is not None:
                y += bias4
        elif self.depthwise:
            y = kernels.depthwise_conv2d_forward(x, weight, sy, sx, py, px, dy, dx, self.oh, self.ow)
            if bias4 is not None:
                y += bias4
        elif self._uses_winograd():
            y = self._forward_winograd(bias4)
        elif self._uses_rows():
            y = self._forward_rows(bias4)
        else:
            xp = get_array_module(x)
            y = xp.empty((n, oc, self.oh, self.ow), dtype=x.dtype)
            w_groups = weight.reshape(groups, oc // groups, -1)              # (G, OCg, K)
            y_groups = y.reshape(n, groups, oc // groups, -1)                 # (N, G, OCg, L)

            def forward_chunks(chunks):
                for chunk in chunks:
                    _batched_matmul(w_groups, self._columns(x[chunk]), y_groups[chunk])
                    if bias4 is not None:     # while the chunk is in the cache
                        y[chunk] += bias4
            self._map_chunks(forward_chunks)
        return y

    def _uses_winograd(self):
        """Set by forward (and backward): a 3x3 stride-1 convolution of WINOGRAD_MIN_CHANNELS or
        more channels on the CPU, whose input the transforms compute correctly (conv_winograd)."""
        return self.winograd

    def _warn_if_over_workspace(self):
        """One WorkspaceWarning per layer shape and limit when one image needs more workspace
        than the limit (see the class docstring)."""
        needed, limit = self._column_bytes(), get_workspace_limit()
        layout = "Winograd" if self.winograd else "im2row" if self._uses_rows() else "im2col"
        key = (self.x.shape[1:], self.weight.shape, self.x.dtype.str, layout, limit)
        if needed <= limit or key in _warned:
            return
        _warned.add(key)
        warnings.warn(f"conv2d: one ({', '.join(map(str, self.x.shape[1:]))}) image with weight "
                      f"{tuple(self.weight.shape)} needs {needed} bytes ({needed / 2**20:.1f} MiB) of {layout} "
                      f"workspace, more than the workspace limit of {limit} bytes ({limit / 2**20:.1f} MiB); "
                      f"using {needed} bytes, since batches are split but single images are not. Raise "
                      f"TINYCNN_WORKSPACE or tinycnn.set_workspace_limit() to silence this.",
                      WorkspaceWarning, stacklevel=2)

    def _uses_rows(self):
        return (get_array_module(self.x) is np and self.groups == 1 and not self.depthwise
                and not self._is_pointwise() and self.x.shape[1] >= ROWS_MIN_CHANNELS)

    def _weight_rows(self):
        """The weight as (OC, R) with R = KH*KW*C in im2row's order."""
        return self.weight.transpose(0, 2, 3, 1).reshape(self.weight.shape[0], -1)

    def _rows(self, x, name="conv2d.rows"):
        """(n*L, R) im2row matrix of a chunk of images, in reused scratch memory."""
        (sy, sx), (py, px), (dy, dx) = self.stride, self.padding, self.dilation
        kh, kw = self.weight.shape[2:]
        n, c = x.shape[:2]
        rows = scratch(name, (n, self.oh, self.ow, kh, kw, c), x.dtype)
        kernels.im2row(x, kh, kw, sy, sx, py, px, dy, dx, self.oh, self.ow, out=rows)
        return rows.reshape(n * self.oh * self.ow, -1)

    def _forward_rows(self, bias4):
        x = self.x
        n, oc, pixels = x.shape[0], self.weight.shape[0], self.oh * self.ow
        w_rows_t = self._weight_rows().T                                        # (R, OC)
        y = np.empty((n, oc, self.oh, self.ow), dtype=x.dtype)

        def forward_chunks(chunks):
            for chunk in chunks:
                images = chunk.stop - chunk.start
                y_rows = scratch("conv2d.y_rows", (images, pixels, oc), x.dtype)      # (n, L, OC)
                np.matmul(self._rows(x[chunk]), w_rows_t, out=y_rows.reshape(images * pixels, oc))
                kernels.swap_last_axes(y_rows, out=y[chunk].reshape(images, oc, pixels))
                if bias4 is not None:
                    y[chunk] += bias4
        self._map_chunks(forward_chunks)
        return y

    def _backward_rows(self, gy, need_gx, need_gw):
        """-> (gx, gw, gb), each None where not needed."""
        x = self.x
        (sy, sx), (py, px), (dy, dx) = self.stride, self.padding, self.dilation
        n, c, h, w = x.shape
        oc, _, kh, kw = self.weight.shape
        pixels = self.oh * self.ow
        w_rows = np.ascontiguousarray(self._weight_rows())                     # (OC, R)
        gx = np.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the weight and bias gradients."""
            gw_rows = np.zeros_like(w_rows) if need_gw else None
            part = np.empty_like(w_rows) if need_gw else None
            gb = np.zeros(oc, gy.dtype) if self.has_bias else None
            for chunk in chunks:
                images = chunk.stop - chunk.start
                gy_rows = scratch("conv2d.gy_rows", (images, pixels, oc), gy.dtype)   # (n, L, OC)
                kernels.swap_last_axes(gy[chunk].reshape(images, oc, pixels), out=gy_rows)
                gy_rows = gy_rows.reshape(images * pixels, oc)
                if gb is not None:
                    gb += gy_rows.sum(axis=0)
                if need_gw:
                    np.matmul(gy_rows.T, self._rows(x[chunk]), out=part)
                    gw_rows += part
                if need_gx:
                    g_rows = scratch("conv2d.rows", (images, self.oh, self.ow, kh, kw, c), gy.dtype)
                    np.matmul(gy_rows, w_rows, out=g_rows.reshape(images * pixels, -1))
                    kernels.row2im(g_rows, h, w, sy, sx, py, px, dy, dx, out=gx[chunk])
            return gw_rows, gb
        gw_rows, gb = sum_parts(self._map_chunks(backward_chunks))
        gw = np.ascontiguousarray(gw_rows.reshape(oc, kh, kw, c).transpose(0, 3, 1, 2)) if need_gw else None
        return gx, gw, gb

    def _is_pointwise(self):
        return self.weight.shape[2:] == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def _chunks(self):
        """Slices of the batch whose column buffer fits the workspace limit (and, on the
        CPU, the cache), shared by the workers that run at once. A pointwise convolution
        needs no columns: one slice per worker."""
        n, workers = self.x.shape[0], self._workers()
        limit = get_workspace_limit() // workers
        if get_array_module(self.x) is np:
            limit = min(limit, WINOGRAD_CHUNK_BYTES if self._uses_winograd() else CPU_CHUNK_BYTES)
        step = -(-n // workers) if self._is_pointwise() else max(1, min(n, limit // self._column_bytes()))
        return [slice(start, min(start + step, n)) for start in range(0, n, step)]

    def _column_bytes(self):
        """Bytes of one image's im2col columns (or im2row rows, or Winograd's input and output
        planes)."""
        kh, kw = self.weight.shape[2:]
        if self._uses_winograd():
            th, tw = self._tile_grid()
            return kernels.WINOGRAD_PLANES * th * tw * (self.x.shape[1] + self.weight.shape[0]) * self.x.itemsize
        return self.x.shape[1] * kh * kw * self.oh * self.ow * self.x.itemsize

    def _workers(self):
        """Threads that share the chunks: on the CPU, tinycnn.parallel's workers, as many as
        have room for one image's columns twice within the workspace limit (a worker's padded
        image and GEMM output come on top of its columns); on the GPU, one."""
        if get_array_module(self.x) is not np:
            return 1
        if self._is_pointwise():
            return parallel.workers()
        return max(1, min(parallel.workers(), get_workspace_limit() // (2 * self._column_bytes())))

    def _map_chunks(self, work):
        """work(chunks) for every chunk of the batch: on the CPU, split between the worker
        threads (tinycnn.parallel), each returning its own result; on the GPU, in one call."""
        chunks = self._chunks()
        return parallel.map_parts(work, chunks) if self._workers() > 1 else [work(chunks)]

    def _column_buffer(self, name, n):
        """Space for the (n, C, KH, KW, OH, OW) columns of n images: reused scratch memory
        on the CPU, a fresh array from CuPy's memory pool on the GPU."""
        c, (kh, kw) = self.x.shape[1], self.weight.shape[2:]
        shape = (n, c, kh, kw, self.oh, self.ow)
        xp = get_array_module(self.x)
        return scratch(name, shape, self.x.dtype) if xp is np else xp.empty(shape, self.x.dtype)

    def _columns(self, x):
        """(n, G, K, L) view of the im2col matrix of a chunk of images."""
        n, c = x.shape[:2]
        if self._is_pointwise():
            return x.reshape(n, self.groups, c // self.groups, -1)
        (sy, sx), (py, px), (dy, dx) = self.stride, self.padding, self.dilation
        kh, kw = self.weight.shape[2:]
        col = kernels.im2col(x, kh, kw, sy, sx, py, px, dy, dx, self.oh, self.ow,
                             out=self._column_buffer("conv2d.col", n))
        return col.reshape(n, self.groups, -1, self.oh * self.ow)

    def backward(self, gy):
        x, weight, groups = self.x, self.weight, self.groups
        (sy, sx), (py, px), (dy, dx) = self.stride, self.padding, self.dilation
        n, c, h, w = x.shape
        oc, _, kh, kw = weight.shape
        need_gx, need_gw = self.needs_input_grad(0), self.needs_input_grad(1)   # no gx for the input image
        if self.empty:
            xp = get_array_module(gy)
            return (xp.zeros_like(x) if need_gx else None, xp.zeros_like(weight) if need_gw else None,
                    gy.sum(axis=(0, 2, 3)) if self.has_bias else None)
        if self.depthwise:
            gb = gy.sum(axis=(0, 2, 3)) if self.has_bias else None
            gx = gw = None
            if need_gx:
                gx = kernels.depthwise_conv2d_backward_input(gy, weight, h, w, sy, sx, py, px, dy, dx, in_channels=c)
            if need_gw:
                gw = kernels.depthwise_conv2d_backward_weight(x, gy, kh, kw, sy, sx, py, px, dy, dx)
            return gx, gw, gb
        xp = get_array_module(gy)
        gy = xp.ascontiguousarray(gy)
        self.winograd = self.winograd and self._winograd_fits_backward(gy, need_gx, need_gw)
        if self._uses_winograd():
            return self._backward_winograd(gy, need_gx, need_gw)
        if self._uses_rows():
            return self._backward_rows(gy, need_gx, need_gw)
        gy_groups = gy.reshape(n, groups, oc // groups, -1)                          # (N, G, OCg, L)
        w_groups_t = xp.ascontiguousarray(weight.reshape(groups, oc // groups, -1).swapaxes(-1, -2))  # (G, K, OCg)
        gx = xp.empty_like(x) if need_gx else None

        def backward_chunks(chunks):
            """Fills gx for these chunks; returns their part of the weight and bias gradients."""
            gw = xp.zeros((groups, oc // groups, w_groups_t.shape[1]), dtype=weight.dtype) if need_gw else None
            gb = xp.zeros(oc, gy.dtype) if self.has_bias else None
            for chunk in chunks:
                if gb is not None:
                    gb += gy[chunk].sum(axis=(0, 2, 3))
                if need_gw:
                    _add_weight_gradient(gw, gy_groups[chunk], self._columns(x[chunk]))  # col (n, G, K, L)
                if not need_gx:
                    continue
                images = chunk.stop - chunk.start
                col_shape = (images, groups, w_groups_t.shape[1], self.oh * self.ow)     # (n, G, K, L)
                if self._is_pointwise():
                    _batched_matmul(w_groups_t, gy_groups[chunk], gx[chunk].reshape(col_shape))
                else:
                    gcol = self._column_buffer("conv2d.gcol", images)
                    _batched_matmul(w_groups_t, gy_groups[chunk], gcol.reshape(col_shape))
                    kernels.col2im(gcol, h, w, sy, sx, py, px, dy, dx, out=gx[chunk])
            return gw, gb
        gw, gb = sum_parts(self._map_chunks(backward_chunks))
        return gx, gw.reshape(weight.shape) if need_gw else None, gb


_warned = set()          # (image shape, weight shape, dtype, layout, limit) already warned about


def _batched_matmul(a, b, out):
    """out[i] = a @ b[i] for every image i: (G, M, K) @ (n, G, K, L) -> (n, G, M, L).

    NumPy: one BLAS call per image (broadcast batches fall out of BLAS). CuPy: one
    batched cuBLAS call, since a launch per image would make the GPU wait on the host.
    """
    xp = get_array_module(a)
    if xp is not np:
        xp.matmul(a, b, out=out)
        return
    for image in range(b.shape[0]):
        xp.matmul(a, b[image], out=out[image])


def _add_weight_gradient(gw, gy, col):
    """gw += sum over images of gy[i] @ col[i].T: (G, OCg, K) += (n, G, OCg, L) @ (n, G, L, K)."""
    if get_array_module(gw) is not np:
        gw += (gy @ col.swapaxes(-1, -2)).sum(axis=0)
        return
    for image in range(col.shape[0]):
        gw += gy[image] @ col[image].swapaxes(-1, -2)


def _same_padding(kernel, dilation):
    """PyTorch's "same": total d*(k-1), the odd extra pixel on the bottom/right."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_arguments(op, stride, padding, dilation, groups):
    """Checked (stride, padding, dilation, groups): pairs of Python ints and an int, except a
    padding of "same" or "valid", which stays a string. Shared with nn.Conv2d."""
    stride, dilation = pair(op, "stride", stride, 1), pair(op, "dilation", dilation, 1)
    groups = integer(op, "groups", groups, 1)
    if not isinstance(padding, str):
        padding = pair(op, "padding", padding, 0)
    elif padding not in ("same", "valid"):
        raise ValueError(f"{op}: padding must be an int, a pair, 'same' or 'valid', got {padding!r}")
    elif padding == "same" and stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
    return stride, padding, dilation, groups


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of an (N, C, H, W) input with weight (OC, C/groups, KH, KW).

    ``stride``, ``padding`` and ``dilation`` are ints or pairs; ``padding`` may also be
    "valid" (0) or "same" (output size = input size, stride 1 only). N = 0 gives an empty
    output, C = 0 the bias (zeros without one), as sums of no terms.
    """
    op = "conv2d"
    x = x if isinstance(x, Tensor) else Tensor(x)
    require_float(op, x, weight, bias)
    require_same_dtype(op, x, weight, bias)
    require_ndim(op, x, 4, "(N, C, H, W)")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (OC, C/groups, KH, KW), got shape {tuple(weight.shape)}")
    stride, padding, dilation, groups = conv_arguments(op, stride, padding, dilation, groups)
    oc, cg, kh, kw = weight.shape
    n, c, h, w = x.shape
    if oc == 0 or kh == 0 or kw == 0:
        raise ValueError(f"{op}: weight needs at least one output channel and a non-empty kernel, "
                         f"got shape {tuple(weight.shape)}")
    if h == 0 or w == 0:
        raise ValueError(f"{op}: expected an input of positive height and width, got shape {tuple(x.shape)}")
    if c % groups or oc % groups:
        raise ValueError(f"{op}: groups ({groups}) must divide both the {c} input and the {oc} output channels")
    if c != cg * groups:
        raise ValueError(f"{op}: input has {c} channels, weight expects {cg * groups} "
                         f"(weight shape {tuple(weight.shape)}, groups={groups})")
    if bias is not None and tuple(bias.shape) != (oc,):
        raise ValueError(f"{op}: bias must have shape ({oc},), got {tuple(bias.shape)}")
    if padding == "valid":
        padding = (0, 0)
    elif padding == "same":
        (ty, by), (lx, rx) = _same_padding(kh, dilation[0]), _same_padding(kw, dilation[1])
        if by != ty or rx != lx:   # even kernel: pad the extra pixel explicitly
            x = pad_tensor(x, ((0, 0), (0, 0), (0, by - ty), (0, rx - lx)))
        padding = (ty, lx)
    for size, k, s, p, d in zip(x.shape[2:], (kh, kw), stride, padding, dilation):
        out_size(op, size, k, s, p, d)
    function = Conv2d(stride, padding, dilation, groups)
    return function(x, weight) if bias is None else function(x, weight, bias)
