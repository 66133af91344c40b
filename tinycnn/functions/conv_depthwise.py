"""Depthwise convolution: one input channel per filter, by a direct loop kernel (CPU and GPU).

Output channel o of a (C*M, 1, KH, KW) weight convolves input channel o // M with weight[o];
no columns are built, so there are no chunks and no workspace.
"""
from .. import kernels
from .conv import Conv2d


class Conv2dDepthwise(Conv2d):
    """A direct kernel for depthwise convolutions (groups == C > 1, weight (C*M, 1, KH, KW))."""
    name = layout = "depthwise"

    @staticmethod
    def refusal(x_shape, weight_shape, stride, padding, dilation, groups, on_cpu):
        if groups > 1 and groups == x_shape[1] and weight_shape[1] == 1:
            return None
        return (f"depthwise needs one input channel per group (groups == C > 1), got groups={groups} "
                f"for {x_shape[1]} input channels")

    def forward(self, x, weight, bias=None):
        bias4 = self._begin(x, weight, bias)
        y = kernels.depthwise_conv2d_forward(x, weight, self._window())
        if bias4 is not None:
            y += bias4
        return y

    def backward(self, gy):
        c, size, window = self.x.shape[1], self.x.shape[2:], self._window()
        need_gx, need_gw = self._gradients_needed()
        gx = kernels.depthwise_conv2d_backward_input(gy, self.weight, window, size, in_channels=c) if need_gx else None
        gw = kernels.depthwise_conv2d_backward_weight(self.x, gy, window) if need_gw else None
        return gx, gw, gy.sum(axis=(0, 2, 3)) if self.has_bias else None
