"""int8: quantization of the toy model with the accuracy guard, the CPU-dependent settings, and int8 prediction
through the Predictor, tiling and inference.py."""

from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="int8 needs ONNX Runtime (pip install refinenet_tf[onnx])")
pytest.importorskip("tf2onnx", reason="int8 needs tf2onnx (pip install refinenet_tf[onnx])")

from refinenet_tf.api import RefineNet  # noqa: E402 (after the skips)
from refinenet_tf.data.images import load_image, load_mask  # noqa: E402
from refinenet_tf.data.listfile import read_list_file  # noqa: E402
from refinenet_tf.description import load_description  # noqa: E402
from refinenet_tf.errors import ConfigError, QuantizationError  # noqa: E402
from refinenet_tf.evaluate.metrics import ConfusionMatrix  # noqa: E402
from refinenet_tf.hardware import cpu_flags  # noqa: E402
from refinenet_tf.predict.graph import PredictOptions  # noqa: E402
from refinenet_tf.predict.int8 import INT8_FILE, OnnxPredictor, int8_section, is_quantized  # noqa: E402
from refinenet_tf.predict.predictor import Predictor  # noqa: E402
from refinenet_tf.quantize.folder import quantize_checkpoint  # noqa: E402
from refinenet_tf.quantize.sensitivity import MAX_SQNR_DB, signal_to_noise  # noqa: E402
from refinenet_tf.quantize.settings import settings_for_cpu  # noqa: E402

VNNI_CPU = {"avx2", "fma", "avx512f", "avx512_vnni"}
AVX2_CPU = {"avx2", "fma"}
CALIBRATION_IMAGES = 8


@pytest.fixture(scope="module")
def toy_list(toy_training, module_tmp) -> tuple[str, str]:
    """(data dir, list file) of the toy scenes with masks: calibration and validation."""
    return toy_training.data_dir, toy_training.list_path


@pytest.fixture(scope="module")
def quantized(toy_model, toy_list, module_tmp) -> str:
    """The toy model quantized by the command for this CPU, guarded on the toy scenes with a generous tolerance."""
    from refinenet_tf.cli import quantize  # deferred: the command line, this fixture alone needs it

    data_dir, list_path = toy_list
    folder = str(module_tmp("int8") / "here")
    quantize.main([toy_model, "--data-dir", data_dir, "--calibration-list", list_path, "--val-list", list_path,
                   "--output", folder, "--tolerance", "5", "--calibration-images", str(CALIBRATION_IMAGES),
                   "--threads", "2"])
    return folder


def test_the_settings_follow_the_cpu_flags():
    assert settings_for_cpu(AVX2_CPU).reduce_range
    assert settings_for_cpu(AVX2_CPU | {"avx512f"}).reduce_range  # AVX-512 without VNNI saturates too
    for flags in (VNNI_CPU, AVX2_CPU | {"avx_vnni"}, {"amx_int8"}):
        settings = settings_for_cpu(flags)
        assert not settings.reduce_range and "int32" in settings.reason
    assert settings_for_cpu(VNNI_CPU).quantize_static_arguments()["per_channel"]


def test_signal_to_noise_ratio_in_decibels():
    signal = np.ones((2, 5), np.float32)
    assert signal_to_noise([signal], [signal]) == MAX_SQNR_DB
    assert signal_to_noise([signal], [signal * 1.1]) == pytest.approx(20.0)  # noise is a tenth of the signal


def test_int8_labels_agree_with_float32_and_the_guard_recorded_the_change(quantized, toy_model, toy_list):
    data_dir, list_path = toy_list
    section = int8_section(quantized)
    guard = section["guard"]
    assert is_quantized(quantized) and not is_quantized(toy_model)
    assert section["calibration_images"] == CALIBRATION_IMAGES and set(section["cpu_flags"]) <= cpu_flags()
    assert section["settings"] == settings_for_cpu(cpu_flags()).to_dict() and section["settings"]["per_channel"]
    assert guard["layers_in_float"] == 0 and guard["float_layers"] == []  # generous tolerance: all int8
    assert guard["miou_change_points"] == pytest.approx(100 * (guard["int8_miou"] - guard["float_miou"]))
    num_classes = load_description(toy_model).num_classes
    confusions = {"float32": ConfusionMatrix(num_classes), "int8": ConfusionMatrix(num_classes)}
    same = total = 0
    with Predictor(toy_model) as float32, Predictor(quantized) as int8:
        assert int8.precision.precision == "int8"
        for sample in read_list_file(data_dir, list_path):
            image, mask = load_image(sample.image_path), load_mask(sample.mask_path)
            labels = {"float32": float32.predict(image, ("labels",)).labels,
                      "int8": int8.predict(image, ("labels",)).labels}
            for name, confusion in confusions.items():
                confusion.update(mask, labels[name])
            same += int(np.count_nonzero(labels["float32"] == labels["int8"]))
            total += mask.size
    assert same / total > 0.99  # measured 99.6% on the toy scenes
    assert confusions["int8"].mean_iou() == pytest.approx(guard["int8_miou"], abs=1e-9)  # the same ONNX model
    # the guard's float32 reference is the ONNX model of the same frozen graph
    assert 100 * confusions["float32"].mean_iou() == pytest.approx(100 * guard["float_miou"], abs=0.1)
    assert guard["agreement"] == pytest.approx(same / total, abs=0.005)


def test_an_impossible_tolerance_returns_layers_to_float_then_stops(toy_model, toy_list, tmp_path, caplog):
    data_dir, list_path = toy_list
    val_list = tmp_path / "val.txt"
    val_list.write_text("".join(open(list_path).readlines()[:4]))
    caplog.set_level(logging.INFO, logger="refinenet_tf.quantize.guard")
    with pytest.raises(QuantizationError) as raised:
        quantize_checkpoint(toy_model, load_description(toy_model), str(tmp_path / "int8"), list_path, str(val_list),
                            data_dir, tolerance=-1.0, calibration_images=2, flags=VNNI_CPU, threads=2)
    message = str(raised.value)
    assert "\n" not in message and "tolerance of -1" in message and "layers in float" in message
    counts = [int(record.getMessage().split(" layers in float")[0].rsplit(" ", 1)[1]) for record in caplog.records
              if record.name == "refinenet_tf.quantize.guard"]
    assert counts[0] == 0 and counts == sorted(counts) and len(set(counts)) == len(counts) > 2
    assert f"of {counts[-1]} layers in float" in message  # every ranked layer went back to float


@pytest.mark.parametrize("flags", [AVX2_CPU, VNNI_CPU], ids=["no-vnni", "vnni"])
def test_both_cpu_settings_make_a_working_model(toy_model, toy_list, quantized, tmp_path, flags):
    data_dir, list_path = toy_list
    folder = str(tmp_path / "int8")
    section = quantize_checkpoint(toy_model, load_description(toy_model), folder, list_path, data_dir=data_dir,
                                  calibration_images=CALIBRATION_IMAGES, flags=flags, threads=2)
    assert section["settings"]["reduce_range"] == ("avx512_vnni" not in flags) and section["guard"] is None
    assert json.loads(open(os.path.join(folder, "model.json")).read())["int8"]["cpu_flags"] == sorted(flags)
    images = np.stack([load_image(sample.image_path) for sample in read_list_file(data_dir, list_path)[:4]])
    with OnnxPredictor(os.path.join(folder, INT8_FILE)) as made, \
            OnnxPredictor(os.path.join(quantized, INT8_FILE)) as reference:
        labels = made.run_batch(images, ("batch_labels",))["batch_labels"]
        assert labels.shape == images.shape[:3]
        assert np.mean(labels == reference.run_batch(images, ("batch_labels",))["batch_labels"]) > 0.98


def test_the_predictor_runs_an_int8_folder_whole_batched_and_tiled(quantized, toy_list):
    data_dir, list_path = toy_list
    images = np.stack([load_image(sample.image_path) for sample in read_list_file(data_dir, list_path)[:3]])
    with Predictor(quantized) as predictor:
        single = predictor.predict(images[0])
        batch = predictor.predict_batch(images, ("labels", "fused_logits"))
        tiled = predictor.predict_tiled(np.concatenate([images[0], images[1]], axis=1), (64, 64), batch_size=2)
    assert single.labels.shape == images.shape[1:3] and single.probabilities.shape[-1] == 3
    np.testing.assert_allclose(single.probabilities.sum(-1), 1.0, atol=1e-4)
    np.testing.assert_array_equal(batch[0].labels, single.labels)
    assert batch[2].fused_logits.shape == (16, 16, 3)
    tiled_labels = tiled.labels()
    assert tiled_labels.shape == (64, 128) and np.mean(tiled_labels[:, :64] == single.labels) > 0.95
    with RefineNet(model=quantized) as model:  # the Python API takes the folder as any model folder
        np.testing.assert_array_equal(model.deploy(images[0]), single.labels)


def test_inference_py_writes_masks_with_an_int8_folder(quantized, toy_list, tmp_path):
    from refinenet_tf.cli import infer  # deferred: the command line's modules, this test alone needs them

    data_dir, _ = toy_list
    folder = os.path.join(data_dir, "images")
    infer.main([folder, quantized, "--save-dir", str(tmp_path)])
    for name in os.listdir(folder):
        mask = load_mask(str(tmp_path / name))  # the index mask of each image, named by its stem
        assert mask.shape == load_image(os.path.join(folder, name)).shape[:2] and mask.max() < 3


def test_int8_without_a_quantized_folder_or_calibration_images_is_one_line(toy_model, toy_list, quantized, tmp_path):
    from refinenet_tf.cli import infer  # deferred: the command line's modules, this test alone needs them

    images = os.path.join(toy_list[0], "images")
    with pytest.raises(ConfigError) as raised:
        infer.main([images, toy_model, "--precision", "int8", "--save-dir", str(tmp_path)])
    message = raised.value.render(lambda name: "--" + name.replace("_", "-"))
    assert "\n" not in message and "quantize" in message and "--calibration" in message
    with pytest.raises(ConfigError, match="single scale"):
        Predictor(quantized, options=PredictOptions((1.0, 0.5)))
    with pytest.raises(ConfigError, match="holds checkpoints"):  # its model.json would make the checkpoints int8
        quantize_checkpoint(toy_model, load_description(toy_model), toy_model, images)


def test_evaluation_of_an_int8_folder_scores_what_the_guard_recorded(quantized, toy_list):
    from refinenet_tf.evaluate.evaluator import (
        evaluate,  # deferred: the evaluation's modules, this test alone
    )

    data_dir, list_path = toy_list
    samples = read_list_file(data_dir, list_path)
    result = evaluate(quantized, samples, load_description(quantized))
    assert result.precision == "int8" and result.images == len(samples)
    assert result.plain.mean_iou == pytest.approx(int8_section(quantized)["guard"]["int8_miou"], abs=1e-9)
