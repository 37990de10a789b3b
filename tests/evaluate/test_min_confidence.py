"""Evaluation with a minimum confidence: unknown pixels are misses of their class, and the scores add the coverage
and the accuracy on covered pixels, in results.json, the printed table and the HTML report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.cli import evaluate as evaluate_command
from refinenet_tf.cli.common import run
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from refinenet_tf.evaluate.evaluator import evaluate, evaluation_results
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.evaluate.report import format_results, results_dict
from refinenet_tf.palette import VOID_COLOUR
from refinenet_tf.predict.crf import CRFParams
from refinenet_tf.predict.decision import LabelRule
from refinenet_tf.predict.graph import SINGLE_SCALE
from refinenet_tf.predict.predictor import description_for_checkpoint
from tests.evaluate.test_html_report import Page

UNKNOWN = 255
LABELS = np.array([0, 0, 0, 1, 1, 2, UNKNOWN])
PREDICTIONS = np.array([0, UNKNOWN, 1, 1, UNKNOWN, 2, UNKNOWN])


def counted() -> ConfusionMatrix:
    confusion = ConfusionMatrix(3, unknown_label=UNKNOWN)
    confusion.update(LABELS, PREDICTIONS)
    return confusion


def test_unknown_pixels_are_misses_of_their_class_and_lower_the_coverage():
    confusion = counted()
    np.testing.assert_array_equal(confusion.matrix, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(confusion.unknown, [1, 1, 0])
    scores = confusion.scores()
    np.testing.assert_allclose(scores.class_iou, [1 / 3, 1 / 3, 1])  # class 0: 1 / (3 truth + 1 predicted - 1)
    np.testing.assert_allclose(scores.class_accuracy, [1 / 3, 1 / 2, 1])
    np.testing.assert_allclose(scores.class_precision, [1, 1 / 2, 1])  # an unknown pixel is no false positive
    assert scores.pixel_accuracy == pytest.approx(3 / 6)
    assert scores.coverage == pytest.approx(4 / 6) and scores.accuracy_covered == pytest.approx(3 / 4)
    both = counted() + counted()
    np.testing.assert_array_equal(both.unknown, [2, 2, 0])
    assert both.scores().coverage == pytest.approx(4 / 6)


def test_without_an_unknown_label_there_is_no_coverage_and_an_unknown_prediction_is_refused():
    confusion = ConfusionMatrix(3)
    confusion.update(LABELS[PREDICTIONS != UNKNOWN], PREDICTIONS[PREDICTIONS != UNKNOWN])
    assert confusion.scores().coverage is None and "coverage" not in results_dict(confusion.scores())
    with pytest.raises(DataError, match="prediction value 255 is outside the 3 classes"):
        confusion.update(LABELS, PREDICTIONS)


def test_results_and_the_table_report_the_coverage_beside_the_scores():
    scores = counted().scores()
    results = results_dict(scores, ["a", "b", "c"])
    assert results["coverage"] == pytest.approx(4 / 6) and results["accuracy_covered"] == pytest.approx(3 / 4)
    assert results["unknown_pixels"] == [1, 1, 0]
    lines = format_results(scores, ["a", "b", "c"]).splitlines()
    assert lines[-2].split() == ["coverage", "66.67"]
    assert lines[-1].split() == ["accuracy", "on", "covered", "75.00"]


# --- evaluating the toy model -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_set(toy_training):
    samples = read_list_file(toy_training.data_dir, toy_training.list_path)[:8]
    return toy_training.snapshots, samples, description_for_checkpoint(toy_training.snapshots)


@pytest.mark.parametrize("tile", [None, (64, 64)])
def test_coverage_is_full_at_zero_and_partial_at_a_high_minimum_confidence(toy_set, tile):
    checkpoint, samples, description = toy_set
    plain = evaluate(checkpoint, samples, description, threads=2, tile=tile)
    none = evaluate(checkpoint, samples, description, threads=2, tile=tile, rule=LabelRule(min_confidence=0))
    high = evaluate(checkpoint, samples, description, threads=2, tile=tile, rule=LabelRule(min_confidence=0.99))
    assert none.plain.coverage == 1.0 and none.plain.accuracy_covered == none.plain.pixel_accuracy
    np.testing.assert_array_equal(none.plain.confusion, plain.plain.confusion)
    assert plain.plain.coverage is None
    assert 0.5 < high.plain.coverage < 1
    assert high.plain.accuracy_covered >= plain.plain.pixel_accuracy >= high.plain.pixel_accuracy
    # the unknown pixels moved out of the matrix into the unknown counts, row by row
    np.testing.assert_array_equal(high.plain.confusion.sum(axis=1) + high.plain.class_unknown,
                                  plain.plain.confusion.sum(axis=1))
    assert all(high_iou <= iou for high_iou, iou in zip(high.plain.class_iou, plain.plain.class_iou, strict=True))
    results = evaluation_results(high, description, SINGLE_SCALE, "train.txt")
    assert results["metadata"]["min_confidence"] == 0.99 and "threshold" not in results["metadata"]
    assert math.isclose(results["coverage"], high.plain.coverage)


def test_the_crf_scores_count_unknown_pixels_too(toy_set):
    pytest.importorskip("pydensecrf", reason="the CRF needs pydensecrf2")
    checkpoint, samples, description = toy_set
    result = evaluate(checkpoint, samples[:3], description, threads=2, crf=CRFParams(),
                      rule=LabelRule(min_confidence=0.99))
    assert 0 < result.crf.coverage <= 1 and 0 < result.plain.coverage < 1
    assert result.crf.accuracy_covered >= result.crf.pixel_accuracy


def test_the_command_prints_and_saves_the_coverage_and_paints_unknown_pixels_void(toy_training, tmp_path, capsys):
    args = ["--data-dir", toy_training.data_dir, "--data-list", toy_training.list_path, "--num-steps", "4",
            "--restore-from", toy_training.snapshots, "--scales", "1.0", "--threads", "2", "--min-confidence", "0.99",
            "--output", str(tmp_path / "results.json"), "--save-dir", str(tmp_path / "masks"),
            "--report", str(tmp_path / "report"), "--report-images", "1"]
    assert run(evaluate_command.main, args) == 0
    table = capsys.readouterr().out
    results = json.loads((tmp_path / "results.json").read_text())
    assert ["coverage", f"{100 * results['coverage']:.2f}"] in [line.split() for line in table.splitlines()]
    assert 0 < results["coverage"] < 1 and results["accuracy_covered"] >= results["pixel_accuracy"]
    assert results["metadata"]["min_confidence"] == 0.99
    index = np.asarray(Image.open(tmp_path / "masks" / "000.png"))
    colours = np.asarray(Image.open(tmp_path / "masks" / "000_colour.png"))
    assert (index == UNKNOWN).any() and (colours[index == UNKNOWN] == VOID_COLOUR).all()
    page = Page(Path(tmp_path / "report" / "index.html").read_text(encoding="utf-8"))
    cells = {key: float(value) for _, key, value, _ in page.cells}
    assert cells["coverage"] == results["coverage"] and cells["accuracy_covered"] == results["accuracy_covered"]
    assert page.header["min_confidence"] == "0.99"


def test_a_threshold_on_a_three_class_model_stops_evaluation_in_one_line(toy_training, capsys):
    args = ["--data-dir", toy_training.data_dir, "--data-list", toy_training.list_path,
            "--restore-from", toy_training.snapshots, "--threshold", "0.4"]
    assert run(evaluate_command.main, args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --threshold applies to two-class models (background, foreground); this model has 3 classes "
        "(use --min-confidence for unsure pixels)")
