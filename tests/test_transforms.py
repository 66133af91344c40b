"""Preprocessing transforms and batched augmentation."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinycnn.data import (ArrayDataset, Compose, MeanSubtract, RandomAffine, RandomCrop, RandomHorizontalFlip,
                          Standardize, ToFloat, channel_means, channel_stats)

SETTINGS = settings(max_examples=25, deadline=None)


def random_batch(shape, dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.standard_normal(shape).astype(dtype)


batch_shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9))


# ---------------------------------------------------------------- preprocessing

def test_to_float_scales_uint8_to_the_unit_interval():
    images = random_batch((2, 3, 4, 5))
    images[0, 0, 0, :2] = [0, 255]
    out = ToFloat()(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    np.testing.assert_array_equal(out, images.astype(np.float32) / np.float32(255))
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 0, 1] == 1.0
    np.testing.assert_array_equal(ToFloat()(out), out)  # float input is left as it is


def test_to_float_rejects_other_inputs():
    with pytest.raises(TypeError, match="ToFloat: expected uint8 or floating-point images, got int32"):
        ToFloat()(np.zeros((1, 1, 2, 2), np.int32))
    with pytest.raises(ValueError, match=r"ToFloat: expected a batch of images \(N, C, H, W\), got shape \(3, 4\)"):
        ToFloat()(np.zeros((3, 4), np.uint8))


def test_channel_stats_match_numpy_over_chunks():
    images = random_batch((9, 3, 5, 4), seed=1)
    mean, std = channel_stats(ArrayDataset(images, np.zeros(9)), chunk_size=2)
    as_float = images.astype(np.float64)
    np.testing.assert_allclose(mean, as_float.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, as_float.std(axis=(0, 2, 3)), rtol=1e-5)
    assert mean.dtype == std.dtype == np.float32 and mean.shape == (3,)
    np.testing.assert_array_equal(channel_means(images), mean)


def test_mean_subtract_uses_per_channel_means():
    images = random_batch((2, 3, 4, 4), seed=2)
    means = channel_means(images)
    out = MeanSubtract(means)(images)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, images - means[None, :, None, None], rtol=1e-6)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-3)
    with pytest.raises(ValueError, match="MeanSubtract: images have 1 channels, but 3 values were given"):
        MeanSubtract(means)(images[:, :1])


def test_standardize_and_compose_apply_in_order():
    images = random_batch((2, 3, 3, 3), seed=3)
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.25, 0.3])
    pipeline = Compose([ToFloat(), Standardize(mean, std)])
    expected = (images / 255.0 - mean[None, :, None, None]) / std[None, :, None, None]
    np.testing.assert_allclose(pipeline(images), expected, rtol=1e-5, atol=1e-5)
    assert pipeline(images).dtype == np.float32
    with pytest.raises(ValueError, match="std must be positive"):
        Standardize(0.5, 0.0)
    with pytest.raises(TypeError, match="Compose: every transform must be callable"):
        Compose([ToFloat(), 3])


def test_compose_hands_its_rng_to_random_transforms():
    images = random_batch((8, 1, 3, 3), seed=4)
    pipeline = Compose([RandomHorizontalFlip(), ToFloat()])
    first = pipeline(images, rng=np.random.default_rng(9))
    second = pipeline(images, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first, second)
    expected = RandomHorizontalFlip()(images, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(first, ToFloat()(expected))


# ---------------------------------------------------------------- flips

@SETTINGS
@given(shape=batch_shapes, seed=st.integers(0, 2**32 - 1))
def test_flipping_twice_with_the_same_draws_is_the_identity(shape, seed):
    images = random_batch(shape, seed=seed % 1000)
    flip = RandomHorizontalFlip(p=0.5)
    params = flip.sample(shape, np.random.default_rng(seed))
    once = flip.apply(images, params)
    np.testing.assert_array_equal(flip.apply(once, params), images)
    for k in range(shape[0]):  # each image is flipped or left alone, as drawn
        expected = images[k, :, :, ::-1] if params["flip"][k] else images[k]
        np.testing.assert_array_equal(once[k], expected)


def test_flip_probabilities_one_and_zero():
    images = random_batch((3, 2, 4, 5))
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(images), images[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(images), images)
    with pytest.raises(ValueError, match="p must lie in"):
        RandomHorizontalFlip(p=1.5)


# ---------------------------------------------------------------- crops

@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_crop_of_the_full_size_without_padding_is_the_identity(dtype):
    images = random_batch((4, 3, 6, 5), dtype)
    out = RandomCrop((6, 5), padding=0, rng=0)(images)
    assert out.dtype == images.dtype
    np.testing.assert_array_equal(out, images)


@SETTINGS
@given(shape=batch_shapes, padding=st.integers(0, 3), seed=st.integers(0, 1000),
       fill_mode=st.sampled_from(["constant", "nearest"]))
def test_crop_takes_the_window_at_the_drawn_offsets(shape, padding, seed, fill_mode):
    images = random_batch(shape, seed=seed)
    size = (max(1, shape[2] - 1), shape[3])
    crop = RandomCrop(size, padding=padding, fill_mode=fill_mode, cval=7)
    params = crop.sample(shape, np.random.default_rng(seed))
    out = crop.apply(images, params)
    assert out.shape == shape[:2] + size and out.dtype == np.uint8
    pad_mode = {"constant": {"mode": "constant", "constant_values": 7}, "nearest": {"mode": "edge"}}[fill_mode]
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)), **pad_mode)
    for k, (top, left) in enumerate(zip(params["top"], params["left"])):
        assert 0 <= top <= shape[2] + 2 * padding - size[0] and 0 <= left <= shape[3] + 2 * padding - size[1]
        np.testing.assert_array_equal(out[k], padded[k, :, top:top + size[0], left:left + size[1]])


def test_crop_offsets_differ_between_images_and_repeat_with_the_seed():
    images = np.tile(random_batch((1, 1, 8, 8)), (16, 1, 1, 1))
    out = RandomCrop(8, padding=2, rng=3)(images)
    assert len({image.tobytes() for image in out}) > 1  # drawn per image, not per batch
    np.testing.assert_array_equal(out, RandomCrop(8, padding=2, rng=3)(images))


def test_crop_rejects_windows_larger_than_the_image():
    with pytest.raises(ValueError, match=r"RandomCrop: crop \(9, 9\) is larger than the padded image \(6, 6\)"):
        RandomCrop(9, padding=1)(random_batch((1, 1, 4, 4)))


# ---------------------------------------------------------------- affine

def affine_params(n, **values):
    """Parameters for RandomAffine.apply: identity except for ``values`` (scalars for every image)."""
    params = {"angle": 0.0, "shear": 0.0, "zoom_y": 1.0, "zoom_x": 1.0, "shift_y": 0.0, "shift_x": 0.0, "flip": False}
    params.update(values)
    return {key: np.full(n, value) for key, value in params.items()}


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
@pytest.mark.parametrize("shape", [(3, 2, 5, 5), (2, 3, 4, 7), (1, 1, 1, 1)])
def test_affine_with_all_ranges_zero_is_the_identity(dtype, shape):
    images = random_batch(shape, dtype)
    out = RandomAffine(rng=0)(images)
    assert out.dtype == images.dtype and out.shape == images.shape
    np.testing.assert_array_equal(out, images)


@pytest.mark.parametrize("shift_y, shift_x", [(2, 0), (0, -1), (-3, 2)])
def test_affine_shift_moves_pixels_and_fills_with_the_nearest_edge(shift_y, shift_x):
    images = random_batch((2, 3, 6, 7))
    out = RandomAffine().apply(images, affine_params(2, shift_y=shift_y, shift_x=shift_x))
    rows = np.clip(np.arange(6) - shift_y, 0, 5)
    cols = np.clip(np.arange(7) - shift_x, 0, 6)
    np.testing.assert_array_equal(out, images[:, :, rows][:, :, :, cols])


def test_affine_wrap_and_constant_fills():
    images = random_batch((2, 1, 5, 6))
    wrapped = RandomAffine(fill_mode="wrap").apply(images, affine_params(2, shift_y=1, shift_x=-2))
    np.testing.assert_array_equal(wrapped, np.roll(images, (1, -2), axis=(2, 3)))
    constant = RandomAffine(fill_mode="constant", cval=9).apply(images, affine_params(2, shift_y=2))
    assert np.all(constant[:, :, :2] == 9)
    np.testing.assert_array_equal(constant[:, :, 2:], images[:, :, :3])
    reflected = RandomAffine(fill_mode="reflect").apply(images, affine_params(2, shift_x=2))
    np.testing.assert_array_equal(reflected[..., :2], images[..., 1::-1])  # b a | a b c ...


@pytest.mark.parametrize("size", [4, 5])
def test_affine_rotation_by_90_degrees_turns_the_content_anticlockwise(size):
    images = random_batch((2, 2, size, size))
    out = RandomAffine().apply(images, affine_params(2, angle=90.0))
    np.testing.assert_array_equal(out, np.rot90(images, k=1, axes=(2, 3)))


def test_affine_flip_and_keras_zoom():
    images = random_batch((2, 1, 5, 5))
    flipped = RandomAffine().apply(images, affine_params(2, flip=True))
    np.testing.assert_array_equal(flipped, images[..., ::-1])
    # zoom 2 as in Keras: output row r samples input row 2 * (r - 2) + 2, clipped to the image
    zoomed = RandomAffine().apply(images, affine_params(2, zoom_y=2.0))
    np.testing.assert_array_equal(zoomed, images[:, :, [0, 0, 2, 4, 4]])


def reference_affine(images, params, fill_mode, cval):
    """Pixel by pixel: undo flip and shift, then zoom, shear (Keras' matrix) and rotation, about the centre."""
    n, channels, height, width = images.shape
    center_y, center_x = (height - 1) / 2, (width - 1) / 2
    out = np.empty_like(images)
    for k in range(n):
        angle, shear = math.radians(params["angle"][k]), math.radians(params["shear"][k])
        for row in range(height):
            for col in range(width):
                y, x = row - center_y, col - center_x
                x = -x if params["flip"][k] else x
                y, x = y - params["shift_y"][k], x - params["shift_x"][k]
                y, x = params["zoom_y"][k] * y, params["zoom_x"][k] * x
                y, x = y - math.sin(shear) * x, math.cos(shear) * x
                y, x = math.cos(angle) * y + math.sin(angle) * x, -math.sin(angle) * y + math.cos(angle) * x
                source_y, source_x = math.floor(y + center_y + 0.5), math.floor(x + center_x + 0.5)
                if fill_mode == "constant" and not (0 <= source_y < height and 0 <= source_x < width):
                    out[k, :, row, col] = cval
                else:
                    out[k, :, row, col] = images[k, :, min(max(source_y, 0), height - 1),
                                                 min(max(source_x, 0), width - 1)]
    return out


@pytest.mark.parametrize("fill_mode", ["nearest", "constant"])
def test_random_affine_matches_a_pixel_by_pixel_reference(fill_mode):
    images = random_batch((6, 3, 9, 7), seed=5)
    augment = RandomAffine(rotation_range=40, width_shift_range=0.2, height_shift_range=2, zoom_range=0.3,
                           shear_range=20, horizontal_flip=True, fill_mode=fill_mode, cval=3)
    params = augment.sample(images.shape, np.random.default_rng(6))
    assert np.all(np.abs(params["angle"]) <= 40) and np.all(np.abs(params["shift_x"]) <= 0.2 * 7)
    assert np.all(np.abs(params["shift_y"]) <= 2) and np.all((params["zoom_y"] >= 0.7) & (params["zoom_y"] <= 1.3))
    np.testing.assert_array_equal(augment.apply(images, params), reference_affine(images, params, fill_mode, 3))


@SETTINGS
@given(shape=batch_shapes, seed=st.integers(0, 1000), dtype=st.sampled_from([np.uint8, np.float32]))
def test_random_affine_keeps_shape_dtype_and_only_copies_pixels(shape, seed, dtype):
    images = random_batch(shape, dtype, seed=seed)
    augment = RandomAffine(rotation_range=30, width_shift_range=0.3, height_shift_range=0.3, zoom_range=0.2,
                           shear_range=10, horizontal_flip=True, rng=seed)
    out = augment(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    for k in range(shape[0]):  # nearest sampling with nearest fill invents no values
        assert set(np.unique(out[k])) <= set(np.unique(images[k]))


def test_random_affine_draws_per_image_and_repeats_with_the_seed():
    images = np.tile(random_batch((1, 1, 8, 8), seed=7), (12, 1, 1, 1))
    out = RandomAffine(rotation_range=45, rng=1)(images)
    assert len({image.tobytes() for image in out}) > 1
    np.testing.assert_array_equal(out, RandomAffine(rotation_range=45, rng=1)(images))


def test_random_affine_rejects_bad_settings():
    with pytest.raises(ValueError, match="rotation_range must be a non-negative number"):
        RandomAffine(rotation_range=-5)
    with pytest.raises(ValueError, match="zoom_range"):
        RandomAffine(zoom_range=(1.2, 0.8))
    with pytest.raises(ValueError, match="fill_mode must be one of"):
        RandomAffine(fill_mode="mirror")
