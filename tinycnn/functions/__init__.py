"""Stateless differentiable ops on Tensors: ``import tinycnn.functions as F``.

    >>> import numpy as np, tinycnn, tinycnn.functions as F
    >>> F.relu(tinycnn.Tensor(np.array([-1.0, 1.0]))).numpy()
    array([0., 1.])
"""
from .math import (add, sub, mul, div, neg, pow, exp, log, sqrt, matmul, sum, mean, max,
                   reshape, transpose, getitem, cast, to_device, linear, sum_to)
from .activation import relu, relu6, leaky_relu, elu, sigmoid, tanh, softmax, log_softmax
from .array import concat, split, flatten, pad, channel_shuffle
from .conv import conv2d, conv_algorithm
from .pool import max_pool2d, avg_pool2d, global_avg_pool2d, adaptive_avg_pool2d
from .norm import batch_norm, batch_norm_relu, relu_batch_norm, local_response_norm
from .dropout import dropout
from .loss import softmax_cross_entropy
