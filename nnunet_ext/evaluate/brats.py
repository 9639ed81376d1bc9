"""BraTS 2026 per-case values, as ``brats-parse-metrics`` 0.0.10 reports them.

From one region's :class:`~nnunet_ext.evaluate.lesions.RegionLesions` to the columns of the
official CSV (``<metric>_<region>``), with the challenge's values for empty and unmatched cases:

``seg`` (every task but metastases; ``parse_seg_results``):

* ``all_instance_tp/fp/fn``, ``all_instance_prec = TP / (TP + FP)`` and
  ``all_instance_rec = TP / (TP + FN)`` (NaN for 0/0), ``all_instance_f1`` = RQ.
* ``global_dsc/nsd/hd95``: the whole region's values (see :mod:`nnunet_ext.evaluate.lesions`);
  where reference and prediction do not overlap: NaN when both are empty, else Dice 0, NSD 0,
  HD95 373 (the SRI-space diameter).
* ``lesionwise_<m>_mean/std``: mean and standard deviation (ddof 0) of the true positives'
  values; without a true positive: NaN when there is no lesion at all, else Dice 0, NSD 0 and
  HD95 ``inf`` (panoptica's value, which the parser leaves as it is), std NaN.

``mets`` (``parse_mets_results``, ``--vol_threshold 20 --overlap_threshold 0.1``): lesions of at
least 20 mm^3 are "large". Lesion-wise means over the large reference lesions (a missed one
scores Dice 0, NSD 0, HD95 373) and one penalty entry (0, 0, 373) per false-positive lesion of
any size; NaN without a large reference lesion. Detection counts per size (a matched lesion
with Dice below 0.1 is a miss); ``large_instance_*`` only with a large lesion,
``small_instance_*`` only with a small one (else NaN).

A reference case without prediction (``missing_row``): 373 for every HD95 column except
standard deviations, 0 for every other column.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnunet_ext.evaluate.lesions import RegionLesions

__all__ = ["HD95_PENALTY_2026", "mets_row", "missing_row", "seg_row"]

#: brats-evaluation 0.0.10's HD95 for a missed structure: "diameter of the cube in SRI space".
HD95_PENALTY_2026 = 373.0
_NAN = math.nan


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return numerator / denominator if denominator > 0 else empty


def _counts(region: str, result: RegionLesions) -> dict[str, float]:
    tp, fp, fn = result.tp, result.fp, result.fn
    return {
        f"all_instance_tp_{region}": tp,
        f"all_instance_fp_{region}": fp,
        f"all_instance_fn_{region}": fn,
        f"all_instance_prec_{region}": _ratio(tp, tp + fp, _NAN),
        f"all_instance_rec_{region}": _ratio(tp, tp + fn, _NAN),
        f"all_instance_f1_{region}": result.rq,
    }


def _global(region: str, result: RegionLesions) -> dict[str, float]:
    values = dict(result.global_values)
    if math.isnan(values["dice"]):  # no overlap: panoptica's zero-TP values
        none = result.num_reference + result.num_predicted == 0
        values = {
            "dice": _NAN if none else 0.0,
            "nsd": _NAN if none else 0.0,
            "hd95": _NAN if none else HD95_PENALTY_2026,
        }
    return {
        f"global_dsc_{region}": values["dice"],
        f"global_nsd_{region}": values["nsd"],
        f"global_hd95_{region}": values["hd95"],
    }


def seg_row(region: str, result: RegionLesions) -> dict[str, float]:
    """The ``seg`` parser's columns of one region (module docstring).

    Examples:
        >>> from nnunet_ext.evaluate.lesions import match_lesions
        >>> ref = np.zeros((3, 3, 9), dtype=bool); ref[1, 1, 1:3] = True
        >>> row = seg_row("et", match_lesions(ref, np.zeros_like(ref), (1.0, 1.0, 1.0)))
        >>> row["all_instance_fn_et"], row["global_hd95_et"], row["lesionwise_hd95_mean_et"]
        (1, 373.0, inf)
    """
    row = _counts(region, result)
    row.update(_global(region, result))
    none = result.num_reference + result.num_predicted == 0
    for key, name, zero_tp in (
        ("dice", "dsc", 0.0),
        ("nsd", "nsd", 0.0),
        ("hd95", "hd95", math.inf),
    ):
        values = result.matched_values(key)
        if values:
            mean, std = float(np.average(values)), float(np.std(values))
        else:
            mean, std = (_NAN if none else zero_tp), _NAN
        row[f"lesionwise_{name}_mean_{region}"] = mean
        row[f"lesionwise_{name}_std_{region}"] = std
    order = [
        *(f"all_instance_{k}_{region}" for k in ("tp", "fp", "fn", "prec", "rec", "f1")),
        *(f"global_{k}_{region}" for k in ("dsc", "nsd", "hd95")),
        *(f"lesionwise_{m}_{s}_{region}" for m in ("dsc", "nsd", "hd95") for s in ("mean", "std")),
    ]
    return {k: row[k] for k in order}


def mets_row(
    region: str,
    result: RegionLesions,
    *,
    volume_threshold: float = 20.0,
    overlap_threshold: float = 0.1,
) -> dict[str, float]:
    """The ``mets`` parser's columns of one region (module docstring).

    Examples:
        >>> from nnunet_ext.evaluate.lesions import match_lesions
        >>> ref = np.zeros((4, 4, 12), dtype=bool); ref[1:4, 1:4, 1:4] = True
        >>> pred = np.zeros_like(ref); pred[1:4, 1:4, 1:4] = True; pred[0, 0, 9] = True
        >>> row = mets_row("et", match_lesions(ref, pred, (1.0, 1.0, 1.0)))
        >>> [row[f"{k}_et"] for k in ("lesionwise_dsc_mean", "lesionwise_hd95_mean",
        ...                            "large_instance_fp")]
        [0.5, 186.5, 1]
    """
    large = {"dsc": [], "hd95": [], "nsd": []}  # type: dict[str, list[float]]
    det = {"large_tp": 0, "large_fn": 0, "small_tp": 0, "small_fn": 0}
    any_large = any_small = False
    for lesion in result.lesions:
        is_large = lesion.volume_mm3 >= volume_threshold
        any_large, any_small = any_large or is_large, any_small or not is_large
        size = "large" if is_large else "small"
        if lesion.matched:
            det[f"{size}_tp" if lesion.dice >= overlap_threshold else f"{size}_fn"] += 1
            if is_large:
                large["dsc"].append(lesion.dice)
                large["hd95"].append(lesion.hd95)
                large["nsd"].append(lesion.nsd)
        else:
            det[f"{size}_fn"] += 1
            if is_large:
                large["dsc"].append(0.0)
                large["nsd"].append(0.0)
                large["hd95"].append(HD95_PENALTY_2026)
    fp = result.fp
    large["dsc"] += [0.0] * fp
    large["nsd"] += [0.0] * fp
    large["hd95"] += [HD95_PENALTY_2026] * fp
    row = _counts(region, result)
    row.update(_detection(region, "large", det["large_tp"], fp, det["large_fn"], any_large))
    row.update(_lesionwise_large(region, large, result.num_reference > 0 and any_large))
    row.update(_detection(region, "small", det["small_tp"], fp, det["small_fn"], any_small))
    row.update(_global(region, result))
    return row


def _detection(
    region: str, size: str, tp: int, fp: int, fn: int, present: bool
) -> dict[str, float]:
    keys = [f"{size}_instance_{k}_{region}" for k in ("tp", "fp", "fn", "prec", "rec", "f1")]
    if not present:
        values: list[float] = [_NAN] * 6
    else:
        values = [
            tp,
            fp,
            fn,
            _ratio(tp, tp + fp, 0.0),
            _ratio(tp, tp + fn, 0.0),
            _ratio(2 * tp, 2 * tp + fp + fn, 0.0),
        ]
    out = dict(zip(keys, values, strict=True))
    if size == "small":  # the parser's column order: tp, fn, fp, prec, rec, f1
        order = [keys[0], keys[2], keys[1], *keys[3:]]
        out = {k: out[k] for k in order}
    return out


def _lesionwise_large(
    region: str, large: dict[str, list[float]], defined: bool
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("dsc", "hd95", "nsd"):
        values = large[name]
        if name == "hd95":
            values = [v for v in values if not math.isinf(v)]
        if not defined:
            mean, std = _NAN, _NAN
        elif values:
            mean, std = float(np.mean(values)), float(np.std(values))
        else:
            mean, std = (HD95_PENALTY_2026 if name == "hd95" else 0.0), 0.0
        out[f"lesionwise_{name}_mean_{region}"] = mean
        out[f"lesionwise_{name}_std_{region}"] = std
    return out


def missing_row(columns: Sequence[str]) -> dict[str, float]:
    """Values of a reference case without prediction: 373 for HD95 (not std), else 0.

    Examples:
        >>> missing_row(["global_hd95_et", "lesionwise_hd95_std_et", "global_dsc_et"])
        {'global_hd95_et': 373.0, 'lesionwise_hd95_std_et': 0.0, 'global_dsc_et': 0.0}
    """
    return {c: HD95_PENALTY_2026 if "hd95" in c and "std" not in c else 0.0 for c in columns}
