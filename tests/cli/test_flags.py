"""Library errors name parameters; the command line names its flags. Old spellings still work, with a warning."""

from __future__ import annotations

import logging

import pytest

from refinenet_tf.cli import flags
from refinenet_tf.cli.common import error_line
from refinenet_tf.cli.convert_weights import build_parser as convert_weights_parser
from refinenet_tf.cli.demo import build_parser as demo_parser
from refinenet_tf.description import default_description
from refinenet_tf.errors import ConfigError, parameter
from refinenet_tf.train.trainer import TrainConfig


def test_a_library_error_names_the_parameter_and_the_command_line_the_flag():
    try:
        TrainConfig(description=default_description("lw-refinenet-mobilenetv2", 3), batch_size=0)
    except ConfigError as error:
        assert str(error) == "batch_size must be at least 1, got 0"
        assert error_line(error) == "error: --batch-size must be at least 1, got 0"
    else:
        raise AssertionError("batch_size=0 was accepted")
    odd = ConfigError(f"{parameter('train_batch_norm')} with {parameter('checkpoint')} {parameter('not_restore_last')}")
    assert str(odd) == "train_batch_norm with checkpoint not_restore_last"
    assert error_line(odd) == "error: --is-training with --restore-from --not-restore-last"


def test_old_flag_spellings_are_accepted_with_one_warning_and_hidden_from_help(caplog):
    caplog.set_level(logging.WARNING)
    args = convert_weights_parser().parse_args(["x.pth", "--source", "deeplab", "--output", "out", "--seed", "5"])
    assert (args.output_dir, args.random_seed) == ("out", 5)
    assert [record.getMessage() for record in caplog.records] == [
        "--output is renamed --output-dir; the old name goes away in the next release",
        "--seed is renamed --random-seed; the old name goes away in the next release"]
    help_text = demo_parser().format_help()
    assert "--random-seed" in help_text and "--num-steps" in help_text and "--verbose" in help_text
    assert "--seed" not in help_text.replace("--random-seed", "") and "--steps" not in help_text.replace("--num-steps", "")
    assert demo_parser().parse_args(["--steps", "3"]).num_steps == 3
    assert flags.flag_name("snapshot_dir") == "--snapshot-dir"


def test_convert_weights_still_requires_an_output_dir(capsys):
    from refinenet_tf.cli.convert_weights import main

    with pytest.raises(SystemExit) as exit_info:
        main(["x.pth", "--source", "deeplab"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == ("error: the following arguments are required: --output-dir "
                                       "(see convert_weights.py --help)\n")
