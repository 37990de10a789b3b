"""``python -m refinenet_tf demo --quick``: every artefact exists, has the right content, and the scores add up."""

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import main as cli_main
from refinenet_tf.data.class_table import read_class_table
from refinenet_tf.data.synthetic import SYNTHETIC_CLASSES
from refinenet_tf.demo import CAPTION_HEIGHT, COLUMNS, MARGIN, PANEL_SIDE, DemoPaths
from tests.support.browser import inspect_page, screenshot

pytestmark = pytest.mark.slow  # the demo, end to end

QUICK_VAL_IMAGES = 5
QUICK_TRAIN_IMAGES = 8
QUICK_ROWS = 3


@pytest.fixture(scope="module")
def demo_run(module_tmp):
    """One quick demo through the command line: (paths, stdout, published picture)."""
    root = module_tmp("demo")
    published = root / "docs" / "picture.png"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = cli_main(["demo", "--quick", "--output-dir", str(root / "out"), "--threads", "2",
                           "--publish-picture", str(published)])
    assert status == 0, stdout.getvalue()
    return DemoPaths(str(root / "out")), stdout.getvalue(), published


def _read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _validation_stems(paths: DemoPaths) -> list[str]:
    lines = Path(paths.lists, "synthetic", "val.txt").read_text().splitlines()
    return [Path(line.split()[0]).stem for line in lines]


def test_lists_and_converted_masks_are_written_under_the_output_dir(demo_run):
    paths, _, _ = demo_run
    folder = Path(paths.lists, "synthetic")
    train = folder.joinpath("train.txt").read_text().splitlines()
    val = folder.joinpath("val.txt").read_text().splitlines()
    assert (len(train), len(val)) == (QUICK_TRAIN_IMAGES, QUICK_VAL_IMAGES)
    image, mask = val[0].split()
    assert Path(paths.data + image).is_file()
    index = _read_png(paths.data + mask)
    assert index.ndim == 2 and index.max() < SYNTHETIC_CLASSES.num_classes
    assert read_class_table(str(folder / "class_dict.csv")) == SYNTHETIC_CLASSES


def test_results_json_miou_equals_a_recount_of_the_saved_predictions(demo_run):
    paths, stdout, _ = demo_run
    results = json.loads(Path(paths.results).read_text())
    classes = SYNTHETIC_CLASSES.num_classes
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for stem in _validation_stems(paths):
        truth = _read_png(Path(paths.index_masks, "validation", stem + ".png")).astype(np.int64)
        predicted = _read_png(Path(paths.predictions, stem + ".png")).astype(np.int64)
        assert predicted.shape == truth.shape
        matrix += np.bincount(truth.ravel() * classes + predicted.ravel(), minlength=classes**2).reshape(classes, classes)
    union = matrix.sum(0) + matrix.sum(1) - np.diag(matrix)
    present = union > 0
    expected_miou = np.mean(np.diag(matrix)[present] / union[present])
    assert results["confusion_matrix"] == matrix.tolist()
    assert results["mean_iou"] == pytest.approx(expected_miou)
    assert results["pixel_accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert [c["name"] for c in results["classes"]] == list(SYNTHETIC_CLASSES.names)
    assert results["metadata"]["val_images"] == QUICK_VAL_IMAGES
    assert f"held-out mIoU: {100 * expected_miou:.2f}%" in stdout
    assert "bar" in stdout and paths.comparison in stdout


def test_coloured_predictions_use_the_data_set_colours(demo_run):
    paths, _, _ = demo_run
    colours = np.asarray(SYNTHETIC_CLASSES.colours, dtype=np.uint8)
    for stem in _validation_stems(paths):
        index = _read_png(Path(paths.predictions, stem + ".png"))
        coloured = _read_png(Path(paths.predictions, stem + "_colour.png"))
        np.testing.assert_array_equal(coloured, colours[index])


def test_comparison_picture_shows_image_truth_and_prediction_per_row(demo_run):
    paths, _, published = demo_run
    picture = _read_png(paths.comparison)
    assert picture.shape[1] == MARGIN + len(COLUMNS) * (PANEL_SIDE + MARGIN)
    assert picture.shape[0] > QUICK_ROWS * (PANEL_SIDE + MARGIN)
    colours = np.asarray(SYNTHETIC_CLASSES.colours, dtype=np.uint8)
    stem = _validation_stems(paths)[0]
    image = Image.open(Path(paths.data, "validation", "images", stem + ".png")).convert("RGB")
    truth = _read_png(Path(paths.index_masks, "validation", stem + ".png"))
    predicted = _read_png(Path(paths.predictions, stem + ".png"))
    expected = [image, Image.fromarray(colours[truth]), Image.fromarray(colours[predicted])]
    top = CAPTION_HEIGHT + MARGIN
    for column, panel in enumerate(expected):
        left = MARGIN + column * (PANEL_SIDE + MARGIN)
        shown = picture[top:top + PANEL_SIDE, left:left + PANEL_SIDE]
        np.testing.assert_array_equal(shown, np.asarray(panel.resize((PANEL_SIDE, PANEL_SIDE), Image.NEAREST)))
    assert published.read_bytes() == Path(paths.comparison).read_bytes()


def test_the_report_opens_in_a_browser_with_every_section_and_picture(demo_run, tmp_path):
    paths, stdout, _ = demo_run
    index = Path(paths.report, "index.html")
    assert str(index) in stdout
    found = inspect_page(index, tmp_path)
    assert {"run", "scores", "classes", "confusion", "gallery", "worst", "best", "results-link"} <= set(found["ids"])
    # charts, then image | truth | prediction | errors for the 5 worst and 5 best of the 5 validation images
    assert len(found["images"]) == 2 + 2 * QUICK_VAL_IMAGES * 4
    assert [image["src"] for image in found["images"] if not image["loaded"]] == []
    assert found["scripts"] == 0 and "../results.json" in found["urls"]
    assert not [url for url in found["urls"] if "//" in url]  # nothing remote
    picture = screenshot(index, tmp_path)
    grey = picture.mean(axis=2)
    assert (grey < 245).mean() > 0.05 and grey.std() > 30, "the page rendered blank"
    for colour in SYNTHETIC_CLASSES.colours:  # every class colour is painted (legends, bars, thumbnails)
        assert np.all(picture == colour, axis=2).sum() >= 100, colour


def test_snapshot_description_carries_the_class_table(demo_run):
    paths, _, _ = demo_run
    description = json.loads(Path(paths.snapshots, "model.json").read_text())
    assert description["arch"] == "lw-refinenet-mobilenetv2"
    assert description["class_names"] == list(SYNTHETIC_CLASSES.names)
    assert description["colours"] == [list(c) for c in SYNTHETIC_CLASSES.colours]


def test_a_folder_from_other_settings_is_refused(demo_run, capsys):
    paths, _, _ = demo_run
    before = Path(paths.results).read_bytes()
    assert cli_main(["demo", "--quick", "--output-dir", paths.root, "--random-seed", "7"]) == 2
    assert "demo_settings.json: this folder holds a demo run with other settings" in capsys.readouterr().err
    assert Path(paths.results).read_bytes() == before


@pytest.mark.parametrize("flags, message", [(["--num-steps", "0"], "--num-steps"), (["--threads", "0"], "--threads")])
def test_bad_flags_give_a_one_line_error(tmp_path, capsys, flags, message):
    assert cli_main(["demo", "--quick", "--output-dir", str(tmp_path), *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and message in error and "\n" not in error
    assert not any(tmp_path.iterdir())


def test_without_matplotlib_the_demo_says_so_and_writes_no_report(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert cli_main(["demo", "--quick", "--num-steps", "1", "--output-dir", str(tmp_path), "--threads", "2"]) == 0
    assert 'no HTML report without matplotlib: pip install "refinenet_tf[report]"' in caplog.messages
    paths = DemoPaths(str(tmp_path))
    assert Path(paths.results).is_file() and not Path(paths.report).exists()
