"""The model registry: architectures by name.

A family module registers each builder ``build(num_classes=..., **options) -> Module``
with the decorator::

    @register("vgg16", aliases=("vgg_d",))
    def vgg16(num_classes=1000, **options):
        ...

and users build by name (case-insensitive; aliases work too):

    >>> import tinycnn.models as models
    >>> models.get("lenet", num_classes=10).input_shape
    (1, 32, 32)
    >>> "vgg16" in models.available()
    True
"""
_builders = {}   # canonical name -> builder
_aliases = {}    # alias -> canonical name


def register(name, aliases=()):
    """Decorator registering ``builder`` under ``name`` (and ``aliases``); returns it unchanged."""
    def decorator(builder):
        canonical = name.lower()
        for key in (canonical, *(alias.lower() for alias in aliases)):
            if key in _builders or key in _aliases:
                raise ValueError(f"register: the name {key!r} is already taken")
        _builders[canonical] = builder
        for alias in aliases:
            _aliases[alias.lower()] = canonical
        return builder
    return decorator


def resolve(name):
    """The canonical name for ``name`` or an alias; ValueError listing the known names."""
    if not isinstance(name, str):
        raise TypeError(f"models.get: name must be a string, got {type(name).__name__}")
    key = name.lower()
    key = _aliases.get(key, key)
    if key not in _builders:
        raise ValueError(f"models.get: unknown model {name!r}; known models: {', '.join(available())}")
    return key


def get(name, num_classes=None, **options):
    """Build the model registered as ``name``; ``num_classes=None`` keeps the builder's default."""
    builder = _builders[resolve(name)]
    if num_classes is not None:
        options["num_classes"] = num_classes
    return builder(**options)


def available(include_aliases=False):
    """Sorted registered names (canonical only unless ``include_aliases``)."""
    names = list(_builders) + (list(_aliases) if include_aliases else [])
    return sorted(names)
