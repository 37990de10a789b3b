"""Finding, strictly restoring and safely saving checkpoints."""

import os

import numpy as np
import pytest
import tensorflow as tf

from refinenet_tf import checkpoints
from refinenet_tf.description import default_description, load_description
from refinenet_tf.errors import CheckpointError
from refinenet_tf.models.model import build_model
from refinenet_tf.snapshots import SnapshotWriter, save_snapshot

v1 = tf.compat.v1


def _save(path, values: dict) -> str:
    """Write a checkpoint holding ``{name: array}``; returns its prefix."""
    with tf.Graph().as_default():
        variables = [v1.get_variable(name, initializer=np.asarray(value, np.float32)) for name, value in values.items()]
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            return v1.train.Saver(variables).save(session, str(path), write_meta_graph=False)


def _restore(prefix, shapes: dict, load=checkpoints.restore, **options):
    """Build variables of ``shapes`` (initialised to -1), ``load`` them; returns (values, report)."""
    with tf.Graph().as_default():
        variables = [v1.get_variable(name, initializer=np.full(shape, -1.0, np.float32)) for name, shape in shapes.items()]
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            report = load(session, prefix, variables, **options)
            return dict(zip(shapes, session.run(variables), strict=True)), report


def _initialise(prefix, shapes: dict, **options):
    return _restore(prefix, shapes, load=checkpoints.initialise_from, **options)


def test_resolve_accepts_prefix_file_and_directory_and_names_what_is_missing(tmp_path):
    prefix = _save(tmp_path / "model.ckpt-7", {"conv1/weights": [1.0]})
    assert checkpoints.resolve_checkpoint(prefix) == prefix
    assert checkpoints.resolve_checkpoint(prefix + ".index") == prefix
    assert checkpoints.resolve_checkpoint(str(tmp_path)) == prefix  # via the 'checkpoint' state file
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="empty: the directory holds no checkpoint"):
        checkpoints.resolve_checkpoint(str(tmp_path / "empty"))
    with pytest.raises(CheckpointError, match="model.ckpt-8: checkpoint not found"):
        checkpoints.resolve_checkpoint(str(tmp_path / "model.ckpt-8"))


def test_restore_is_strict_about_missing_variables_and_shapes(tmp_path):
    prefix = _save(tmp_path / "full", {"conv1/weights": [1.0, 2.0], "p_ims1d2_outl1_dimred/weights": [3.0],
                                       "clf_conv/weights": np.ones((1, 1, 4, 21)), "extra/Momentum": [0.0]})
    values, report = _restore(prefix, {"conv1/weights": (2,), "p_ims1d2_outl1_dimred/weights": (1,)})
    np.testing.assert_array_equal(values["conv1/weights"], [1.0, 2.0])
    assert set(report.unused) == {"clf_conv/weights", "extra/Momentum"}
    with pytest.raises(CheckpointError, match="variable conv1/weights has shape \\[2\\] in the checkpoint but \\[3\\]"):
        _restore(prefix, {"conv1/weights": (3,)})
    with pytest.raises(CheckpointError, match="1 variables are not in the checkpoint: mflow_conv_g1_pool/weights"):
        _restore(prefix, {"conv1/weights": (2,), "p_ims1d2_outl1_dimred/weights": (1,), "mflow_conv_g1_pool/weights": (1,)})
    # a classifier-only clash names the class counts, whichever way the model is loaded
    for load in (_restore, _initialise):
        with pytest.raises(CheckpointError, match="the checkpoint has 21 classes, the model 3"):
            load(prefix, {"conv1/weights": (2,), "clf_conv/weights": (1, 1, 4, 3)})


def test_backbone_only_checkpoint_leaves_the_decoder_fresh(tmp_path):
    prefix = _save(tmp_path / "init.ckpt", {"conv1/weights": [5.0], "bn_conv1/gamma": [2.0], "fc1_voc12/weights": [0.0],
                                            "conv1/weights/Momentum": [9.0], "global_step": [7.0]})
    shapes = {"conv1/weights": (1,), "bn_conv1/gamma": (1,), "p_ims1d2_outl1_dimred/weights": (1,),
              "clf_conv/weights": (2,)}
    values, report = _initialise(prefix, shapes)
    assert values["conv1/weights"] == 5.0 and values["bn_conv1/gamma"] == 2.0
    np.testing.assert_array_equal(values["clf_conv/weights"], [-1.0, -1.0])
    assert report.fresh == ("clf_conv/weights", "p_ims1d2_outl1_dimred/weights")
    assert report.summary() == (f"restored 2 variables from {prefix} (backbone 2, decoder 0, classifier 0); "
                                "initialised 2 (decoder 1, classifier 1); not used from the checkpoint: "
                                "fc1_voc12 (1 variables), optimizer state and step (2 variables)")
    with pytest.raises(CheckpointError, match="holds 1 of the model's 2 backbone variables, not res2a_branch2a/weights"):
        _initialise(prefix, {"conv1/weights": (1,), "res2a_branch2a/weights": (1,), "clf_conv/weights": (2,)})
    with pytest.raises(CheckpointError, match="2 variables are not in the checkpoint"):  # prediction needs them all
        _restore(prefix, shapes)


def test_initialising_never_reads_optimizer_state_and_refuses_a_foreign_model(tmp_path):
    backbone = "layer2/block0/expand/weights"
    prefix = _save(tmp_path / "other_run", {backbone: [1.0], "crp1/1_outvar_dimred/weights": [2.0],
                                            f"{backbone}/Momentum": [3.0], "global_step": [5.0]})
    shapes = {backbone: (1,), f"{backbone}/Momentum": (1,), "crp1/1_outvar_dimred/weights": (1,), "global_step": (1,)}
    values, report = _initialise(prefix, shapes)
    assert values == {backbone: 1.0, f"{backbone}/Momentum": -1.0, "crp1/1_outvar_dimred/weights": 2.0,
                      "global_step": -1.0}
    assert set(report.unused) == {f"{backbone}/Momentum", "global_step"}
    with pytest.raises(CheckpointError, match=r"other_run: shares no variable with the model \(it holds MobileNet-v2 "
                                              r"backbone \+ Light-Weight RefineNet MobileNet-v2 decoder weights"):
        _initialise(prefix, {"conv1/weights": (1,), "res2a_branch2a/weights": (1,)})
    with pytest.raises(CheckpointError, match="holds 1 of the model's 2 decoder variables, not crp2/1_outvar"):
        _initialise(prefix, {backbone: (1,), "crp1/1_outvar_dimred/weights": (1,), "crp2/1_outvar_dimred/weights": (1,)})


@pytest.mark.slow  # builds ResNet-101 graphs
def test_21_class_checkpoint_into_3_class_model_needs_not_restore_last(tmp_path):
    description = default_description("lw-refinenet-mobilenetv2", 21)
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [1, 32, 32, 3]), description)
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            expected = {v.op.name: value for v, value in zip(v1.global_variables(), session.run(v1.global_variables()),
                                                            strict=True)}
            writer = SnapshotWriter.of(v1.global_variables())
            prefix = save_snapshot(writer, session, str(tmp_path / "voc"), 100, description)
    with tf.Graph().as_default():
        build_model(v1.placeholder(tf.float32, [1, 32, 32, 3]), description.replace(num_classes=3))
        variables = v1.global_variables()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            with pytest.raises(CheckpointError) as error:
                checkpoints.initialise_from(session, str(tmp_path / "voc"), variables)
            message = str(error.value)
            assert "clf_conv/" in message and "the checkpoint has 21 classes, the model 3" in message
            assert "use not_restore_last to train a new classifier" in message
            report = checkpoints.initialise_from(session, prefix, variables, not_restore_last=True)
            restored = dict(zip([v.op.name for v in variables], session.run(variables), strict=True))
    assert set(report.fresh) == {"clf_conv/weights", "clf_conv/biases"}
    assert len(report.restored) == len(variables) - 2
    for name in report.restored:
        np.testing.assert_array_equal(restored[name], expected[name])
    assert restored["clf_conv/weights"].shape[-1] == 3


def test_the_snapshot_writer_writes_what_a_saver_writes_without_restore_ops(tmp_path):
    values = {"conv1/weights": np.arange(6, dtype=np.float32).reshape(2, 3), "conv1/weights/Momentum": np.ones(3),
              "global_step": np.int64(7)}
    with tf.Graph().as_default() as graph:
        variables = [v1.get_variable(name, initializer=np.asarray(value)) for name, value in values.items()]
        before = len(graph.get_operations())
        writer = SnapshotWriter.of(variables)
        start = writer.only(lambda name: not name.endswith("/Momentum"))
        written = len(graph.get_operations()) - before
        v1.train.Saver(variables)
        by_saver = len(graph.get_operations()) - before - written
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            writer.save(session, str(tmp_path / "writer"))
            start.save(session, str(tmp_path / "start"))
    assert written < by_saver  # a save op, no restore ops
    read = tf.train.load_checkpoint(str(tmp_path / "writer"))
    assert read.get_variable_to_dtype_map() == {"conv1/weights": tf.float32, "conv1/weights/Momentum": tf.float64,
                                                "global_step": tf.int64}
    for name, value in values.items():
        np.testing.assert_array_equal(read.get_tensor(name), value)
    assert set(tf.train.load_checkpoint(str(tmp_path / "start")).get_variable_to_shape_map()) == {
        "conv1/weights", "global_step"}
    restored, _ = _restore(str(tmp_path / "writer"), {"conv1/weights": (2, 3)})
    np.testing.assert_array_equal(restored["conv1/weights"], values["conv1/weights"])


def test_snapshots_are_renamed_into_place_listed_and_pruned(tmp_path):
    snapshots = tmp_path / "snapshots"
    description = default_description("lw-refinenet-mobilenetv2", 3)
    with tf.Graph().as_default():
        variable = v1.get_variable("conv1/weights", initializer=np.zeros(2, np.float32))
        writer = SnapshotWriter.of([variable])
        with v1.Session() as session:
            session.run(variable.initializer)
            for step in range(1, 6):
                variable.load(np.full(2, step, np.float32), session)
                save_snapshot(writer, session, str(snapshots), step, description, keep=3)
            # a run killed while writing leaves temporary files and an index-less data file: step 5 stays the latest
            (snapshots / ".tmp-model.ckpt-6.data-00000-of-00001").write_bytes(b"partial")
            (snapshots / "model.ckpt-6.data-00000-of-00001").write_bytes(b"partial")
            assert checkpoints.latest_snapshot(str(snapshots)) == str(snapshots / "model.ckpt-5")
            save_snapshot(writer, session, str(snapshots), 6, description, keep=3)
    names = sorted(os.listdir(snapshots))
    assert not any(name.startswith(".tmp-") for name in names)
    assert {name.split(".data")[0].split(".index")[0] for name in names if name.startswith("model.ckpt")} == {
        "model.ckpt-4", "model.ckpt-5", "model.ckpt-6"}
    assert load_description(str(snapshots)).num_classes == 3
    assert checkpoints.resolve_checkpoint(str(snapshots)) == str(snapshots / "model.ckpt-6")
    values, _ = _restore(str(snapshots / "model.ckpt-4"), {"conv1/weights": (2,)})
    np.testing.assert_array_equal(values["conv1/weights"], [4.0, 4.0])


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_snapshot_file_gets_the_permissions_the_umask_allows(tmp_path, umask):
    """model.json and the 'checkpoint' state file are as readable as TensorFlow's own files (not always 0600)."""
    snapshots = tmp_path / "snapshots"
    previous = os.umask(umask)
    try:
        with tf.Graph().as_default():
            variable = v1.get_variable("conv1/weights", initializer=np.zeros(2, np.float32))
            writer = SnapshotWriter.of([variable])
            with v1.Session() as session:
                session.run(variable.initializer)
                save_snapshot(writer, session, str(snapshots), 1,
                                          default_description("lw-refinenet-mobilenetv2", 3))
    finally:
        os.umask(previous)
    modes = {name: os.stat(snapshots / name).st_mode & 0o777 for name in os.listdir(snapshots)}
    assert {"model.json", "checkpoint", "model.ckpt-1.index"} <= set(modes)
    assert modes == dict.fromkeys(modes, 0o666 & ~umask)
