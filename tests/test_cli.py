from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from nnunet_ext import __version__
from nnunet_ext.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_listed_command_exists(command):
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(module.add_arguments)
    assert callable(module.run)


def test_umbrella_lists_all_commands():
    help_text = build_parser().format_help()
    for command in COMMANDS:
        assert command in help_text


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_missing_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_python_m_nnunet_ext_runs():
    result = subprocess.run(
        [sys.executable, "-m", "nnunet_ext", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "usage: nnunet-ext" in result.stdout


def test_cli_logging_follows_the_current_stderr_across_calls():
    """A second in-process run logs to its own stderr, not to the (closed) one of the first."""
    import contextlib
    import io
    import logging

    from nnunet_ext._cli import configure_logging

    first = io.StringIO()
    with contextlib.redirect_stderr(first):
        configure_logging(0)
        logging.getLogger("nnunet_ext.test").warning("first run")
    assert "WARNING: first run" in first.getvalue()
    first.close()
    second = io.StringIO()
    with contextlib.redirect_stderr(second):
        configure_logging(0)
        logging.getLogger("nnunet_ext.test").warning("second run")
    assert second.getvalue() == "WARNING: second run\n"
