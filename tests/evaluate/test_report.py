"""Text tables, JSON results and the progress line."""

import json
import os

import numpy as np
import pytest

from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.metrics import ConfusionMatrix, InstanceStats
from refinenet_tf.evaluate.report import (
    format_comparison,
    format_results,
    results_dict,
    write_results_json,
)

NAMES = ["background", "person", "car", "boat"]


def hand_scores(with_instances: bool = False):
    """Class IoU 1/3, 2/3, 0, n/a; accuracy (recall) 1/2, 1, 0, n/a; precision 1/2, 2/3, n/a, n/a; F1 1/2, 4/5, 0,
    n/a; pixel accuracy 3/5 (see test_metrics)."""
    labels = np.array([[0, 0, 1], [1, 2, 255]])
    predictions = np.array([[0, 1, 1], [1, 0, 2]])
    confusion = ConfusionMatrix(4)
    confusion.update(labels, predictions)
    if not with_instances:
        return confusion.scores()
    instances = InstanceStats(4, thing_classes=[1])
    instances.update(labels, predictions, np.array([[0, 0, 1], [1, 0, 0]]))
    return confusion.scores(instances)


def table_row(text: str, name: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(name + " ")]
    return line[len(name):].split()


def test_results_table_lists_classes_and_summary():
    text = format_results(hand_scores(), NAMES)
    assert text.splitlines()[0].split() == ["class", "(%)", "IoU", "accuracy", "precision", "F1"]
    assert table_row(text, "background") == ["33.33", "50.00", "50.00", "50.00"]
    assert table_row(text, "person") == ["66.67", "100.00", "66.67", "80.00"]
    assert table_row(text, "car") == ["0.00", "0.00", "n/a", "0.00"]  # never predicted: no precision, F1 0
    assert table_row(text, "boat") == ["n/a", "n/a", "n/a", "n/a"]
    assert table_row(text, "mean IoU") == ["33.33"]
    assert table_row(text, "pixel accuracy") == ["60.00"]
    assert table_row(text, "mean class accuracy") == ["50.00"]
    assert table_row(text, "mean precision") == ["58.33"]
    assert table_row(text, "mean F1 (Dice)") == ["43.33"]
    assert table_row(text, "frequency-weighted IoU") == ["40.00"]
    assert "nIoU" not in text


def test_results_table_with_niou_and_default_names():
    text = format_results(hand_scores(with_instances=True))
    # person: one instance of 2 pixels (weight 1), both right, one false positive -> nIoU 2/3
    assert table_row(text, "class_1") == ["66.67", "100.00", "66.67", "80.00", "66.67"]
    assert table_row(text, "class_0") == ["33.33", "50.00", "50.00", "50.00", "n/a"]
    assert table_row(text, "mean nIoU") == ["66.67"]


def test_comparison_table():
    plain = hand_scores()
    better = ConfusionMatrix(4)
    better.update(np.array([[0, 0, 1], [1, 2, 255]]), np.array([[0, 0, 1], [1, 0, 2]]))
    text = format_comparison(plain, better.scores(), NAMES)
    # background IoU goes from 1/3 to 2/3 (TP 2, union 3)
    assert table_row(text, "background") == ["33.33", "66.67", "+33.33"]
    assert table_row(text, "boat") == ["n/a", "n/a", "n/a"]
    assert table_row(text, "pixel accuracy") == ["60.00", "80.00", "+20.00"]


def test_class_name_count_must_match():
    with pytest.raises(ConfigError, match="3 class names given for 4 classes"):
        format_results(hand_scores(), NAMES[:3])


def test_results_json_round_trip(tmp_path):
    scores = hand_scores(with_instances=True)
    path = tmp_path / "out" / "results.json"
    write_results_json(str(path), results_dict(scores, NAMES, metadata={"images": 1}))
    loaded = json.loads(path.read_text())
    assert loaded["confusion_matrix"] == scores.confusion.tolist()
    assert loaded["classes"][3] == {"index": 3, "name": "boat", "iou": None, "accuracy": None, "precision": None,
                                    "f1": None, "niou": None}
    assert loaded["classes"][1]["precision"] == pytest.approx(2 / 3) and loaded["classes"][1]["f1"] == pytest.approx(0.8)
    assert loaded["mean_precision"] == pytest.approx(7 / 12) and loaded["mean_f1"] == pytest.approx(13 / 30)
    assert loaded["classes"][1]["iou"] == pytest.approx(2 / 3)
    assert loaded["mean_iou"] == pytest.approx(1 / 3)
    assert loaded["mean_niou"] == pytest.approx(2 / 3)
    assert loaded["metadata"] == {"images": 1}
    assert os.listdir(path.parent) == ["results.json"]  # no temporary file left behind


def test_results_json_unwritable_path(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="file.txt"):
        write_results_json(str(blocker / "results.json"), {"mean_iou": 0.5})
