"""Training commands run with oneDNN unless the user chose (TensorFlow leaves it off on AVX2-only CPUs, where it
was measured to train faster); prediction commands keep TensorFlow's own choice."""

from __future__ import annotations

import pytest

from refinenet_tf.cli import ONEDNN_ENV, TRAINING_COMMANDS, prefer_onednn_for_training


@pytest.mark.parametrize("command", TRAINING_COMMANDS)
def test_training_commands_turn_onednn_on_unless_told(command):
    unset: dict[str, str] = {}
    prefer_onednn_for_training(command, unset)
    assert unset == {ONEDNN_ENV: "1"}
    chosen = {ONEDNN_ENV: "0"}
    prefer_onednn_for_training(command, chosen)
    assert chosen == {ONEDNN_ENV: "0"}


@pytest.mark.parametrize("command", ["infer", "evaluate", "export", "segment-archive", "quantize"])
def test_prediction_commands_keep_tensorflows_choice(command):
    environ: dict[str, str] = {}
    prefer_onednn_for_training(command, environ)
    assert environ == {}
