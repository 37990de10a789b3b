"""inference.py and evaluate_msc.py with --tile, --tile-overlap, --save-probabilities and --batch-size, in process;
bad values are one error line naming the flag."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import evaluate, infer
from refinenet_tf.cli.common import run
from refinenet_tf.predict.crf import CRFParams
from tests.support.model_factory import CLASS_NAMES, NUM_CLASSES, write_dataset


@pytest.fixture(scope="module")
def setup(module_tmp, tiny_checkpoints):
    root = module_tmp("tile_flags")
    random_checkpoint, _ = tiny_checkpoints
    data_dir = str(root / "data")
    return random_checkpoint, data_dir, write_dataset(data_dir, size=(70, 90))


def _one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def test_inference_tiles_batches_and_saves_probabilities(setup, tmp_path, capsys):
    checkpoint, data_dir, _ = setup
    out = tmp_path / "out"
    status = run(infer.main, [os.path.join(data_dir, "img"), checkpoint, "--save-dir", str(out), "--tile", "32,64",
                              "--tile-overlap", "0.5", "--batch-size", "4", "--save-probabilities",
                              "--probability-format", "png", "--flip", "--scales", "1.0,0.5"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "(tiled)" in captured.out and re.search(r"3 images in [\d.]+ s \([\d.]+ images/s\)", captured.out)
    for index in range(3):
        labels = np.asarray(Image.open(out / f"im{index}.png"))
        assert labels.shape == (70, 90) and labels.max() < NUM_CLASSES
        levels = np.stack([np.asarray(Image.open(out / f"im{index}_prob_{name}.png")) for name in CLASS_NAMES], -1)
        assert levels.shape == (70, 90, NUM_CLASSES)
        assert np.abs(levels.astype(int).sum(axis=-1) - 255).max() <= NUM_CLASSES
        assert np.mean(levels.argmax(axis=-1) == labels) > 0.99


def test_inference_saves_float16_probabilities_of_whole_images(setup, tmp_path, capsys):
    checkpoint, data_dir, _ = setup
    assert run(infer.main, [os.path.join(data_dir, "img", "im1.png"), checkpoint, "--save-dir", str(tmp_path),
                            "--save-probabilities", "--batch-size", "2"]) == 0, capsys.readouterr().err
    probabilities = np.load(tmp_path / "im1_prob.npy")
    assert probabilities.dtype == np.float16 and probabilities.shape == (70, 90, NUM_CLASSES)
    np.testing.assert_allclose(probabilities.astype(np.float32).sum(axis=-1), 1, atol=5e-3)
    assert np.mean(probabilities.argmax(axis=-1) == np.asarray(Image.open(tmp_path / "im1.png"))) > 0.99


def test_inference_with_a_crf_saves_the_probabilities_its_mask_comes_from(setup, tmp_path, capsys):
    pytest.importorskip("pydensecrf", reason="the CRF needs pydensecrf2")
    checkpoint, data_dir, _ = setup
    image = os.path.join(data_dir, "img", "im2.png")
    for name, extra in (("plain", []), ("crf", ["--crf", "--crf-iterations", "3"])):
        assert run(infer.main, [image, checkpoint, "--save-dir", str(tmp_path / name), "--save-probabilities",
                                *extra]) == 0, capsys.readouterr().err
    plain, refined = (np.load(tmp_path / name / "im2_prob.npy").astype(np.float32) for name in ("plain", "crf"))
    assert np.abs(refined - plain).mean() > 0.01  # the CRF's marginals, not the network's softmax
    np.testing.assert_allclose(refined.sum(axis=-1), 1, atol=5e-3)
    assert np.mean(refined.argmax(axis=-1) == np.asarray(Image.open(tmp_path / "crf" / "im2.png"))) > 0.99


def test_evaluate_with_tiles_scores_every_image(setup, tmp_path, capsys):
    checkpoint, data_dir, data_list = setup
    output = tmp_path / "results.json"
    assert run(evaluate.main, ["--data-dir", data_dir, "--data-list", data_list, "--restore-from", checkpoint,
                               "--scales", "1.0", "--tile", "64,64", "--output", str(output)]) == 0, \
        capsys.readouterr().err
    results = json.loads(output.read_text())
    assert results["metadata"]["images"] == 3 and results["metadata"]["tile"] == [64, 64]


def test_evaluate_with_crf_and_tiles_runs_the_crf_in_bands(setup, tmp_path, capsys):
    pytest.importorskip("pydensecrf.densecrf")
    checkpoint, data_dir, data_list = setup
    from refinenet_tf.cli import evaluate_crf

    output = tmp_path / "results.json"
    assert run(evaluate_crf.main, ["--data-dir", data_dir, "--data-list", data_list, "--restore-from", checkpoint,
                                   "--scales", "1.0", "--tile", "auto", "--crf-iterations", "2",
                                   "--output", str(output)]) == 0, capsys.readouterr().err
    results = json.loads(output.read_text())
    assert set(results) == {"plain", "crf", "metadata"} and results["metadata"]["tile"] == "auto"
    assert results["metadata"]["crf"]["iterations"] == CRFParams(iterations=2).iterations


@pytest.mark.parametrize("flags, message", [
    (["--tile", "16,16"], r"^error: --tile 16,16 is too small"),
    (["--tile", "64,100"], r"^error: --tile 64,100 must be a multiple of 32"),
    (["--tile", "64,64", "--tile-overlap", "1"], r"^error: --tile-overlap must be at least 0 and below 1"),
    (["--tile-overlap", "-0.2"], r"^error: --tile-overlap must be at least 0 and below 1"),
    (["--batch-size", "0"], r"^error: --batch-size must be at least 1"),
])
def test_bad_tile_and_batch_settings_are_one_error_line(setup, capsys, flags, message):
    checkpoint, data_dir, _ = setup
    assert run(infer.main, [os.path.join(data_dir, "img"), checkpoint, *flags]) == 2
    assert re.search(message, _one_error_line(capsys.readouterr().err))
