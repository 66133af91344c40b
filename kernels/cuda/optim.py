"""The optimizers' multi-tensor steps on the GPU (kernels/cuda/optim.cu): one launch updates
every parameter of a group and dtype, packed in flat buffers (tinycnn/optim/multi_tensor.py)."""
from .. import cuda as package     # looked up at each call: tests swap its kernels and array module


def sgd_step(param, grad, buffer, lr, momentum, dampening, weight_decay, nesterov, first):
    """In place: SGD's update of the flat ``param`` (and momentum ``buffer``) from ``grad``."""
    param, grad, buffer = package._inputs("sgd_step", param, grad, buffer)
    package._launch("sgd_step", param.size, param, grad, buffer, param.size, float(lr), float(momentum),
                    1.0 - float(dampening), float(weight_decay), bool(nesterov), bool(first))


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step_size, beta1, beta2, bias2_sqrt, eps,
              weight_decay, decay, decoupled, amsgrad):
    """In place: Adam's (AdamW's with ``decoupled``) update of the flat ``param`` and its moments."""
    arrays = package._inputs("adam_step", param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq)
    package._launch("adam_step", param.size, *arrays, param.size, float(step_size), 1.0 - float(beta1),
                    float(beta2), 1.0 - float(beta2), float(bias2_sqrt), float(eps), float(weight_decay),
                    float(decay), bool(decoupled), bool(amsgrad))
