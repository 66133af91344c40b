"""Sequential and ModuleList.

    >>> from tinycnn.nn import Sequential, Linear, ReLU
    >>> net = Sequential(Linear(4, 8), ReLU(), Linear(8, 2))
    >>> [name for name, _ in net.named_children()]
    ['0', '1', '2']
"""
from collections import OrderedDict

from .module import Module


class Sequential(Module):
    """Runs its modules in order; built from modules or from an OrderedDict of named modules.

    Every module runs as written; ``nn.fuse(model)`` turns a BatchNorm next to a ReLU into
    one op.
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
        for module in self._modules.values():
            x = module(x)
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

