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
