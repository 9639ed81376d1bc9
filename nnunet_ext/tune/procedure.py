"""Which parts of the tuning procedure run: every part on by default, each one can be left out.

``tune`` is a chain of decisions, each judged on held-out cases (:mod:`nnunet_ext.tune.judge`).
Besides its core (the weight search, and the per-label rules ``weighted -> from -> scale``), it
has parts that were added for one kind of failure each. :class:`Procedure` names them, so that
``benchmarks/bench_tune_draws.py`` can measure each one's effect over many random draws of the
demo (the ablation in ``docs/explanation/tuning.md``): leave one out, re-tune the same kept
models, score the test cases.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Procedure"]


@dataclass(frozen=True)
class Procedure:
    """The optional parts of the tuning procedure (all ``True``: the full procedure).

    Attributes:
        weight_gate: Keep a label's searched weights only when their held-out gain exceeds the
            noise (:mod:`nnunet_ext.tune.gate`); ``False``: the searched weights as they are.
        blind_default: A label every other member is blind to starts from ``from`` the member
            that sees it, instead of ``weighted`` (:mod:`nnunet_ext.tune.rules`).
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
        >>> Procedure().without("weight_gate").weight_gate, Procedure().weight_gate
        (False, True)
        >>> Procedure.parts()[:2]
        ('weight_gate', 'blind_default')
    """

    weight_gate: bool = True
    blind_default: bool = True
    favoured_only: bool = True
    default_veto: bool = True
    left_to_rules: bool = True
    fold_blindness: bool = True
    gate_uncounted: bool = True

    @classmethod
    def parts(cls) -> tuple[str, ...]:
        """The names of the optional parts, in the order of the attributes."""
        return tuple(f.name for f in fields(cls))

    def without(self, part: str) -> Procedure:
        """This procedure with ``part`` left out.

        Raises:
            ValueError: If ``part`` is not one of :meth:`parts`.
        """
        if part not in self.parts():
            raise ValueError(f"part must be one of {', '.join(self.parts())}; got {part!r}.")
        return Procedure(**{name: getattr(self, name) and name != part for name in self.parts()})
