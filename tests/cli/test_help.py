"""``python -m refinenet_tf --help`` lists every command with what it does and examples; every command's own
``--help`` ends with examples of its use."""

from __future__ import annotations

import pytest

from refinenet_tf.cli import COMMANDS, command_main, main
from refinenet_tf.cli.common import run


def test_the_overview_lists_every_command_with_what_it_does_and_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "usage: python -m refinenet_tf [--verbose] COMMAND [flags]"
    listed = lines[lines.index("commands:") + 1:lines.index("examples:") - 1]
    assert [line.split()[0] for line in listed] == list(COMMANDS)
    for line, (_, summary) in zip(listed, COMMANDS.values(), strict=True):
        assert line.endswith(summary)
    examples = lines[lines.index("examples:") + 1:]
    assert examples[0] == "  python -m refinenet_tf demo"
    assert all(line.startswith("  python -m refinenet_tf ") for line in examples if line.startswith("  "))


def test_no_command_shows_the_overview_on_stderr_and_an_unknown_one_is_one_line(capsys):
    assert main([]) == 2
    assert "commands:" in capsys.readouterr().err
    assert main(["trian"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unknown command 'trian'; one of demo, train,") and error.count("\n") == 1


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_help_ends_with_examples(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(command_main(name), ["--help"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    start = lines.index("examples:")
    examples = lines[start + 1:]
    assert examples and all(line.startswith("  ") and len(line.split()) > 1 for line in examples)
    assert "usage:" in lines[0]
