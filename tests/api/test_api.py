"""The RefineNet class on generated data: train, deploy, eval, export, coexisting instances, bad arguments."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinenet_tf import RefineNet
from refinenet_tf.data.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset
from refinenet_tf.errors import ConfigError, DataError
from refinenet_tf.predict.predictor import Predictor
from tests.support.toy_data import write_dataset

pytestmark = pytest.mark.slow  # the API trains, evaluates and exports

REPO = Path(__file__).resolve().parents[2]
MOBILE = {"model_type": "lightweight", "backbone": "mobilenetv2"}
FAST = {"num_steps": 2, "batch_size": 2, "input_size": (48, 48), "learning_rate": 5e-4, "optimizer": "adam",
        "save_num_images": 0}


@pytest.fixture(scope="module")
def trained(module_tmp):
    """A model trained two steps on a class_dict data set folder, and a 3-class one on a list file."""
    root = module_tmp("api")
    dataset = make_synthetic_dataset(str(root / "shapes"), num_train=4, num_val=2, size=(48, 64))
    shapes = RefineNet(**MOBILE, model=str(root / "shapes_model"))
    shapes_result = shapes.train(dataset=dataset.root, **FAST)
    list_file = write_dataset(root / "toy", count=2, size=(48, 48))
    toy = RefineNet(**MOBILE, num_classes=3, model=str(root / "toy_model"))
    toy.train(dataset=list_file, **{**FAST, "num_steps": 1})
    yield {"root": root, "dataset": dataset, "shapes": shapes, "shapes_result": shapes_result, "toy": toy}
    shapes.close()
    toy.close()


def test_training_on_a_data_set_folder_takes_its_class_table(trained):
    result, shapes = trained["shapes_result"], trained["shapes"]
    assert result.step == 2 and result.snapshot == shapes.checkpoint
    assert Path(shapes.checkpoint + ".index").is_file()
    saved = json.loads((trained["root"] / "shapes_model" / "model.json").read_text())
    assert saved["arch"] == "lw-refinenet-mobilenetv2"
    assert saved["num_classes"] == SYNTHETIC_CLASSES.num_classes
    assert saved["class_names"] == list(SYNTHETIC_CLASSES.names)


def test_deploy_equals_the_predictor_for_arrays_pil_images_and_files(trained, tmp_path):
    shapes = trained["shapes"]
    image_file = Path(trained["dataset"].images_dir("validation")) / "scene_00000.png"
    image = np.asarray(Image.open(image_file).convert("RGB"))
    with Predictor(shapes.checkpoint) as predictor:
        expected = predictor.predict(image).labels
    np.testing.assert_array_equal(shapes.deploy(image=image), expected)
    np.testing.assert_array_equal(shapes.deploy(image=Image.open(image_file)), expected)
    output = tmp_path / "mask.png"
    mask = shapes.deploy(image_file=str(image_file), output_file=str(output))
    np.testing.assert_array_equal(mask, expected)
    colours = np.asarray(Image.open(output).convert("RGB"))
    np.testing.assert_array_equal(colours, np.asarray(SYNTHETIC_CLASSES.colours, np.uint8)[expected])


def test_eval_scores_every_labelled_validation_pixel(trained, tmp_path):
    output = tmp_path / "results.json"
    results = trained["shapes"].eval(dataset=trained["dataset"].root, output_file=str(output))
    assert json.loads(output.read_text()) == results
    masks_dir = Path(trained["dataset"].root) / "labels_index" / "validation"
    masks = [np.asarray(Image.open(path)) for path in sorted(masks_dir.glob("*.png"))]
    labelled = sum(int((mask < SYNTHETIC_CLASSES.num_classes).sum()) for mask in masks)
    confusion = np.asarray(results["confusion_matrix"])
    assert confusion.shape == (6, 6) and confusion.sum() == labelled
    assert results["metadata"]["images"] == 2
    assert results["pixel_accuracy"] == pytest.approx(np.trace(confusion) / labelled)


def test_two_instances_coexist_and_a_reloaded_model_predicts_the_same(trained):
    shapes, toy = trained["shapes"], trained["toy"]
    image = np.random.default_rng(1).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    first_shapes, first_toy = shapes.deploy(image=image), toy.deploy(image=image)
    assert first_toy.max() < 3 and first_shapes.max() < 6
    np.testing.assert_array_equal(shapes.deploy(image=image), first_shapes)
    np.testing.assert_array_equal(toy.deploy(image=image), first_toy)
    with RefineNet(model=str(trained["root"] / "shapes_model")) as reloaded:
        assert reloaded.description.arch == "lw-refinenet-mobilenetv2"
        assert reloaded.checkpoint.endswith("model.ckpt-2")
        np.testing.assert_array_equal(reloaded.deploy(image=image), first_shapes)


def test_export_through_the_api_writes_the_frozen_graph(trained, tmp_path):
    path = trained["toy"].export(str(tmp_path / "frozen"), format="frozen")
    assert Path(path).name == "model.pb" and Path(path).stat().st_size > 100_000
    assert json.loads((tmp_path / "frozen" / "model.json").read_text())["num_classes"] == 3


def test_constructor_arguments_choose_the_architecture():
    assert RefineNet().description.arch == "refinenet-resnet101"
    assert RefineNet().description.num_classes == 21
    assert RefineNet(model_type="lightweight", num_layers=50).description.arch == "lw-refinenet-resnet50"
    assert RefineNet(num_layers=152, num_classes=5).description.num_classes == 5


@pytest.mark.parametrize("arguments, message", [
    ({"model_type": "deeplab"}, "model_type must be one of 'refinenet', 'lightweight'; got 'deeplab'"),
    ({"num_layers": 34}, "num_layers must be one of 50, 101, 152; got 34"),
    ({"backbone": "vgg"}, "backbone must be one of 'resnet', 'mobilenetv2'; got 'vgg'"),
    ({"backbone": "mobilenetv2"}, "model_type='refinenet' with backbone='mobilenetv2' is not available"),
    ({"backbone": "mobilenetv2", "model_type": "lightweight", "num_layers": 50}, "num_layers=50 applies to"),
    ({"num_classes": 0}, "num_classes must be a positive integer"),
])
def test_bad_constructor_arguments_name_the_argument(arguments, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RefineNet(**arguments)


def test_arguments_contradicting_the_checkpoint_name_both_values(trained):
    model = str(trained["root"] / "shapes_model")
    with pytest.raises(ConfigError, match=r"num_classes=5 disagrees with .*model.*num_classes=6"):
        RefineNet(num_classes=5, model=model)
    with pytest.raises(ConfigError, match=r"model_type='refinenet' disagrees with .*model_type='lightweight'"):
        RefineNet(model_type="refinenet", model=model)


def test_bad_call_arguments_are_refused(trained, tmp_path):
    shapes = trained["shapes"]
    with pytest.raises(ConfigError, match="unknown argument 'learning_rat'.*learning_rate"):
        shapes.train(dataset=trained["dataset"].root, learning_rat=1e-3)
    with pytest.raises(ConfigError, match="exactly one of image="):
        shapes.deploy()
    with pytest.raises(ConfigError, match="split='holdout' is not in .*choose one of: train, val"):
        shapes.eval(dataset=trained["dataset"].root, split="holdout")
    with pytest.raises(DataError, match="dataset not found"):
        shapes.eval(dataset=str(tmp_path / "missing"))
    with pytest.raises(DataError, match=r"uint8 RGB image of shape \(H, W, 3\) or a PIL image"):
        shapes.deploy(image=np.zeros((4, 4), np.float32))
    with pytest.raises(ConfigError, match=r"deploy\(\) needs trained weights: no model= was given"):
        RefineNet(**MOBILE).deploy(image=np.zeros((8, 8, 3), np.uint8))


def test_importing_the_package_does_not_load_tensorflow():
    code = "import sys, refinenet_tf; assert 'tensorflow' not in sys.modules; print(refinenet_tf.__version__)"
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == __import__("refinenet_tf").__version__
