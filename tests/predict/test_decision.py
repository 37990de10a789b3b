"""Labels from probabilities under a LabelRule: the rule on hand-made probabilities, its checks and flags, and the
rule at work on whole images, tiles, the dense CRF and the files inference writes (two-class and toy models)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from refinenet_tf.api import RefineNet
from refinenet_tf.cli import infer
from refinenet_tf.cli.common import run
from refinenet_tf.cli.flags import flag_name
from refinenet_tf.errors import ConfigError
from refinenet_tf.palette import VOID_COLOUR
from refinenet_tf.predict.crf import CRFParams, CRFPool
from refinenet_tf.predict.decision import LabelRule, labels_from_probabilities
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.predict.segment import SegmentSettings, labels_of, segment_files
from tests.support.binary_data import SIZE, draw_blob, train_binary_model, write_binary_dataset
from tests.support.toy_data import render

IGNORE = 255
TWO_CLASS = np.array([[[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.5, 0.5]]], np.float32)
THREE_CLASS = np.array([[[0.5, 0.3, 0.2], [0.34, 0.33, 0.33], [0.1, 0.1, 0.8], [0.05, 0.45, 0.5]]], np.float32)


def images(draw, count: int, size: tuple[int, int], seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [draw(rng, size)[0] for _ in range(count)]


# --- the rule on hand-made probabilities ------------------------------------------------------------------------

@pytest.mark.parametrize(("rule", "expected"), [
    (None, [0, 0, 1, 0]),  # argmax: a tie goes to the first class
    (LabelRule(), [0, 0, 1, 0]),
    (LabelRule(threshold=0.5), [0, 0, 1, 1]),  # a tie at T goes to the foreground
    (LabelRule(threshold=0.35), [0, 1, 1, 1]),
    (LabelRule(threshold=0.8), [0, 0, 0, 0]),
    (LabelRule(threshold=0.05), [1, 1, 1, 1]),
    (LabelRule(min_confidence=0.6), [0, 0, 1, IGNORE]),
    (LabelRule(threshold=0.35, min_confidence=0.65), [0, IGNORE, 1, IGNORE]),
])
def test_two_class_labels_follow_the_threshold_and_the_minimum_confidence(rule, expected):
    labels = labels_from_probabilities(TWO_CLASS, rule, IGNORE)
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, [expected])


@pytest.mark.parametrize(("confidence", "expected"), [
    (0.0, [0, 0, 2, 2]), (0.34, [0, 0, 2, 2]), (0.4, [0, 200, 2, 2]), (0.5, [0, 200, 2, 2]),
    (0.51, [200, 200, 2, 200]), (1.0, [200, 200, 200, 200]),
])
def test_pixels_whose_top_probability_is_below_the_minimum_confidence_get_the_ignore_label(confidence, expected):
    labels = labels_from_probabilities(THREE_CLASS, LabelRule(min_confidence=confidence), 200)
    np.testing.assert_array_equal(labels, [expected])


def test_a_certain_pixel_stays_known_at_full_confidence():
    certain = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    np.testing.assert_array_equal(labels_from_probabilities(certain, LabelRule(min_confidence=1.0), IGNORE), [0, 1])


@pytest.mark.parametrize(("settings", "name", "message"), [
    ({"threshold": 0}, "threshold", "strictly between 0 and 1"),
    ({"threshold": 1}, "threshold", "strictly between 0 and 1"),
    ({"threshold": float("nan")}, "threshold", "strictly between 0 and 1"),
    ({"threshold": "high"}, "threshold", "must be a number"),
    ({"min_confidence": -0.1}, "min_confidence", "between 0 and 1"),
    ({"min_confidence": 1.5}, "min_confidence", "between 0 and 1"),
])
def test_values_outside_their_range_are_one_line_errors_naming_the_flag(settings, name, message):
    with pytest.raises(ConfigError, match=message) as error:
        LabelRule(**settings)
    line = error.value.render(flag_name)
    assert line.startswith(flag_name(name) + " ") and "\n" not in line


def test_a_threshold_needs_a_two_class_model():
    with pytest.raises(ConfigError) as error:
        labels_from_probabilities(THREE_CLASS, LabelRule(threshold=0.5), IGNORE)
    assert error.value.render(flag_name) == ("--threshold applies to two-class models (background, foreground); this "
                                             "model has 3 classes (use --min-confidence for unsure pixels)")
    LabelRule(threshold=0.5).check_classes(2)
    LabelRule(min_confidence=0.5).check_classes(3)


def test_the_flags_make_the_rule_and_bad_values_stop_the_command_in_one_line(tmp_path, capsys):
    args = infer.build_parser().parse_args(["image.png", "--threshold", "0.3", "--min-confidence", "0.7"])
    assert infer.segment_settings(args).rule == LabelRule(0.3, 0.7)
    assert infer.segment_settings(infer.build_parser().parse_args(["image.png"])).rule == LabelRule()
    assert run(infer.main, [str(tmp_path / "missing.png"), "--threshold", "1.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: --threshold must lie strictly between 0 and 1, got 1.5"


# --- a two-class model --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def binary_model(module_tmp) -> str:
    """A two-class model trained briefly (40 steps, about 10 s) on blob scenes stored 0/1."""
    root = module_tmp("binary")
    list_path = write_binary_dataset(str(root / "data"), 1)
    return train_binary_model(str(root / "data"), list_path, str(root / "snapshots"), steps=40)


@pytest.fixture(scope="module")
def binary_predictor(binary_model):
    with Predictor(binary_model, threads=2) as predictor:
        yield predictor


@pytest.mark.slow
def test_threshold_one_half_is_the_argmax_and_a_higher_threshold_shrinks_the_foreground(binary_predictor):
    batch = np.stack(images(draw_blob(1), 4, SIZE))
    plain = binary_predictor.predict_batch(batch, ("labels", "probabilities"))
    halves = binary_predictor.predict_batch(batch, ("labels",), LabelRule(threshold=0.5))
    probabilities = np.stack([prediction.probabilities for prediction in plain])
    ties = probabilities[..., 1] == 0.5
    for prediction, half, tie in zip(plain, halves, ties, strict=True):
        assert half.probabilities is None
        np.testing.assert_array_equal(half.labels[~tie], prediction.labels[~tie])
    thresholds = (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.95)
    foreground = [sum(int(prediction.labels.sum())
                      for prediction in binary_predictor.predict_batch(batch, ("labels",), LabelRule(threshold=t)))
                  for t in thresholds]
    assert (np.diff(foreground) <= 0).all(), foreground
    assert foreground[0] > foreground[-1], foreground
    np.testing.assert_array_equal(
        [int((probabilities[..., 1] >= t).sum()) for t in thresholds], foreground)


@pytest.mark.slow
def test_inference_and_the_api_take_the_threshold(binary_model, binary_predictor, tmp_path):
    image = images(draw_blob(1), 1, SIZE)[0]
    Image.fromarray(image).save(tmp_path / "blob.png")
    assert run(infer.main, [str(tmp_path / "blob.png"), binary_model, "--threshold", "0.8",
                            "--save-dir", str(tmp_path / "out")]) == 0
    expected = binary_predictor.predict(image, ("labels",), LabelRule(threshold=0.8)).labels
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "blob.png")), expected)
    with RefineNet(model=binary_model, threads=2) as model:
        np.testing.assert_array_equal(model.deploy(image, threshold=0.8), expected)


# --- the toy model (three classes) --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_predictor(toy_model):
    with Predictor(toy_model, threads=2) as predictor:
        yield predictor


def test_a_threshold_on_a_three_class_model_stops_inference_in_one_line(toy_model, tmp_path, capsys):
    Image.fromarray(images(render, 1, (64, 64))[0]).save(tmp_path / "scene.png")
    assert run(infer.main, [str(tmp_path / "scene.png"), toy_model, "--threshold", "0.5",
                            "--save-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --threshold applies to two-class models")
    with RefineNet(model=toy_model) as model, pytest.raises(ConfigError, match="this model has 3 classes"):
        model.deploy(images(render, 1, (64, 64))[0], threshold=0.5)


def test_the_unknown_share_rises_with_the_minimum_confidence(toy_predictor):
    batch = np.stack(images(render, 4, (64, 64)))
    plain = toy_predictor.predict_batch(batch, ("labels",))
    shares = []
    for confidence in (0.0, 0.6, 0.9, 0.99, 0.999):
        ruled = toy_predictor.predict_batch(batch, ("labels",), LabelRule(min_confidence=confidence))
        unknown = np.stack([prediction.labels == IGNORE for prediction in ruled])
        known = np.stack([prediction.labels for prediction in ruled])[~unknown]
        np.testing.assert_array_equal(known, np.stack([prediction.labels for prediction in plain])[~unknown])
        shares.append(float(unknown.mean()))
    assert shares[0] == 0 and shares[-1] > 0, shares
    assert (np.diff(shares) >= 0).all(), shares


def test_unknown_pixels_are_the_ignore_label_painted_in_the_void_colour(toy_predictor, tmp_path):
    image = images(render, 1, (64, 64), seed=8)[0]
    Image.fromarray(image).save(tmp_path / "scene.png")
    rule = LabelRule(min_confidence=0.99)
    for settings in (SegmentSettings(rule=rule), SegmentSettings(rule=rule, tile=(32, 32)),
                     SegmentSettings(rule=rule, tile=(32, 32), probability_format="npy")):
        written = list(segment_files(toy_predictor, [str(tmp_path / "scene.png")], str(tmp_path / "out"), settings))
        index = np.asarray(Image.open(written[0].files[0]))
        colours = np.asarray(Image.open(written[0].files[1]))
        unknown = index == IGNORE
        assert 0 < unknown.mean() < 0.9
        assert (colours[unknown] == VOID_COLOUR).all()
        assert not (colours[~unknown] == VOID_COLOUR).all(axis=-1).any()
    plain = segment_files(toy_predictor, [str(tmp_path / "scene.png")], str(tmp_path / "plain"), SegmentSettings())
    assert IGNORE not in np.asarray(Image.open(next(plain).files[0]))


def test_tiled_labels_under_a_rule_are_the_whole_image_labels(toy_predictor):
    rule = LabelRule(min_confidence=0.95)
    for image in images(render, 3, (64, 96), seed=9):
        whole = toy_predictor.predict(image, ("labels",), rule).labels
        tiled = toy_predictor.predict_tiled(image, (64, 96)).labels(rule, IGNORE)
        assert (whole == IGNORE).any()
        assert np.mean(tiled == whole) > 0.999
        np.testing.assert_array_equal(labels_of(toy_predictor, image, (64, 96), rule=rule)[0], tiled)


def test_dense_crf_labels_follow_the_rule_on_whole_and_tiled_images(toy_predictor, tmp_path):
    pytest.importorskip("pydensecrf", reason="the CRF needs pydensecrf2")
    image = images(render, 1, (64, 64), seed=10)[0]
    rule = LabelRule(min_confidence=0.9)
    probabilities = toy_predictor.predict(image, ("probabilities",)).probabilities
    with CRFPool(CRFParams(), 1) as pool:
        marginals = next(pool.map([(probabilities, image)]))
        _, whole = labels_of(toy_predictor, image, pool=pool, rule=rule)
        _, tiled = labels_of(toy_predictor, image, (64, 64), pool=pool, rule=rule)
    np.testing.assert_array_equal(whole, labels_from_probabilities(marginals, rule, IGNORE))
    assert np.mean(tiled == whole) > 0.99
    Image.fromarray(image).save(tmp_path / "scene.png")
    for settings in (SegmentSettings(crf=CRFParams(), rule=rule),
                     SegmentSettings(crf=CRFParams(), rule=rule, tile=(64, 64), probability_format="npy")):
        written = next(segment_files(toy_predictor, [str(tmp_path / "scene.png")], str(tmp_path / "out"), settings))
        assert np.mean(np.asarray(Image.open(written.files[0])) == whole) > 0.99
