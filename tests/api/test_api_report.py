"""RefineNet.eval(report=...) writes the HTML report; RefineNet.train(val_list=..., keep_best=True) validates."""

import json

import pytest

from refinenet_tf import RefineNet
from refinenet_tf.evaluate.html_report import MARKER
from tests.support.model_factory import write_dataset
from tests.support.toy_data import write_dataset as write_toy_dataset


def test_eval_writes_the_report_beside_its_results(tmp_path, tiny_checkpoints):
    checkpoint, _ = tiny_checkpoints
    list_path = write_dataset(str(tmp_path / "data"), count=3)
    with RefineNet(model=checkpoint) as model:
        results = model.eval(list_path, report=str(tmp_path / "report"), report_images=1)
        linked = model.eval(list_path, output_file=str(tmp_path / "results.json"), report=str(tmp_path / "linked"),
                            report_images=0)
    assert json.loads((tmp_path / "report" / "results.json").read_text()) == json.loads(json.dumps(results))
    page = (tmp_path / "report" / "index.html").read_text()
    assert MARKER in page and 'id="worst"' in page and "report_files/best-01-errors.png" in page
    linked_page = (tmp_path / "linked" / "index.html").read_text()
    assert 'href="../results.json"' in linked_page and 'id="gallery"' not in linked_page
    assert not (tmp_path / "linked" / "results.json").exists()
    assert linked["mean_iou"] == results["mean_iou"]


@pytest.mark.slow  # trains
def test_train_validates_and_keeps_the_best_snapshot(tmp_path):
    train_list = write_toy_dataset(tmp_path, count=4, size=(48, 48))
    val_list = write_toy_dataset(tmp_path, count=2, size=(48, 48), seed=3, list_name="val.txt")
    with RefineNet(model_type="lightweight", backbone="mobilenetv2", num_classes=3,
                   model=str(tmp_path / "model")) as model:
        result = model.train(train_list, num_steps=2, batch_size=2, input_size=(48, 48), optimizer="adam",
                             learning_rate=1e-3, save_num_images=0, save_pred_every=1, val_list=val_list,
                             keep_best=True)
    record = json.loads((tmp_path / "model" / "best" / "best.json").read_text())
    assert result.step == 2 and record["step"] in (1, 2) and 0 <= record["mean_iou"] <= 1
    assert (tmp_path / "model" / "best" / f"model.ckpt-{record['step']}.index").is_file()
