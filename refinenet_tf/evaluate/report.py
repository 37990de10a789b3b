"""Human-readable and JSON reports of evaluation scores, and a generic text progress bar."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.metrics import Scores
from refinenet_tf.files import write_text_atomically

NOT_AVAILABLE = "n/a"
NAME_WIDTH = 24
# The dataset-level scores in report order: (label, Scores attribute and results.json key); nIoU, coverage and the
# accuracy on covered pixels (with --min-confidence) may be absent.
SUMMARY_SCORES = (("mean IoU", "mean_iou"), ("pixel accuracy", "pixel_accuracy"),
                  ("mean class accuracy", "mean_class_accuracy"), ("mean precision", "mean_precision"),
                  ("mean F1 (Dice)", "mean_f1"), ("frequency-weighted IoU", "frequency_weighted_iou"),
                  ("mean nIoU", "mean_niou"), ("coverage", "coverage"), ("accuracy on covered", "accuracy_covered"))
# The per-class scores in report order: (column title, Scores attribute, results.json key); a class's accuracy
# is its recall. nIoU is added when it was computed.
CLASS_SCORES = (("IoU", "class_iou", "iou"), ("accuracy", "class_accuracy", "accuracy"),
                ("precision", "class_precision", "precision"), ("F1", "class_f1", "f1"))


def _names(scores: Scores, class_names: Sequence[str] | None) -> list[str]:
    if class_names is None:
        return [f"class_{i}" for i in range(scores.num_classes)]
    if len(class_names) != scores.num_classes:
        raise ConfigError(f"{len(class_names)} class names given for {scores.num_classes} classes")
    return list(class_names)


def percent(value: float | None) -> str:
    """A fraction as a percentage with two decimals, or n/a."""
    if value is None or math.isnan(value):
        return NOT_AVAILABLE
    return f"{100.0 * value:.2f}"


def change(before: float | None, after: float | None) -> str:
    """The signed difference of two fractions in percentage points, or n/a."""
    if before is None or after is None or math.isnan(before) or math.isnan(after):
        return NOT_AVAILABLE
    return f"{100.0 * (after - before):+.2f}"


def _row(cells: Sequence[str], width: int = 10) -> str:
    return f"{cells[0]:<{NAME_WIDTH}}" + "".join(f"{cell:>{width}}" for cell in cells[1:])


def _summary(scores: Scores) -> list[tuple[str, float]]:
    """The dataset-level numbers in report order; nIoU only when it was computed."""
    return [(label, getattr(scores, key)) for label, key in SUMMARY_SCORES if getattr(scores, key) is not None]


def format_results(scores: Scores, class_names: Sequence[str] | None = None) -> str:
    """Per-class IoU, accuracy (recall), precision and F1 (and nIoU when present) in %, then the dataset-level
    scores."""
    names = _names(scores, class_names)
    columns = _class_columns(scores)
    lines = [_row(["class (%)"] + [title for title, _, _ in columns])]
    for index, name in enumerate(names):
        lines.append(_row([name] + [percent(getattr(scores, attribute)[index]) for _, attribute, _ in columns]))
    lines.append("-" * len(lines[0]))
    lines += [_row([label, percent(value)]) for label, value in _summary(scores)]
    return "\n".join(lines)


def _class_columns(scores: Scores) -> list[tuple[str, str, str]]:
    """The per-class scores ``scores`` holds, in report order."""
    columns = [column for column in CLASS_SCORES if getattr(scores, column[1]) is not None]
    return columns + ([("nIoU", "class_niou", "niou")] if scores.class_niou is not None else [])


def format_comparison(plain: Scores, crf: Scores, class_names: Sequence[str] | None = None) -> str:
    """Per-class IoU and the dataset-level scores without and with the CRF, side by side, in %."""
    names = _names(plain, class_names)
    if crf.num_classes != plain.num_classes:
        raise ConfigError(f"cannot compare scores of {plain.num_classes} and {crf.num_classes} classes")
    lines = [_row(["class IoU (%)", "plain", "CRF", "change"])]
    for index, name in enumerate(names):
        before, after = plain.class_iou[index], crf.class_iou[index]
        lines.append(_row([name, percent(before), percent(after), change(before, after)]))
    lines.append("-" * len(lines[0]))
    after_rows = dict(_summary(crf))
    for label, before in _summary(plain):
        after = after_rows.get(label)
        lines.append(_row([label, percent(before), percent(after), change(before, after)]))
    return "\n".join(lines)


def _number(value: float | None) -> float | None:
    """JSON has no NaN: an undefined score becomes null."""
    if value is None or math.isnan(value):
        return None
    return float(value)


def results_dict(scores: Scores, class_names: Sequence[str] | None = None,
                 metadata: Mapping[str, Any] | None = None) -> dict:
    """A JSON-serialisable record of the scores (fractions, null where n/a) and the confusion matrix."""
    names = _names(scores, class_names)
    classes = []
    for index, name in enumerate(names):
        entry = {"index": index, "name": name}
        entry.update((key, _number(getattr(scores, attribute)[index])) for _, attribute, key in _class_columns(scores))
        classes.append(entry)
    results = {
        "num_classes": scores.num_classes,
        "classes": classes,
        "mean_iou": _number(scores.mean_iou),
        "pixel_accuracy": _number(scores.pixel_accuracy),
        "mean_class_accuracy": _number(scores.mean_class_accuracy),
        "mean_precision": _number(scores.mean_precision),
        "mean_f1": _number(scores.mean_f1),
        "frequency_weighted_iou": _number(scores.frequency_weighted_iou),
        "confusion_matrix": scores.confusion.astype(int).tolist(),
    }
    if scores.mean_niou is not None:
        results["mean_niou"] = _number(scores.mean_niou)
    if scores.coverage is not None:
        results.update(coverage=_number(scores.coverage), accuracy_covered=_number(scores.accuracy_covered),
                       unknown_pixels=scores.class_unknown.astype(int).tolist())
    if metadata:
        results["metadata"] = dict(metadata)
    return results


def write_results_json(path: str, results: Mapping[str, Any]) -> None:
    """Write results as indented JSON, atomically (a reader never sees half a file)."""
    try:
        text = json.dumps(results, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: results cannot be written as JSON ({error})") from None
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_text_atomically(path, text)
    except OSError as error:
        raise ConfigError(f"{path}: cannot write the results ({error.strerror or error})") from None
