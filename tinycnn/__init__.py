"""tinycnn: a small define-by-run deep-learning engine for convolutional networks.

    >>> import numpy as np, tinycnn
    >>> x = tinycnn.Tensor(np.array([3.0]), requires_grad=True)
    >>> (x ** 2).backward()
    >>> x.grad
    array([6.])
"""
from .tensor import Tensor, Function, no_grad, enable_grad, is_grad_enabled
from .autograd import FunctionHook
from .random import manual_seed
from .gradcheck import gradcheck, GradcheckError
from .io import save, load, CheckpointError, load_torch, load_safetensors, save_safetensors, load_keras
from .config import set_workspace_limit, get_workspace_limit, WorkspaceWarning
from .scratch import release_scratch, keep_freed_memory
from .parallel import set_num_threads, get_num_threads
from .kernels.geometry import conv_output_size
from . import backend, cuda, functions, nn, optim, data, train, viz
from .summary import summary
from .train.builders import load_model

__version__ = "0.1.0"
