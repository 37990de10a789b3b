"""int8 accuracy on the demo's scenes (issue 28): a Light-Weight RefineNet ResNet-50 trained briefly from
random weights with the demo's recipe, quantized for this CPU and guarded on the demo's held-out scenes, keeps
its float32 mean IoU within 0.5 points and at least 99% of its labels, by the guard's numbers and by the
Predictor's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="int8 needs ONNX Runtime (pip install refinenet_tf[onnx])")
pytest.importorskip("tf2onnx", reason="int8 needs tf2onnx (pip install refinenet_tf[onnx])")

from refinenet_tf.data.images import load_image, load_mask  # noqa: E402 (after the skips)
from refinenet_tf.data.listfile import read_list_file  # noqa: E402
from refinenet_tf.description import load_description  # noqa: E402
from refinenet_tf.evaluate.metrics import ConfusionMatrix  # noqa: E402
from refinenet_tf.hardware import cpu_flags  # noqa: E402
from refinenet_tf.predict.predictor import Predictor  # noqa: E402
from refinenet_tf.quantize.folder import quantize_checkpoint  # noqa: E402
from refinenet_tf.quantize.settings import settings_for_cpu  # noqa: E402
from tests.support.demo_scenes import DemoRun, train_on_demo_scenes  # noqa: E402
from tests.support.shared import disk_share  # noqa: E402

pytestmark = pytest.mark.slow  # trains a ResNet-50 and quantizes it
ARCH = "lw-refinenet-resnet50"
# 60 steps of batch 8 on 16 scenes: held-out float32 mean IoU 0.66-0.69, int8 within 0.08 points of it with
# 99.65-99.72% of its labels (oneDNN on or off, one or two threads, VNNI's 8-bit or AVX2's 7-bit weights; no
# layer in float). The labels that differ lie on float32's class boundaries, where its two best classes are
# close: a shorter training leaves more of them (after 40 steps one run was 0.67 points apart, with 99.29% of
# the labels the same).
STEPS = 60
TRAIN_SCENES = 16
HELD_OUT_SCENES = 50  # the demo's
CALIBRATION_IMAGES = 16  # 4 or 8 lost 0.2-0.3% more of the labels after 40 steps; 32 or 64 did no better
TOLERANCE_POINTS = 0.5  # issue 28: int8 within half a mean IoU point of float32 ...
AGREEMENT = 0.99  # ... and the same label on at least 99% of the pixels


class HeldOut:
    """The held-out scenes: images, masks, and what scores predictions on them."""

    def __init__(self, run: DemoRun):
        description = load_description(run.snapshots)
        samples = read_list_file(run.data_dir, run.val_list)
        self.images = [load_image(sample.image_path) for sample in samples]
        self.masks = [load_mask(sample.mask_path) for sample in samples]
        self.labelled = [mask != description.ignore_label for mask in self.masks]
        self.num_classes = description.num_classes

    def scores(self, labels: list[np.ndarray]) -> ConfusionMatrix:
        """The confusion matrix of ``labels`` (one array per scene) against the masks."""
        confusion = ConfusionMatrix(self.num_classes)
        for mask, predicted in zip(self.masks, labels, strict=True):
            confusion.update(mask, predicted)
        return confusion

    def agreement(self, first: list[np.ndarray], second: list[np.ndarray]) -> float:
        """The share of labelled pixels where both predict the same class."""
        pairs = zip(first, second, self.labelled, strict=True)
        same = sum(int(np.count_nonzero((a == b) & valid)) for a, b, valid in pairs)
        return same / sum(int(np.count_nonzero(valid)) for valid in self.labelled)


def segment(model: str, images: list[np.ndarray]) -> list[np.ndarray]:
    """The Predictor's labels of each image (``model``: a checkpoint, snapshot folder or int8 folder)."""
    with Predictor(model) as predictor:
        return [predictor.predict(image, ("labels",)).labels for image in images]


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """The medium disk share (``medium_disk``, held by the module) while the file's folders exist: 550 MB (the
    first and last snapshots, the last with Adam's slots; the two ONNX models)."""
    with disk_share(tmp_path_factory, alone=False):
        yield


@pytest.fixture(scope="module")
def run(disk, module_tmp) -> DemoRun:
    """The trained model with its scenes and lists (about 30 s on two cores with oneDNN, 50 s without)."""
    root = str(module_tmp("demo_resnet50"))
    return train_on_demo_scenes(root, ARCH, STEPS, TRAIN_SCENES, HELD_OUT_SCENES)


@pytest.fixture(scope="module")
def held_out(run) -> HeldOut:
    return HeldOut(run)


@pytest.fixture(scope="module")
def float_labels(run, held_out) -> list[np.ndarray]:
    return segment(run.snapshots, held_out.images)


@pytest.fixture(scope="module")
def quantized(run, module_tmp) -> tuple[str, dict]:
    """(folder, model.json's int8 section): quantized for this CPU, calibrated on training scenes and guarded
    on the held-out ones at the issue's tolerance."""
    folder = str(module_tmp("demo_resnet50_int8") / "int8")
    section = quantize_checkpoint(run.snapshots, load_description(run.snapshots), folder, run.train_list,
                                  run.val_list, run.data_dir, tolerance=TOLERANCE_POINTS,
                                  calibration_images=CALIBRATION_IMAGES)
    return folder, section


def test_the_float_model_learned_every_class_of_the_held_out_scenes(run, held_out, float_labels):
    assert run.result.step == STEPS and not run.result.stopped
    trained = held_out.scores(float_labels)
    untrained = held_out.scores(segment(run.untrained, held_out.images)).mean_iou()
    background_everywhere = held_out.scores([np.zeros_like(mask) for mask in held_out.masks]).mean_iou()
    assert trained.mean_iou() > untrained + 0.4  # measured against 0.035
    assert trained.mean_iou() > background_everywhere + 0.3  # measured against 0.124
    assert trained.class_iou().min() > 0.3  # every class, not the background alone: measured 0.42-0.49


def test_the_guard_kept_int8_within_half_a_point_on_this_cpu(quantized):
    _, section = quantized
    guard = section["guard"]
    assert section["settings"] == settings_for_cpu(cpu_flags()).to_dict()
    assert section["calibration_images"] == CALIBRATION_IMAGES and guard["images"] == HELD_OUT_SCENES
    assert guard["tolerance_points"] == TOLERANCE_POINTS
    assert guard["layers_in_float"] == len(guard["float_layers"])
    assert abs(guard["miou_change_points"]) <= TOLERANCE_POINTS
    assert guard["agreement"] >= AGREEMENT


def test_the_predictor_recomputes_the_guards_numbers(quantized, held_out, float_labels):
    folder, section = quantized
    guard = section["guard"]
    int8_labels = segment(folder, held_out.images)
    float32, int8 = held_out.scores(float_labels).mean_iou(), held_out.scores(int8_labels).mean_iou()
    agreement = held_out.agreement(float_labels, int8_labels)
    assert abs(100 * (int8 - float32)) <= TOLERANCE_POINTS
    assert agreement >= AGREEMENT
    assert int8 == pytest.approx(guard["int8_miou"], abs=1e-9)  # the same ONNX model
    # the guard's float32 reference is the ONNX model of the frozen graph the TensorFlow session runs
    assert 100 * float32 == pytest.approx(100 * guard["float_miou"], abs=0.1)
    assert agreement == pytest.approx(guard["agreement"], abs=0.005)
