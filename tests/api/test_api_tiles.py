"""RefineNet.deploy and RefineNet.eval with tile= and tile_overlap= on a briefly trained toy model."""

from __future__ import annotations

import numpy as np
import pytest

from refinenet_tf import RefineNet
from refinenet_tf.errors import ConfigError
from tests.support.toy_data import render, write_dataset


@pytest.fixture(scope="module")
def model(toy_model):
    with RefineNet(model_type="lightweight", backbone="mobilenetv2", model=toy_model, threads=2) as model:
        yield model


def test_deploy_in_tiles_agrees_with_the_whole_image(model):
    image = render(np.random.default_rng(21), (160, 224))[0]
    whole = model.deploy(image=image)
    tiled = model.deploy(image=image, tile=(64, 96), tile_overlap=0.5)
    assert tiled.shape == whole.shape and tiled.dtype == np.int32
    assert np.mean(tiled == whole) >= 0.98
    np.testing.assert_array_equal(model.deploy(image=image, tile="auto"), whole)  # small: predicted whole


def test_eval_in_tiles_scores_like_the_whole_images(model, tmp_path):
    data = write_dataset(tmp_path / "data", count=3, size=(96, 128), seed=4)
    whole = model.eval(dataset=data)
    tiled = model.eval(dataset=data, tile=(64, 64))
    assert tiled["metadata"]["tile"] == [64, 64] and tiled["metadata"]["tile_overlap"] == 0.25
    assert abs(tiled["mean_iou"] - whole["mean_iou"]) < 0.03


@pytest.mark.parametrize("settings, message", [({"tile": (48, 64)}, "tile 48,64 must be a multiple of 32"),
                                               ({"tile": (64, 64), "tile_overlap": 1.0}, "tile_overlap must be")])
def test_bad_tiles_name_the_argument(model, settings, message):
    with pytest.raises(ConfigError, match=message):
        model.deploy(image=np.zeros((64, 64, 3), np.uint8), **settings)
