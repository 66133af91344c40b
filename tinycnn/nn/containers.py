"""Sequential and ModuleList.

    >>> from tinycnn.nn import Sequential, Linear, ReLU
    >>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    >>> [name for name, _ in net.named_children()]
    ['0', '1', '2']
"""
from collections import OrderedDict

from .layers import ReLU, _BatchNorm
from .module import Module, _global_forward_hooks


class Sequential(Module):
    """Runs its modules in order; built from modules or from an OrderedDict of named modules.

    A BatchNorm followed by a ReLU runs as one fused op (``_BatchNorm.forward_relu``), and so
    does a ReLU followed by a BatchNorm (``_BatchNorm.forward_after_relu``): the same values,
    one pass over memory instead of two, forward and backward. Hooks see every layer's
    output, so when either layer or the whole process has a forward hook (summaries, feature
    extraction), the two run one after the other as written.
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def forward(self, x):
        modules = list(self._modules.values())
        index = 0
        while index < len(modules):
            module = modules[index]
            following = modules[index + 1] if index + 1 < len(modules) else None
            if _fusable(module, following, _BatchNorm, ReLU):
                x = module.forward_relu(x)
                index += 2
            elif _fusable(module, following, ReLU, _BatchNorm):
                x = following.forward_after_relu(x)
                index += 2
            else:
                x = module(x)
                index += 1
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        return modules[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules whose parameters are registered."""

    def __init__(self, modules=()):
        super().__init__()
        for module in modules:
            self.append(module)

    def append(self, module):
        self.add_module(str(len(self._modules)), module)
        return self

    def __getitem__(self, index):
        return list(self._modules.values())[index]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


def _fusable(module, following, first, second):
    """Whether `module` is a `first` and `following` a `second` (a BatchNorm and a ReLU, in either
    order, neither with a forward of its own) that can run fused: no hook needs the output
    between them."""
    def kind(layer, cls):
        return isinstance(layer, cls) and type(layer).forward is cls.forward
    return (kind(module, first) and kind(following, second) and not _global_forward_hooks
            and not module._forward_hooks and not following._forward_hooks)
