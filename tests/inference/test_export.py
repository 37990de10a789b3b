"""Exports loaded in fresh processes by their own runtimes match the checkpoint's predictions."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from refinenet_tf.cli import main as cli
from refinenet_tf.errors import ConfigError
from refinenet_tf.export import export_model
from refinenet_tf.predict.predictor import Predictor

pytestmark = pytest.mark.slow  # exports checked by their own runtimes

REPO = Path(__file__).resolve().parents[2]
IMAGE_SIZES = ((45, 61), (32, 40))  # odd and even, neither a multiple of the output stride
TIE_TOLERANCE = 1e-4

# Runs in a fresh interpreter: loads one export with its runtime, predicts every image, saves the results.
LOADER = r'''
import sys, warnings
import numpy as np

fmt, path, images_file, results_file = sys.argv[1:]
images = list(np.load(images_file).values())
results = {}
if fmt == "saved_model":
    import tensorflow as tf
    serve = tf.saved_model.load(path).signatures["serving_default"]
    outputs = [serve(image=tf.constant(image)) for image in images]
    outputs = [{name: value.numpy() for name, value in output.items()} for output in outputs]
elif fmt == "frozen":
    import tensorflow as tf
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(open(path, "rb").read())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        outputs = [session.run({"labels": "labels:0", "probabilities": "probabilities:0"}, {"image:0": image[None]})
                   for image in images]
elif fmt == "tflite":
    import tensorflow as tf
    warnings.simplefilter("ignore")
    interpreter = tf.lite.Interpreter(model_path=path)
    input_index = interpreter.get_input_details()[0]["index"]
    outputs = []
    for image in images:  # a new size needs resize_tensor_input + allocate_tensors
        interpreter.resize_tensor_input(input_index, image.shape)
        interpreter.allocate_tensors()
        outputs.append(interpreter.get_signature_runner("serving_default")(image=image))
elif fmt == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name.split(":")[0] for output in session.get_outputs()]
    outputs = [dict(zip(names, session.run(None, {"image:0": image[None]}))) for image in images]
    assert "tensorflow" not in sys.modules, "the ONNX runtime must not need TensorFlow"
for index, output in enumerate(outputs):
    results[f"labels_{index}"] = output["labels"]
    results[f"probabilities_{index}"] = output["probabilities"]
np.savez(results_file, **results)
'''


@pytest.fixture(scope="module")
def model(module_tmp, tiny_checkpoints):
    """A random-weight lw-refinenet-mobilenetv2 checkpoint, test images and its Predictor outputs."""
    root = module_tmp("export")
    checkpoint, _ = tiny_checkpoints
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for size in IMAGE_SIZES]
    images_file = root / "images.npz"
    np.savez(images_file, *images)
    with Predictor(checkpoint) as predictor:
        expected = [predictor.predict(image) for image in images]
    return {"root": root, "checkpoint": checkpoint, "images": images_file, "expected": expected}


def load_in_fresh_process(fmt: str, path: str, model, tmp_path) -> list[tuple[np.ndarray, np.ndarray]]:
    results_file = tmp_path / f"{fmt}.npz"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(REPO))
    completed = subprocess.run([sys.executable, "-c", LOADER, fmt, path, str(model["images"]), str(results_file)],
                               env=environment, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = np.load(results_file)
    return [(results[f"labels_{i}"], results[f"probabilities_{i}"]) for i in range(len(IMAGE_SIZES))]


def assert_matches_checkpoint(results, expected) -> None:
    for (labels, probabilities), prediction in zip(results, expected, strict=True):
        assert labels.shape == prediction.labels.shape and probabilities.shape == prediction.probabilities.shape
        np.testing.assert_allclose(probabilities, prediction.probabilities, atol=2e-5)
        differ = labels != prediction.labels
        top_two = np.sort(prediction.probabilities, axis=-1)[..., -2:]
        assert np.all(top_two[differ, 1] - top_two[differ, 0] < TIE_TOLERANCE), "labels differ away from ties"
        assert differ.mean() < 0.01


def test_saved_model_serves_any_image_size(model, tmp_path):
    path = export_model(model["checkpoint"], str(tmp_path / "saved"), "saved_model")
    assert (tmp_path / "saved" / "saved_model.pb").is_file()
    description = json.loads((tmp_path / "saved" / "model.json").read_text())
    assert description["arch"] == "lw-refinenet-mobilenetv2" and description["num_classes"] == 3
    assert_matches_checkpoint(load_in_fresh_process("saved_model", path, model, tmp_path), model["expected"])


def test_frozen_graph_from_the_command_line(model, tmp_path, capsys):
    output = tmp_path / "frozen"
    assert cli(["export", model["checkpoint"], str(output), "--format", "frozen"]) == 0
    path = capsys.readouterr().out.strip().splitlines()[-1]
    assert path == str(output / "model.pb")
    assert_matches_checkpoint(load_in_fresh_process("frozen", path, model, tmp_path), model["expected"])


def test_tflite_runs_after_resizing_its_input(model, tmp_path):
    path = export_model(model["checkpoint"], str(tmp_path / "tflite"), "tflite")
    assert path.endswith("model.tflite")
    assert_matches_checkpoint(load_in_fresh_process("tflite", path, model, tmp_path), model["expected"])


def test_onnx_runs_in_onnxruntime(model, tmp_path):
    pytest.importorskip("tf2onnx", reason="ONNX export needs tf2onnx (pip install tf2onnx onnxruntime)")
    pytest.importorskip("onnxruntime", reason="the ONNX check needs onnxruntime (pip install onnxruntime)")
    path = export_model(model["checkpoint"], str(tmp_path / "onnx"), "onnx")
    assert_matches_checkpoint(load_in_fresh_process("onnx", path, model, tmp_path), model["expected"])


def test_bad_export_requests_name_the_problem(model, tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'keras'.*saved_model, frozen, tflite, onnx"):
        export_model(model["checkpoint"], str(tmp_path / "out"), "keras")
    with pytest.raises(ConfigError, match="input_size does not apply to the frozen format"):
        export_model(model["checkpoint"], str(tmp_path / "out"), "frozen", input_size=(45, 61))
    with pytest.raises(ConfigError, match="holds checkpoints"):
        export_model(model["checkpoint"], model["checkpoint"], "frozen")
    assert not (tmp_path / "out").exists()
