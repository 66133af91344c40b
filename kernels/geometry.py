"""The geometry of a sliding window: the output-size formula, in one place for every layer,
kernel and summary, and ``Window``, the spec the convolution kernels take.

Output position o reads input positions o*stride - padding + i*dilation, i = 0 .. kernel-1.
Tinycnn re-exports the formula as ``tinycnn.conv_output_size``.
"""
import numbers
from typing import NamedTuple, Tuple

_MINIMUM = {"kernel": 1, "stride": 1, "padding": 0, "dilation": 1}


def conv_output_size(size, kernel, stride=1, padding=0, dilation=1, ceil_mode=False):
    """Output length of a window sliding over `size` inputs (PyTorch's formula), for a
    convolution or, with ``ceil_mode``, a pooling window: floor((size + 2p - d(k-1) - 1) / s) + 1,
    or its ceiling with the last window kept only if it starts inside the input or its left
    padding. 0 or less when no window fits (the callers refuse that).

    AlexNet's first layer, an 11x11 kernel with stride 4 on a 227-pixel image:

    >>> conv_output_size(227, 11, stride=4)
    55
    >>> conv_output_size(55, 3, stride=2), conv_output_size(6, 3, stride=2, ceil_mode=True)
    (27, 3)
    """
    steps = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return steps // stride + 1
    out = -(-steps // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


class Window(NamedTuple):
    """A convolution's sliding window: ``kernel``, ``stride``, ``padding`` and ``dilation``, each an
    (h, w) pair of ints. ``Window.of`` takes an int or a pair per field; it unpacks in one line.

    >>> window = Window.of(3, stride=2, padding=1)
    >>> window
    Window(kernel=(3, 3), stride=(2, 2), padding=(1, 1), dilation=(1, 1))
    >>> window.output_size(32, 31)
    (16, 16)
    >>> (kh, kw), (sy, sx), (py, px), (dil_h, dil_w) = window
    """
    kernel: Tuple[int, int]
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)

    @classmethod
    def of(cls, kernel, stride=1, padding=0, dilation=1):
        """A checked Window from an int (the same for h and w) or an (h, w) pair per field."""
        fields = [value if isinstance(value, (tuple, list)) else (value, value)
                  for value in (kernel, stride, padding, dilation)]
        return cls(*fields).checked("Window.of")

    def checked(self, op):
        """This window with every field a pair of Python ints, or TypeError / ValueError naming
        `op`: a field that is not a pair of ints, a kernel, stride or dilation below 1, a negative
        padding."""
        fields = []
        for name, value in zip(self._fields, self):
            if not (isinstance(value, (tuple, list)) and len(value) == 2) or \
                    any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in value):
                raise TypeError(f"{op}: window {name} must be an (h, w) pair of ints, got {value!r}")
            if min(value) < _MINIMUM[name]:
                kind = "positive" if _MINIMUM[name] == 1 else "non-negative"
                raise ValueError(f"{op}: window {name} must be {kind}, got {tuple(value)}")
            fields.append((int(value[0]), int(value[1])))
        return Window(*fields)

    def output_size(self, h, w):
        """(oh, ow): the window positions on an h x w image (0 or less where none fits)."""
        return tuple(conv_output_size(size, k, s, p, d)
                     for size, k, s, p, d in zip((h, w), self.kernel, self.stride, self.padding, self.dilation))
