"""Bad input: a clear error naming the op, what it expected and what came, before any kernel runs."""
import numpy as np
import pytest

import tinycnn.functions as F
import tinycnn.nn as nn
from tinycnn import Tensor


def images(*shape, dtype=np.float32):
    return Tensor(np.zeros(shape, dtype=dtype))


def test_conv2d_channel_mismatch():
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels, weight expects 64 \(weight shape \(128, 64, 3, 3\)"):
        F.conv2d(images(1, 3, 8, 8), images(128, 64, 3, 3))


def test_conv2d_three_dimensional_input():
    with pytest.raises(ValueError, match=r"conv2d: expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        F.conv2d(images(3, 8, 8), images(4, 3, 3, 3))


def test_conv2d_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"conv2d: kernel \(extent 7\) is larger than the padded input \(size 4 \+ 2\*1\)"):
        F.conv2d(images(1, 3, 4, 4), images(4, 3, 7, 7), padding=1)


def test_conv2d_non_positive_stride():
    with pytest.raises(ValueError, match=r"conv2d: stride must be positive, got 0"):
        F.conv2d(images(1, 3, 8, 8), images(4, 3, 3, 3), stride=0)


def test_conv2d_negative_padding():
    with pytest.raises(ValueError, match=r"conv2d: padding must be non-negative, got \(1, -1\)"):
        F.conv2d(images(1, 3, 8, 8), images(4, 3, 3, 3), padding=(1, -1))


def test_conv2d_groups_not_dividing_channels():
    with pytest.raises(ValueError, match=r"conv2d: groups \(2\) must divide both the 3 input and the 4 output channels"):
        F.conv2d(images(1, 3, 8, 8), images(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"Conv2d: groups \(4\) must divide in_channels \(6\)"):
        nn.Conv2d(6, 8, 3, groups=4)


def test_integer_input_where_float_is_required():
    with pytest.raises(TypeError, match=r"conv2d: expected a floating-point input, got dtype int64"):
        F.conv2d(images(1, 3, 8, 8, dtype=np.int64), images(4, 3, 3, 3))
    with pytest.raises(TypeError, match=r"max_pool2d: expected a floating-point input, got dtype uint8"):
        F.max_pool2d(images(1, 3, 8, 8, dtype=np.uint8), 2)


def test_mixed_dtypes_in_conv2d():
    with pytest.raises(TypeError, match=r"conv2d: inputs must share one dtype"):
        F.conv2d(images(1, 3, 8, 8), images(4, 3, 3, 3, dtype=np.float64))


def test_pool_padding_larger_than_half_the_kernel():
    with pytest.raises(ValueError, match=r"max_pool2d: padding \(2, 2\) must be at most half the kernel size \(3, 3\)"):
        F.max_pool2d(images(1, 1, 8, 8), 3, padding=2)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must lie in \[0, 3\), got values from 0 to 3"):
        F.softmax_cross_entropy(images(2, 3), np.array([0, 3]))


def test_labels_of_float_dtype():
    with pytest.raises(TypeError, match=r"softmax_cross_entropy: integer class labels expected, got dtype float64"):
        F.softmax_cross_entropy(images(2, 3), np.array([0.0, 1.0]))


def test_mismatched_batch_sizes_between_logits_and_labels():
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: 2 logits rows but 3 labels"):
        F.softmax_cross_entropy(images(2, 3), np.array([0, 1, 2]))


def test_non_finite_loss():
    logits = Tensor(np.array([[0.0, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: the loss is not finite"):
        F.softmax_cross_entropy(logits, np.array([0]))


def test_linear_feature_mismatch():
    with pytest.raises(ValueError, match=r"linear: input has 5 features, weight expects 4 \(weight shape \(2, 4\)\)"):
        F.linear(images(3, 5), images(2, 4))


def test_batch_norm_parameter_shape_and_single_value():
    with pytest.raises(ValueError, match=r"batch_norm: gamma must have shape \(4,\) for 4 channels, got \(3,\)"):
        F.batch_norm(images(2, 4), images(3), None, None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm: training needs more than one value per channel"):
        nn.BatchNorm1d(4)(images(1, 4))


def test_concat_shape_mismatch():
    with pytest.raises(ValueError, match=r"concat: shapes differ outside axis 1"):
        F.concat([images(1, 2, 4, 4), images(1, 2, 5, 4)])


def test_padding_same_with_stride():
    with pytest.raises(ValueError, match=r"conv2d: padding='same' needs stride 1"):
        F.conv2d(images(1, 3, 8, 8), images(4, 3, 3, 3), stride=2, padding="same")
