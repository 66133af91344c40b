"""torchvision's weights in the zoo: ``from_torchvision(name, state_dict)``.

torchvision's models differ from the papers' in places, so each torchvision name builds its zoo
model in torchvision's variant (a builder option, listed in ``TORCHVISION_MODELS``):

    alexnet              variant="torchvision" (64-192-384-256-256, no LRN, adaptive 6x6 pool)
    vgg11 ... vgg19_bn   adaptive_pool=(7, 7), batch_norm for the _bn names
    resnet50/101/152     stride_on="3x3" ("ResNet v1.5": the stride on the 3x3, not the 1x1)
    googlenet            variant="torchvision" (BatchNorm, 3x3 "5x5" branches, its aux heads)
    inception_v3, resnet18/34, resnext50_32x4d, densenet*, mobilenet_v2, shufflenet_v2_*:
                         the zoo model as it is (already torchvision's layout)

and renames the state_dict's keys to the zoo's layer names: torchvision numbers the layers of
its ``nn.Sequential`` (``features.0``) where the zoo names them (``features.conv1``), in the same
order; GoogLeNet's units have other names; old DenseNet files write ``norm.1`` for ``norm1``.
BatchNorm's ``num_batches_tracked`` counters are dropped (tinycnn's momentum is fixed).
``num_classes`` comes from the classifier's weight and ``aux_logits`` from whether the
auxiliary heads' weights are there.

torchvision's ImageNet weights of googlenet and inception_v3 expect ``transform_input=True``
(torchvision sets it when it loads them); pass it to get their logits. In training mode the
zoo's GoogLeNet returns (logits, aux1, aux2) where torchvision's returns (logits, aux2, aux1). Models take images
normalised with the ImageNet mean and std (``IMAGENET_MEAN``, ``IMAGENET_STD``, on 0..1 pixels).

    >>> import numpy as np, tinycnn.models as models
    >>> net = models.get("resnet18", num_classes=10)          # stands in for torchvision's model
    >>> state = {key: np.asarray(value) for key, value in net.state_dict().items()}
    >>> models.from_torchvision("resnet18", state).fc.out_features
    10
"""
import os
import re
from collections import namedtuple

import numpy as np

from .registry import get

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Entry = namedtuple("Entry", "model options head aux keymap")
Entry.__doc__ = """How one torchvision model loads: the zoo ``model`` built with ``options``; the
torchvision key of the classifier weight (``head``, its rows give num_classes); the prefix of
the auxiliary heads' keys (``aux``, None without); ``keymap(model)`` returns the function that
renames a torchvision key (None: the names are the zoo's already)."""


# ----- key maps --------------------------------------------------------------------------------
def by_position(*sequentials):
    """Keymap: ``seq.i`` (torchvision's i-th layer of Sequential ``seq``) -> ``seq.<name of our (i + offset)-th>``.

    ``sequentials`` are (name, offset) pairs; the offset counts the layers the zoo adds in front
    (e.g. the pool and flatten torchvision's forward applies before its ``classifier``).
    """
    def keymap(model):
        names = {}
        for sequential, offset in sequentials:
            children = [name for name, _ in getattr(model, sequential).named_children()]
            names.update({f"{sequential}.{i - offset}": f"{sequential}.{name}"
                          for i, name in enumerate(children) if i >= offset})

        def rename(key):
            module, _, tensor = key.rpartition(".")
            return f"{names.get(module, module)}.{tensor}"
        return rename
    return keymap


def by_patterns(*rules):
    """Keymap: apply the regular-expression ``(pattern, replacement)`` rules in order."""
    def keymap(model):
        def rename(key):
            for pattern, replacement in rules:
                key = re.sub(pattern, replacement, key)
            return key
        return rename
    return keymap


GOOGLENET_KEYS = by_patterns(
    (r"^conv1\.", "stem.conv1."), (r"^conv2\.", "stem.conv2_reduce."), (r"^conv3\.", "stem.conv2."),
    (r"^inception(\d[a-e])\.", r"inception_\1."),
    (r"\.branch1\.", ".branch1x1.conv."),
    (r"\.branch2\.0\.", ".branch3x3.reduce."), (r"\.branch2\.1\.", ".branch3x3.conv."),
    (r"\.branch3\.0\.", ".branch5x5.reduce."), (r"\.branch3\.1\.", ".branch5x5.conv."),
    (r"\.branch4\.1\.", ".branch_pool.proj."),
    (r"^(aux[12])\.", r"\1.layers."),
    # torchvision's BasicConv2d holds .conv and .bn; the zoo names them X and X_bn
    (r"\.conv\.weight$", ".weight"), (r"\.bn\.(\w+)$", r"_bn.\1"))

# torchvision's downloadable DenseNet files predate its current names (its own loader renames them too)
DENSENET_KEYS = by_patterns((r"(denselayer\d+\.(?:norm|relu|conv))\.([12]\.\w+)$", r"\1\2"))

VGG_KEYS = by_position(("features", 0), ("classifier", 2))          # ours: avgpool, flatten, fc1 ...


def _vgg(model, batch_norm):
    return Entry(model, {"adaptive_pool": (7, 7), "batch_norm": batch_norm}, "classifier.6.weight", None, VGG_KEYS)


TORCHVISION_MODELS = {
    "alexnet": Entry("alexnet", {"variant": "torchvision"}, "classifier.6.weight", None,
                     by_position(("features", 0), ("classifier", 2))),
    **{f"vgg{depth}{suffix}": _vgg(f"vgg{depth}", suffix == "_bn")
       for depth in (11, 13, 16, 19) for suffix in ("", "_bn")},
    **{f"resnet{depth}": Entry(f"resnet{depth}", {}, "fc.weight", None, None) for depth in (18, 34)},
    **{f"resnet{depth}": Entry(f"resnet{depth}", {"stride_on": "3x3"}, "fc.weight", None, None)
       for depth in (50, 101, 152)},
    "resnext50_32x4d": Entry("resnext50_32x4d", {}, "fc.weight", None, None),
    **{f"densenet{depth}": Entry(f"densenet{depth}", {}, "classifier.weight", None, DENSENET_KEYS)
       for depth in (121, 169, 201, 161)},
    "googlenet": Entry("googlenet", {"variant": "torchvision", "dropout": 0.2}, "fc.weight", "aux1.",
                       GOOGLENET_KEYS),
    "inception_v3": Entry("inception_v3", {}, "fc.weight", "AuxLogits.", None),
    "mobilenet_v2": Entry("mobilenet_v2", {}, "classifier.1.weight", None, None),
    **{f"shufflenet_v2_{width}": Entry(f"shufflenet_v2_{width}", {}, "fc.weight", None, None)
       for width in ("x0_5", "x1_0", "x1_5", "x2_0")},
}


# ----- loading ---------------------------------------------------------------------------------
def _listing(keys, limit=8):
    keys = list(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def torchvision_options(name, state, **options):
    """The zoo model name and builder options for torchvision's ``name`` and its (array) ``state``."""
    if name not in TORCHVISION_MODELS:
        raise ValueError(f"from_torchvision: unknown torchvision model {name!r}; "
                         f"known: {', '.join(TORCHVISION_MODELS)}")
    entry = TORCHVISION_MODELS[name]
    if entry.head not in state:
        raise KeyError(f"from_torchvision({name!r}): the state_dict has no {entry.head!r} "
                       f"(the classifier of torchvision's {name}); its keys: {_listing(state)}")
    inferred = {"num_classes": int(state[entry.head].shape[0])}
    if entry.aux is not None:
        inferred["aux_logits"] = any(key.startswith(entry.aux) for key in state)
    return entry.model, {**entry.options, **inferred, **options}


def _arrays(state_dict):
    """A path (read by tinycnn.io.load_torch) or a mapping -> {key: NumPy array}, without BN's counters."""
    if isinstance(state_dict, (str, os.PathLike)):
        from tinycnn.io import load_torch
        state_dict = load_torch(state_dict)
    if not hasattr(state_dict, "items"):
        raise TypeError(f"from_torchvision: state_dict must be a dict of arrays or a file path, "
                        f"got {type(state_dict).__name__}")
    arrays = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        try:
            arrays[key] = np.asarray(value)
        except (TypeError, ValueError, RuntimeError) as error:   # e.g. a bfloat16 tensor: NumPy has no such type
            raise TypeError(f"from_torchvision: {key!r} is not an array NumPy reads ({error})") from None
        if arrays[key].dtype.kind not in "fiub":
            raise TypeError(f"from_torchvision: {key!r} holds {arrays[key].dtype}, not numbers")
    return arrays


def from_torchvision(name, state_dict, **options):
    """The zoo model for torchvision's ``name`` (see ``TORCHVISION_MODELS``), holding ``state_dict``.

    ``state_dict``: a dict of arrays (NumPy, or anything ``np.asarray`` reads, such as torch
    tensors) or the path of a ``torch.save`` file (read by ``tinycnn.io.load_torch``, without
    torch). ``options`` go to the zoo builder over the inferred ones (e.g. ``transform_input=True``).
    Raises KeyError naming missing or unexpected keys and ValueError naming a key whose shape
    differs, with both shapes, before anything is loaded. The model is returned in training
    mode, as every builder returns it; call ``.eval()`` to predict.
    """
    state = _arrays(state_dict)
    model_name, builder_options = torchvision_options(name, state, **options)
    model = get(model_name, **builder_options)
    keymap = TORCHVISION_MODELS[name].keymap
    rename = keymap(model) if keymap is not None else (lambda key: key)
    own = model.state_dict()
    renamed = {}                                           # our key -> (torchvision key, array)
    for key, value in state.items():
        ours = rename(key)
        if ours in renamed:
            raise KeyError(f"from_torchvision({name!r}): {renamed[ours][0]!r} and {key!r} both map to {ours!r}")
        renamed[ours] = (key, value)
    missing = [key for key in own if key not in renamed]
    unexpected = [original for ours, (original, _) in renamed.items() if ours not in own]
    if missing or unexpected:
        raise KeyError(f"from_torchvision({name!r}): the state_dict does not fit tinycnn's {model_name} "
                       f"{builder_options}: missing (tinycnn's names) [{_listing(missing)}], "
                       f"unexpected (torchvision's names) [{_listing(unexpected)}]")
    for ours, target in own.items():
        original, value = renamed[ours]
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"from_torchvision({name!r}): {original!r} has shape {tuple(value.shape)} in the "
                             f"state_dict, tinycnn's {ours!r} has shape {tuple(target.shape)}")
    model.load_state_dict({ours: value for ours, (_, value) in renamed.items()})
    return model


def convert_torchvision(name, src_path, dst_path, classes=None, **options):
    """Write torchvision weights (a ``torch.save`` file) as a tinycnn checkpoint that
    ``tinycnn evaluate`` and ``predict`` read; returns the model.

    The checkpoint holds ``model`` (the state_dict), ``meta`` (``model``: the zoo name,
    ``model_options``: the torchvision variant's builder options, ``input_shape``, ``classes``:
    ``classes`` or "0", "1", ...; ``source``) and ``preprocessing`` (pixels scaled by 1/255,
    the ImageNet ``mean`` and ``std`` per channel).
    """
    from tinycnn.io import save

    state = _arrays(src_path)
    model_name, builder_options = torchvision_options(name, state, **options)
    model = from_torchvision(name, state, **options)
    num_classes = builder_options.pop("num_classes")
    classes = [str(k) for k in range(num_classes)] if classes is None else [str(c) for c in classes]
    if len(classes) != num_classes:
        raise ValueError(f"convert_torchvision: {len(classes)} class names for a {num_classes}-class model")
    meta = {"model": model_name, "model_options": {key: list(value) if isinstance(value, tuple) else value
                                                   for key, value in builder_options.items()},
            "input_shape": list(model.input_shape), "classes": classes,
            "source": f"torchvision {name}" + (f": {os.fspath(src_path)}" if isinstance(src_path, (str, os.PathLike))
                                               else "")}
    preprocessing = {"scale": "1/255", "mean": np.array(IMAGENET_MEAN, dtype=np.float32),
                     "std": np.array(IMAGENET_STD, dtype=np.float32)}
    save({"model": model.state_dict(), "meta": meta, "preprocessing": preprocessing}, dst_path)
    return model
