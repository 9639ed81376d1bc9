"""Which parts of the tuning procedure run, and the parts measured not to pay, kept to re-measure.

``tune`` is a chain of decisions (:mod:`nnunet_ext.tune.judge`). Its core is the weight search
on the CV cases and the per-label rules ``weighted -> from -> scale``, each rule judged on
held-out cases. Other parts were added for one kind of failure each. :class:`Procedure` names
them, so that ``benchmarks/bench_tune_draws.py`` can measure each one's effect over many random
draws of the demo (the ablation in ``docs/explanation/tuning.md``): switch one part, re-tune the
same kept models, score the test cases. The defaults are what the ablation found to pay: on the
first eight draws of issue 25, gating the searched weights held out lost (5 of 8 draws passed
issue 11's rule with it, 7 of 8 without it); the blind-member default and the rules each won a
draw; the other parts changed no tuned spec. Those parts are off and kept only to re-measure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

__all__ = ["Procedure"]


@dataclass(frozen=True)
class Procedure:
    """The optional parts of the tuning procedure (the defaults: the procedure ``tune`` runs).

    Attributes:
        weight_gate: Keep a label's searched weights only when their held-out gain exceeds the
            noise (:mod:`nnunet_ext.tune.gate`); ``False`` (default): the searched weights as
            they are.
        blind_default: A label every other member is blind to starts from ``from`` the member
            that sees it, instead of ``weighted`` (:mod:`nnunet_ext.tune.rules`).
        default_floor: That default is not taken when it is below equal weights on the CV
            cases (the in-sample floor every other rule is held to).
        favoured_only: ``weighted`` and ``scale`` may replace that default only when the tuned
            weights favour the seeing member in the label's column.
        default_veto: The default is not taken when, held out, it lowers another label beyond
            that label's noise.
        left_to_rules: Such a label is left to the rules by the weights: the search aims at its
            equal-weight Dice and the gate does not let its drop hold back another label's step
            (:mod:`nnunet_ext.tune.search`).
        fold_blindness: With ``--splits``, a member is not blind to a label when one of its
            fold models predicts it on that fold's CV cases
            (:func:`~nnunet_ext.tune.judge.sole_reliable_member`).
        gate_uncounted: With ``--splits``, the weight gate does not count a label's drop on
            the cases of a training fold where a member is blind to it
            (:func:`~nnunet_ext.tune.judge.fold_blind_cases`).

    Examples:
        >>> Procedure().including("weight_gate").weight_gate, Procedure().weight_gate
        (True, False)
        >>> Procedure().without("blind_default").blind_default
        False
        >>> Procedure.parts()[:2]
        ('weight_gate', 'blind_default')
    """

    weight_gate: bool = False
    blind_default: bool = True
    default_floor: bool = True
    favoured_only: bool = False
    default_veto: bool = False
    left_to_rules: bool = False
    fold_blindness: bool = True
    gate_uncounted: bool = False

    @classmethod
    def parts(cls) -> tuple[str, ...]:
        """The names of the optional parts, in the order of the attributes."""
        return tuple(f.name for f in fields(cls))

    def without(self, part: str) -> Procedure:
        """This procedure with ``part`` left out.

        Raises:
            ValueError: If ``part`` is not one of :meth:`parts`.
        """
        return self._switched(part, False)

    def including(self, part: str) -> Procedure:
        """This procedure with ``part`` added.

        Raises:
            ValueError: If ``part`` is not one of :meth:`parts`.
        """
        return self._switched(part, True)

    def _switched(self, part: str, on: bool) -> Procedure:
        if part not in self.parts():
            raise ValueError(f"part must be one of {', '.join(self.parts())}; got {part!r}.")
        return dataclasses.replace(self, **{part: on})
