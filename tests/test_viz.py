"""tinycnn.viz: filter grids, feature maps and saliency maps written as PNG files."""
import numpy as np
import pytest
from PIL import Image

import tinycnn
import tinycnn.nn as nn
from tinycnn.nn import Linear
from tinycnn.viz import grid_size, plot_feature_maps, plot_filters, saliency_map


def read_png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def assert_not_blank(pixels):
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2


def small_cnn():
    tinycnn.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 5, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 8 * 8, 4))


def test_plot_filters_draws_one_tile_per_filter(tmp_path):
    weight = np.zeros((6, 3, 5, 5), dtype=np.float32)
    weight[0, :, 0, 0] = 1.0  # filter 0: one bright pixel in its top-left corner
    weight[1:] = np.random.default_rng(0).normal(size=(5, 3, 5, 5))
    path = plot_filters(weight, tmp_path / "filters.png")
    pixels = read_png(path)
    scale = 48 // 5
    assert pixels.shape[1::-1] == grid_size(6, 5, 5) == (3 * (5 * scale + 2) + 2, 2 * (5 * scale + 2) + 2)
    tile = pixels[2:2 + 5 * scale, 2:2 + 5 * scale]
    assert (tile[:scale, :scale] == 255).all()  # the bright pixel, enlarged
    assert (tile[scale:, scale:] == 0).all()    # the rest of filter 0 is its minimum
    assert_not_blank(pixels)


def test_plot_filters_takes_the_first_conv_of_a_model(tmp_path):
    model = small_cnn()
    from_model = read_png(plot_filters(model, tmp_path / "a.png"))
    from_weight = read_png(plot_filters(model[0].weight, tmp_path / "b.png"))
    np.testing.assert_array_equal(from_model, from_weight)
    grey = read_png(plot_filters(model[3].weight, tmp_path / "grey.png", columns=5))  # 6 input channels: grey
    assert grey.shape[1::-1] == grid_size(5, 3, 3, columns=5)
    assert (grey[..., 0] == grey[..., 1]).all()


def test_plot_filters_rejects_a_non_conv_weight(tmp_path):
    with pytest.raises(ValueError, match="plot_filters: expected a weight"):
        plot_filters(np.zeros((4, 3)), tmp_path / "x.png")


def test_plot_feature_maps_shows_the_named_layer(tmp_path):
    model = small_cnn()
    model.train()
    image = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    path = plot_feature_maps(model, "1", image, tmp_path / "maps.png")  # the ReLU after the first conv
    pixels = read_png(path)
    assert pixels.shape[1::-1] == grid_size(6, 16, 16)
    assert_not_blank(pixels)
    assert model.training  # the mode is restored
    assert model[0]._forward_hooks == {}  # the hook is removed


def test_plot_feature_maps_errors(tmp_path):
    model = small_cnn()
    image = np.zeros((3, 16, 16), dtype=np.float32)
    with pytest.raises(ValueError, match="no layer named 'conv9'; layers: 0, 1, 2"):
        plot_feature_maps(model, "conv9", image, tmp_path / "x.png")
    with pytest.raises(ValueError, match="layer '6' outputs shape \\(1, 4\\)"):
        plot_feature_maps(model, "6", image, tmp_path / "x.png")


def test_saliency_of_a_linear_model_is_its_weight_row(tmp_path):
    """For score = W x + b, d score_k / dx = W[k]: the map is max over channels of |W[k]|."""
    tinycnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), Linear(2 * 4 * 4, 3))
    image = np.random.default_rng(2).random((2, 4, 4)).astype(np.float32)
    saliency = saliency_map(model, image, label=1, path=tmp_path / "saliency.png")
    expected = np.abs(model[1].weight.data[1].reshape(2, 4, 4)).max(axis=0)
    np.testing.assert_allclose(saliency, expected, rtol=1e-6)
    assert all(p.grad is None for p in model.parameters())
    pixels = read_png(tmp_path / "saliency.png")
    assert pixels.shape[1::-1] == grid_size(2, 4, 4, columns=2)
    assert_not_blank(pixels)


def test_saliency_of_a_cnn_and_bad_labels(tmp_path):
    model = small_cnn()
    image = np.random.default_rng(3).random((3, 16, 16)).astype(np.float32)
    saliency = saliency_map(model, image, label=2)
    assert saliency.shape == (16, 16) and (saliency >= 0).all() and saliency.max() > 0
    with pytest.raises(ValueError, match=r"saliency_map: label must be an int in \[0, 4\), got 7"):
        saliency_map(model, image, label=7)
