"""The catalogue of bad inputs: each one is refused with the right error type and a one-line message naming
the file (and line) or the flag, and what to do; a few of them through the scripts, as users meet them."""

import errno
import logging
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from refinenet_tf import checkpoints
from refinenet_tf.data.images import load_image, load_mask, load_pair
from refinenet_tf.data.listfile import read_list_file
from refinenet_tf.data.reader import reader_errors, train_dataset
from refinenet_tf.description import Preprocessing, default_description, load_description
from refinenet_tf.errors import CheckpointError, ConfigError, DataError, TrainingError
from refinenet_tf.evaluate.evaluator import evaluate
from refinenet_tf.models.model import build_model
from refinenet_tf.snapshots import SnapshotWriter, save_snapshot
from refinenet_tf.train.memory import check_fits_in_memory
from refinenet_tf.train.trainer import TrainConfig, Trainer
from tests.support.scripts import ARCH, TINY_MODEL_FLAGS, run_script, single_error_line
from tests.support.toy_data import NUM_CLASSES, write_dataset

v1 = tf.compat.v1
IGNORE = 255
SIZE = 48


def _config(root, list_path, **changes) -> TrainConfig:
    settings = dict(description=default_description(ARCH, NUM_CLASSES), data_dir=str(root), data_list=str(list_path),
                    snapshot_dir=str(root / "snapshots"), input_size=(SIZE, SIZE), batch_size=1, num_steps=1,
                    save_pred_every=1, save_num_images=0, threads=1)
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def trained(module_tmp):
    """A 1-step run with --on-bad-sample skip on 3 pairs, one of them a truncated JPEG: (root, list, trainer, result)."""
    root = module_tmp("trained")
    list_path = write_dataset(root, count=3, size=(SIZE, SIZE))
    bad_image = root / "images" / "001.png"
    bad_image.write_bytes(_jpeg_bytes(root)[:200])
    trainer = Trainer(_config(root, list_path, batch_size=2, on_bad_sample="skip"))
    return root, list_path, trainer, trainer.run()


def _jpeg_bytes(root) -> bytes:
    path = root / "whole.jpg"
    Image.fromarray(np.full((SIZE, SIZE, 3), 120, np.uint8)).save(path)
    return path.read_bytes()


def _list(root, *lines: str) -> str:
    path = root / "list.txt"
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def _pair(root, name: str, mask: Image.Image, image_size: tuple[int, int] = (SIZE, SIZE)) -> tuple[str, str]:
    image_path, mask_path = root / f"{name}.jpg", root / f"{name}.png"
    Image.fromarray(np.full((*image_size, 3), 100, np.uint8)).save(image_path)
    mask.save(mask_path)
    return str(image_path), str(mask_path)


@pytest.mark.slow  # runs a script as a process
# --- list files ---------------------------------------------------------------------------------------------

def test_missing_list_file_through_train_py(tmp_path):
    missing = tmp_path / "nope.txt"
    result = run_script("train.py", "--data-dir", str(tmp_path), "--data-list", str(missing), *TINY_MODEL_FLAGS,
                        "--snapshot-dir", str(tmp_path / "s"))
    line = single_error_line(result)
    assert str(missing) in line and "--data-list" in line and "not found" in line


def test_empty_list_file(tmp_path):
    list_path = _list(tmp_path, "# comments only", "")
    with pytest.raises(DataError, match="holds no samples") as error:
        read_list_file(str(tmp_path), list_path)
    assert str(error.value).startswith(list_path)


def test_list_line_with_a_missing_file(tmp_path):
    image, mask = _pair(tmp_path, "a", Image.new("L", (SIZE, SIZE)))
    list_path = _list(tmp_path, "a.jpg a.png", "a.jpg gone.png")
    with pytest.raises(DataError, match="does not exist") as error:
        read_list_file(str(tmp_path), list_path)
    assert f"{list_path}:2" in str(error.value) and "gone.png" in str(error.value) and "data_dir" in str(error.value)


@pytest.mark.parametrize("field", ["../../x.png", "a/../../x.png"])
def test_list_paths_cannot_leave_the_data_dir(tmp_path, field):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (tmp_path / "x.png").write_bytes(b"outside")
    _pair(data_dir, "a", Image.new("L", (SIZE, SIZE)))
    list_path = _list(tmp_path, f"a.jpg {field}")
    with pytest.raises(DataError, match="points outside the data directory") as error:
        read_list_file(str(data_dir), list_path)
    assert f"{list_path}:1" in str(error.value)


def test_absolute_list_paths_resolve_under_the_data_dir(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _pair(data_dir, "a", Image.new("L", (SIZE, SIZE)))
    list_path = _list(tmp_path, f"/a.jpg {tmp_path / 'x.png'}")  # an existing file outside is not reached
    (tmp_path / "x.png").write_bytes(b"outside")
    with pytest.raises(DataError, match="does not exist") as error:
        read_list_file(str(data_dir), list_path)
    assert str(data_dir / str(tmp_path / "x.png").lstrip("/")) in str(error.value)


# --- images and masks ---------------------------------------------------------------------------------------

def test_truncated_jpeg_stops_the_training_pipeline_naming_file_and_line(tmp_path):
    image, mask = _pair(tmp_path, "a", Image.new("L", (SIZE, SIZE)))
    with open(image, "r+b") as handle:
        handle.truncate(os.path.getsize(image) // 2)
    samples = read_list_file(str(tmp_path), _list(tmp_path, "a.jpg a.png"))
    with tf.Graph().as_default():
        dataset = train_dataset(samples, Preprocessing.deeplab(), (SIZE, SIZE), 1, NUM_CLASSES, IGNORE, seed=0)
        batch = v1.data.make_one_shot_iterator(dataset).get_next()
        with v1.Session() as session, pytest.raises(DataError, match="cannot decode the image") as error:
            with reader_errors():
                session.run(batch)
    assert image in str(error.value) and samples[0].origin in str(error.value)


def test_unreadable_png(tmp_path):
    path = tmp_path / "noise.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="unreadable, truncated or too large") as error:
        load_image(str(path))
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize(("mask", "advice"), [
    (Image.fromarray(np.full((SIZE, SIZE), 2, np.uint16)), "16/32-bit"),
    (Image.new("P", (SIZE, SIZE)), "convert_masks.py --format palette"),
    (Image.new("RGB", (SIZE, SIZE)), "convert_masks.py --format rgb"),
], ids=["16-bit", "palette", "rgb"])
def test_masks_that_are_not_8_bit_index_images(tmp_path, mask, advice):
    path = tmp_path / "mask.png"
    mask.save(path)
    with pytest.raises(DataError, match=advice.replace(".", r"\.")) as error:
        load_mask(str(path))
    assert str(error.value).startswith(str(path))


def test_mask_and_image_size_mismatch(tmp_path):
    image, mask = _pair(tmp_path, "a", Image.new("L", (SIZE, SIZE - 1)))
    with pytest.raises(DataError, match=f"mask is {SIZE}x{SIZE - 1} .* is {SIZE}x{SIZE}") as error:
        load_pair(image, mask, NUM_CLASSES, IGNORE)
    assert str(error.value).startswith(mask) and image in str(error.value)


def test_labels_beyond_num_classes_that_are_not_the_ignore_label(tmp_path):
    values = np.zeros((SIZE, SIZE), np.uint8)
    values[0, :4] = NUM_CLASSES
    values[1, :] = IGNORE  # allowed
    image, mask = _pair(tmp_path, "a", Image.fromarray(values))
    with pytest.raises(DataError, match=f"label values {NUM_CLASSES} \\(4 px\\) are not classes") as error:
        load_pair(image, mask, NUM_CLASSES, IGNORE)
    assert str(error.value).startswith(mask) and "num_classes" in str(error.value)

@pytest.mark.slow  # runs a script as a process
def test_bad_image_stops_evaluate_msc_py(trained, tmp_path):
    root, list_path, _, result = trained
    bad_list = _list(tmp_path, "/images/000.png /labels/000.png", "/images/001.png /labels/001.png")
    line = single_error_line(run_script("evaluate_msc.py", "--data-dir", str(root), "--data-list", bad_list,
                                        "--restore-from", result.snapshot, "--scales", "1.0", "--threads", "1"))
    assert str(root / "images" / "001.png") in line and f"{bad_list}:2" in line


def test_empty_data_set_after_skipping_every_bad_sample(tmp_path):
    lines = []
    for name in ("a", "b"):
        _pair(tmp_path, name, Image.fromarray(np.full((SIZE, SIZE), 9, np.uint8)))
        lines.append(f"{name}.jpg {name}.png")
    list_path = _list(tmp_path, *lines)
    samples = read_list_file(str(tmp_path), list_path)
    with tf.Graph().as_default():
        dataset = train_dataset(samples, Preprocessing.deeplab(), (SIZE, SIZE), 1, NUM_CLASSES, IGNORE, seed=0,
                                on_bad_sample="skip", num_parallel_calls=1)
        batch = v1.data.make_one_shot_iterator(dataset).get_next()
        with v1.Session() as session, pytest.raises(DataError, match="every one of the 2 samples") as error:
            with reader_errors():
                session.run(batch)
    assert list_path in str(error.value)


# --- --on-bad-sample skip -----------------------------------------------------------------------------------

@pytest.mark.slow  # a training run
def test_training_skips_and_counts_bad_samples(trained):
    root, list_path, trainer, result = trained
    assert result.step == 1 and result.snapshot is not None
    assert trainer.skipped.count == 1
    (origin, reason), = trainer.skipped.reasons.items()
    assert origin == f"{list_path}:2" and str(root / "images" / "001.png") in reason


@pytest.mark.slow  # a training run (the trained fixture)
def test_evaluation_skips_logs_and_counts_bad_samples(trained, caplog):
    root, list_path, _, result = trained
    samples = read_list_file(str(root), list_path)
    with caplog.at_level(logging.WARNING):
        evaluation = evaluate(result.snapshot, samples, load_description(result.snapshot), on_bad_sample="skip",
                              threads=1)
    assert evaluation.images == 2 and list(evaluation.skipped) == [f"{list_path}:2"]
    assert any(f"skipping {list_path}:2" in message and "001.png" in message for message in caplog.messages)


@pytest.mark.slow  # runs a script as a process
# --- memory, checkpoints, training --------------------------------------------------------------------------

def test_crop_too_large_for_memory_is_refused_before_training(tmp_path):
    list_flags = ["--data-dir", str(tmp_path), "--data-list", write_dataset(tmp_path, count=1, size=(SIZE, SIZE))]
    result = run_script("train.py", *list_flags, *TINY_MODEL_FLAGS, "--input-size", "30000,30000",
                        "--batch-size", "10", "--snapshot-dir", str(tmp_path / "s"))
    line = single_error_line(result)
    assert "--input-size 30000,30000 with --batch-size 10" in line and "GB of RAM" in line
    assert not (tmp_path / "s" / "checkpoint").exists()


def test_memory_check_compares_activations_with_the_ram_given():
    with tf.Graph().as_default() as graph:
        tf.nn.relu(tf.zeros([4, 64, 64, 8]))  # 2 x 512 KiB of activations (zeros and relu)
        check_fits_in_memory(graph, (64, 64), 4, available_bytes=2**21)
        with pytest.raises(ConfigError, match="input_size 64,64 with batch_size 4"):
            check_fits_in_memory(graph, (64, 64), 4, available_bytes=2**20 - 1)


@pytest.mark.slow  # a training run (the trained fixture)
def test_num_classes_disagreeing_with_the_restored_checkpoint(trained):
    snapshot = trained[3].snapshot
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [1, SIZE, SIZE, 3]), default_description(ARCH, NUM_CLASSES + 2))
        with v1.Session() as session, pytest.raises(CheckpointError) as error:
            checkpoints.initialise_from(session, snapshot, v1.global_variables())
    assert str(error.value).startswith(snapshot) and "not_restore_last" in str(error.value)
    assert f"the checkpoint has {NUM_CLASSES} classes, the model {NUM_CLASSES + 2} (num_classes)" in str(error.value)


@pytest.mark.slow  # runs a script as a process
def test_num_classes_disagreeing_with_the_checkpoint_through_evaluate_msc_py(trained):
    root, list_path, _, result = trained
    line = single_error_line(run_script("evaluate_msc.py", "--data-dir", str(root), "--data-list", list_path,
                                        "--restore-from", result.snapshot, "--num-classes", "7"))
    assert f"--num-classes 7 disagrees with the checkpoint's model description ({NUM_CLASSES})" in line
    assert result.snapshot in line

@pytest.mark.slow  # training run
def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_snapshot(tmp_path):
    list_path = write_dataset(tmp_path, count=2, size=(SIZE, SIZE))
    config = _config(tmp_path, list_path, batch_size=2, learning_rate=1e6, decoder_lr_mult=1e3, num_steps=20)
    with pytest.raises(TrainingError, match=r"the loss became (nan|inf) at step (\d+); stopped without saving") as error:
        Trainer(config).run()
    failed_step = int(str(error.value).split(" at step ")[1].split(";")[0])
    latest = checkpoints.latest_snapshot(config.snapshot_dir)
    assert f"the last good snapshot is {latest}" in str(error.value)
    assert latest.endswith(f"model.ckpt-{failed_step - 1}")
    reader = tf.train.load_checkpoint(latest)
    assert all(np.all(np.isfinite(reader.get_tensor(name))) for name in reader.get_variable_to_shape_map())


def _assert_snapshot_intact(snapshot_dir, step: int) -> None:
    latest = checkpoints.latest_snapshot(str(snapshot_dir))
    assert latest == str(snapshot_dir / f"model.ckpt-{step}")
    reader = tf.train.load_checkpoint(latest)
    assert reader.get_tensor("global_step") == step
    leftovers = [name for name in os.listdir(snapshot_dir)
                 if name.startswith(".tmp-") or name.startswith(f"model.ckpt-{step + 1}")]
    assert leftovers == []


def test_full_disk_when_saving_says_so_and_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    snapshot_dir = tmp_path / "snapshots"
    description = default_description(ARCH, NUM_CLASSES)
    with tf.Graph().as_default():
        step = v1.train.get_or_create_global_step()
        writer = SnapshotWriter.of([step, v1.get_variable("weights", [64, 64])])
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            session.run(step.assign(1))
            save_snapshot(writer, session, str(snapshot_dir), 1, description)
            real_save = writer.save

            def save_half_then_fill_the_disk(sess, prefix):
                real_save(sess, prefix)  # the data file is written, then the disk fills up
                os.remove(prefix + ".index")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(writer, "save", save_half_then_fill_the_disk)
            session.run(step.assign(2))
            with pytest.raises(CheckpointError, match="cannot save model.ckpt-2: the disk is full") as error:
                save_snapshot(writer, session, str(snapshot_dir), 2, description)
    assert str(error.value).startswith(str(snapshot_dir))
    assert f"the previous snapshot {snapshot_dir / 'model.ckpt-1'} is intact" in str(error.value)
    _assert_snapshot_intact(snapshot_dir, 1)


@pytest.fixture
def small_tmpfs(tmp_path, trained):
    """A tmpfs with room for the tiny model's starting weights and half a trained snapshot; skipped where mount is
    not allowed."""
    snapshot_dir = trained[0] / "snapshots"

    def size(step: int) -> int:
        return sum(os.path.getsize(snapshot_dir / name) for name in os.listdir(snapshot_dir)
                   if name.startswith(f"model.ckpt-{step}."))

    mount_point = tmp_path / "full"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size(0) + size(1) // 2 + 65536}", "tmpfs",
                              str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)

@pytest.mark.slow  # runs a script as a process
def test_really_full_disk_through_train_py(trained, small_tmpfs):
    root, list_path, _, _ = trained
    result = run_script("train.py", "--data-dir", str(root), "--data-list", list_path, *TINY_MODEL_FLAGS,
                        "--on-bad-sample", "skip", "--num-steps", "3", "--save-pred-every", "1",
                        "--snapshot-dir", str(small_tmpfs))
    line = single_error_line(result)  # the starting weights (model.ckpt-0) fit, the first trained snapshot not
    assert line.startswith(f"error: {small_tmpfs}: cannot save model.ckpt-1: the disk is full")
    assert f"the previous snapshot {small_tmpfs / 'model.ckpt-0'} is intact" in line
    _assert_snapshot_intact(small_tmpfs, 0)
