"""The documentation builds without a warning and cannot drift from the code.

* ``mkdocs build --strict`` passes (a broken link, a missing anchor, a page left out of the
  navigation is a warning, and so a failure).
* The command reference, generated from the parsers by ``docs/_hooks.py``, shows every visible
  flag of every parser, nested subcommands included.
* The Python API reference, generated from ``__all__``, has a page for every public subpackage
  (a subpackage without ``__all__`` fails) and an entry for every public name.
* The JSON examples of ``docs/reference/formats/`` are read by the readers of their format, and
  the evaluation example has the keys ``evaluate`` writes.
* The README stays an entry point: at most 200 lines, its links lead to files that exist.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import nnunet_ext

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FORMATS = DOCS / "reference" / "formats"


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nnunet_ext_docs_hooks", DOCS / "_hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _hooks()


def test_mkdocs_builds_strict_without_warnings(tmp_path: Path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    for page in ("index.html", "reference/commands/predict/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    for module in HOOKS.public_modules():
        short = module.removeprefix("nnunet_ext.")
        assert (site / "reference" / "api" / short / "index.html").is_file(), module


# ---------------------------------------------------------------- command reference


def _parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    from nnunet_ext.cli import build_parser

    return [(path, parser) for path, parser in HOOKS._walk(build_parser()) if path]


@pytest.mark.parametrize(("path", "parser"), _parsers(), ids=[" ".join(p) for p, _ in _parsers()])
def test_the_command_reference_shows_every_flag(path, parser):
    page = HOOKS.command_pages()[f"reference/commands/{path[0]}.md"]
    assert f"`{' '.join(('nnunet-ext', *path))}`" in page
    options = HOOKS.visible_options(parser)
    assert options
    for action in options:
        for option in action.option_strings:
            assert f"`{option}`" in page, f"{' '.join(path)}: {option} is not in the reference"
        if action.help:
            first_words = " ".join(action.help.split()[:4]).split("%")[0].strip()
            assert HOOKS._escape(first_words) in page, (path, action.option_strings)


def test_every_command_has_a_page_listed_in_the_index():
    from nnunet_ext.cli import COMMANDS

    pages = HOOKS.command_pages()
    index = pages[HOOKS.COMMANDS_INDEX]
    for command in COMMANDS:
        assert f"reference/commands/{command}.md" in pages
        assert f"({command}.md)" in index


# ---------------------------------------------------------------- API reference


def _subpackages() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(nnunet_ext.__path__)
        if info.ispkg and not info.name.startswith("_")
    )


@pytest.mark.parametrize("package", _subpackages())
def test_every_subpackage_and_public_name_is_in_the_api_reference(package: str):
    module = importlib.import_module(f"nnunet_ext.{package}")
    names = getattr(module, "__all__", None)
    assert names, f"nnunet_ext.{package} needs an __all__ (its public API, shown in the docs)"
    page = HOOKS.api_pages()[f"reference/api/{package}.md"]
    lazy = getattr(module, "_LAZY", {})
    for name in names:
        assert f"## `{name}`" in page, f"nnunet_ext.{package}.{name} is not in the API reference"
        assert name in vars(module) or name in lazy, f"nnunet_ext.{package}.{name} is not defined"
    assert f"(reference/api/{package}.md)" not in page  # the index links, not the page itself
    assert f"({package}.md)" in HOOKS.api_pages()[HOOKS.API_INDEX]


def test_the_hook_finds_every_public_subpackage():
    assert {m.removeprefix("nnunet_ext.") for m in HOOKS.public_modules()} >= set(_subpackages())


def test_docstrings_become_markdown():
    doc = """Do a thing.

    Args:
        x (int): The ``value``.
        labels: Label ids,
            continued.

    Raises:
        ValueError: If bad.

    Examples:
        >>> 1 + 1
        2
    """
    text = HOOKS._docstring_markdown(doc)
    assert "- `x` (int): The `value`." in text
    assert "- `labels`: Label ids, continued." in text
    assert "- `ValueError`: If bad." in text
    assert "```pycon\n>>> 1 + 1\n2\n```" in text


def _resolves(dotted: str) -> bool:
    """Whether ``nnunet_ext.a.b[.name]`` is a module, or a name defined in one (lazy names of a
    package count, without importing them)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        rest = parts[end:]
        if not rest:
            return True
        value: Any = module
        for k, name in enumerate(rest):
            if k == 0 and name in getattr(module, "_LAZY", {}):
                return len(rest) == 1
            if not hasattr(value, name):
                return False
            value = getattr(value, name)
        return True
    return False


def test_every_module_and_name_the_pages_cite_exists():
    """A page that names ``nnunet_ext.x.y`` follows the code when a module moves."""
    cited = {
        (page.relative_to(ROOT).as_posix(), name)
        for page in sorted(DOCS.rglob("*.md"))
        for name in re.findall(r"`(nnunet_ext(?:\.\w+)+)", page.read_text())
    }
    assert cited
    missing = sorted((page, name) for page, name in cited if not _resolves(name))
    assert not missing, f"pages cite what does not exist: {missing}"


# ---------------------------------------------------------------- file formats


def _json_examples(page: str) -> list[Any]:
    """Every complete JSON example of a formats page (shortened ones hold "...")."""
    blocks = re.findall(r"```json\n(.*?)```", (FORMATS / page).read_text(), flags=re.S)
    return [json.loads(b) for b in blocks if '"..."' not in b]


def test_every_format_page_is_listed_and_has_an_example():
    index = (FORMATS / "index.md").read_text()
    for page in sorted(FORMATS.glob("*.md")):
        if page.name == "index.md":
            continue
        assert f"({page.name})" in index, page.name
        assert "```json" in page.read_text(), f"{page.name} has no example"


def test_the_spec_examples_are_valid_specs():
    from nnunet_ext.ensemble import EnsembleSpec

    examples = _json_examples("ensemble-spec.md")
    assert [e["schema_version"] for e in examples] == [2, 3, 2, 3, 2]
    for data in examples:
        models = any("model" in member for member in data["members"])
        spec = EnsembleSpec.from_dict(data, base_dir=Path("/data"), models=models)
        assert len(spec.members) == len(data["members"])


def test_the_qc_example_is_a_valid_report(tmp_path: Path):
    from nnunet_ext.qc import load_qc

    (data,) = _json_examples("qc.md")
    (tmp_path / "qc.json").write_text(json.dumps(data))
    report = load_qc(tmp_path / "qc.json")  # every key required, no other allowed
    assert [c.case for c in report.flagged] == ["heart_010"]
    assert report.cases[0].labels[1].measures.empty_members == (1,)


def test_the_specs_recorded_in_output_folders_are_valid_specs():
    from nnunet_ext.ensemble import EnsembleSpec

    examples = [e for e in _json_examples("output-records.md") if "spec" in e]
    assert [e["tool"] for e in examples] == ["nnunet_ext.ensemble", "nnunet_ext.predict"]
    for data in examples:
        models = any("model" in member for member in data["spec"]["members"])
        spec = EnsembleSpec.from_dict(data["spec"], base_dir=Path("/data"), models=models)
        assert len(spec.members) == len(data["weights"])


def test_the_plan_examples_are_valid_plans():
    from nnunet_ext.postprocess import PostprocessingPlan

    (hand_written,) = _json_examples("postprocessing-plan.md")
    plan = PostprocessingPlan.from_dict(hand_written)
    assert plan.keep_largest == (1, 2)
    assert [s.step for s in plan.steps] == ["volume_gate", "min_probability", "keep_top_k"]
    shortened = re.findall(
        r"```json\n(.*?)```", (FORMATS / "postprocessing-plan.md").read_text(), flags=re.S
    )[0]
    written = json.loads(shortened.replace(',\n      "..."', ""))
    assert PostprocessingPlan.from_dict(written).fill_holes == (2,)
    assert PostprocessingPlan.from_dict(written).steps[0].to == 1


def test_the_score_example_is_a_valid_score_file():
    from nnunet_ext.evaluate.score import ScoreSpec

    (data,) = _json_examples("score.md")
    assert [t.metric for t in ScoreSpec.from_dict(data).terms] == ["dice", "hd95"]


def test_the_comparison_example_is_a_valid_comparison():
    from nnunet_ext.compare import Comparison

    (data,) = _json_examples("comparison.md")  # the reader requires every key, refuses others
    comparison = Comparison.from_json(data, source="comparison.md")
    assert [d.metric for d in comparison.differences] == ["Dice", "IoU", "score"]
    assert {d.verdict for d in comparison.differences} == {"A better"}


def test_the_run_record_example_is_a_valid_record():
    from nnunet_ext.trainers.record import upgrade_run_record

    (data,) = _json_examples("run-record.md")
    record = upgrade_run_record(data)
    assert record["stop"]["reason"] == "patience"
    assert record["cooldown"]["end_epoch"] == 12


def _key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every dict key path of a JSON value (list items and label keys collapsed)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "...":
                continue
            shown = "<label>" if re.fullmatch(r"\d+(,\d+)*", key) else key
            paths.add(f"{prefix}.{shown}")
            paths |= _key_paths(item, f"{prefix}.{shown}")
    elif isinstance(value, list):
        for item in value:
            paths |= _key_paths(item, f"{prefix}[]")
    return paths


def _write(path: Path, array: np.ndarray) -> None:
    import SimpleITK as sitk  # noqa: N813

    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_the_evaluation_example_has_the_keys_evaluate_writes(tmp_path: Path):
    """The documented example against a real run with the same options (two labels, one
    absent from a reference)."""
    from nnunet_ext.evaluate import evaluate_folder

    page = (FORMATS / "evaluation.md").read_text()
    (block,) = re.findall(r"```json\n(.*?)```", page, flags=re.S)
    documented = _key_paths(json.loads(block))
    (tmp_path / "score.json").write_text(json.dumps(json.loads(block)["score"]["spec"]))
    dataset = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "file_ending": ".nii.gz"}
    for folder in ("predictions", "references"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "dataset.json").write_text(json.dumps(dataset))
    for k, case in enumerate(("case_0", "case_1")):
        reference = np.zeros((6, 16, 16), np.uint8)
        reference[1:5, 2:8, 2:8], reference[1:5, 9:14, 3:9] = 1, 2
        if k == 0:
            reference[2:4, 3:12, 10:14] = 3
        _write(tmp_path / "references" / f"{case}.nii.gz", reference)
        _write(tmp_path / "predictions" / f"{case}.nii.gz", reference)
    evaluation = evaluate_folder(
        tmp_path / "predictions",
        tmp_path / "references",
        metrics=("dice", "hd95"),
        score=tmp_path / "score.json",
    )
    written = _key_paths(evaluation.to_json())
    assert documented == written, (
        f"documented only: {sorted(documented - written)}; written only: "
        f"{sorted(written - documented)}"
    )


def test_the_preset_evaluation_example_is_what_evaluate_preset_writes(tmp_path: Path):
    """The documented autoPET example against a real run on the same two cases."""
    from nnunet_ext.evaluate.challenge_folder import evaluate_preset
    from nnunet_ext.synthetic import write_labels_image

    (block,) = re.findall(
        r"```json\n(.*?)```", (FORMATS / "preset-evaluation.md").read_text(), flags=re.S
    )
    ref = np.zeros((4, 6, 10), dtype=np.uint8)
    ref[1:3, 1:3, 1:3] = ref[1:3, 1:3, 7:9] = 1
    pred = np.zeros_like(ref)
    pred[1:3, 1:3, 2:4] = pred[3, 3, 4] = pred[0, 5, 8] = pred[1, 4, 8] = 1
    for folder in ("ref", "pred"):
        (tmp_path / folder).mkdir()
    write_labels_image(ref, tmp_path / "ref" / "case_001.nii.gz", (2.0, 2.0, 2.5))
    write_labels_image(ref, tmp_path / "ref" / "case_002.nii.gz", (2.0, 2.0, 2.5))
    write_labels_image(pred, tmp_path / "pred" / "case_001.nii.gz", (2.0, 2.0, 2.5))
    written = evaluate_preset(tmp_path / "pred", tmp_path / "ref", "autopet").to_json()
    assert json.loads(json.dumps(written)) == json.loads(block)


# ---------------------------------------------------------------- README


def test_the_readme_is_an_entry_point():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    for section in ("## Quick start", "## Install", "## Commands", "## Documentation"):
        assert section in text


def test_the_readme_links_lead_to_files():
    text = README.read_text()
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if "://" not in link]
    assert len(local) > 20
    for link in local:
        assert (ROOT / link).exists(), f"README links to {link}, which does not exist"


def test_the_readme_links_every_hand_written_page():
    """Every page under docs/ but the generated ones is reachable from the README."""
    text = README.read_text()
    for page in sorted(DOCS.rglob("*.md")):
        relative = page.relative_to(ROOT).as_posix()
        if "/reference/formats/" in relative and page.name != "index.md":
            continue  # reached from the formats index
        if "/reference/presets/" in relative and page.name != "index.md":
            continue  # reached from the presets index
        if page.name == "index.md" and page.parent != DOCS and "formats" not in relative:
            continue
        assert f"({relative})" in text, f"the README does not link {relative}"
