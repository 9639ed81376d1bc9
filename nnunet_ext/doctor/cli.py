"""``nnunet-ext doctor [--dataset ID_OR_NAME] [--fix]``: check the environment and the data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunet_ext import _cli
from nnunet_ext._parallel import add_executor_arguments, executor_from_args
from nnunet_ext.doctor.data import remove_junk, scan_data
from nnunet_ext.doctor.environment import (
    NNUNET_FOLDERS,
    check_folders,
    check_nnunetv2_version,
    check_torch,
    check_trainers,
)
from nnunet_ext.doctor.findings import Finding, format_finding
from nnunet_ext.io import write_json
from nnunet_ext.io.outputs import Output

__all__ = ["COMMAND", "DESCRIPTION", "add_arguments", "main", "run"]

DESCRIPTION = (
    "Check the nnU-Net environment (nnUNet_raw/_preprocessed/_results, nnunetv2 version, our "
    "trainers found by nnU-Net's lookup, torch devices) and the data: macOS junk files (._*, "
    ".DS_Store), files that cannot be read completely (.npz, .b2nd, .pkl, .pth, images), label "
    "files with non-integer or undeclared values, images without labels, wrong channel suffixes. "
    "Exits 1 when anything is wrong. Changes nothing unless --fix is given, which deletes only "
    "the junk files."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``doctor`` command's arguments."""
    parser.add_argument(
        "--dataset",
        metavar="ID_OR_NAME",
        help="check only this dataset (501, Dataset501_Heart or Heart) instead of all",
    )
    parser.add_argument(
        "--fix",
        action="store_true",
        help="delete the junk files found (._* and .DS_Store); never touches data files",
    )
    for flag, what in (
        ("--skip-env", "the environment checks (version, trainer lookup, torch)"),
        ("--skip-data", "the data scan"),
        ("--skip-torch", "the torch device probe (a child process importing torch, a few seconds)"),
    ):
        parser.add_argument(flag, action="store_true", help=f"skip {what}")
    _cli.add_num_workers(parser, "processes reading files in parallel")
    _cli.add_json(parser, "also write the findings as JSON")
    _cli.add_overwrite(parser, "replace an existing --json file")
    add_executor_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run ``nnunet-ext doctor``."""
    outputs = [None if args.json is None else Output(args.json, "--json", (".json",))]
    roots = [os.environ.get(name) or None for name in NNUNET_FOLDERS]
    with _cli.guard_command_outputs(args, outputs, inputs=roots):
        return _doctor(args)


def _doctor(args: argparse.Namespace) -> int:
    findings: list[Finding] = []
    folder_findings = check_folders(os.environ)
    if not args.skip_env:
        findings.extend(folder_findings)
        findings.append(check_nnunetv2_version())
        findings.extend(check_trainers())
        if not args.skip_torch:
            findings.append(check_torch())
    files_checked = 0 if args.skip_data else _scan(args, folder_findings, findings)
    removed: list[Path] = []
    if args.fix:
        removed = remove_junk(findings)
        removed_set = {str(p) for p in removed}
        findings = [f for f in findings if not (f.check == "junk" and f.path in removed_set)]
    for finding in findings:
        print(format_finding(finding))
    for path in removed:
        print(f"removed {path}")
    problems = [f for f in findings if f.is_problem]
    warnings = [f for f in findings if f.severity == "warning"]
    summary = (
        f"{len(problems)} problem(s), {len(warnings)} warning(s); {files_checked} file(s) read"
        + (f"; removed {len(removed)} junk file(s)" if args.fix else "")
    )
    print(summary)
    if args.json is not None:
        write_json(
            args.json,
            {
                "schema_version": 1,
                "findings": [f.to_dict() for f in findings],
                "removed": [str(p) for p in removed],
                "files_checked": files_checked,
                "ok": not problems,
            },
        )
    return 1 if problems else 0


def _scan(args: argparse.Namespace, folder_findings: list[Finding], findings: list[Finding]) -> int:
    """Scan the data of the nnU-Net folders into ``findings``; the number of files read."""
    roots = {
        name: os.environ[name]
        for name in NNUNET_FOLDERS
        if os.environ.get(name, "").strip() and Path(os.environ[name]).is_dir()
    }
    if not roots:
        raise ValueError(
            "none of nnUNet_raw, nnUNet_preprocessed, nnUNet_results is an existing folder; "
            "set them (export nnUNet_raw=...) or use --skip-data."
        )
    if args.skip_env:  # still say which roots were skipped
        findings.extend(f for f in folder_findings if f.severity != "ok")
    data_findings, files_checked = scan_data(
        roots,
        dataset=args.dataset,
        num_workers=args.num_workers,
        executor=executor_from_args(args),
    )
    findings.extend(data_findings)
    return files_checked


#: ``nnunet-ext doctor`` and ``python -m nnunet_ext.doctor``.
COMMAND = _cli.Command(
    "nnunet-ext doctor", DESCRIPTION, add_arguments, run, parameter_flags={"dataset": "--dataset"}
)
main = COMMAND.main
