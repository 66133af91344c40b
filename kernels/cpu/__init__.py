"""Numba CPU kernels, one signature per primitive shared with kernels.reference and kernels.cuda.

Call them through the dispatch functions in ``kernels`` (they check the arguments); these
trust their inputs: C-contiguous float32/float64 arrays, Python ints, a checked kernels.Window,
consistent shapes. Every kernel is compiled once per dtype and cached on disk (``cache=True``); set
TINYCNN_NUMBA_PARALLEL=0 to compile them serially (see common.py).
"""
from .activation import relu_backward, relu_forward
from .batchnorm import batch_norm_backward, batch_norm_forward_eval, batch_norm_forward_train
from .conv import col2im, im2col, im2row, row2im, swap_last_axes
from .depthwise import (depthwise_conv2d_backward_input, depthwise_conv2d_backward_weight,
                        depthwise_conv2d_forward)
from .lrn import lrn_backward, lrn_forward
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .winograd import (max_abs, winograd_input_transform, winograd_input_transform_backward,
                       winograd_output_transform, winograd_output_transform_backward,
                       winograd_weight_transform, winograd_weight_transform_backward)

__all__ = [
    "im2col", "col2im", "im2row", "row2im", "swap_last_axes",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "lrn_forward", "lrn_backward", "relu_forward", "relu_backward",
    "batch_norm_forward_train", "batch_norm_forward_eval", "batch_norm_backward",
    "depthwise_conv2d_forward", "depthwise_conv2d_backward_input", "depthwise_conv2d_backward_weight",
    "max_abs", "winograd_input_transform", "winograd_input_transform_backward",
    "winograd_output_transform", "winograd_output_transform_backward",
    "winograd_weight_transform", "winograd_weight_transform_backward",
]
