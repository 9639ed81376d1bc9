"""nnU-Net's ``splits_final.json``: which cross-validation fold holds each case."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from nnunet_ext.io.errors import InputError
from nnunet_ext.io.json_files import load_json
from nnunet_ext.io.schema import describe

__all__ = ["load_splits"]


def load_splits(path: str | os.PathLike[str], cases: Sequence[str]) -> list[int]:
    """Per case, the fold of nnU-Net's ``splits_final.json`` whose ``val`` list holds it.

    The file is a JSON list of folds, each an object with ``train`` and ``val`` lists of case
    identifiers (what ``nnUNetv2_plan_and_preprocess`` writes, or a custom split).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        InputError: Naming the file (and key), for another structure, a case in no fold's
            ``val`` or in several.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> splits = Path(tempfile.mkdtemp(), "splits_final.json")
        >>> _ = splits.write_text('[{"train": ["b"], "val": ["a"]}, {"train": [], "val": ["b"]}]')
        >>> load_splits(splits, ["b", "a"])
        [1, 0]
        >>> load_splits(splits, ["c"])
        Traceback (most recent call last):
        ...
        nnunet_ext.io.errors.InputError: ...splits_final.json must be a list of folds with ...
    """
    folds = load_json(path)
    fix = (
        "Give the splits_final.json the models were trained with "
        "($nnUNet_preprocessed/DatasetX/splits_final.json)."
    )
    if not isinstance(folds, list) or not folds:
        raise InputError(path, "a list of folds", describe(folds), fix=fix)
    fold_of: dict[str, list[int]] = {}
    for index, fold in enumerate(folds):
        for key in ("train", "val"):
            values = fold.get(key) if isinstance(fold, Mapping) else None
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                found = "nothing" if values is None else describe(values)
                raise InputError(
                    path, "a list of case identifiers", found, key=f"[{index}].{key}", fix=fix
                )
        for case in fold["val"]:
            fold_of.setdefault(case, []).append(index)
    out = []
    for case in cases:
        found_in = fold_of.get(case, [])
        if len(found_in) != 1:
            raise InputError(
                path,
                f"a list of folds with case {case!r} (a case of the CV folders) in exactly one "
                "fold's val",
                "it in no fold's val" if not found_in else f"it in the val of folds {found_in}",
                fix=fix,
            )
        out.append(found_in[0])
    return out
