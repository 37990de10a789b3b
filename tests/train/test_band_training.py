"""A model of four bands (RGB + near infrared) on data where two classes differ only in the fourth band: it clearly
beats the same model on the RGB bands alone, both fine-tuned from the session's RGB toy model (its first kernel
adapted to four bands), and it predicts, tiles, exports, evaluates and quantizes with no flag but its model.json. A
checkpoint converted from PyTorch starts a four-band model the same way."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image

from refinenet_tf import RefineNet, checkpoints
from refinenet_tf.cli import infer, quantize
from refinenet_tf.data.images import load_mask, load_model_image
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.description import load_description
from refinenet_tf.errors import DataError
from refinenet_tf.evaluate.metrics import ConfusionMatrix
from refinenet_tf.export import export_model
from refinenet_tf.predict.predictor import Predictor
from refinenet_tf.train.trainer import TrainConfig, Trainer
from refinenet_tf.weights.convert import convert_weights
from tests.support.scripts import run_script, single_error_line
from tests.support.toy_data import NUM_CLASSES
from tests.support.weight_files import write_mobilenet_state_dict

pytestmark = pytest.mark.slow
SIZE = (48, 48)
STEPS = 60
HOT, COLD = 210, 40  # the near-infrared value of class 1 and of class 2; RGB cannot tell them apart


def render_bands(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One 4-band scene and its mask: two same-coloured shapes whose class only the fourth band gives."""
    height, width = SIZE
    bands = np.concatenate([rng.uniform(90, 160, (height, width, 1)) + rng.normal(0, 8, (height, width, 3)),
                            rng.normal(125, 10, (height, width, 1))], axis=-1)
    mask = np.zeros(SIZE, np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    for label in rng.permutation([1, 2]):
        side = int(rng.integers(10, 20))
        top, left = rng.integers(0, height - side), rng.integers(0, width - side)
        shape = (ys >= top) & (ys < top + side) & (xs >= left) & (xs < left + side)
        bands[shape] = (200, 140, 40, HOT if label == 1 else COLD)
        mask[shape] = label
    return np.clip(bands, 0, 255).astype(np.uint8), mask


def write_sets(root: str) -> dict[str, tuple[str, str]]:
    """The same scenes as 4-band TIFF and as RGB PNG: {'bands'|'rgb': (train list, val list)}."""
    rng = np.random.default_rng(3)
    os.makedirs(os.path.join(root, "labels"))
    os.makedirs(os.path.join(root, "images"))
    lines: dict[str, list[str]] = {"bands": [], "rgb": []}
    for index in range(32):
        bands, mask = render_bands(rng)
        Image.fromarray(mask, mode="L").save(os.path.join(root, "labels", f"{index}.png"))
        tifffile.imwrite(os.path.join(root, "images", f"{index}.tif"), bands, photometric="minisblack")
        Image.fromarray(bands[..., :3]).save(os.path.join(root, "images", f"{index}.png"))
        lines["bands"].append(f"/images/{index}.tif /labels/{index}.png\n")
        lines["rgb"].append(f"/images/{index}.png /labels/{index}.png\n")
    lists = {}
    for kind, kind_lines in lines.items():
        paths = (os.path.join(root, f"{kind}_train.txt"), os.path.join(root, f"{kind}_val.txt"))
        for path, chosen in zip(paths, (kind_lines[:24], kind_lines[24:]), strict=True):
            with open(path, "w") as handle:
                handle.writelines(chosen)
        lists[kind] = paths
    return lists


def fine_tune(root: str, train_list: str, snapshots: str, start: str) -> None:
    description = load_description(start)  # the RGB toy model's: the trainer fits the input to the images
    config = TrainConfig(description=description, data_dir=root, data_list=train_list, snapshot_dir=snapshots,
                         restore_from=start, batch_size=4, input_size=SIZE, learning_rate=1e-3, optimizer="adam",
                         decoder_lr_mult=1.0, weight_decay=1e-5, dropout=False, train_batch_norm=True,
                         batch_norm_decay=0.9, num_steps=STEPS, save_pred_every=STEPS, threads=2, log_every=STEPS)
    Trainer(config).run()


def class_ious(snapshots: str, root: str, val_list: str) -> np.ndarray:
    confusion = ConfusionMatrix(NUM_CLASSES)
    with Predictor(snapshots) as predictor:
        for sample in read_list_file(root, val_list):
            image = load_model_image(sample.image_path, predictor.description.preprocessing)
            confusion.update(load_mask(sample.mask_path), predictor.predict(image, ("labels",)).labels)
    return confusion.class_iou()


@pytest.fixture(scope="module")
def trained(module_tmp, toy_model):
    folder = module_tmp("bands")
    root = str(folder / "data")
    lists = write_sets(root)
    for kind, (train_list, _) in lists.items():
        fine_tune(root, train_list, str(folder / kind), toy_model)
    return root, lists, folder


def test_the_fourth_band_is_learned_and_beats_rgb_alone(trained, caplog):
    root, lists, folder = trained
    description = load_description(str(folder / "bands"))
    assert description.preprocessing.channels == 4 and description.preprocessing.input_dtype == "uint8"
    assert description.preprocessing.std[3] > 1  # measured on the training list, not a default
    bands = class_ious(str(folder / "bands"), root, lists["bands"][1])
    rgb = class_ious(str(folder / "rgb"), root, lists["rgb"][1])
    # measured with oneDNN on: 4 bands [0.94, 0.73, 0.57], RGB alone [0.94, 0.19, 0.32]
    assert min(bands[1], bands[2]) > 0.45
    assert bands[1:].mean() > rgb[1:].mean() + 0.2


def test_the_first_kernel_starts_from_the_rgb_filters(trained, toy_model):
    _, _, folder = trained
    name = "layer1/conv/weights"
    rgb = tf.train.load_checkpoint(checkpoints.resolve_checkpoint(toy_model)).get_tensor(name)
    start = tf.train.load_checkpoint(str(folder / "bands" / "model.ckpt-0")).get_tensor(name)
    assert start.shape == (3, 3, 4, 32)
    # the toy model is normalised by ImageNet's spread (torchvision's convention): its RGB filters carry over as they
    # are, and the fourth band starts from their mean
    np.testing.assert_allclose(start[:, :, :3], rgb, rtol=1e-6)
    np.testing.assert_allclose(start[:, :, 3], rgb.mean(axis=2), rtol=1e-5, atol=1e-7)


def test_a_band_model_predicts_from_its_model_json(trained, tmp_path):
    root, lists, folder = trained
    image = os.path.join(root, "images", "30.tif")
    infer.main([image, str(folder / "bands"), "--save-dir", str(tmp_path / "whole")])
    infer.main([image, str(folder / "bands"), "--tile", "32,32", "--save-dir", str(tmp_path / "tiled")])
    whole = np.asarray(Image.open(tmp_path / "whole" / "30.png"))
    tiled = np.asarray(Image.open(tmp_path / "tiled" / "30.png"))
    truth = np.asarray(Image.open(os.path.join(root, "labels", "30.png")))
    assert whole.shape == SIZE and (whole == truth).mean() > 0.9
    assert (tiled == whole).mean() > 0.97
    overlay = np.asarray(Image.open(tmp_path / "whole" / "30_overlay.png"))
    assert overlay.shape == (*SIZE, 3)


def test_a_band_model_exports(trained, tmp_path):
    root, _, folder = trained
    image = load_model_image(os.path.join(root, "images", "31.tif"),
                             load_description(str(folder / "bands")).preprocessing)
    export_model(str(folder / "bands"), str(tmp_path / "served"), "saved_model")
    serve = tf.saved_model.load(str(tmp_path / "served")).signatures["serving_default"]
    served = serve(image=tf.constant(image))["labels"].numpy()
    with Predictor(str(folder / "bands")) as predictor:
        np.testing.assert_array_equal(served, predictor.predict(image, ("labels",)).labels)


def test_a_band_model_evaluates_and_refuses_the_crf_in_one_line(trained, tmp_path):
    root, lists, folder = trained
    output = str(tmp_path / "results.json")
    done = run_script("evaluate_msc.py", "--data-dir", root, "--data-list", lists["bands"][1], "--restore-from",
                      str(folder / "bands"), "--scales", "1.0", "--output", output, "--report",
                      str(tmp_path / "report"), cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    results = json.loads(open(output, encoding="utf-8").read())
    np.testing.assert_allclose([c["iou"] for c in results["classes"]],
                               class_ious(str(folder / "bands"), root, lists["bands"][1]), atol=1e-9)
    assert (tmp_path / "report" / "index.html").is_file()
    refused = run_script("evaluate_msc_with_CRF.py", "--data-dir", root, "--data-list", lists["bands"][1],
                         "--restore-from", str(folder / "bands"), cwd=str(tmp_path))
    assert refused.returncode != 0
    assert "--crf needs a model of 8-bit RGB images" in single_error_line(refused)


def test_the_api_segments_band_arrays_and_files(trained):
    root, _, folder = trained
    path = os.path.join(root, "images", "29.tif")
    model = RefineNet(model=str(folder / "bands"))
    from_file = model.deploy(image_file=path)
    np.testing.assert_array_equal(model.deploy(image=tifffile.imread(path)), from_file)
    with pytest.raises(DataError, match=r"image: 3 bands .* the model takes 4"):
        model.deploy(image=np.zeros((8, 8, 3), np.uint8))


def test_a_band_model_quantizes_to_int8(trained, tmp_path):
    pytest.importorskip("onnxruntime", reason="int8 runs on ONNX Runtime (the onnx extra)")
    root, lists, folder = trained
    quantize.main([str(folder / "bands"), "--data-dir", root, "--calibration-list", lists["bands"][0],
                   "--calibration-images", "8", "--val-list", lists["bands"][1], "--tolerance", "5",
                   "--output", str(tmp_path / "int8")])
    guard = json.loads((tmp_path / "int8" / "model.json").read_text())["int8"]["guard"]
    image = os.path.join(root, "images", "28.tif")
    with Predictor(str(tmp_path / "int8")) as int8, Predictor(str(folder / "bands")) as float32:
        picture = load_model_image(image, float32.description.preprocessing)
        agreement = (int8.predict(picture, ("labels",)).labels == float32.predict(picture, ("labels",)).labels).mean()
    assert guard["agreement"] > 0.95 and agreement > 0.95


def test_a_converted_pytorch_checkpoint_starts_a_band_model(trained, tmp_path):
    pytest.importorskip("torch", reason="writing the PyTorch weight file needs torch")
    root, lists, _ = trained
    source = str(tmp_path / "lw_mobilenet.pth")
    arrays = write_mobilenet_state_dict(source, num_classes=NUM_CLASSES)
    convert_weights(source, "lw-refinenet", "lw-refinenet-mobilenetv2", NUM_CLASSES, str(tmp_path / "converted"))
    description = load_description(str(tmp_path / "converted"))
    config = TrainConfig(description=description, data_dir=root, data_list=lists["bands"][0],
                         snapshot_dir=str(tmp_path / "bands"), restore_from=str(tmp_path / "converted"), batch_size=2,
                         input_size=SIZE, optimizer="adam", learning_rate=1e-4, train_batch_norm=True, num_steps=1,
                         save_pred_every=1, threads=2, log_every=1)
    Trainer(config).run()
    start = tf.train.load_checkpoint(str(tmp_path / "bands" / "model.ckpt-0")).get_tensor("layer1/conv/weights")
    rgb = arrays["layer1/conv/weights"]  # torchvision's normalisation: the RGB filters carry over unscaled
    np.testing.assert_allclose(start[:, :, :3], rgb, rtol=1e-6)
    np.testing.assert_allclose(start[:, :, 3], rgb.mean(axis=2), rtol=1e-5, atol=1e-7)
    assert load_description(str(tmp_path / "bands")).preprocessing.channels == 4


def test_segment_archive_writes_a_band_models_files_as_inference_py_does(trained, tmp_path):
    pytest.importorskip("apache_beam", reason="segment-archive runs on Apache Beam (the beam extra)")
    from refinenet_tf.cli.segment_archive import main as segment_archive  # deferred: Apache Beam, optional

    root, _, folder = trained
    images = [os.path.join(root, "images", f"{index}.tif") for index in (26, 27)]
    for image in images:  # inference.py takes one image, a folder or a list file
        infer.main([image, str(folder / "bands"), "--save-dir", str(tmp_path / "reference")])
    segment_archive(["--input", os.path.join(root, "images", "2[67].tif"), "--output", str(tmp_path / "archive"),
                     "--model", str(folder / "bands"), "--workers", "1", "--threads", "1"])
    reference = sorted(os.listdir(tmp_path / "reference"))
    assert reference == [f"{index}{suffix}.png" for index in (26, 27) for suffix in ("", "_colour", "_overlay")]
    for name in reference:
        assert (tmp_path / "archive" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
