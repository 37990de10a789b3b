"""Dataset evaluation: confusion matrix over the list, CRF branch, nIoU, saved masks, skipped samples."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import DataError
from refinenet_tf.evaluate.evaluator import evaluate, read_instance_list
from refinenet_tf.evaluate.metrics import ConfusionMatrix, InstanceStats
from refinenet_tf.palette import colourise
from refinenet_tf.predict.crf import CRFParams
from refinenet_tf.predict.predictor import PredictOptions, Predictor, description_for_checkpoint
from tests.support.model_factory import CONSTANT_LOGITS, NUM_CLASSES, write_dataset

THING_CLASSES = (1, 2)


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoints):
    return tiny_checkpoints


def _mask(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def _write_instances(data_dir: str, samples) -> str:
    """Two instances per image: left and right halves of the labeled area; returns the instance list."""
    lines = []
    os.makedirs(os.path.join(data_dir, "inst"), exist_ok=True)
    for index, sample in enumerate(samples):
        ids = np.zeros(_mask(sample.mask_path).shape, np.uint16)
        ids[:, : ids.shape[1] // 2] = 1
        ids[:, ids.shape[1] // 2:] = 2
        Image.fromarray(ids).save(os.path.join(data_dir, "inst", f"im{index}.png"))
        lines.append(f"/inst/im{index}.png")
    list_path = os.path.join(data_dir, "instances.txt")
    with open(list_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return list_path


def test_scores_agree_with_the_saved_predictions_plain_and_crf(checkpoints, tmp_path):
    data_dir = str(tmp_path / "data")
    samples = read_list_file(data_dir, write_dataset(data_dir))
    instances = read_instance_list(data_dir, _write_instances(data_dir, samples), samples, THING_CLASSES)
    description = description_for_checkpoint(checkpoints[0])
    save_dir = str(tmp_path / "pred")
    options = PredictOptions((1.0, 0.5), "mean", flip=True)
    stream = io.StringIO()
    result = evaluate(checkpoints[0], samples, description, options, crf=CRFParams(iterations=3),
                      save_dir=save_dir, instances=instances, progress_stream=stream)
    assert result.images == 3 and result.skipped == {} and result.checkpoint.endswith("model.ckpt-1")
    assert "3/3" in stream.getvalue() and "img/s" in stream.getvalue()

    with Predictor(checkpoints[0], description, options) as predictor:
        for suffix, scores in (("", result.plain), ("_crf", result.crf)):
            confusion = ConfusionMatrix(NUM_CLASSES)
            stats = InstanceStats(NUM_CLASSES, THING_CLASSES)
            for sample in samples:
                stem = os.path.splitext(os.path.basename(sample.image_path))[0]
                predicted = _mask(os.path.join(save_dir, f"{stem}{suffix}.png"))
                if suffix == "":
                    expected = predictor.predict(np.asarray(Image.open(sample.image_path).convert("RGB"))).labels
                    np.testing.assert_array_equal(predicted, expected)
                coloured = _mask(os.path.join(save_dir, f"{stem}{suffix}_colour.png"))
                np.testing.assert_array_equal(coloured, colourise(predicted, description.palette()))
                labels = _mask(sample.mask_path)
                confusion.update(labels, predicted)
                stats.update(labels, predicted, _mask(instances.paths[sample.image_path]))
            np.testing.assert_array_equal(scores.confusion, confusion.matrix)
            # the ignore-label band (3 rows) is not counted
            assert scores.confusion.sum() == 3 * (37 - 3) * 45
            np.testing.assert_allclose(scores.class_niou, stats.class_niou(confusion), equal_nan=True)


def test_bad_samples_are_skipped_and_counted(checkpoints, tmp_path):
    data_dir = str(tmp_path / "data")
    samples = read_list_file(data_dir, write_dataset(data_dir, count=3))
    with open(samples[1].image_path, "wb") as handle:
        handle.write(b"not an image")
    description = description_for_checkpoint(checkpoints[1])
    result = evaluate(checkpoints[1], samples, description, on_bad_sample="skip", progress_stream=io.StringIO())
    assert result.images == 2 and list(result.skipped) == [samples[1].origin]
    # constant logits: every pixel is predicted as the same class
    expected = ConfusionMatrix(NUM_CLASSES)
    for sample in (samples[0], samples[2]):
        labels = _mask(sample.mask_path)
        expected.update(labels, np.full(labels.shape, int(np.argmax(CONSTANT_LOGITS))))
    np.testing.assert_array_equal(result.plain.confusion, expected.matrix)
    with pytest.raises(DataError, match="cannot decode the image.*listed at"):
        evaluate(checkpoints[1], samples, description, progress_stream=io.StringIO())


def test_unlabeled_lists_and_mismatched_instance_lists_are_refused(checkpoints, tmp_path):
    data_dir = str(tmp_path / "data")
    samples = read_list_file(data_dir, write_dataset(data_dir, count=2))
    unlabeled = [sample.__class__(sample.image_path, None, sample.list_path, sample.line_number)
                 for sample in samples]
    with pytest.raises(DataError, match="needs a mask"):
        evaluate(checkpoints[1], unlabeled, description_for_checkpoint(checkpoints[1]))
    instance_list = _write_instances(data_dir, samples)
    with pytest.raises(DataError, match="2 instance masks listed for 1 images"):
        read_instance_list(data_dir, instance_list, samples[:1], THING_CLASSES)
