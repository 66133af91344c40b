"""2-D convolution (NCHW): four algorithms, one rule that picks one, and a switch to force one.

What runs, with G groups, C input and OC output channels, an (OH, OW) output:

* ``Conv2dIm2col`` (conv_im2col.py): the windows of each chunk of images copied into columns
  (N, C*KH*KW, OH*OW), then one GEMM per image and group. Any convolution, on the CPU and the
  GPU; a 1x1 stride-1 unpadded one needs no columns (x itself is the matrix).
* ``Conv2dIm2row`` (conv_im2row.py): the same windows one row per output pixel (N*OH*OW,
  KH*KW*C), then one long GEMM per chunk. Ungrouped, CPU.
* ``Conv2dWinograd`` (conv_winograd.py): Winograd's F(4x4, 3x3), 36 small GEMMs per chunk on
  transformed 6x6 tiles. Ungrouped 3x3 stride-1 undilated, CPU; an input with inf, NaN or values
  its transforms would overflow runs im2row instead (see conv_winograd.py).
* ``Conv2dDepthwise`` (conv_depthwise.py): a direct loop kernel, one input channel per filter
  (groups == C > 1, weight (C*M, 1, KH, KW)).

The rule of ``algorithm="auto"`` (``choose_algorithm``): depthwise when the convolution is
depthwise; else, on the CPU, Winograd for a 3x3 stride-1 undilated ungrouped convolution of at
least WINOGRAD_MIN_CHANNELS input channels, im2row for any other ungrouped one (1x1 stride-1
unpadded ones excepted) of at least ROWS_MIN_CHANNELS; else im2col. An empty batch or an input
without channels runs no kernel (``Conv2dEmpty``: the output is the bias, the gradients zeros).

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> x = tinycnn.Tensor(np.ones((1, 3, 8, 8)))
    >>> w = tinycnn.Tensor(np.ones((16, 3, 3, 3)))
    >>> F.conv2d(x, w, padding=1).shape
    (1, 16, 8, 8)
    >>> y = F.conv2d(x, w, padding=1, algorithm="winograd")      # forced: same values
    >>> with F.conv_algorithm("im2row"):
    ...     float(F.conv2d(x, w, padding=1).numpy()[0, 0, 4, 4])
    27.0

Every algorithm splits the batch into chunks whose workspace (columns, rows or tile planes) fits
the workspace limit (tinycnn.set_workspace_limit) and, on the CPU, the cache; the chunks are
shared by one worker thread per core (tinycnn.parallel) and their buffers reused from call to
call (tinycnn.scratch). One image is never split: one that alone needs more than the limit uses
what it needs, with one WorkspaceWarning per layer shape and limit.
"""
import contextlib
import threading
import warnings

import numpy as np

from .. import amp, kernels, parallel
from ..backend import device_of, get_array_module
from ..config import WorkspaceWarning, get_workspace_limit
from ..scratch import scratch
from ..tensor import Function, Tensor
from .array import pad as pad_tensor
from .validate import integer, is_int, out_size, pair, require_float, require_ndim, require_same_dtype

CPU_CHUNK_BYTES = 4 * 2**20          # workspace per chunk on the CPU: stays in the L3 cache
WINOGRAD_CHUNK_BYTES = 2 * 2**20     # Winograd's 36 short GEMMs run from the L2 cache
ROWS_MIN_CHANNELS = 16               # fewer channels: rows too short for im2row to pay
WINOGRAD_MIN_CHANNELS = 16           # fewer channels: Winograd's GEMMs too small to pay

_warned = set()          # (image shape, weight shape, dtype, layout, limit) already warned about


class Conv2d(Function):
    """A 2-D convolution Function: its geometry (``stride``, ``padding``, ``dilation``, ``groups``)
    and what every algorithm shares: the output size, the chunks of the batch, the worker threads
    and the scratch memory. Each algorithm subclass has its forward and backward; ``refusal``
    says which convolutions it cannot run."""

    saved_inputs, saves_outputs = (0, 1), False     # backward reads x and the weight, never the bias
    fresh_grads = True      # every algorithm allocates gx, gw and gb anew
    name = None              # the algorithm's name in conv2d(algorithm=...) and conv_algorithm
    layout = None            # the workspace it builds, named in a WorkspaceWarning

    def __init__(self, stride, padding, dilation, groups, xp=np):
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.xp = xp                     # NumPy or CuPy, chosen once by conv2d
        self.on_cpu = xp is np

    @staticmethod
    def refusal(x_shape, weight_shape, stride, padding, dilation, groups, on_cpu):
        """Why this algorithm cannot run such a convolution (a sentence), or None."""
        return None

    def _begin(self, x, weight, bias):
        """Keep what backward reads, compute the output size; -> the bias as (1, OC, 1, 1) or None."""
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        self.oh, self.ow = self._window().output_size(*x.shape[2:])
        return None if bias is None else bias.reshape(1, -1, 1, 1)

    def _window(self):
        """The kernels.Window every convolution kernel takes: the weight's kernel size and this
        convolution's stride, padding and dilation."""
        return kernels.Window(tuple(self.weight.shape[2:]), self.stride, self.padding, self.dilation)

    def _gradients_needed(self):
        """(need_gx, need_gw): no gx for an input image, no gw for a frozen weight."""
        return self.needs_input_grad(0), self.needs_input_grad(1)

    def _is_pointwise(self):
        return self.weight.shape[2:] == (1, 1) and self.stride == (1, 1) and self.padding == (0, 0)

    def _image_bytes(self):
        """Workspace bytes of one image: its im2col columns (the algorithms override it)."""
        kh, kw = self.weight.shape[2:]
        return self.x.shape[1] * kh * kw * self.oh * self.ow * self.x.itemsize

    def _warn_if_over_workspace(self):
        """One WorkspaceWarning per layer shape and limit when one image needs more workspace
        than the limit."""
        needed, limit = self._image_bytes(), get_workspace_limit()
        key = (self.x.shape[1:], self.weight.shape, self.x.dtype.str, self.layout, limit)
        if needed <= limit or key in _warned:
            return
        _warned.add(key)
        warnings.warn(f"conv2d: one ({', '.join(map(str, self.x.shape[1:]))}) image with weight "
                      f"{tuple(self.weight.shape)} needs {needed} bytes ({needed / 2**20:.1f} MiB) of {self.layout} "
                      f"workspace, more than the workspace limit of {limit} bytes ({limit / 2**20:.1f} MiB); "
                      f"using {needed} bytes, since batches are split but single images are not. Raise "
                      f"TINYCNN_WORKSPACE or tinycnn.set_workspace_limit() to silence this.",
                      WorkspaceWarning, stacklevel=2)

    def _workers(self):
        """Threads that share the chunks: on the CPU, tinycnn.parallel's, as many as have room for
        one image's workspace twice within the limit (a padded copy and a GEMM output come on top);
        on the GPU, one."""
        if not self.on_cpu:
            return 1
        if self._image_bytes() == 0:
            return parallel.workers()
        return max(1, min(parallel.workers(), get_workspace_limit() // (2 * self._image_bytes())))

    def _chunks(self):
        """Slices of the batch whose workspace fits the limit shared by the workers (and, on the CPU,
        the cache); without workspace, one slice per worker."""
        n, workers, image_bytes = self.x.shape[0], self._workers(), self._image_bytes()
        limit = get_workspace_limit() // workers
        if self.on_cpu:
            limit = min(limit, WINOGRAD_CHUNK_BYTES if self.layout == "Winograd" else CPU_CHUNK_BYTES)
        step = -(-n // workers) if image_bytes == 0 else max(1, min(n, limit // image_bytes))
        return [slice(start, min(start + step, n)) for start in range(0, n, step)]

    def _map_chunks(self, work):
        """[work(chunks), ...] over every chunk of the batch, split between the worker threads."""
        chunks = self._chunks()
        return parallel.map_parts(work, chunks) if self._workers() > 1 else [work(chunks)]

    def _scratch(self, name, shape):
        """Workspace of x's dtype: reused scratch memory on the CPU, CuPy's memory pool on the GPU."""
        return scratch(name, shape, self.x.dtype) if self.on_cpu else self.xp.empty(shape, self.x.dtype)


def sum_parts(parts):
    """Sum the workers' partial gradients, element by element: [(gw, gb), ...] -> (gw, gb). Each
    worker's arrays are its own, so the others are added into the first in place."""
    totals = []
    for first, *rest in zip(*parts):
        for part in rest if first is not None else ():
            first += part
        totals.append(first)
    return tuple(totals)


class Conv2dEmpty(Conv2d):
    """An empty batch (N = 0) or an input without channels (C = 0): sums of no terms, no kernel.
    The output is the bias (zeros without one), the input and weight gradients are zeros."""
    name = "empty"

    def forward(self, x, weight, bias=None):
        bias4 = self._begin(x, weight, bias)
        y = self.xp.zeros((x.shape[0], weight.shape[0], self.oh, self.ow), dtype=x.dtype)
        return y if bias4 is None else y + bias4

    def backward(self, gy):
        need_gx, need_gw = self._gradients_needed()
        return (self.xp.zeros_like(self.x) if need_gx else None,
                self.xp.zeros_like(self.weight) if need_gw else None,
                gy.sum(axis=(0, 2, 3)) if self.has_bias else None)


# The algorithms subclass Conv2d above, so they are imported after it.
from .conv_depthwise import Conv2dDepthwise  # noqa: E402
from .conv_im2col import Conv2dIm2col  # noqa: E402
from .conv_im2row import Conv2dIm2row  # noqa: E402
from .conv_winograd import Conv2dWinograd  # noqa: E402

ALGORITHMS = {cls.name: cls for cls in (Conv2dIm2col, Conv2dIm2row, Conv2dWinograd, Conv2dDepthwise)}
_choice = threading.local()          # this thread's conv_algorithm, like grad mode


@contextlib.contextmanager
def conv_algorithm(name, strict=True):
    """Run the block's ``conv2d(..., algorithm="auto")`` calls (this thread's) with algorithm `name`.

    ``strict=True``: every convolution must be one `name` can run, else conv2d raises ValueError.
    ``strict=False``: `name` is preferred where it can run; elsewhere the auto rule decides, with
    the rule's channel thresholds lowered to 1 for it ("winograd" also prefers im2row where
    Winograd cannot run). Tests use it to run a suite under each algorithm.

        >>> import tinycnn.functions as F
        >>> with F.conv_algorithm("im2col"):
        ...     pass
    """
    _check_algorithm("conv_algorithm", name)
    previous = getattr(_choice, "value", ("auto", True))
    _choice.value = (name, bool(strict))
    try:
        yield
    finally:
        _choice.value = previous


def _check_algorithm(op, name):
    if name != "auto" and name not in ALGORITHMS:
        raise ValueError(f"{op}: algorithm must be 'auto' or one of {sorted(ALGORITHMS)}, got {name!r}")


def choose_algorithm(x_shape, weight_shape, stride, padding, dilation, groups, on_cpu, algorithm="auto"):
    """The Conv2d subclass that runs this convolution: `algorithm` if named (ValueError if it
    cannot run it), else this thread's conv_algorithm, else the rule in the module docstring."""
    geometry = (x_shape, weight_shape, stride, padding, dilation, groups, on_cpu)
    prefer, strict = getattr(_choice, "value", ("auto", True)) if algorithm == "auto" else (algorithm, True)
    if prefer != "auto" and strict:
        reason = ALGORITHMS[prefer].refusal(*geometry)
        if reason is not None:
            raise ValueError(f"conv2d: algorithm {prefer!r} cannot run this convolution: {reason} "
                             f"(input {tuple(x_shape)}, weight {tuple(weight_shape)}, stride {stride}, "
                             f"padding {padding}, dilation {dilation}, groups {groups})")
        return ALGORITHMS[prefer]
    channels = x_shape[1]
    if Conv2dDepthwise.refusal(*geometry) is None:
        return Conv2dDepthwise
    if prefer == "im2col":
        return Conv2dIm2col
    if (prefer == "winograd" or (prefer == "auto" and channels >= WINOGRAD_MIN_CHANNELS)) \
            and Conv2dWinograd.refusal(*geometry) is None:
        return Conv2dWinograd
    pointwise = tuple(weight_shape[2:]) == (1, 1) and stride == (1, 1) and padding == (0, 0)
    if (prefer in ("im2row", "winograd") or (prefer == "auto" and channels >= ROWS_MIN_CHANNELS)) \
            and not pointwise and Conv2dIm2row.refusal(*geometry) is None:
        return Conv2dIm2row
    return Conv2dIm2col


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


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, algorithm="auto"):
    """2-D convolution of an (N, C, H, W) input with weight (OC, C/groups, KH, KW).

    ``stride``, ``padding`` and ``dilation`` are ints or pairs; ``padding`` may also be
    "valid" (0) or "same" (output size = input size, stride 1 only). N = 0 gives an empty
    output, C = 0 the bias (zeros without one), as sums of no terms. ``algorithm``: "auto"
    (the rule in the module docstring, or the block's conv_algorithm), or "im2col", "im2row",
    "winograd", "depthwise" to force one (ValueError if it cannot run this convolution; a
    forced Winograd still runs im2row on inputs its transforms cannot carry: inf, NaN, huge values).
    """
    op = "conv2d"
    x = x if isinstance(x, Tensor) else Tensor(x)
    if amp.is_autocast_enabled():   # on the GPU: a GEMM in float16, a depthwise convolution in float32
        depthwise = is_int(groups) and groups > 1 and x.ndim == 4 and groups == x.shape[1]
        x, weight, bias = (amp.float32_operands if depthwise else amp.gemm_operands)(x, weight, bias)
    require_float(op, x, weight, bias)
    require_same_dtype(op, x, weight, bias)
    require_ndim(op, x, 4, "(N, C, H, W)")
    if weight.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (OC, C/groups, KH, KW), got shape {tuple(weight.shape)}")
    stride, padding, dilation, groups = conv_arguments(op, stride, padding, dilation, groups)
    _check_algorithm(op, algorithm)
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
    devices = [device_of(t) for t in (x, weight, bias) if t is not None]
    if len(set(devices)) > 1:       # checked here: the algorithm is chosen for x's device
        raise RuntimeError(f"Conv2d: inputs live on different devices ({', '.join(devices)}); "
                           f"move them with .to(device) first")
    xp = get_array_module(x)                                # the one CPU / GPU decision
    cls = choose_algorithm(x.shape, weight.shape, stride, padding, dilation, groups, xp is np, algorithm)
    if x.shape[0] == 0 or c == 0:
        cls = Conv2dEmpty
    function = cls(stride, padding, dilation, groups, xp)
    return function(x, weight) if bias is None else function(x, weight, bias)
