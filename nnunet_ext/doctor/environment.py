"""Environment checks: nnU-Net folders, nnunetv2 version, trainer lookup, torch devices.

Torch and nnU-Net's trainer lookup are only run in child processes (``sys.executable``), so the
doctor itself stays light and a broken torch install cannot crash it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nnunet_ext.doctor.findings import Finding

__all__ = [
    "NNUNET_FOLDERS",
    "SUPPORTED_NNUNETV2",
    "check_folders",
    "check_nnunetv2_version",
    "check_torch",
    "check_trainers",
    "interpret_lookup_output",
    "parse_version",
]

#: The environment variables nnU-Net needs, with what each holds.
NNUNET_FOLDERS = {
    "nnUNet_raw": "raw datasets (DatasetXXX_Name/imagesTr, labelsTr, dataset.json)",
    "nnUNet_preprocessed": "output of nnUNetv2_plan_and_preprocess",
    "nnUNet_results": "trained models (nnUNetv2_train output)",
}
#: Supported nnunetv2 versions: ``low <= v < high`` (as in pyproject.toml).
SUPPORTED_NNUNETV2 = ((2, 8, 1), (2, 9, 0))
LOOKUP_MODULE = "nnunet_ext.trainers.lookup"
_TORCH_PROBE = (
    "import json, torch\n"
    "cuda = torch.cuda.is_available()\n"
    "mps = bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())\n"
    "print(json.dumps({'torch': torch.__version__, 'cuda': cuda,\n"
    "    'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]\n"
    "    if cuda else [], 'mps': mps}))\n"
)


def check_folders(environ: Mapping[str, str]) -> list[Finding]:
    """Check that ``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` are set folders.

    Args:
        environ: The environment (usually ``os.environ``).

    Returns:
        One finding per variable.
    """
    findings = []
    for name, purpose in NNUNET_FOLDERS.items():
        value = environ.get(name, "").strip()
        if not value:
            findings.append(
                Finding(
                    "error",
                    "env",
                    f"{name} is not set ({purpose})",
                    fix=f"export {name}=/path/to/{name} (create the folder first)",
                )
            )
        elif not Path(value).is_dir():
            findings.append(
                Finding(
                    "error",
                    "env",
                    f"{name} must be an existing folder; got {value!r}",
                    path=value,
                    fix=f"mkdir -p {value!r} or point {name} at the right folder",
                )
            )
        else:
            findings.append(Finding("ok", "env", f"{name} = {value}"))
    return findings


def parse_version(text: str) -> tuple[int, ...]:
    """Parse the numeric release part of a version string.

    Examples:
        >>> parse_version("2.8.1"), parse_version("2.9.0rc1"), parse_version("2.8.1.post2")
        ((2, 8, 1), (2, 9, 0), (2, 8, 1))
    """
    parts = []
    for piece in text.split(".")[:3]:
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group()))
    return tuple(parts)


def check_nnunetv2_version(version: str | None = None) -> Finding:
    """Check the installed nnunetv2 version (read from package metadata, nothing imported).

    Args:
        version: Version to check; default: the installed one.
    """
    if version is None:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            version = installed("nnunetv2")
        except PackageNotFoundError:
            return Finding(
                "error",
                "env",
                "nnunetv2 is not installed",
                fix="pip install 'nnunetv2>=2.8.1,<2.9'",
            )
    low, high = SUPPORTED_NNUNETV2
    wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high[:2]))}"
    if low <= parse_version(version) < high:
        return Finding("ok", "env", f"nnunetv2 {version} (supported: {wanted})")
    return Finding(
        "error",
        "env",
        f"nnunetv2 must be {wanted}; got {version}",
        fix=f"pip install 'nnunetv2{wanted}'",
    )


def interpret_lookup_output(stdout: str, stderr: str, returncode: int) -> list[Finding]:
    """Turn the output of ``python -m nnunet_ext.trainers.lookup --json`` into findings.

    The module prints ``{"nnunetv2_version", "nnUNet_extTrainer", "trainers": [{"name", "found",
    "module", "reason"}]}`` and exits 0 when every trainer was found by nnU-Net's lookup.

    Examples:
        >>> out = '{"nnunetv2_version": "2.8.1", "nnUNet_extTrainer": "/x", "trainers": ['
        >>> out += '{"name": "CustomEpochs", "found": false, "module": null, '
        >>> out += '"reason": "not on path"}]}'
        >>> [f.severity + ": " + f.message for f in interpret_lookup_output(out, "", 1)]
        ["error: nnU-Net's trainer lookup does not find CustomEpochs: not on path"]
    """
    data = _last_json_object(stdout)
    if not isinstance(data, dict) or not isinstance(data.get("trainers"), list):
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit code {returncode}, no output"
        return [
            Finding(
                "error",
                "trainers",
                f"the trainer lookup check failed: {last}",
                fix="reinstall nnunet_ext (pip install -e .) and run `python -m "
                f"{LOOKUP_MODULE} --json` to see the full error",
            )
        ]
    findings = []
    ext = data.get("nnUNet_extTrainer")
    for entry in data["trainers"]:
        if not isinstance(entry, dict):
            continue
        name = entry.get("name", "?")
        if entry.get("found"):
            findings.append(Finding("ok", "trainers", f"-tr {name} found in {entry.get('module')}"))
        else:
            reason = entry.get("reason") or "not found"
            findings.append(
                Finding(
                    "error",
                    "trainers",
                    f"nnU-Net's trainer lookup does not find {name}: {reason}",
                    fix=(
                        "reinstall nnunet_ext in this environment (it registers its trainers via "
                        f"nnUNet_extTrainer; now {ext!r})"
                    ),
                )
            )
    if returncode != 0 and all(f.severity == "ok" for f in findings):
        findings.append(
            Finding("error", "trainers", f"the trainer lookup exited with {returncode}")
        )
    return findings


def _last_json_object(text: str) -> Any:
    """Parse the last JSON object in ``text`` that starts a line (output may precede it)."""
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch == "{" and (i == 0 or text[i - 1] == "\n")]
    for start in reversed(starts):
        try:
            return decoder.raw_decode(text, start)[0]
        except json.JSONDecodeError:
            continue
    return None


def _run_python(
    args: Sequence[str], *, timeout_s: float, python: str | None = None
) -> tuple[str, str, int]:
    try:
        result = subprocess.run(
            [python or sys.executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(os.environ),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "", f"no answer within {timeout_s:g} s", -1
    return result.stdout, result.stderr, result.returncode


def check_trainers(*, timeout_s: float = 300.0, python: str | None = None) -> list[Finding]:
    """Ask nnU-Net's own trainer lookup, in a child process, whether it finds our trainers."""
    stdout, stderr, code = _run_python(
        ["-m", LOOKUP_MODULE, "--json"], timeout_s=timeout_s, python=python
    )
    return interpret_lookup_output(stdout, stderr, code)


def check_torch(*, timeout_s: float = 300.0, python: str | None = None) -> Finding:
    """Report torch's version and devices (CUDA, MPS), probed in a child process."""
    stdout, stderr, code = _run_python(["-c", _TORCH_PROBE], timeout_s=timeout_s, python=python)
    try:
        info: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1]) if code == 0 else {}
    except (json.JSONDecodeError, IndexError):
        info = {}
    if not info:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        return Finding(
            "error",
            "torch",
            f"torch cannot be imported: {lines[-1] if lines else code}",
            fix="install torch for your platform (https://pytorch.org/get-started/locally/)",
        )
    if info.get("cuda"):
        devices = ", ".join(info.get("devices") or [])
        return Finding("ok", "torch", f"torch {info['torch']}: CUDA available ({devices})")
    if info.get("mps"):
        return Finding("ok", "torch", f"torch {info['torch']}: Apple MPS available (-device mps)")
    return Finding(
        "warning",
        "torch",
        f"torch {info['torch']}: no GPU found, only CPU (training will be slow)",
        fix="use -device cpu, or install a CUDA build of torch on a GPU machine",
    )
