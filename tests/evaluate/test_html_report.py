"""The HTML evaluation report: every section, the numbers of results.json, the galleries' order, the folder rules."""

from __future__ import annotations

import io
import json
import os
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_tf import __version__
from refinenet_tf.cli import evaluate as evaluate_command
from refinenet_tf.cli.common import run
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.evaluator import evaluate, evaluation_results
from refinenet_tf.evaluate.gallery import ERROR_COLOURS
from refinenet_tf.evaluate.html_report import MARKER, PICTURES, check_report, write_report
from refinenet_tf.palette import colourise
from refinenet_tf.predict.crf import CRFParams
from refinenet_tf.predict.graph import SINGLE_SCALE
from refinenet_tf.predict.predictor import description_for_checkpoint
from tests.support.model_factory import NUM_CLASSES, write_dataset

IMAGES = 7
SHOWN = 2
SECTIONS = {"run", "scores", "classes", "confusion", "gallery", "worst", "best", "results-link"}
SUMMARY_KEYS = ("mean_iou", "pixel_accuracy", "mean_class_accuracy", "frequency_weighted_iou")


class Page(HTMLParser):
    """What a test reads from index.html: ids, score cells, header rows, pictures, gallery rows, links."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids, self.cells, self.header, self.pictures, self.rows, self.links = set(), [], {}, [], [], {}
        self._open: tuple[str, dict] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.pictures.append(attrs["src"])
        if tag == "a":
            self.links[attrs.get("id")] = attrs["href"]
        if tag == "figure" and "row" in attrs.get("class", ""):
            self.rows.append(attrs)
        if tag in ("td", "dd") and "data-key" in attrs:
            self._open, self._text = (tag, attrs), []

    def handle_data(self, data):
        if self._open:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._open and tag == self._open[0]:
            kind, attrs = self._open
            text = "".join(self._text).strip()
            if kind == "td":
                self.cells.append((attrs["data-branch"], attrs["data-key"], attrs["data-value"], text))
            else:
                self.header[attrs["data-key"]] = text
            self._open = None


def _read(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _value(scores: dict, key: str):
    if key.startswith("classes."):
        _, index, name = key.split(".")
        return scores["classes"][int(index)][name]
    return scores[key]


@pytest.fixture(scope="module")
def evaluated(module_tmp, tiny_checkpoints):
    """One evaluation of the random checkpoint on 7 generated images, predictions saved."""
    root = module_tmp("report")
    checkpoint, _ = tiny_checkpoints
    data_dir = str(root / "data")
    list_path = write_dataset(data_dir, count=IMAGES)
    samples = read_list_file(data_dir, list_path)
    description = description_for_checkpoint(checkpoint)
    result = evaluate(checkpoint, samples, description, SINGLE_SCALE, save_dir=str(root / "predictions"),
                      report_images=SHOWN, progress_stream=io.StringIO())
    return {"root": root, "checkpoint": checkpoint, "samples": samples, "description": description,
            "result": result, "results": evaluation_results(result, description, SINGLE_SCALE, list_path),
            "list": list_path, "data_dir": data_dir}


def test_the_report_has_every_section_and_the_numbers_of_results_json(evaluated, tmp_path):
    folder = tmp_path / "report"
    index = write_report(str(folder), evaluated["results"], evaluated["description"], evaluated["result"].gallery)
    assert index == str(folder / "index.html")
    page = Page(Path(index).read_text(encoding="utf-8"))
    assert SECTIONS <= page.ids
    saved = json.loads((folder / "results.json").read_text())
    assert saved == json.loads(json.dumps(evaluated["results"]))
    assert page.links["results-link"] == "results.json"
    keys = {key for _, key, _, _ in page.cells}
    assert set(SUMMARY_KEYS) <= keys
    assert {f"classes.{index}.{name}" for index in range(NUM_CLASSES) for name in ("iou", "accuracy")} <= keys
    for branch, key, value, text in page.cells:
        expected = _value(saved, key)
        assert branch == "plain"
        assert (None if value == "null" else float(value)) == expected, key
        assert text == ("n/a" if expected is None else f"{100 * expected:.2f}"), key
    assert page.header["checkpoint"] == evaluated["checkpoint"] + "/model.ckpt-1"
    assert page.header["data list"] == evaluated["list"]
    assert page.header["images"] == f"{IMAGES} evaluated"
    assert page.header["refinenet-tf"] == __version__ and page.header["flip"] == "no"
    assert page.header["architecture"].startswith("lw-refinenet-mobilenetv2")
    assert page.header["classes"].replace(" ", "") == "3:backgrounddiscbox"
    pictures = {Path(src).name for src in page.pictures}
    assert {"classes-plain.png", "confusion-plain.png"} <= pictures
    assert len(pictures) == 2 + 2 * SHOWN * 4
    for src in page.pictures:  # every picture is a file beside the page and decodes
        with Image.open(folder / src) as image:
            assert image.format == "PNG" and image.width > 0
    # a web server publishing the folder can read the page and results.json as it reads the pictures
    modes = {path.stat().st_mode & 0o777 for path in folder.rglob("*") if path.is_file()}
    assert modes == {0o666 & ~_current_umask()}
    # offline: no script, no remote resource
    text = Path(index).read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _independent_mean_iou(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Mean over classes present in truth or prediction of TP / (TP + FP + FN), labels 0..2 only."""
    counted = truth < NUM_CLASSES
    ious = []
    for cls in range(NUM_CLASSES):
        in_truth, in_prediction = (truth == cls) & counted, (predicted == cls) & counted
        union = np.sum(in_truth | in_prediction)
        if union:
            ious.append(np.sum(in_truth & in_prediction) / union)
    return float(np.mean(ious))


def test_the_galleries_are_the_worst_and_best_images_by_their_own_mean_iou(evaluated, tmp_path):
    folder = tmp_path / "report"
    write_report(str(folder), evaluated["results"], evaluated["description"], evaluated["result"].gallery)
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    scores = {}
    for sample in evaluated["samples"]:
        stem = Path(sample.image_path).stem
        scores[sample.image_path] = _independent_mean_iou(_read(sample.mask_path),
                                                          _read(evaluated["root"] / "predictions" / f"{stem}.png"))
    ranked = sorted(scores, key=scores.get)
    assert len(set(scores.values())) == IMAGES  # no tie decides the order here
    worst = [row for row in page.rows if "worst" in row["class"]]
    best = [row for row in page.rows if "best" in row["class"]]
    assert [row["data-path"] for row in worst] == ranked[:SHOWN]
    assert [row["data-path"] for row in best] == ranked[::-1][:SHOWN]
    for row in worst + best:
        assert float(row["data-mean-iou"]) == pytest.approx(scores[row["data-path"]], abs=1e-12)
    # the worst image's four panels: the image, its truth and prediction in the palette, and the error map
    path = ranked[0]
    truth = _read(next(s.mask_path for s in evaluated["samples"] if s.image_path == path))
    predicted = _read(evaluated["root"] / "predictions" / f"{Path(path).stem}.png")
    palette = evaluated["description"].palette()
    pictures = folder / PICTURES
    np.testing.assert_array_equal(_read(pictures / "worst-01-image.png"), _read(path))
    np.testing.assert_array_equal(_read(pictures / "worst-01-truth.png"), colourise(truth, palette))
    np.testing.assert_array_equal(_read(pictures / "worst-01-prediction.png"), colourise(predicted, palette))
    errors = _read(pictures / "worst-01-errors.png")
    np.testing.assert_array_equal(errors[truth == 255], np.broadcast_to(ERROR_COLOURS["not scored"], (3 * 45, 3)))
    wrong = (truth != predicted) & (truth < NUM_CLASSES)
    assert np.all(errors[wrong] == ERROR_COLOURS["wrong"]) and np.all(errors[~wrong & (truth < 3)] == ERROR_COLOURS["correct"])


def test_a_crf_evaluation_shows_plain_and_crf_scores_side_by_side(evaluated, tmp_path):
    pytest.importorskip("pydensecrf", reason="the CRF needs pydensecrf2")
    crf = CRFParams(iterations=2)
    samples = evaluated["samples"][:3]
    result = evaluate(evaluated["checkpoint"], samples, evaluated["description"], SINGLE_SCALE, crf=crf,
                      report_images=1, progress_stream=io.StringIO())
    results = evaluation_results(result, evaluated["description"], SINGLE_SCALE, evaluated["list"], crf)
    folder = tmp_path / "report"
    write_report(str(folder), results, evaluated["description"], result.gallery)
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    branches = {branch for branch, _, _, _ in page.cells}
    assert branches == {"plain", "crf"}
    for branch, key, value, _ in page.cells:
        assert (None if value == "null" else float(value)) == _value(results[branch], key), (branch, key)
    assert page.header["CRF"].startswith("dense CRF: iterations 2")
    assert {"classes-crf.png", "confusion-crf.png", "classes-plain.png"} <= {Path(src).name for src in page.pictures}


def test_the_report_writes_only_its_own_files_into_a_used_folder(evaluated, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "photo.png").write_bytes(b"not really a png")
    write_report(str(folder), evaluated["results"], evaluated["description"], evaluated["result"].gallery)
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "photo.png").read_bytes() == b"not really a png"
    assert sorted(os.listdir(folder)) == ["index.html", "notes.txt", "photo.png", PICTURES, "results.json"]
    # a second report replaces its own pictures (no gallery now: the old ones go) and keeps anything else
    (folder / PICTURES / "kept.txt").write_text("also mine")
    write_report(str(folder), evaluated["results"], evaluated["description"], None)
    assert sorted(os.listdir(folder / PICTURES)) == ["classes-plain.png", "confusion-plain.png", "kept.txt"]
    assert "notes.txt" in os.listdir(folder)


@pytest.mark.parametrize("existing, message", [
    ("index.html", "index.html exists and is not a refinenet-tf report"),
    (PICTURES, f"{PICTURES} exists but the folder holds no report"),
    ("results.json", "results.json exists but the folder holds no report"),
])
def test_a_folder_holding_files_the_report_would_overwrite_is_refused(evaluated, tmp_path, existing, message):
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / existing).write_text("someone else's")
    before = sorted(os.listdir(folder))
    with pytest.raises(ConfigError, match=message) as error:
        write_report(str(folder), evaluated["results"], evaluated["description"], evaluated["result"].gallery)
    assert "\n" not in str(error.value) and "report" in str(error.value)
    assert sorted(os.listdir(folder)) == before and (folder / existing).read_text() == "someone else's"


def test_a_linked_results_file_is_referred_to_relative_to_the_report(evaluated, tmp_path):
    results_file = tmp_path / "scores" / "out.json"
    results_file.parent.mkdir()
    results_file.write_text("{}")
    folder = tmp_path / "site" / "report"
    (folder).mkdir(parents=True)
    (folder / "results.json").write_text("an unrelated file the report must not overwrite")
    write_report(str(folder), evaluated["results"], evaluated["description"], None, results_file=str(results_file))
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    assert page.links["results-link"] == "../../scores/out.json"
    assert (folder / "results.json").read_text().startswith("an unrelated file")
    assert MARKER in (folder / "index.html").read_text()


def test_without_matplotlib_the_command_stops_in_one_line_before_evaluating(evaluated, tmp_path, monkeypatch,
                                                                              capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ConfigError, match=r'pip install "refinenet_tf\[report\]"'):
        check_report(str(tmp_path / "report"))
    status = run(evaluate_command.main, ["--data-dir", evaluated["data_dir"], "--data-list", evaluated["list"],
                                         "--restore-from", evaluated["checkpoint"], "--report", str(tmp_path / "r")])
    captured = capsys.readouterr()
    assert status == 2 and captured.out == ""
    assert captured.err.strip() == ('error: the HTML report draws its charts with matplotlib, which is not installed: '
                                    'pip install "refinenet_tf[report]"')
    assert not (tmp_path / "r").exists()


def test_a_negative_image_count_names_the_flag(evaluated, tmp_path, capsys):
    status = run(evaluate_command.main, ["--data-dir", evaluated["data_dir"], "--data-list", evaluated["list"],
                                         "--restore-from", evaluated["checkpoint"], "--report", str(tmp_path / "r"),
                                         "--report-images", "-1"])
    assert status == 2
    assert capsys.readouterr().err.strip() == "error: --report-images must not be negative, got -1"


def test_evaluate_py_writes_the_report_linking_its_output(evaluated, tmp_path, capsys):
    output = tmp_path / "scores" / "results.json"
    status = run(evaluate_command.main_single_scale,
                 ["--data-dir", evaluated["data_dir"], "--data-list", evaluated["list"], "--restore-from",
                  evaluated["checkpoint"], "--output", str(output), "--report", str(tmp_path / "report"),
                  "--report-images", "1"])
    assert status == 0, capsys.readouterr().err
    page = Page((tmp_path / "report" / "index.html").read_text(encoding="utf-8"))
    assert page.links["results-link"] == "../scores/results.json"
    assert not (tmp_path / "report" / "results.json").exists()
    saved = json.loads(output.read_text())
    assert [(key, float(value)) for _, key, value, _ in page.cells if key == "mean_iou"] == [("mean_iou",
                                                                                           saved["mean_iou"])]
    assert len([row for row in page.rows if "worst" in row["class"]]) == 1
