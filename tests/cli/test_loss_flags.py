"""train.py / train_msc.py loss flags: they reach the trainer's settings, and bad values are one-line errors."""

import pytest

from refinenet_tf.cli.common import run
from refinenet_tf.cli.train import build_parser, config_from_args
from refinenet_tf.cli.train import main as train_main
from refinenet_tf.cli.train_msc import main as train_msc_main

MODEL = ["--arch", "lw-refinenet-mobilenetv2", "--num-classes", "3"]


@pytest.mark.parametrize("multiscale", [False, True])
def test_loss_flags_reach_the_training_settings(tmp_path, multiscale):
    args = build_parser(multiscale).parse_args([*MODEL, "--snapshot-dir", str(tmp_path), "--loss", "ohem",
                                                "--ohem-keep", "0.1", "--ohem-min-kept", "512",
                                                "--class-weights", "median-frequency"])
    config = config_from_args(args, multiscale)
    assert (config.loss, config.ohem_keep, config.ohem_min_kept, config.class_weights) == (
        "ohem", 0.1, 512, "median-frequency")
    defaults = config_from_args(build_parser(multiscale).parse_args([*MODEL, "--snapshot-dir", str(tmp_path)]),
                                multiscale)
    assert (defaults.loss, defaults.class_weights, defaults.ohem_keep, defaults.ohem_min_kept,
            defaults.focal_gamma) == ("cross-entropy", None, 0.25, 6250, 2.0)


@pytest.mark.parametrize("flags, message", [
    (["--ohem-keep", "0"], "error: --ohem-keep is the fraction of pixels OHEM keeps, in (0, 1]; got 0.0"),
    (["--ohem-keep", "1.5"], "error: --ohem-keep is the fraction of pixels OHEM keeps, in (0, 1]; got 1.5"),
    (["--focal-gamma", "-1"], "error: --focal-gamma must be a finite number >= 0, got -1.0"),
    (["--ohem-min-kept", "-5"], "error: --ohem-min-kept must be a whole number >= 0, got -5"),
    (["--class-weights", "median"], "error: --class-weights is none, inverse-frequency, median-frequency or a "
                                    'weights file (CSV name,weight rows or JSON {"name": weight}); median is neither '
                                    "a method nor a file"),
])
def test_bad_loss_flags_are_one_line_errors_naming_the_flag(tmp_path, capsys, flags, message):
    assert run(train_main, [*MODEL, "--snapshot-dir", str(tmp_path / "s"), *flags]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_a_weights_file_of_other_classes_is_a_one_line_error_naming_it(tmp_path, capsys):
    weights = tmp_path / "weights.csv"
    weights.write_text("class_0,1\nclass_1,2\n")
    assert run(train_msc_main, [*MODEL, "--snapshot-dir", str(tmp_path / "s"), "--class-weights", str(weights)]) == 2
    lines = capsys.readouterr().err.splitlines()  # the command's "training ..." line, then the error
    assert [line for line in lines if not line.startswith("training ")] == [
        f"error: {weights}: no weight for class 'class_2' (class 2); the file needs one for each of the model's "
        "classes: class_0, class_1, class_2"]
