"""Challenge presets: versioned bundles of regions, metrics and rules that score as a leaderboard.

A preset fixes everything a challenge's official scorer fixes: the regions (unions of label
values), the metrics and their definitions (lesion matching, component connectivity, NSD
definition and tolerances, HD95 form), the values of empty and missing cases and the columns of
the per-case table. ``evaluate --preset NAME`` computes them per case (one read per case, in the
evaluate workers) and averages each column over cases as the challenge does; ``score`` is the
preset's one number for ``--score`` and ``postprocess determine --metric`` (higher is better).

Each preset's page in the documentation (``docs/reference/presets/``) gives its source and what
it computes; :data:`PRESETS` is the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """One challenge's scoring rules.

    Attributes:
        name: The ``--preset`` name.
        version: The scorer version it reproduces.
        source: Package and version, or repository, file and commit, of the official scorer.
        kind: The computation: ``brats2026-seg``, ``brats2026-mets``, ``brats2023``, ``surfel``
            (Dice and surfel NSD per region), ``autopet``.
        regions: Region name to its label values (a union).
        tolerances: NSD tolerance (mm) per region, for ``surfel``.
        score_columns: Column prefixes whose per-region means are averaged into the score.
        options: Further fixed parameters of the kind (thresholds, ...).
        z_crop_labels: ``surfel``: labels scored on the reference's labelled slices only
            (FLARE22's aorta, IVC and oesophagus).
        round_digits: ``surfel``: per-case values rounded to this many digits (FLARE22).
    """

    name: str
    version: str
    source: str
    kind: str
    regions: Mapping[str, tuple[int, ...]]
    tolerances: Mapping[str, float] | None = None
    score_columns: tuple[str, ...] = ("lesionwise_dsc_mean",)
    options: Mapping[str, float] | None = None
    z_crop_labels: tuple[int, ...] = ()
    round_digits: int | None = None

    @property
    def score_keys(self) -> tuple[str, ...]:
        """The per-case columns averaged into the score (``<prefix>_<region>``).

        Examples:
            >>> get_preset("kits23").score_keys[:2]
            ('dice_kidney_and_mass', 'dice_mass')
        """
        return tuple(f"{c}_{r}" for c in self.score_columns for r in self.regions)


_BRATS_SOURCE = "brats-evaluation 0.0.10 (PyPI; panoptica 2.1.7), configs/config_{}.yaml"
#: BraTS 2026 tasks: preset suffix -> (brats-evaluation config, parser, regions in its order).
_BRATS_2026: dict[str, tuple[str, str, dict[str, tuple[int, ...]]]] = {
    "glioma": (
        "gli",
        "seg",
        {"snfh": (2,), "et": (3,), "netc": (1,), "rc": (4,), "tc": (1, 3), "wt": (1, 2, 3)},
    ),
    "metastases": ("mets", "mets", {"et": (3,), "rc": (4,), "tc": (1, 3), "wt": (1, 2, 3)}),
    "pediatric": (
        "ped",
        "seg",
        {
            "et": (1,),
            "netc": (2,),
            "cc": (3,),
            "ed": (4,),
            "tc": (1, 2, 3),
            "wt": (1, 2, 3, 4),
        },
    ),
    "meningioma": ("MenPre", "seg", {"et": (3,), "tc": (1, 3), "wt": (1, 2, 3)}),
    "meningioma-rt": ("MenRT", "seg", {"gtv": (1,)}),
    "goat": ("GoAT", "seg", {"et": (3,), "tc": (1, 3), "wt": (1, 2, 3)}),
}

_KITS_SOURCE = (
    "neheller/kits23: kits23/evaluation/metrics.py at d7eb4c9c75b8612b3adc7e22f4f9def4b0b2ead1, "
    "kits23/configuration/labels.py at 2b0905033291b9b0ae23eaf636ca218cd76451f8"
)
_FLARE_SOURCE = (
    "JunMa11/FLARE: FLARE22/Evaluation/FLARE22_DSC_NSD_Eval.py at "
    "be3eb6fcfb70c17d44be4192506c88795662dea6"
)
_AUTOPET_SOURCE = "lab-midas/autoPET: val_script.py at 8da2f7ed14fed5cdf0a63b7f1f4f7824d343864d"
_BRATS2023_SOURCE = (
    "rachitsaluja/BraTS-2023-Metrics: metrics.py (lesion-wise Dice and HD95, dilation 3, "
    "penalty 374)"
)

_FLARE_ORGANS = (
    ("liver", 5.0),
    ("rk", 3.0),
    ("spleen", 3.0),
    ("pancreas", 5.0),
    ("aorta", 2.0),
    ("ivc", 2.0),
    ("rag", 2.0),
    ("lag", 2.0),
    ("gallbladder", 2.0),
    ("esophagus", 3.0),
    ("stomach", 5.0),
    ("duodenum", 7.0),
    ("lk", 3.0),
)


def _registry() -> dict[str, Preset]:
    presets = {
        f"brats2026-{task}": Preset(
            name=f"brats2026-{task}",
            version="brats-evaluation 0.0.10",
            source=_BRATS_SOURCE.format(config),
            kind=f"brats2026-{parser}",
            regions=regions,
            score_columns=("lesionwise_dsc_mean",),
            options={"volume_threshold": 20.0, "overlap_threshold": 0.1}
            if parser == "mets"
            else None,
        )
        for task, (config, parser, regions) in _BRATS_2026.items()
    }
    presets["kits23"] = Preset(
        name="kits23",
        version="kits23 (2023 challenge)",
        source=_KITS_SOURCE,
        kind="surfel",
        regions={"kidney_and_mass": (1, 2, 3), "mass": (2, 3), "tumor": (2,)},
        tolerances={
            "kidney_and_mass": 1.0330772532390826,
            "mass": 1.1328796488598762,
            "tumor": 1.1498198361434828,
        },
        score_columns=("dice", "nsd"),
    )
    presets["flare22"] = Preset(
        name="flare22",
        version="FLARE22",
        source=_FLARE_SOURCE,
        kind="surfel",
        regions={organ: (i,) for i, (organ, _) in enumerate(_FLARE_ORGANS, 1)},
        tolerances=dict(_FLARE_ORGANS),
        score_columns=("dice", "nsd"),
        z_crop_labels=(5, 6, 10),
        round_digits=4,
    )
    presets["autopet"] = Preset(
        name="autopet",
        version="autoPET (2022 challenge)",
        source=_AUTOPET_SOURCE,
        kind="autopet",
        regions={"lesion": (1,)},
        score_columns=("dice",),
    )
    presets["brats2023"] = Preset(
        name="brats2023",
        version="BraTS 2023-2025 lesion-wise",
        source=_BRATS2023_SOURCE,
        kind="brats2023",
        regions={"et": (3,), "tc": (1, 3), "wt": (1, 2, 3)},
        score_columns=("lesionwise_dice",),
        options={"dilation": 3.0, "volume_threshold": 50.0, "hd95_penalty": 374.0},
    )
    return presets


#: Every preset by name.
PRESETS: Mapping[str, Preset] = _registry()


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ValueError: For an unknown name (one line listing the known ones).

    Examples:
        >>> get_preset("brats2026-glioma").regions["tc"]
        (1, 3)
        >>> get_preset("brats2024")
        Traceback (most recent call last):
        ...
        ValueError: preset must be one of brats2026-glioma, ...; got 'brats2024'.
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}.")
    return PRESETS[name]
