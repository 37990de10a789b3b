"""The one evaluation entry the commands, the API and the demo use: a report folder that cannot be written is
refused before any work; results.json (with the job's metadata) and the report are written from one evaluation."""

from __future__ import annotations

import json

import pytest

from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.errors import ConfigError
from refinenet_tf.evaluate.job import EvaluationJob, run_evaluation_job
from refinenet_tf.predict.predictor import description_for_checkpoint
from refinenet_tf.version import __version__
from tests.support.model_factory import write_dataset


@pytest.fixture
def data(tmp_path):
    data_dir = str(tmp_path / "data")
    list_path = write_dataset(data_dir)
    return list_path, read_list_file(data_dir, list_path)


def test_the_job_writes_results_with_its_metadata_and_a_report_that_links_them(tiny_checkpoints, data, tmp_path):
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib")
    list_path, samples = data
    checkpoint = tiny_checkpoints[0]
    results_file, report = tmp_path / "results.json", tmp_path / "report"
    job = EvaluationJob(results_file=str(results_file), report=str(report), report_images=1,
                        metadata={"run": "nightly"})
    result, results = run_evaluation_job(checkpoint, samples, description_for_checkpoint(checkpoint), list_path, job)
    written = json.loads(results_file.read_text(encoding="utf-8"))
    assert written["metadata"]["run"] == "nightly" and written["metadata"]["images"] == result.images == 3
    assert written["metadata"]["data_list"] == list_path
    assert written["metadata"]["refinenet_tf_version"] == __version__
    assert written["mean_iou"] == pytest.approx(result.plain.mean_iou) == pytest.approx(results["mean_iou"])
    assert len(written["classes"]) == result.plain.num_classes
    index = (report / "index.html").read_text(encoding="utf-8")
    assert "results.json" in index and not (report / "results.json").exists()  # links the file it was given


def test_a_report_path_that_is_a_file_is_refused_before_anything_is_evaluated(tiny_checkpoints, data, tmp_path):
    pytest.importorskip("matplotlib", reason="the HTML report needs matplotlib")
    list_path, samples = data
    (tmp_path / "report").write_text("not a folder", encoding="utf-8")
    job = EvaluationJob(save_dir=str(tmp_path / "masks"), results_file=str(tmp_path / "results.json"),
                        report=str(tmp_path / "report"))
    checkpoint = tiny_checkpoints[0]
    with pytest.raises(ConfigError, match="must be a folder, this is a file"):
        run_evaluation_job(checkpoint, samples, description_for_checkpoint(checkpoint), list_path, job)
    assert not (tmp_path / "masks").exists() and not (tmp_path / "results.json").exists()
