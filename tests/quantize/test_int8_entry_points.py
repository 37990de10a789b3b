"""int8 wherever float32 runs: the ONNX export (of a quantized folder, or of a checkpoint quantized by the export
command), ``RefineNet(precision="int8", calibration=...)``, ``evaluate_msc.py`` and ``segment-archive`` with
``--precision int8 --calibration-list``, and the one-line errors of what int8 cannot do.

Every quantization here calibrates on the same two toy scenes, so the entry points that quantize a checkpoint
themselves make the model of the shared ``quantized`` folder, and their labels can be compared with its Predictor's.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="int8 needs ONNX Runtime (pip install refinenet_tf[onnx])")
pytest.importorskip("tf2onnx", reason="int8 needs tf2onnx (pip install refinenet_tf[onnx])")

import onnx  # noqa: E402 (after the skips)
import onnxruntime  # noqa: E402

from refinenet_tf.api import RefineNet  # noqa: E402
from refinenet_tf.checkpoints import resolve_checkpoint  # noqa: E402
from refinenet_tf.data.images import load_image, load_mask  # noqa: E402
from refinenet_tf.data.listfile import read_list_file  # noqa: E402
from refinenet_tf.description import load_description  # noqa: E402
from refinenet_tf.errors import ConfigError  # noqa: E402
from refinenet_tf.evaluate.metrics import ConfusionMatrix  # noqa: E402
from refinenet_tf.predict.int8 import is_quantized  # noqa: E402
from refinenet_tf.predict.predictor import Predictor  # noqa: E402
from refinenet_tf.quantize import folder as folder_module  # noqa: E402
from refinenet_tf.quantize.folder import quantize_checkpoint  # noqa: E402
from tests.support.scripts import run_script, single_error_line  # noqa: E402

CALIBRATION_IMAGES = 2  # enough for the toy model: int8 labels agree with float32 on over 99% of its pixels


@pytest.fixture(scope="module")
def toy_list(toy_training) -> tuple[str, str]:
    """(data dir, list file) of the toy scenes with masks: calibration and evaluation."""
    return toy_training.data_dir, toy_training.list_path


def calibration_flags(toy_list) -> list[str]:
    """The flags that calibrate every command here on the same images as the ``quantized`` folder."""
    return ["--calibration-list", toy_list[1], "--calibration-images", str(CALIBRATION_IMAGES)]


@pytest.fixture(scope="module")
def quantized(toy_model, toy_list, module_tmp) -> str:
    """The toy model quantized once, unguarded, on the calibration images every test here uses."""
    data_dir, list_path = toy_list
    folder = str(module_tmp("int8_entry") / "int8")
    quantize_checkpoint(toy_model, load_description(toy_model), folder, list_path, data_dir=data_dir,
                        calibration_images=CALIBRATION_IMAGES, threads=2)
    return folder


@pytest.fixture(scope="module")
def scenes(toy_model, toy_list, quantized) -> dict[str, np.ndarray]:
    """The toy scenes, their masks, and the labels of the float32 and the int8 Predictor (the ``quantized`` folder)."""
    samples = read_list_file(*toy_list)
    images = np.stack([load_image(sample.image_path) for sample in samples])
    with Predictor(toy_model) as float32, Predictor(quantized) as int8:
        labels = {name: np.stack([label.labels for label in predictor.predict_batch(images, ("labels",))])
                  for name, predictor in (("float32", float32), ("int8", int8))}
    return {"images": images, "masks": np.stack([load_mask(sample.mask_path) for sample in samples]), **labels}


def onnx_labels(path: str, images: np.ndarray) -> np.ndarray:
    """The labels an exported ONNX model gives each image, run as a user would: one image a call."""
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["image:0"]
    assert [node.name for node in session.get_outputs()] == ["labels:0", "probabilities:0"]
    return np.stack([session.run(["labels:0"], {"image:0": image[None]})[0] for image in images])


def holds_int8_weights(path: str) -> bool:
    """True when the ONNX model at ``path`` has int8 convolution weights (QDQ: DequantizeLinear of int8)."""
    model = onnx.load(path)
    int8 = {tensor.name for tensor in model.graph.initializer if tensor.data_type == onnx.TensorProto.INT8}
    return any(node.op_type == "DequantizeLinear" and node.input[0] in int8 for node in model.graph.node)


def mean_iou(masks: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """The mean IoU of ``labels`` against ``masks``, as the evaluation computes it."""
    confusion = ConfusionMatrix(num_classes)
    confusion.update(masks, labels)
    return confusion.mean_iou()


def test_a_quantized_folder_exports_its_int8_model_for_onnx_runtime(quantized, scenes, tmp_path):
    output = tmp_path / "onnx"
    done = run_script("-m", "refinenet_tf", "export", quantized, output, "--format", "onnx")  # float32 by default
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(output / "model.onnx")
    assert holds_int8_weights(str(output / "model.onnx"))
    # its model.json describes the model; the export is not a quantized folder (Predictor would look for its files)
    assert load_description(str(output)) == load_description(quantized) and not is_quantized(str(output))
    np.testing.assert_array_equal(onnx_labels(str(output / "model.onnx"), scenes["images"]), scenes["int8"])
    fixed = run_script("-m", "refinenet_tf", "export", quantized, tmp_path / "fixed", "--format", "onnx",
                       "--input-size", "64,64")
    assert fixed.returncode == 0, fixed.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "fixed" / "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [1, 64, 64, 3]


def test_export_quantizes_a_checkpoint_with_the_guard_and_writes_the_same_int8_model(
        toy_model, toy_list, scenes, tmp_path, caplog):
    data_dir, list_path = toy_list
    val_list = tmp_path / "val.txt"
    val_list.write_text("".join(open(list_path).readlines()[:4]))
    output = tmp_path / "int8"
    caplog.set_level(logging.INFO, logger="refinenet_tf.quantize.guard")
    done = run_script("-m", "refinenet_tf", "export", toy_model, output, "--format", "onnx", "--precision", "int8",
                      "--data-dir", data_dir, *calibration_flags(toy_list), "--val-list", val_list,
                      "--tolerance", "5")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(output)) == ["model.json", "model.onnx"]
    assert [record for record in caplog.records if "0 layers in float" in record.getMessage()]  # the guard ran
    labels = onnx_labels(str(output / "model.onnx"), scenes["images"])
    assert holds_int8_weights(str(output / "model.onnx"))
    # the same checkpoint and calibration images make the same int8 model as the shared folder
    np.testing.assert_array_equal(labels, scenes["int8"])
    assert np.mean(labels == scenes["float32"]) > 0.99  # measured 99.6%


def test_refinenet_int8_quantizes_a_checkpoint_once_for_deploy_eval_and_export(toy_model, toy_list, scenes,
                                                                               tmp_path, monkeypatch):
    data_dir, list_path = toy_list
    folders = []

    def quantize_and_note(checkpoint, description, output_dir, *args, **kwargs):
        folders.append(output_dir)
        return quantize_checkpoint(checkpoint, description, output_dir, *args, **kwargs)

    monkeypatch.setattr(folder_module, "quantize_checkpoint", quantize_and_note)
    model = RefineNet(model=toy_model, precision="int8", calibration=list_path, calibration_data_dir=data_dir,
                      calibration_images=CALIBRATION_IMAGES, threads=2)
    with model:
        labels = np.stack([model.deploy(image) for image in scenes["images"]])
        results = model.eval(list_path, data_dir=data_dir)
        exported = model.export(str(tmp_path / "onnx"), format="onnx")
        with pytest.raises(ConfigError, match="int8 exports the onnx format only") as raised:
            model.export(str(tmp_path / "tflite"), format="tflite")
        assert "\n" not in str(raised.value)
        assert len(folders) == 1 and is_quantized(folders[0])  # one quantization served all three
    assert not os.path.exists(folders[0])  # close() deleted its temporary folder
    assert np.mean(labels == scenes["float32"]) > 0.98  # measured 99.6%
    np.testing.assert_array_equal(labels, scenes["int8"])
    np.testing.assert_array_equal(onnx_labels(exported, scenes["images"]), labels)
    metadata = results["metadata"]
    assert metadata["precision"] == "int8" and metadata["checkpoint"] == resolve_checkpoint(toy_model)
    num_classes = load_description(toy_model).num_classes
    assert results["mean_iou"] == pytest.approx(mean_iou(scenes["masks"], labels, num_classes), abs=1e-6)


def test_evaluate_msc_int8_with_a_calibration_list_scores_within_two_points_of_float32(toy_model, toy_list, scenes,
                                                                                       tmp_path):
    data_dir, list_path = toy_list
    output = tmp_path / "results.json"
    done = run_script("evaluate_msc.py", "--restore-from", toy_model, "--data-dir", data_dir, "--data-list",
                      list_path, "--scales", "1.0", "--precision", "int8", *calibration_flags(toy_list),
                      "--threads", "2", "--output", output)
    assert done.returncode == 0, done.stderr
    results = json.loads(output.read_text())
    assert results["metadata"]["precision"] == "int8"
    assert results["metadata"]["checkpoint"] == resolve_checkpoint(toy_model)
    num_classes = load_description(toy_model).num_classes
    float32 = mean_iou(scenes["masks"], scenes["float32"], num_classes)
    assert abs(100 * (results["mean_iou"] - float32)) < 2.0  # measured -0.06 points (86.91 against 86.97)
    assert results["mean_iou"] == pytest.approx(mean_iou(scenes["masks"], scenes["int8"], num_classes), abs=1e-6)


def test_segment_archive_int8_quantizes_the_checkpoint_once_for_its_workers(toy_model, toy_list, scenes, tmp_path,
                                                                            capsys):
    pytest.importorskip("apache_beam", reason="segment-archive needs Apache Beam (pip install refinenet_tf[beam])")
    from refinenet_tf.cli import segment_archive  # deferred: Beam, an optional extra

    data_dir, list_path = toy_list
    input_list = tmp_path / "images.txt"
    input_list.write_text("".join(open(list_path).readlines()[:3]))
    segment_archive.main(["--input", str(input_list), "--data-dir", data_dir, "--output", str(tmp_path / "out"),
                          "--model", toy_model, "--workers", "1", "--threads", "1", "--precision", "int8",
                          *calibration_flags(toy_list)])
    assert capsys.readouterr().out.splitlines()[-1] == "3 done, 0 skipped, 0 failed"
    samples = read_list_file(data_dir, str(input_list))
    written = np.stack([load_mask(str(tmp_path / "out" / os.path.basename(sample.image_path)))
                        for sample in samples])
    np.testing.assert_array_equal(written, scenes["int8"][:3])
    with pytest.raises(ConfigError, match="needs a quantized model folder its workers can read"):
        segment_archive.main(["--input", str(input_list), "--data-dir", data_dir, "--output", str(tmp_path / "out"),
                              "--model", toy_model, "--precision", "int8", *calibration_flags(toy_list), "--",
                              "--runner", "DataflowRunner"])


@pytest.mark.parametrize("command, message", [
    (["export", "{quantized}", "{out}", "--format", "tflite"], "a quantized model folder exports only as onnx"),
    (["export", "{model}", "{out}", "--format", "saved_model", "--precision", "int8"],
     "--precision int8 exports the onnx format only"),
    (["export", "{model}", "{out}", "--format", "onnx", "--precision", "int8"],
     "int8 needs a quantized model folder (python -m refinenet_tf quantize) or calibration images "
     "(--calibration-list)"),
    (["export", "{model}", "{out}", "--format", "onnx", "--calibration-list", "{list}"],
     "--calibration-list and --val-list apply to --precision int8"),
    (["export", "{quantized}", "{out}", "--format", "onnx", "--calibration-list", "{list}"], "is quantized already"),
    (["export", "{model}", "{quantized}", "--format", "frozen"], "is a quantized model folder; export into another"),
], ids=["quantized-tflite", "int8-saved-model", "int8-no-calibration", "calibration-without-int8",
        "calibration-of-a-quantized-folder", "into-a-quantized-folder"])
def test_an_int8_export_that_cannot_be_made_is_one_line(command, message, toy_model, toy_list, quantized, tmp_path):
    names = {"quantized": quantized, "model": toy_model, "out": str(tmp_path / "out"), "list": toy_list[1]}
    done = run_script("-m", "refinenet_tf", *(part.format(**names) for part in command))
    assert message in single_error_line(done)
    assert not (tmp_path / "out").exists() and is_quantized(quantized)


def test_int8_without_calibration_images_is_one_line_in_every_entry_point(toy_model, toy_list, tmp_path):
    data_dir, list_path = toy_list
    done = run_script("evaluate_msc.py", "--restore-from", toy_model, "--data-dir", data_dir, "--data-list",
                      list_path, "--scales", "1.0", "--precision", "int8")
    assert "int8 needs a quantized model folder" in single_error_line(done) and "--calibration-list" in done.stderr
    with pytest.raises(ConfigError, match="int8 needs a quantized model folder"):
        RefineNet(model=toy_model, precision="int8").deploy(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ConfigError, match="calibration applies to precision='int8'"):
        RefineNet(model=toy_model, calibration=list_path)
    if importlib.util.find_spec("apache_beam") is not None:
        done = run_script("-m", "refinenet_tf", "segment-archive", "--input", list_path, "--output",
                          tmp_path / "out", "--model", toy_model, "--precision", "int8")
        assert "int8 needs a quantized model folder" in single_error_line(done)
