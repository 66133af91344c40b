"""Sequential, ModuleList and ModuleDict.

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



class ModuleDict(Module):
    """A dict of modules whose parameters are registered under their keys (insertion order kept).

        >>> from tinycnn.nn import Linear
        >>> heads = ModuleDict({"digits": Linear(8, 10), "letters": Linear(8, 26)})
        >>> [name for name, _ in heads.named_parameters()][:2]
        ['digits.weight', 'digits.bias']
    """

    def __init__(self, modules=None):
        super().__init__()
        self.update(modules or {})

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: {key!r} must be a tinycnn.nn.Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key):
        del self._modules[key]

    def __contains__(self, key):
        return key in self._modules

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def update(self, modules):
        for key, module in dict(modules).items():
            self[key] = module
