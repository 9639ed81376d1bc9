"""One CLI vocabulary: every parser of every command (nested subcommands included) is walked and
checked against ``nnunet_ext._cli.VOCABULARY``; help pages show no internal names, no
"(default: None)" and name only commands that exist; old spellings still work, hidden."""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from nnunet_ext import _cli, _cli_vocabulary
from nnunet_ext._cli import DEFAULT_NUM_WORKERS, VOCABULARY
from nnunet_ext.cli import COMMANDS, build_parser, main

#: Spellings of vocabulary ideas that no command may show (use the vocabulary flag instead).
SYNONYMS = {
    "--report", "--ref", "--references", "--inputs", "--in", "--out", "--outputs", "--workers",
    "--jobs", "--num-processes", "--label", "--label-ids", "--force", "--silent", "--verbosity",
    "--json-out", "--summary",
}  # fmt: skip

VOCABULARY_STRINGS = {s: flag for flag in VOCABULARY.values() for s in flag.option_strings}


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


PARSERS = list(_walk(build_parser()))


def _id(item):
    return " ".join(item[0]) or "nnunet-ext"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[_id(p) for p in PARSERS])
def test_flags_follow_the_vocabulary(path, parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        hidden = action.help == argparse.SUPPRESS
        if hidden:  # only deprecated spellings are hidden
            assert isinstance(action, _cli_vocabulary._Deprecated) or action.dest.startswith(
                "_positional_"
            )
            continue
        assert action.option_strings, f"{path}: visible positional argument {action.dest!r}"
        assert not SYNONYMS & set(action.option_strings), f"{path}: {action.option_strings}"
        for option in action.option_strings:
            if option in VOCABULARY_STRINGS:
                flag = VOCABULARY_STRINGS[option]
                assert tuple(action.option_strings) == flag.option_strings, (path, option)
                assert action.dest == flag.dest, (path, option)
        if action.dest in VOCABULARY:
            assert tuple(action.option_strings) == VOCABULARY[action.dest].option_strings
        if action.dest == "num_workers":
            assert action.default == DEFAULT_NUM_WORKERS
        if action.dest == "labels":  # ids or names, kept as text
            assert action.type is None
            assert action.nargs == "+"
        if action.nargs != 0 and action.dest != "version":
            assert action.metavar or action.choices, f"{path}: {action.option_strings} metavar"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=[_id(p) for p in PARSERS])
def test_help_shows_no_internal_names(path, parser):
    text = parser.format_help()
    assert parser.prog == " ".join(["nnunet-ext", *path])
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    assert "nnunet-ext-" not in text
    assert "python -m nnunet_ext" not in text
    for named in re.findall(r"nnunet-ext (\w+)", text):
        assert named in COMMANDS, f"{path}: help names 'nnunet-ext {named}'"
    dests = {a.dest.upper() for a in parser._actions}
    for token in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", text):
        assert token not in dests, f"{path}: internal name {token} in help"


def _module_parsers():
    for name, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        yield name, module


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_python_m_prog_is_the_command_a_user_types(name, capsys):
    module = importlib.import_module(COMMANDS[name][0])
    with pytest.raises(SystemExit):
        module.main(["--help"])
    assert capsys.readouterr().out.startswith(f"usage: nnunet-ext {name} ")


def _parse(argv):
    args = build_parser().parse_args(
        __import__("nnunet_ext.cli").cli._with_default_subcommand(argv)
    )
    return _cli.finish_args(args, getattr(args, "_required", ()))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (["evaluate", "P", "R", "-o", "s.json"],
         ["evaluate", "-i", "P", "-r", "R", "--json", "s.json"]),
        (["tune", "-i", "a", "b", "--reference", "R", "-o", "s.json", "--report", "r.json"],
         ["tune", "-i", "a", "b", "-r", "R", "-o", "s.json", "--json", "r.json"]),
        (["submission", "build", "P", "-o", "s.zip", "--images", "I"],
         ["submission", "build", "-i", "P", "-o", "s.zip", "--images", "I"]),
        (["submission", "check", "s.zip", "--images", "I"],
         ["submission", "check", "-i", "s.zip", "--images", "I"]),
        (["log", "F"], ["log", "-i", "F"]),
        (["validate", "F1", "F2", "--checkpoint", "c"],
         ["validate", "-i", "F1", "F2", "--checkpoint", "c"]),
        (["postprocess", "-i", "P", "-o", "O", "--fill-holes", "1"],
         ["postprocess", "apply", "-i", "P", "-o", "O", "--fill-holes", "1"]),
    ],
)  # fmt: skip
def test_old_spellings_still_parse_to_the_same_arguments(old, new, capsys):
    def public(args):
        return {k: v for k, v in vars(args).items() if not k.startswith("_")}

    assert public(_parse(old)) == public(_parse(new))
    err = capsys.readouterr().err
    if old[:2] != ["postprocess", "-i"]:
        assert "deprecated" in err


def test_a_value_given_twice_or_missing_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        _parse(["evaluate", "P", "R", "-i", "Q"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        _parse(["evaluate", "-i", "P"])
    assert info.value.code == 2
    assert "-r/--reference" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_num_workers_below_one_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "-i", "P", "-r", "R", "-j", value])
    assert info.value.code == 2
    assert "-j/--num-workers" in capsys.readouterr().err


def test_postprocess_without_subcommand_is_apply():
    args = _parse(["postprocess", "-v", "-i", "P", "-o", "O", "--keep-largest", "1"])
    assert args.action == "apply"
    assert _parse(
        ["postprocess", "-v", "determine", "-i", "P", "-r", "R", "-o", "p.json"]
    ).action == ("determine")


def test_library_parameter_names_become_flags_in_cli_errors(tmp_path, capsys):
    from nnunet_ext.evaluate.conventions import get_convention

    with pytest.raises(ValueError, match=r"^convention: unknown"):  # names its parameter
        get_convention("kits")
    assert main(["evaluate", "-i", str(tmp_path), "-r", str(tmp_path), "--convention", "kits"]) == 1
    assert "error: --convention: unknown convention 'kits'" in capsys.readouterr().err
    assert main(["validate", "-i", str(tmp_path), "--checkpoint", "a/b.pth"]) == 1
    err = capsys.readouterr().err
    assert "error: --checkpoint must be file names in the fold folder" in err
    assert "checkpoints" not in err


def test_labels_are_ids_or_names_in_every_command(tmp_path):
    """``--labels`` takes values or dataset.json names in postprocess determine and submission
    (evaluate: tests/evaluate/test_folders.py)."""
    import json

    from nnunet_ext.postprocess.cli import _label_ids
    from nnunet_ext.submission.cli import _label_values

    folder = tmp_path / "pred"
    folder.mkdir()
    dataset = {"labels": {"background": 0, "MYO": 1, "LV": 2}, "file_ending": ".nii.gz"}
    (folder / "dataset.json").write_text(json.dumps(dataset))
    determine = _parse(
        [
            *("postprocess", "determine", "-i", str(folder), "-r", "R", "-o", "p.json"),
            *("--labels", "LV", "1"),
        ]
    )
    assert _label_ids(determine) == [2, 1]
    build = _parse(
        [
            *("submission", "build", "-i", str(folder), "-o", "s.zip", "--images", "I"),
            *("--labels", "background", "MYO", "2"),
        ]
    )
    assert _label_values(build) == [0, 1, 2]
    check = _parse(["submission", "check", "-i", "s.zip", "--images", "I", "--labels", "LV"])
    with pytest.raises(ValueError, match="give --dataset-json"):
        _label_values(check)
    check.dataset_json = folder / "dataset.json"
    assert _label_values(check) == [2]
    check.labels = ["RV"]
    with pytest.raises(ValueError, match="--labels must be a label value or a label name"):
        _label_values(check)


def test_quiet_and_verbose_set_the_log_level():
    import logging

    logger = logging.getLogger("nnunet_ext")
    try:
        for argv, level in (
            (["-q", "log", "-i", "F"], logging.ERROR),
            (["log", "-i", "F"], logging.WARNING),
            (["log", "-i", "F", "-v"], logging.INFO),
            (["log", "-i", "F", "-vv"], logging.DEBUG),
        ):
            args = _parse(argv)
            _cli.configure_logging(getattr(args, "verbose", 0) - getattr(args, "quiet", 0))
            assert logger.level == level, argv
    finally:
        _cli.configure_logging(0)
