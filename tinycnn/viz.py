"""Looking inside a CNN: first-layer filters, feature maps and saliency maps, saved as PNG.

    >>> import os, tempfile, numpy as np, tinycnn.nn as nn
    >>> conv = nn.Conv2d(3, 16, 5)
    >>> path = plot_filters(conv.weight, os.path.join(tempfile.mkdtemp(), "filters.png"))

Images are tiles in a grid, each scaled by a whole number (nearest neighbour, so a
pixel stays a sharp square) and framed by a white gap; Pillow writes the file.
"""
import math

import numpy as np

from .backend import to_device, unwrap
from .tensor import Tensor, enable_grad, no_grad

TILE_PIXELS = 48  # small tiles are enlarged by a whole factor to about this size
GAP = 2           # white pixels between tiles


def plot_filters(weight, path, columns=None, scale=None):
    """Save the filters of a convolution as a grid of tiles (the "AlexNet filters" figure).

    ``weight`` is (out_channels, in_channels, kh, kw) (a Parameter, Tensor or array),
    or a model, whose first Conv2d is shown. Filters with 3 input channels are shown
    in colour, others as the mean over their channels in grey; each filter is
    stretched to the full range on its own. Returns ``path``.
    """
    weight = _first_conv_weight(weight) if hasattr(weight, "named_modules") else weight
    weight = _numpy(weight)
    if weight.ndim != 4:
        raise ValueError(f"plot_filters: expected a weight (out_channels, in_channels, kh, kw), "
                         f"got shape {weight.shape}")
    if weight.shape[1] == 3:
        tiles = weight.transpose(0, 2, 3, 1)  # (N, kh, kw, 3)
    else:
        tiles = np.repeat(weight.mean(axis=1)[..., None], 3, axis=-1)  # grey: (N, kh, kw, 3)
    tiles = np.stack([_to_unit(tile) for tile in tiles])
    return _save_grid(tiles, path, columns, scale)


def plot_feature_maps(model, layer_name, image, path, max_maps=64, columns=None, scale=None, cmap="viridis"):
    """Save the activations of the layer called ``layer_name`` for one ``image`` (C, H, W).

    A forward hook on that module catches its output; the first ``max_maps``
    channels are drawn, each stretched to its own range. Returns ``path``.
    """
    from matplotlib import colormaps

    modules = dict(model.named_modules())
    if layer_name not in modules or layer_name == "":
        names = [name for name in modules if name]
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise ValueError(f"plot_feature_maps: the model has no layer named {layer_name!r}; layers: {shown}")
    captured = []
    handle = modules[layer_name].register_forward_hook(lambda module, inputs, output: captured.append(output))
    try:
        _run_eval(model, lambda: model(Tensor(_batch_of_one(image, model, "plot_feature_maps"))))
    finally:
        handle.remove()
    output = captured[0]
    output = output[0] if isinstance(output, (tuple, list)) else output
    maps = _numpy(output)
    if maps.ndim != 4:
        raise ValueError(f"plot_feature_maps: layer {layer_name!r} outputs shape {maps.shape}, "
                         f"expected feature maps (1, C, H, W)")
    maps = maps[0, :max_maps]  # (C, H, W)
    colour = colormaps[cmap]
    tiles = np.stack([colour(_to_unit(feature_map))[..., :3] for feature_map in maps])  # (C, H, W, 3)
    return _save_grid(tiles, path, columns, scale)


def saliency_map(model, image, label, path=None):
    """|d score_label / d image|, maxed over the channels: which pixels sway the class score most.

    Simonyan, Vedaldi & Zisserman (2013), "Deep Inside Convolutional Networks". The
    score is the un-normalised class score (the logit), taken in eval mode. Returns
    the (H, W) map as a NumPy array; with ``path``, also saves the image and the map
    side by side.
    """
    batch = _batch_of_one(image, model, "saliency_map")
    x = Tensor(batch, requires_grad=True)

    def class_score():
        outputs = model(x)
        scores = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        if scores.ndim != 2:
            raise ValueError(f"saliency_map: the model outputs shape {scores.shape}, expected scores (1, classes)")
        if not (isinstance(label, (int, np.integer)) and 0 <= label < scores.shape[1]):
            raise ValueError(f"saliency_map: label must be an int in [0, {scores.shape[1]}), got {label!r}")
        scores[0, int(label)].backward()

    _run_eval(model, class_score, grad=True)
    model.zero_grad()
    gradient = _numpy(x.grad)[0]  # (C, H, W)
    saliency = np.abs(gradient).max(axis=0)  # (H, W)
    if path is not None:
        picture = _to_unit(_numpy(batch)[0].transpose(1, 2, 0))  # (H, W, C)
        if picture.shape[-1] != 3:
            picture = np.repeat(picture.mean(axis=-1, keepdims=True), 3, axis=-1)
        from matplotlib import colormaps
        heat = colormaps["hot"](_to_unit(saliency))[..., :3]
        _save_grid(np.stack([picture, heat]), path, columns=2)
    return saliency


# ----- helpers ---------------------------------------------------------------------
def _numpy(value):
    return np.asarray(to_device(unwrap(value), "cpu"), dtype=np.float64)


def _to_unit(array):
    """Stretch to [0, 1]; a constant array becomes mid-grey."""
    low, high = float(array.min()), float(array.max())
    if high - low < 1e-12:
        return np.full(array.shape, 0.5)
    return (array - low) / (high - low)


def _first_conv_weight(model):
    from .nn import Conv2d
    for _, module in model.named_modules():
        if isinstance(module, Conv2d):
            return module.weight
    raise ValueError(f"plot_filters: {type(model).__name__} has no Conv2d layer")


def _batch_of_one(image, model, caller):
    """A float32 (1, C, H, W) array on the model's device."""
    array = unwrap(image)
    array = np.asarray(to_device(array, "cpu"), dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[0] != 1:
        raise ValueError(f"{caller}: expected one image (C, H, W) or (1, C, H, W), got shape {array.shape}")
    return to_device(array, model.device)


def _run_eval(model, body, grad=False):
    """Run ``body()`` with the model in eval mode, recording a graph only when ``grad``."""
    was_training = model.training
    model.eval()
    try:
        with enable_grad() if grad else no_grad():
            body()
    finally:
        model.train(was_training)


def grid_size(count, tile_height, tile_width, columns=None, scale=None):
    """``(width, height)`` in pixels of the PNG that the plot functions write for ``count`` tiles."""
    columns, rows, scale = _layout(count, tile_height, tile_width, columns, scale)
    return (columns * (tile_width * scale + GAP) + GAP, rows * (tile_height * scale + GAP) + GAP)


def _layout(count, tile_height, tile_width, columns, scale):
    columns = int(columns) if columns else math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    scale = int(scale) if scale else max(1, TILE_PIXELS // max(tile_height, tile_width))
    return columns, rows, scale


def _save_grid(tiles, path, columns=None, scale=None):
    """Write tiles (N, H, W, 3) with values in [0, 1] as one PNG grid on a white background."""
    from PIL import Image

    count, height, width, _ = tiles.shape
    columns, rows, scale = _layout(count, height, width, columns, scale)
    tiles = np.repeat(np.repeat(tiles, scale, axis=1), scale, axis=2)  # nearest-neighbour enlargement
    step_y, step_x = height * scale + GAP, width * scale + GAP
    canvas = np.ones((rows * step_y + GAP, columns * step_x + GAP, 3))
    for index, tile in enumerate(tiles):
        top, left = GAP + (index // columns) * step_y, GAP + (index % columns) * step_x
        canvas[top:top + height * scale, left:left + width * scale] = tile
    Image.fromarray(np.round(canvas * 255).astype(np.uint8)).save(path)
    return path
