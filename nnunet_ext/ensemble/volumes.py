"""The region-volume check of a region (sigmoid) ensemble (nnU-Net issue #2401).

A region ensemble can go wrong without any error: nnU-Net's own once applied the sigmoid twice
(#2781) and once scored Dice 0.02 (#2401), the fused regions covering far more (or less) than any
member predicted. :func:`region_volume_warnings` flags a case whose fused region volume differs
from every member's own volume (its probability above the same threshold: 0.5, or the spec's
``threshold`` rule, so that a tuned threshold alone raises nothing) by more than
:data:`VOLUME_FACTOR`.
Pure arithmetic on voxel counts; :func:`~nnunet_ext.ensemble.ensemble_folders` logs the warnings.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["VOLUME_FACTOR", "region_volume_warnings"]

#: A fused region volume more than this factor from every member's is flagged.
VOLUME_FACTOR = 2.0


def _differs(a: int, b: int) -> bool:
    return a > VOLUME_FACTOR * b or b > VOLUME_FACTOR * a


def region_volume_warnings(
    case_id: str,
    fused: Sequence[int],
    members: Sequence[Sequence[int]],
    names: Sequence[str],
) -> list[str]:
    """Warnings for the regions whose fused volume differs from every member's by > 2x.

    Args:
        case_id: The case, for the message.
        fused: Voxels of each region in the fused decision.
        members: Per member, voxels of each region in its own decision (probability above the
            region's threshold).
        names: Name of each region.

    Returns:
        One message per flagged region (empty: nothing to flag).

    Examples:
        >>> region_volume_warnings("c0", [900, 100], [[100, 110], [120, 90]], ["WT", "ET"])
        ["case 'c0': the fused volume of region WT (900 voxels) differs from every member's \
(100, 120) by more than a factor 2; check the members' probabilities (sigmoid applied twice?)"]
        >>> region_volume_warnings("c0", [0, 0], [[0, 5], [0, 0]], ["WT", "ET"])
        []
    """
    out = []
    for r, name in enumerate(names):
        volumes = [int(member[r]) for member in members]
        if all(_differs(int(fused[r]), v) for v in volumes):
            out.append(
                f"case {case_id!r}: the fused volume of region {name} ({int(fused[r])} voxels) "
                f"differs from every member's ({', '.join(map(str, volumes))}) by more than a "
                f"factor {VOLUME_FACTOR:g}; check the members' probabilities (sigmoid applied "
                "twice?)"
            )
    return out
