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


def test_log_output_follows_the_current_stderr_even_after_the_old_one_closed(monkeypatch):
    """A command run in-process leaves its handler behind; a later run's stderr gets the log."""
    import io
    import logging

    from nnunet_ext._cli import configure_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure_logging(0)
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    configure_logging(0)
    logging.getLogger("nnunet_ext.test").warning("hello")
    assert second.getvalue() == "WARNING: hello\n"
