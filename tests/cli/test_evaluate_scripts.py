"""evaluate_msc.py, evaluate_msc_with_CRF.py and inference.py end to end on generated data."""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import evaluate, evaluate_crf, infer
from refinenet_tf.cli.common import run
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.palette import colourise
from tests.support.model_factory import CLASS_NAMES, NUM_CLASSES, write_dataset
from tests.support.scripts import run_script

pytestmark = pytest.mark.slow  # the evaluation and inference scripts end to end

@pytest.fixture(scope="module")
def setup(module_tmp, tiny_checkpoints):
    root = module_tmp("scripts")
    random_checkpoint, _ = tiny_checkpoints
    data_dir = str(root / "data")
    return random_checkpoint, data_dir, write_dataset(data_dir)


def _read(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr
    return errors[0]


def test_evaluate_msc_prints_the_table_and_writes_matching_results(setup, tmp_path):
    checkpoint, data_dir, data_list = setup
    output, save_dir = str(tmp_path / "results.json"), str(tmp_path / "pred")
    done = run_script("evaluate_msc.py", "--data-dir", data_dir, "--data-list", data_list, "--restore-from",
                   checkpoint, "--scales", "1.0,0.5", "--fusion", "mean", "--flip",
                   "--output", output, "--save-dir", save_dir, "--threads", "2", cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    for name in CLASS_NAMES + ["mean IoU", "pixel accuracy"]:
        assert name in done.stdout
    results = json.loads(open(output, encoding="utf-8").read())
    confusion = ConfusionMatrix(NUM_CLASSES)
    for index in range(3):
        confusion.update(_read(os.path.join(data_dir, "gt", f"im{index}.png")),
                         _read(os.path.join(save_dir, f"im{index}.png")))
    assert results["confusion_matrix"] == confusion.matrix.tolist()
    assert results["mean_iou"] == pytest.approx(confusion.mean_iou())
    assert [c["name"] for c in results["classes"]] == CLASS_NAMES
    assert results["metadata"]["scales"] == [1.0, 0.5] and results["metadata"]["flip"] is True
    assert f"{100 * confusion.mean_iou():.2f}" in done.stdout


def test_evaluate_with_crf_reports_plain_and_crf_scores(setup, tmp_path, capsys):
    checkpoint, data_dir, data_list = setup
    output = str(tmp_path / "crf.json")
    status = run(evaluate_crf.main, ["--data-dir", data_dir, "--data-list", data_list, "--restore-from", checkpoint,
                                     "--scales", "1.0", "--crf-iterations", "2", "--num-steps", "2",
                                     "--output", output])
    assert status == 0
    table = capsys.readouterr().out
    assert "plain" in table and "CRF" in table and "change" in table and "2 images evaluated" in table
    results = json.loads(open(output, encoding="utf-8").read())
    assert set(results) == {"plain", "crf", "metadata"}
    assert results["metadata"]["crf"]["iterations"] == 2
    pixels = 2 * (37 - 3) * 45
    assert np.sum(results["plain"]["confusion_matrix"]) == pixels == np.sum(results["crf"]["confusion_matrix"])


def test_missing_pydensecrf_is_one_clear_line(setup, monkeypatch, capsys):
    checkpoint, data_dir, data_list = setup
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    status = run(evaluate_crf.main, ["--data-dir", data_dir, "--data-list", data_list, "--restore-from", checkpoint])
    assert status == 2
    assert "pip install" in _one_error_line(capsys.readouterr().err)


def test_inference_needs_only_image_and_checkpoint(setup, tmp_path):
    checkpoint, data_dir, _ = setup
    image = os.path.join(data_dir, "img", "im0.png")
    done = run_script("inference.py", image, os.path.join(checkpoint, "model.ckpt-1"), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    labels = _read(str(tmp_path / "output" / "im0.png"))
    assert labels.shape == (37, 45) and labels.max() < NUM_CLASSES
    np.testing.assert_array_equal(_read(str(tmp_path / "output" / "im0_colour.png")), colourise(labels))
    assert _read(str(tmp_path / "output" / "im0_overlay.png")).shape == (37, 45, 3)


def test_inference_on_a_folder_saves_logits_per_image(setup, tmp_path, capsys):
    checkpoint, data_dir, _ = setup
    logits = str(tmp_path / "logits.npy")
    status = run(infer.main, [os.path.join(data_dir, "img"), checkpoint, "--save-dir", str(tmp_path / "out"),
                              "--save-logits", logits, "--flip", "--crf", "--crf-iterations", "1"])
    assert status == 0, capsys.readouterr().err
    for index in range(3):
        saved = np.load(str(tmp_path / f"logits_im{index}.npy"))
        assert saved.shape == (10, 12, NUM_CLASSES) and saved.dtype == np.float32
        assert os.path.isfile(tmp_path / "out" / f"im{index}_colour.png")


def test_missing_checkpoint_exits_2_with_one_line(setup, tmp_path):
    _, data_dir, data_list = setup
    done = run_script("evaluate_msc.py", "--data-dir", data_dir, "--data-list", data_list,
                   "--restore-from", str(tmp_path / "nothing"), cwd=str(tmp_path))
    assert done.returncode == 2
    assert "checkpoint not found" in _one_error_line(done.stderr)


@pytest.mark.parametrize("make_argv, message", [
    (lambda ck, data_dir, data_list, tmp: (evaluate.main, ["--data-dir", data_dir, "--data-list", data_list,
                                                           "--restore-from", ck, "--num-classes", "21"]),
     r"--num-classes 21 disagrees .*\(3\)"),
    (lambda ck, data_dir, data_list, tmp: (infer.main, [data_list.replace("val.txt", "gt/im0.png"), ck,
                                                        "--arch", "refinenet-resnet50"]),
     "--arch refinenet-resnet50 disagrees"),
    (lambda ck, data_dir, data_list, tmp: (infer.main, [tmp, ck]), "no images"),
    (lambda ck, data_dir, data_list, tmp: (infer.main, [os.path.join(data_dir, "broken.png"), ck]),
     "cannot decode the image"),
])
def test_bad_input_is_one_error_line(setup, tmp_path, capsys, make_argv, message):
    checkpoint, data_dir, data_list = setup
    with open(os.path.join(data_dir, "broken.png"), "wb") as handle:
        handle.write(b"\x89PNG truncated")
    main, argv = make_argv(checkpoint, data_dir, data_list, str(tmp_path))
    assert run(main, argv) == 2
    assert re.search(message, _one_error_line(capsys.readouterr().err))
