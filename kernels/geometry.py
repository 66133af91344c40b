"""The output-size formula of a sliding window, in one place for every layer, kernel and summary.

Output position o reads input positions o*stride - padding + i*dilation, i = 0 .. kernel-1.
Tinycnn re-exports it as ``tinycnn.conv_output_size``.
"""


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
