"""Every subcommand's --help renders, and reads as text: argparse %-formats argument help but not a
description, so a "%%" written in a description reaches the user as it is."""
import contextlib
import io

import pytest

from selectivity.cli import SUBCOMMANDS, build_parser


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_renders_without_format_escapes(command):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = out.getvalue()
    assert f"usage: selectivity {command}" in text
    assert "%%" not in text and "%(" not in text, text


@pytest.mark.parametrize("command", [["train", "c.toml"], ["sweep", "s.toml"], ["status", "s.toml"],
                                     ["robustness", "run"]])
def test_set_takes_one_or_several_values_per_flag_in_every_command(command):
    """`--set a=1 b=2` and `--set a=1 --set b=2` mean the same in train, sweep, status and robustness."""
    from selectivity.cli import build_parser
    from selectivity.cli.options import set_assignments

    parser = build_parser()
    grouped = parser.parse_args([*command, "--set", "train.lr=0.5", "seeds=2", "--set", "x=1"])
    single = parser.parse_args([*command, "--set", "train.lr=0.5", "--set", "seeds=2", "--set", "x=1"])
    assert set_assignments(grouped) == set_assignments(single) == ["train.lr=0.5", "seeds=2", "x=1"]
