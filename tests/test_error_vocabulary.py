"""One error vocabulary (issue 23): library errors name the function's parameters (``weights``,
``overwrite=True``), never our CLI flags (``--weights``, ``-m/--model``); each command's ``cli.py``
maps parameters to flags (``_cli.Command(..., parameter_flags=...)``, ``_cli.flag_message``).

Every ``raise`` outside the CLI layer is read with :mod:`ast`: all string constants inside the
raised expression (f-string parts, implicit and ``+`` concatenations, the arguments of helpers
such as ``InputError(file, expected, found, fix=...)``). A message fails if it spells one of the
flags of ``nnunet_ext.cli.build_parser()`` as a whole token. Advice about nnU-Net's own command line
(``nnUNetv2_train ... --npz``, ``nnUNetv2_predict -i``) is fine: a flag that follows an
``nnUNetv2_*`` command in the same clause is that tool's.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import nnunet_ext
from nnunet_ext._cli import flag_message
from nnunet_ext._parallel import Executor
from nnunet_ext.cli import build_parser, main

LIBRARY = Path(nnunet_ext.__file__).parent

# TODO(issue 23): being rewritten; remove when fixed
PENDING: set[str] = set()

#: Flags every parser has that no library message has reason to name.
NOT_FLAGS = {"-h", "--help", "--version", "-v", "-q", "--verbose", "--quiet"}

#: A clause that advises another tool's command line: ``nnUNetv2_predict -i`` (up to ``;``,
#: a parenthesis or the end of the sentence).
OTHER_TOOL = re.compile(r"nnUNetv2_\w+.*?(?=[;()\n]|\.\s|\.$|$)")


def _walk(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _walk(sub)


def our_flags() -> set[str]:
    """Every ``--long`` and ``-x`` spelling of every parser, hidden old spellings included."""
    flags = {
        option
        for parser in _walk(build_parser())
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") or re.fullmatch(r"-[A-Za-z]", option)
    }
    return flags - NOT_FLAGS


def flag_pattern(flags: set[str]) -> re.Pattern[str]:
    """Any of ``flags`` as a whole token: ``--weights``, not ``--weights-x`` or ``a--weights``."""
    spellings = "|".join(re.escape(f) for f in sorted(flags, key=len, reverse=True))
    return re.compile(rf"(?<![\w-])(?:{spellings})(?![\w-])")


FLAGS = our_flags()
PATTERN = flag_pattern(FLAGS)


def _text(node: ast.AST) -> str:
    """The constant text of a string expression; ``{}`` for each computed part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return "{}"


def raised_messages(source: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of every string expression inside a ``raise`` of ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant | ast.JoinedStr | ast.BinOp):
                    text = _text(part)
                    if text.strip("{}"):
                        yield node.lineno, text


def flags_in(message: str, pattern: re.Pattern[str] = PATTERN) -> list[str]:
    """Our flags that ``message`` spells, leaving out advice about nnU-Net's commands."""
    return pattern.findall(OTHER_TOOL.sub("", message))


def offences(source: str, pattern: re.Pattern[str] = PATTERN) -> dict[int, set[str]]:
    """Line -> our flags named by the messages raised there."""
    found: dict[int, set[str]] = {}
    for line, text in raised_messages(source):
        if flags := flags_in(text, pattern):
            found.setdefault(line, set()).update(flags)
    return found


def library_modules() -> Iterator[tuple[str, Path]]:
    """Every module of ``nnunet_ext`` outside the CLI layer, as ``nnunet_ext/...`` and path."""
    for path in sorted(LIBRARY.rglob("*.py")):
        if path.name in ("cli.py", "_cli.py", "_cli_vocabulary.py", "__main__.py"):
            continue
        yield path.relative_to(LIBRARY.parent).as_posix(), path


def test_library_errors_name_parameters_not_flags():
    found = [
        f"{name}:{line}: {', '.join(sorted(flags))}"
        for name, path in library_modules()
        if name not in PENDING
        for line, flags in sorted(offences(path.read_text(encoding="utf-8")).items())
    ]
    assert not found, (
        "library errors name CLI flags; name the parameter (or 'name=True') and map it in the "
        "command's parameter_flags:\n" + "\n".join(found)
    )


def test_pending_files_are_library_modules():
    assert PENDING <= {name for name, _ in library_modules()}


def test_the_flags_are_ours_only():
    assert {"--weights", "--overwrite", "-m", "--model", "--claim-timeout", "-j"} <= FLAGS
    assert not NOT_FLAGS & FLAGS
    assert "--save_probabilities" not in FLAGS  # nnU-Net's spelling
    assert "-device" not in FLAGS


SNIPPET = """
def check(weights, overwrite, spec):
    if weights:
        raise ValueError(f"--weights {weights} must sum to 1; got {sum(weights)}.")
    if overwrite:
        raise FileExistsError("out exists; pass " + "--over" + "write to replace it.")
    if spec:
        raise InputError(spec, "a spec", "none", fix="give the models " "with -m/--model")
    raise ValueError(
        f"weights must sum to 1; pass overwrite=True. Rerun nnUNetv2_train 0 3d --npz; "
        "nnUNetv2_predict -i images -o out --save_probabilities (or -device cpu). "
        "--weights-file and a--weights are no flags."
    )
"""


def test_the_check_finds_flags_in_every_form_of_message():
    assert offences(SNIPPET) == {
        4: {"--weights"},
        6: {"--overwrite"},
        8: {"-m", "--model"},
    }
    assert flags_in("Pass overwrite=True or use nnUNetv2_predict -f 0. Then --overwrite.") == [
        "--overwrite"
    ]


def test_cli_errors_name_the_flags_of_the_parameters(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^executor must be one of local, ray") as info:
        Executor("dask")
    assert flag_message(str(info.value), {}) == "--executor must be one of local, ray; got 'dask'."
    folder, report = tmp_path / "labels", tmp_path / "report.json"
    folder.mkdir()
    argv = ["evaluate", "-i", str(folder), "-r", str(folder)]
    assert main([*argv, "--ray-address", "auto"]) == 1
    assert (
        "nnunet-ext evaluate: error: --ray-address auto is for the Ray executor only "
        "(--executor ray); got executor local."
    ) in capsys.readouterr().err
    report.write_text("{}")
    assert main([*argv, "--json", str(report)]) == 1
    assert "report.json already exists; pass --overwrite to replace it" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--weights", "1", "2"], "--weights must have one value per input folder (1); got 2."),
        (["--claim-timeout", "0"], "--claim-timeout must be a number of seconds > 0; got 0.0."),
        (["--part-id", "3", "--num-parts", "2"], "--part-id must be in 0..num_parts-1"),
        (["--step-size", "0"], "--step-size must be in (0, 1]; got 0.0."),
        (["--claim", "--overwrite"], "--overwrite cannot be combined with --claim"),
    ],
)
def test_predict_maps_its_parameters_to_flags(tmp_path, capsys, argv, expected):
    """Checked before any model folder is read: the model folder here does not even exist."""
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    model = tmp_path / "results" / "Dataset501_X" / "Tr__P__3d_fullres"
    code = main(["predict", "-i", str(images), "-o", str(out), "-m", str(model), *argv])
    err = capsys.readouterr().err
    assert code == 1, err
    assert expected in err
    assert not out.exists()
