"""segment-archive: the Beam pipeline writes inference.py's files byte for byte, lists bad images in the failures
file and goes on, skips what a previous run completed, and runs locally on Beam's in-Python runner, never Prism.

Every run here is local and in this process (one worker): a Beam worker process would start TensorFlow again."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile
from PIL import Image

from refinenet_tf.errors import ConfigError

beam = pytest.importorskip("apache_beam")

from apache_beam.options.pipeline_options import (  # noqa: E402  (after the skip: Beam is an optional extra)
    DirectOptions,
    FlinkRunnerOptions,
    GoogleCloudOptions,
    PortableOptions,
    StandardOptions,
    WorkerOptions,
)
from apache_beam.runners.portability import prism_runner  # noqa: E402
from apache_beam.runners.portability.fn_api_runner import FnApiRunner  # noqa: E402

from refinenet_tf.archive import require_beam  # noqa: E402
from refinenet_tf.archive.handler import Outcome  # noqa: E402
from refinenet_tf.archive.inputs import archive_images  # noqa: E402
from refinenet_tf.archive.job import ArchiveJob  # noqa: E402
from refinenet_tf.archive.pipeline import ArchiveCounts, SegmentArchive, run_archive  # noqa: E402
from refinenet_tf.archive.runner import pipeline_options  # noqa: E402
from refinenet_tf.checkpoints import resolve_checkpoint  # noqa: E402
from refinenet_tf.cli.segment_archive import main, split_beam_args  # noqa: E402
from refinenet_tf.predict.predictor import Predictor, description_for_checkpoint  # noqa: E402
from refinenet_tf.predict.segment import SegmentSettings, segment_files  # noqa: E402

SIZE = (40, 50)


@pytest.fixture(autouse=True)
def no_prism(monkeypatch):
    """Prism would download a binary: choosing it at all fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the Prism runner was chosen")

    monkeypatch.setattr(prism_runner.PrismRunner, "__init__", refuse)


@pytest.fixture
def checkpoint(tiny_checkpoints) -> str:
    return tiny_checkpoints[0]  # random weights: masks that depend on the image


def write_images(folder, count: int = 5) -> list[str]:
    """``count`` small images, PNG and JPEG, different from each other."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for index in range(count):
        path = os.path.join(folder, f"tile{index}.{'jpg' if index % 2 else 'png'}")
        Image.fromarray(rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def write_bad_images(folder) -> list[str]:
    """A truncated PNG, a text file named .png, and a five-band TIFF (an RGB model takes three)."""
    truncated, text, bands = (os.path.join(folder, name) for name in ("truncated.png", "notes.png", "bands.tif"))
    Image.fromarray(np.full((*SIZE, 3), 90, np.uint8)).save(truncated)
    with open(truncated, "rb") as stream:
        head = stream.read()[:60]
    with open(truncated, "wb") as stream:
        stream.write(head)
    with open(text, "w") as stream:
        stream.write("not an image\n")
    tifffile.imwrite(bands, np.zeros((*SIZE, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    return [truncated, text, bands]


def archive_job(checkpoint: str, output, **settings) -> ArchiveJob:
    return ArchiveJob(resolve_checkpoint(checkpoint), description_for_checkpoint(checkpoint), str(output),
                      SegmentSettings(**settings), threads=1)


def files_in(folder) -> dict[str, bytes]:
    return {name: open(os.path.join(folder, name), "rb").read() for name in sorted(os.listdir(folder))}


@pytest.mark.slow
def test_the_pipeline_writes_the_files_of_inference_py_byte_for_byte(checkpoint, tmp_path):
    write_images(tmp_path / "tiles")
    images = archive_images(str(tmp_path / "tiles" / "*"))
    job = archive_job(checkpoint, tmp_path / "archive", probability_format="npy",
                      save_logits=str(tmp_path / "archive_logits" / "logits.npy"))
    reference_settings = SegmentSettings(probability_format="npy",
                                         save_logits=str(tmp_path / "reference_logits" / "logits.npy"))
    with Predictor(job.checkpoint, job.description, threads=1) as predictor:
        written = list(segment_files(predictor, images, str(tmp_path / "reference"), reference_settings))
    counts = run_archive(job, images, str(tmp_path / "failures.tsv"))

    assert counts == ArchiveCounts(done=5, skipped=0, failed=0, pixels=5 * SIZE[0] * SIZE[1])
    reference, archive = files_in(tmp_path / "reference"), files_in(tmp_path / "archive")
    assert len(reference) == 5 * 4 == sum(len(segmented.files) - 1 for segmented in written)  # logits elsewhere
    assert archive == reference
    assert files_in(tmp_path / "archive_logits") == files_in(tmp_path / "reference_logits")
    assert sorted(files_in(tmp_path / "archive_logits")) == [f"logits_tile{index}.npy" for index in range(5)]
    assert os.path.getsize(tmp_path / "failures.tsv") == 0


@pytest.mark.slow
def test_bad_images_go_to_the_failures_file_and_the_rest_is_written(checkpoint, tmp_path):
    good = write_images(tmp_path / "tiles", 3)
    bad = write_bad_images(tmp_path / "tiles")
    job = archive_job(checkpoint, tmp_path / "out")

    counts = run_archive(job, archive_images(str(tmp_path / "tiles" / "*")), str(tmp_path / "failures.tsv"))

    assert counts == ArchiveCounts(done=3, skipped=0, failed=3, pixels=3 * SIZE[0] * SIZE[1])
    lines = (tmp_path / "failures.tsv").read_text().splitlines()
    failed = dict(line.split("\t") for line in lines)
    assert sorted(failed) == sorted(bad) and len(lines) == 3
    assert "cannot decode the image" in failed[bad[0]] and "cannot decode the image" in failed[bad[1]]
    assert all(message and "\n" not in message for message in failed.values())
    written = sorted(os.listdir(tmp_path / "out"))
    stems = [os.path.splitext(os.path.basename(path))[0] for path in good]
    assert written == sorted(f"{stem}{suffix}.png" for stem in stems for suffix in ("", "_colour", "_overlay"))
    assert counts.line("failures.tsv") == "3 done, 0 skipped, 3 failed (listed in failures.tsv)"


@pytest.mark.slow
def test_a_second_run_skips_complete_images_and_redoes_a_half_written_one(checkpoint, tmp_path):
    images = write_images(tmp_path / "tiles", 4)
    job = archive_job(checkpoint, tmp_path / "out")
    assert run_archive(job, images, str(tmp_path / "failures.tsv")).done == 4
    first = files_in(tmp_path / "out")
    os.remove(tmp_path / "out" / "tile2_overlay.png")  # as if the worker died before publishing it
    before = {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in os.listdir(tmp_path / "out")}

    counts = run_archive(job, images, str(tmp_path / "failures.tsv"))

    assert counts == ArchiveCounts(done=1, skipped=3, failed=0, pixels=SIZE[0] * SIZE[1])
    assert files_in(tmp_path / "out") == first
    after = {name: os.stat(tmp_path / "out" / name).st_mtime_ns for name in os.listdir(tmp_path / "out")}
    assert [name for name in before if after[name] != before[name]] == ["tile2.png", "tile2_colour.png"]
    assert not [name for name in os.listdir(tmp_path / "out") if name.startswith(".tmp-")]


@pytest.mark.slow
def test_the_command_segments_a_list_file_and_prints_the_counts(checkpoint, tmp_path, capsys):
    images = write_images(tmp_path / "data" / "tiles", 3)
    list_file = tmp_path / "list.txt"
    list_file.write_text("".join(f"/tiles/{os.path.basename(path)}\n" for path in images))

    main(["--input", str(list_file), "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
          "--model", checkpoint, "--workers", "1", "--threads", "1", "--save-probabilities",
          "--probability-format", "png"])
    main(["--input", str(list_file), "--data-dir", str(tmp_path / "data"), "--output", str(tmp_path / "out"),
          "--model", checkpoint, "--workers", "1", "--threads", "1", "--save-probabilities",
          "--probability-format", "png"])

    out = capsys.readouterr().out.splitlines()
    assert out == [f"3 images -> {tmp_path / 'out'}", "3 done, 0 skipped, 0 failed",
                   f"3 images -> {tmp_path / 'out'}", "0 done, 3 skipped, 0 failed"]
    names = sorted(os.listdir(tmp_path / "out"))
    assert "tile0_prob_background.png" in names and "tile2_overlay.png" in names
    assert len(names) == 3 * (3 + 3) + 1  # masks, colour, overlay and one probability PNG per class; failures.tsv


def test_options_after_the_double_dash_reach_beam_for_a_cluster_runner():
    ours, beam_args = split_beam_args(["--input", "x/*.png", "--", "--runner", "FlinkRunner", "--flink_master",
                                       "cluster:8081", "--environment_type", "LOOPBACK", "--parallelism", "8"])
    assert ours == ["--input", "x/*.png"]

    options, runner = pipeline_options(beam_args, workers=4)

    assert runner is None  # Beam builds the FlinkRunner from the options
    assert options.view_as(StandardOptions).runner == "FlinkRunner"
    assert options.view_as(FlinkRunnerOptions).flink_master == "cluster:8081"
    assert options.view_as(FlinkRunnerOptions).parallelism == 8
    assert options.view_as(PortableOptions).environment_type == "LOOPBACK"
    dataflow, _ = pipeline_options(["--runner", "DataflowRunner", "--project", "p", "--region", "europe-west1",
                                    "--temp_location", "gs://b/tmp", "--machine_type", "n2-standard-8"])
    assert dataflow.view_as(GoogleCloudOptions).project == "p"
    assert dataflow.view_as(WorkerOptions).machine_type == "n2-standard-8"


@pytest.mark.parametrize("beam_args", [[], ["--runner", "DirectRunner"], ["--runner", "direct"]])
def test_a_local_run_is_the_in_python_fn_api_runner_on_the_worker_count(beam_args):
    options, runner = pipeline_options(beam_args, workers=3)
    assert isinstance(runner, FnApiRunner)
    assert options.view_as(DirectOptions).direct_num_workers == 3
    assert options.view_as(DirectOptions).direct_running_mode == "multi_processing"
    one, _ = pipeline_options(beam_args, workers=1)
    assert one.view_as(DirectOptions).direct_running_mode == "in_memory"


def test_without_beam_the_command_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r'pip install "refinenet_tf\[beam\]"'):
        require_beam()


@pytest.mark.slow
def test_the_transform_fits_in_a_pipeline_of_ones_own(checkpoint, tmp_path):
    good = write_images(tmp_path / "tiles", 2)
    (bad,) = write_bad_images(tmp_path / "tiles")[:1]
    job = archive_job(checkpoint, tmp_path / "out")
    options, runner = pipeline_options([], workers=1)
    with beam.Pipeline(runner=runner, options=options) as pipeline:
        results = pipeline | beam.Create([*good, bad]) | SegmentArchive(job)
        (results["done"] | "Done" >> beam.Map(lambda outcome: (outcome.path, len(outcome.files)))
         | "WriteDone" >> beam.io.WriteToText(str(tmp_path / "done"), shard_name_template=""))
        (results["failed"] | beam.Map(Outcome.failure_line)
         | "WriteFailed" >> beam.io.WriteToText(str(tmp_path / "failed"), shard_name_template=""))
    done = sorted((tmp_path / "done").read_text().splitlines())
    assert done == sorted(str((path, 3)) for path in good)
    assert (tmp_path / "failed").read_text().startswith(f"{bad}\t")
    assert len(os.listdir(tmp_path / "out")) == 3 * len(good)
