"""Images of other bands than 8-bit RGB: reading them, checking them against the model, their statistics, and the
first kernel adapted from RGB weights."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from refinenet_tf.data.band_statistics import band_statistics, fit_input_bands
from refinenet_tf.data.images import (
    checked_bands,
    display_rgb,
    image_size,
    load_image,
    load_model_image,
    read_bands,
)
from refinenet_tf.description import IMAGENET_STD_RGB, ModelDescription, Preprocessing, default_description
from refinenet_tf.errors import DataError, DescriptionError
from refinenet_tf.weights.input_bands import adapt_input_kernel, is_rgb_input_kernel

FOUR_BANDS = Preprocessing("RGB", 1.0, (0, 0, 0, 0), (1, 1, 1, 1), "uint8")


def test_read_bands_takes_each_format_as_stored(tmp_path):
    rng = np.random.default_rng(0)
    four = rng.integers(0, 256, (9, 11, 4), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "contig.tif", four)
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(four, -1, 0), planarconfig="separate",
                     photometric="minisblack")
    np.save(tmp_path / "bands.npy", four.astype(np.float32) / 7)
    grey16 = rng.integers(0, 65536, (9, 11), dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "grey16.png")
    np.testing.assert_array_equal(read_bands(str(tmp_path / "contig.tif")), four)
    np.testing.assert_array_equal(read_bands(str(tmp_path / "planar.tif")), four)
    np.testing.assert_allclose(read_bands(str(tmp_path / "bands.npy")), four / 7, rtol=1e-6)
    grey = read_bands(str(tmp_path / "grey16.png"))
    assert grey.dtype == np.uint16 and grey.shape == (9, 11, 1)
    np.testing.assert_array_equal(grey[..., 0], grey16)
    assert image_size(str(tmp_path / "bands.npy")) == (9, 11) == image_size(str(tmp_path / "planar.tif"))


def test_a_model_gets_its_bands_or_one_line_naming_the_file(tmp_path):
    four = np.zeros((5, 6, 4), np.uint8)
    np.save(tmp_path / "four.npy", four)
    Image.fromarray(np.zeros((5, 6), np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.zeros((5, 6, 4), np.uint8), mode="RGBA").save(tmp_path / "rgba.png")
    assert load_model_image(str(tmp_path / "four.npy"), FOUR_BANDS).shape == (5, 6, 4)
    with pytest.raises(DataError, match=r"rgba\.png: 3 bands .* the model takes 4"):
        load_model_image(str(tmp_path / "rgba.png"), FOUR_BANDS)  # alpha is not a band
    with pytest.raises(DataError, match=r"four\.npy: 4 bands .* the model takes 3"):
        load_model_image(str(tmp_path / "four.npy"), Preprocessing.torch())
    with pytest.raises(DataError, match=r"deep\.png: a I;16 \(16/32-bit\) image, but the model takes 8-bit RGB"):
        load_image(str(tmp_path / "deep.png"))
    grey8 = Preprocessing("RGB", 1.0, (0,), (1,), "uint8")
    with pytest.raises(DataError, match=r"deep\.png: 16-bit values, but the model description says 8-bit images"):
        load_model_image(str(tmp_path / "deep.png"), grey8)
    floats = Preprocessing("RGB", 1.0, (0,), (1,), "float32")
    assert load_model_image(str(tmp_path / "deep.png"), floats).dtype == np.float32
    assert checked_bands(np.zeros((2, 2), np.uint8), grey8, "array").shape == (2, 2, 1)


def test_descriptions_of_bands_round_trip_and_refuse_nonsense(tmp_path):
    description = default_description("lw-refinenet-mobilenetv2", 2).replace(
        preprocessing=Preprocessing("RGB", 1.0, (10, 20, 30, 40), (1, 2, 3, 4), "uint16"))
    description.save(str(tmp_path))
    loaded = ModelDescription.from_dict(description.to_dict())
    assert loaded.preprocessing.channels == 4 and loaded.preprocessing.input_dtype == "uint16"
    assert not loaded.preprocessing.is_rgb
    assert "input_dtype" not in default_description("lw-refinenet-mobilenetv2", 2).to_dict()["preprocessing"]
    with pytest.raises(DescriptionError, match="BGR needs 3 bands"):
        Preprocessing("BGR", 1.0, (1, 2, 3, 4), (1, 1, 1, 1))
    with pytest.raises(DescriptionError, match="std must have 4 values"):
        Preprocessing("RGB", 1.0, (1, 2, 3, 4), (1, 1, 1))


def test_band_statistics_are_each_bands_mean_and_spread(tmp_path):
    rng = np.random.default_rng(1)
    arrays = [rng.normal((5, 50, 500), (1, 10, 100), (20, 30, 3)).astype(np.float32) for _ in range(3)]
    paths = []
    for index, array in enumerate(arrays):
        paths.append(str(tmp_path / f"{index}.npy"))
        np.save(paths[-1], array)
    measuring = Preprocessing("RGB", 1.0, (0, 0, 0), (1, 1, 1), "float32")
    mean, std = band_statistics(paths, measuring)
    pixels = np.concatenate([array.reshape(-1, 3) for array in arrays]).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-5)
    fitted = fit_input_bands(default_description("lw-refinenet-mobilenetv2", 2), paths, "train.txt")
    assert fitted.preprocessing.input_dtype == "float32" and fitted.preprocessing.channel_order == "RGB"
    np.testing.assert_allclose(fitted.preprocessing.mean, mean)
    rgb_png = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(rgb_png)
    rgb = default_description("lw-refinenet-mobilenetv2", 2)
    assert fit_input_bands(rgb, [str(rgb_png)], "train.txt") is rgb  # 8-bit RGB keeps the RGB model
    with pytest.raises(DataError, match=r"0\.npy: 3 bands, but the model takes 4"):
        fit_input_bands(rgb.replace(preprocessing=FOUR_BANDS), paths, "train.txt")


def test_display_rgb_stretches_other_bands_and_keeps_rgb():
    rgb = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    assert display_rgb(rgb) is rgb
    grey16 = np.linspace(0, 60000, 100, dtype=np.float32).reshape(10, 10, 1).astype(np.uint16)
    picture = display_rgb(grey16)
    assert picture.dtype == np.uint8 and picture.shape == (10, 10, 3)
    assert picture[0, 0, 0] == 0 and picture[-1, -1, 0] == 255
    np.testing.assert_array_equal(picture[..., 0], picture[..., 2])


def test_adapted_kernels_keep_rgb_and_start_new_bands_from_their_mean():
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(3, 3, 3, 5))
    torch_like = Preprocessing.torch()  # normalised by ImageNet's spread: its filters need no rescaling
    four = adapt_input_kernel(kernel, torch_like, 4)
    np.testing.assert_allclose(four[:, :, :3], kernel, rtol=1e-6)
    np.testing.assert_allclose(four[:, :, 3], kernel.mean(axis=2), rtol=1e-5)
    grey = adapt_input_kernel(kernel, torch_like, 1)
    np.testing.assert_allclose(grey[:, :, 0], kernel.sum(axis=2), rtol=1e-5)
    deeplab = adapt_input_kernel(kernel, Preprocessing.deeplab(), 3)  # BGR, in pixel units
    spread = np.asarray(IMAGENET_STD_RGB) * 255
    np.testing.assert_allclose(deeplab, kernel[:, :, ::-1] * spread[None, None, :, None], rtol=1e-5)
    assert is_rgb_input_kernel([7, 7, 3, 64], [7, 7, 4, 64]) and is_rgb_input_kernel([7, 7, 3, 64], [7, 7, 3, 64])
    assert not is_rgb_input_kernel([1, 1, 64, 256], [1, 1, 32, 256])
    assert not is_rgb_input_kernel([7, 7, 3, 64], [3, 3, 4, 64])
