"""Raw compute kernels: one dispatch function per primitive, no autograd, nothing from tinycnn.

Every primitive has three implementations with one signature: ``reference`` (plain NumPy, the
oracle; beside it, loop-by-loop versions of the convolution written for reading), ``cpu``
(Numba) and ``cuda`` (CUDA C via CuPy; the GPU convolution needs only im2col / col2im).
``dispatch`` picks one per call (``cuda`` for a CuPy array, else ``cpu`` when Numba is
installed, else ``reference``) after cheap checks that keep the kernels inside their arrays.
Tests force one with ``use``:

    >>> import numpy as np
    >>> from tinycnn import kernels
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> with kernels.use("reference"):
    ...     y, argmax = kernels.max_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 2, 2)
    >>> y[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]

Modules: ``dispatch`` (the choice and the checks), ``conv``, ``winograd``, ``pool``, ``norm``,
``activation``
(the dispatch functions by family), ``geometry`` (the output-size formula and ``Window``, the
convolution kernels' geometry), ``device`` (the one GPU probe). Conventions: NCHW, float32 or
float64 (the output keeps the input dtype), integer arguments are Python ints; the convolution
kernels take a ``Window`` and compute their output size, pooling takes (oh, ow) from the caller.
"""
from . import reference
from .activation import relu_backward, relu_forward
from .conv import (channel_rows_and_sums, col2im, col2im_by_channel, depthwise_conv2d_backward_input,
                   depthwise_conv2d_backward_weight, depthwise_conv2d_forward, im2col, im2col_by_channel, im2row,
                   row2im, swap_last_axes)
from .device import array_module, gpu_available, gpu_count, is_cupy_array
from .dispatch import available, cpu, set_default, use
from .geometry import Window, conv_output_size
from .norm import (batch_norm_backward, batch_norm_forward_eval, batch_norm_forward_train,
                   batch_norm_update_running, dropout_apply, lrn_backward, lrn_forward)
from .optim import adam_step, sgd_step
from .pool import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from .winograd import (WINOGRAD_PLANES, max_abs, winograd_input_transform, winograd_input_transform_backward,
                       winograd_output_transform, winograd_output_transform_backward, winograd_plane_size,
                       winograd_tile_grid, winograd_weight_transform, winograd_weight_transform_backward)
