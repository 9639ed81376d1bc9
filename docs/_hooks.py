"""MkDocs hooks: the pages that are generated from the code at build time, so they cannot drift.

* ``reference/commands/``: one page per ``nnunet-ext`` command, from the parsers that
  :func:`nnunet_ext.cli.build_parser` builds (nested subcommands included): every visible flag
  with its help text, as ``--help`` shows it.
* ``reference/api/``: one page per public subpackage (and public top-level module), from its
  ``__all__``: each name with its signature and docstring. Names a package loads lazily
  (``nnunet_ext.trainers``: they import torch) are read from their source without importing.
* ``changelog.md`` and ``contributing.md``: the repository's ``CHANGELOG.md`` and
  ``CONTRIBUTING.md``.

Nothing here imports torch or nnU-Net's training code, and nothing is written into ``docs/``:
the pages exist only in the build. ``tests/test_docs.py`` imports this module to check that the
pages cover every flag and every public name.
"""

from __future__ import annotations

import argparse
import ast
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
COMMANDS_INDEX = "reference/commands/index.md"
API_INDEX = "reference/api/index.md"
#: Repository files shown as pages: page -> file.
INCLUDED = {"changelog.md": "CHANGELOG.md", "contributing.md": "CONTRIBUTING.md"}
_SECTIONS = (
    "Args",
    "Arguments",
    "Attributes",
    "Returns",
    "Yields",
    "Raises",
    "Examples",
    "Example",
    "Note",
    "Notes",
    "Warning",
    "See Also",
)
_LIST_SECTIONS = {"Args", "Arguments", "Attributes", "Raises"}


# ---------------------------------------------------------------- text helpers


def _escape(text: str) -> str:
    """Escape ``<``, ``>`` and ``|`` outside code spans (help texts say ``<spec stem>``)."""
    parts = re.split(r"(`[^`]*`)", text)
    for index in range(0, len(parts), 2):
        parts[index] = parts[index].replace("<", "&lt;").replace(">", "&gt;").replace("|", "&#124;")
    return "".join(parts)


def _rst_to_markdown(text: str) -> str:
    """Docstring reST roles and literals as Markdown code spans."""
    text = re.sub(r":\w+:`~?(?:[\w.]*\.)?([^`<]+?)`", r"`\1`", text)
    text = text.replace("``", "`")
    text = re.sub(r"::\n", ":\n", text)
    return _escape(text)


def _list_item(text: str) -> str:
    """``name (type): text`` of an ``Args:``-style section as ``- `name`: text``."""
    match = re.match(r"^([\w.*]+)(?: \(([^)]*)\))?: (.*)$", text)
    if match is None:
        return "- " + _rst_to_markdown(text)
    name, kind, rest = match.groups()
    shown = f"`{name}`" + (f" ({_rst_to_markdown(kind)})" if kind else "")
    return f"- {shown}: {_rst_to_markdown(rest)}"


def _docstring_markdown(doc: str | None) -> str:
    """A Google-style docstring as Markdown: sections as labelled paragraphs or lists."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    section: str | None = None
    block: list[str] = []

    def flush() -> None:
        body = textwrap.dedent("\n".join(block)).strip("\n")
        if section is None:
            if body:
                out.append(_rst_to_markdown(body))
        elif section.startswith("Example"):
            out.append(f"**{section}:**\n\n```pycon\n{body}\n```")
        elif section in _LIST_SECTIONS:
            items = re.split(r"\n(?=\S)", body)
            listed = "\n".join(_list_item(" ".join(part.split())) for part in items if part)
            out.append(f"**{section}:**\n\n{listed}")
        else:
            out.append(f"**{section}:** " + _rst_to_markdown(" ".join(body.split())))

    for line in lines:
        header = line.rstrip(":")
        if line.endswith(":") and header in _SECTIONS and not line.startswith(" "):
            flush()
            section, block = header, []
        else:
            block.append(line)
    flush()
    return "\n\n".join(out)


# ---------------------------------------------------------------- commands


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser`` (itself first), with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, (*path, name))


def visible_options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The flags ``--help`` shows (hidden deprecated spellings and subcommand lists left out)."""
    return [
        action
        for action in parser._actions
        if action.help != argparse.SUPPRESS
        and action.option_strings
        and not isinstance(action, argparse._SubParsersAction)
    ]


def _option_cell(action: argparse.Action) -> str:
    """``-i/--input DIR [DIR ...]`` as argparse's usage would show the value."""
    names = ", ".join(f"`{o}`" for o in action.option_strings)
    if action.nargs == 0:
        return names
    formatter = argparse.HelpFormatter("nnunet-ext")
    default = action.dest.upper()
    value = formatter._format_args(action, default)
    return f"{names} `{value}`" if value else names


def _parser_markdown(path: tuple[str, ...], parser: argparse.ArgumentParser, level: int) -> str:
    """One parser's usage, description and option tables."""
    hashes = "#" * level
    title = " ".join(("nnunet-ext", *path))
    parts = [f"{hashes} `{title}`"]
    if parser.description:
        parts.append(_escape(" ".join(parser.description.split())))
    usage = parser.format_usage().removeprefix("usage: ").rstrip()
    parts.append(f"```text\n{usage}\n```")
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a in visible_options(parser)]
        if not actions:
            continue
        group_title = (group.title or "options").capitalize()
        rows = ["| Flag | Meaning |", "|---|---|"]
        for action in actions:
            help_text = " ".join(formatter._expand_help(action).split()) if action.help else ""
            if action.required:
                help_text = f"**required.** {help_text}"
            rows.append(f"| {_option_cell(action)} | {_escape(help_text)} |")
        parts.append(f"{hashes}# {group_title}\n\n" + "\n".join(rows))
    subcommands = [
        (name, sub_action.help or "")
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for sub_action in action._choices_actions
        for name in [sub_action.dest]
    ]
    if subcommands:
        listed = "\n".join(f"- `{title} {name}`: {_escape(text)}" for name, text in subcommands)
        parts.append(f"{hashes}# Subcommands\n\n{listed}")
    return "\n\n".join(parts)


@functools.cache
def command_pages() -> dict[str, str]:
    """``reference/commands/<command>.md`` -> Markdown, from the umbrella parser."""
    from nnunet_ext.cli import COMMANDS, build_parser

    parsers = list(_walk(build_parser()))
    pages: dict[str, str] = {}
    index = [
        "# Commands",
        "Generated from the parsers at build time: every flag of every command, as `--help` "
        "shows it. Every command also runs as `python -m nnunet_ext <command>`. The shared "
        "flags, exit codes and old spellings are in [Command-line conventions](../cli.md).",
        "| Command | What it does |\n|---|---|",
    ]
    rows = []
    for name, (_module, summary) in COMMANDS.items():
        own = [(p, parser) for p, parser in parsers if p[:1] == (name,)]
        if not own:
            continue  # a command not built into this version
        sections = [
            _parser_markdown(path, parser, 1 if len(path) == 1 else 2) for path, parser in own
        ]
        pages[f"reference/commands/{name}.md"] = "\n\n".join(sections) + "\n"
        rows.append(f"| [`nnunet-ext {name}`]({name}.md) | {_escape(summary)} |")
    index[-1] += "\n" + "\n".join(rows)
    pages[COMMANDS_INDEX] = "\n\n".join(index) + "\n"
    return pages


# ---------------------------------------------------------------- Python API


def public_modules() -> list[str]:
    """Every public subpackage and top-level module of ``nnunet_ext`` (no leading ``_``)."""
    import nnunet_ext

    return sorted(
        f"nnunet_ext.{info.name}"
        for info in pkgutil.iter_modules(nnunet_ext.__path__)
        if not info.name.startswith("_")
    )


class _Text:
    """An annotation shown as written (``from __future__ import annotations`` keeps strings)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _annotation(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return value
    return _Text(value if isinstance(value, str) else inspect.formatannotation(value))


def _parameters(signature: inspect.Signature) -> list[str]:
    """The parameters as ``inspect`` prints them, ``/`` and ``*`` markers included."""
    rendered: list[str] = []
    previous = None
    for parameter in signature.parameters.values():
        kind = parameter.kind
        if previous == parameter.POSITIONAL_ONLY and kind != previous:
            rendered.append("/")
        if kind == parameter.KEYWORD_ONLY and previous not in (
            parameter.KEYWORD_ONLY,
            parameter.VAR_POSITIONAL,
        ):
            rendered.append("*")
        rendered.append(str(parameter))
        previous = kind
    if previous == inspect.Parameter.POSITIONAL_ONLY:
        rendered.append("/")
    return rendered


def _signature(name: str, obj: Any) -> str:
    """``name(a: int, *, b: str = 'x') -> T``, one parameter per line when long."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return name
    params = [
        p.replace(annotation=_annotation(p.annotation)) for p in signature.parameters.values()
    ]
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    returns = None if inspect.isclass(obj) else _annotation(signature.return_annotation)
    signature = signature.replace(parameters=params, return_annotation=inspect.Signature.empty)
    arrow = "" if returns in (None, inspect.Signature.empty) else f" -> {returns!r}"
    text = f"{name}{signature}{arrow}"
    if len(text) <= 90:
        return text
    body = "".join(f"    {p},\n" for p in _parameters(signature))
    return f"{name}(\n{body}){arrow}"


def _members(cls: type) -> list[tuple[str, Any]]:
    """A class's own public methods and properties, in source order."""
    members = []
    for name, value in vars(cls).items():
        if name.startswith("_"):
            continue
        function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
        if isinstance(value, property) or inspect.isfunction(function):
            members.append((name, value))
    return members


def _object_markdown(name: str, obj: Any) -> str:
    """One public name: its kind, signature and docstring."""
    if inspect.isclass(obj):
        parts = [
            f"## `{name}`",
            "*class*",
            f"```python\n{_signature(name, obj)}\n```",
            _docstring_markdown(obj.__doc__),
        ]
        for member, value in _members(obj):
            if isinstance(value, property):
                parts.append(f"### `{name}.{member}`\n\n*property*")
                parts.append(_docstring_markdown(value.__doc__))
                continue
            function = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            kind = "classmethod" if isinstance(value, classmethod) else "method"
            parts.append(f"### `{name}.{member}`\n\n*{kind}*")
            parts.append(f"```python\n{_signature(member, function)}\n```")
            parts.append(_docstring_markdown(function.__doc__))
        return "\n\n".join(p for p in parts if p)
    if callable(obj):
        return "\n\n".join(
            p
            for p in (
                f"## `{name}`",
                "*function*",
                f"```python\n{_signature(name, obj)}\n```",
                _docstring_markdown(obj.__doc__),
            )
            if p
        )
    shown = repr(obj)
    if len(shown) > 300:
        shown = shown[:297] + "..."
    return f"## `{name}`\n\n*constant*\n\n```python\n{name} = {shown}\n```"


def _lazy_markdown(name: str, module_name: str) -> str:
    """A name a package loads on first access, read from its module's source (no import)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        return f"## `{name}`\n\nLoaded on first access from `{module_name}`."
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name == name:
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            if isinstance(node, ast.ClassDef):
                bases = ", ".join(ast.unparse(b) for b in node.bases)
                signature = f"class {name}({bases})" if bases else f"class {name}"
            else:
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                signature = f"{name}({ast.unparse(node.args)}){returns}"
            doc = _docstring_markdown(ast.get_docstring(node))
            note = f"Loaded on first access from `{module_name}` (imports torch)."
            return "\n\n".join(
                p for p in (f"## `{name}`", f"*{kind}*", f"```python\n{signature}\n```", doc, note)
            )
    return f"## `{name}`\n\nLoaded on first access from `{module_name}` (imports torch)."


def _module_markdown(module: ModuleType) -> str:
    """A module's page: its docstring, then every name of its ``__all__``."""
    names = list(getattr(module, "__all__", ()))
    lazy: dict[str, str] = getattr(module, "_LAZY", {})
    parts = [f"# `{module.__name__}`", _docstring_markdown(module.__doc__)]
    if names:
        parts.append("Public names: " + ", ".join(f"[`{n}`](#{n.lower()})" for n in names) + ".")
    for name in names:
        if name not in vars(module) and name in lazy:
            parts.append(_lazy_markdown(name, lazy[name]))
        else:
            parts.append(_object_markdown(name, getattr(module, name)))
    return "\n\n".join(p for p in parts if p) + "\n"


@functools.cache
def api_pages() -> dict[str, str]:
    """``reference/api/<module>.md`` -> Markdown for every public module, plus the index."""
    pages: dict[str, str] = {}
    rows = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        short = module_name.removeprefix("nnunet_ext.")
        pages[f"reference/api/{short}.md"] = _module_markdown(module)
        summary = (inspect.getdoc(module) or "").split("\n\n")[0]
        rows.append(
            f"| [`{module_name}`]({short}.md) | {_rst_to_markdown(' '.join(summary.split()))} |"
        )
    pages[API_INDEX] = (
        "# Python API\n\n"
        "Generated at build time from each module's `__all__`: that list is the public API "
        "(the package ships `py.typed`); anything else is internal and may change. Each command "
        "is a thin layer over these functions.\n\n"
        "| Module | What it holds |\n|---|---|\n" + "\n".join(rows) + "\n"
    )
    return pages


# ---------------------------------------------------------------- MkDocs events


def generated_pages() -> dict[str, str]:
    """Every generated page: commands, API, and the repository's changelog and guide."""
    pages = {**command_pages(), **api_pages()}
    for page, file in INCLUDED.items():
        pages[page] = (ROOT / file).read_text(encoding="utf-8")
    return pages


def _expand(nav: Any, sections: dict[str, list[Any]]) -> Any:
    """Replace a nav entry pointing at a generated index with the index and its pages."""
    if isinstance(nav, list):
        return [_expand(entry, sections) for entry in nav]
    if isinstance(nav, dict):
        return {
            title: sections.get(value, _expand(value, sections))
            if isinstance(value, str)
            else _expand(value, sections)
            for title, value in nav.items()
        }
    return nav


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """List the generated command and API pages in the navigation."""
    pages = {**command_pages(), **api_pages()}
    sections: dict[str, list[Any]] = {}
    for index in (COMMANDS_INDEX, API_INDEX):
        folder = index.rsplit("/", 1)[0] + "/"
        children = sorted(p for p in pages if p.startswith(folder) and p != index)
        entries: list[Any] = [{"Overview": index}]
        for page in children:
            stem = page.removeprefix(folder).removesuffix(".md")
            entries.append({stem if index == COMMANDS_INDEX else f"nnunet_ext.{stem}": page})
        sections[index] = entries
    if config.nav is not None:
        config.nav = _expand(config.nav, sections)
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages to the build."""
    for page, content in generated_pages().items():
        files.append(File.generated(config, page, content=content))
    return files
