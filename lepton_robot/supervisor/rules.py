"""
Sorting rules: which bin a classified part goes to.

Defaults (``cell.md``): ``ok`` goes to ``accept``, any defect to ``reject``. An operator's
``sort`` command adds a standing rule with optional ``defect`` / ``color`` / ``shape``
filters. Resolution, in order:

1. Operator rules beat the defaults.
2. Among matching operator rules the most specific wins: a named defect (``scratch``)
   counts 2, ``any`` / ``none`` count 1, a color 1, a shape 1.
3. Ties go to the most recent rule. A new rule with exactly the same filters replaces the
   old one.

Safety guard: a rule sends a part to ``accept`` only when the part was classified ``ok``
or the rule names that defect explicitly (``"accept scratched parts"``). A broad rule such
as ``"red parts go to bin one"`` never lets a defective red part into ``accept``; the next
matching rule (or the default) decides instead.
"""

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from lepton_robot.errors import LeptonError
from lepton_robot.interfaces import BINS, COLORS, CONDITIONS, SHAPES, SLOT_VALUES


class RuleError(LeptonError):
    """A sorting rule is malformed (unknown bin, defect, color or shape)."""


@dataclass(frozen=True)
class SortRule:
    """One standing rule: parts matching every set filter go to ``bin``."""

    bin: str  # noqa: A003 - the contract's slot name
    defect: Optional[str] = None
    color: Optional[str] = None
    shape: Optional[str] = None

    def __post_init__(self) -> None:
        """Check every field against the canonical vocabularies."""
        if self.bin not in BINS:
            raise RuleError(f'unknown bin {self.bin!r}')
        if self.defect is not None and self.defect not in SLOT_VALUES['defect']:
            raise RuleError(f'unknown defect {self.defect!r}')
        if self.color is not None and self.color not in COLORS:
            raise RuleError(f'unknown color {self.color!r}')
        if self.shape is not None and self.shape not in SHAPES:
            raise RuleError(f'unknown shape {self.shape!r}')

    @property
    def specificity(self) -> int:
        """Return how specific the rule is (higher wins)."""
        score = 0
        if self.defect is not None:
            score += 1 if self.defect in ('any', 'none') else 2
        return score + (self.color is not None) + (self.shape is not None)

    def matches(self, condition: str, color: Optional[str], shape: Optional[str]) -> bool:
        """Return True when a part of this condition, color and shape passes every filter."""
        if self.defect == 'none' and condition != 'ok':
            return False
        if self.defect == 'any' and condition == 'ok':
            return False
        if self.defect not in (None, 'any', 'none') and condition != self.defect:
            return False
        if self.color is not None and color != self.color:
            return False
        return self.shape is None or shape == self.shape

    def allows(self, condition: str) -> bool:
        """Return False when the safety guard forbids this rule for this part."""
        if self.bin != 'accept' or condition == 'ok':
            return True
        return self.defect == condition

    def describe(self) -> str:
        """Return the rule as short text, e.g. ``scratch red → rework``."""
        filters = [v for v in (self.defect, self.color, self.shape) if v is not None]
        return f'{" ".join(filters) or "all parts"} → {self.bin}'

    def to_dict(self) -> Dict[str, str]:
        """Return the rule as in ``lepton.cell_state/1`` (unset filters left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


DEFAULT_RULES = (SortRule('accept', defect='none'), SortRule('reject', defect='any'))


class RuleBook:
    """The default rules plus the operator's standing rules, resolved as the module says."""

    def __init__(self) -> None:
        self._rules: List[SortRule] = []   # oldest first

    @property
    def rules(self) -> List[SortRule]:
        """Return the operator rules, oldest first."""
        return list(self._rules)

    def add(self, rule: SortRule) -> SortRule:
        """Add a rule; one with the same filters is replaced (the new one is the newest)."""
        self._rules = [r for r in self._rules
                       if (r.defect, r.color, r.shape) != (rule.defect, rule.color, rule.shape)]
        self._rules.append(rule)
        return rule

    def add_from_slots(self, slots: Mapping[str, object]) -> SortRule:
        """
        Add a rule from a ``sort`` intent's slots.

        :raises RuleError: when the bin is missing or a value is not canonical.
        """
        if 'bin' not in slots:
            raise RuleError('a sort rule needs a bin (accept, reject or rework)')
        return self.add(SortRule(bin=str(slots['bin']), defect=slots.get('defect'),
                                 color=slots.get('color'), shape=slots.get('shape')))

    def clear(self) -> None:
        """Drop every operator rule (the defaults remain)."""
        self._rules = []

    def resolve(self, condition: str, color: Optional[str] = None,
                shape: Optional[str] = None) -> Tuple[str, SortRule, bool]:
        """
        Return the bin for a classified part.

        :param condition: the predicted condition (one of ``CONDITIONS``).
        :return: ``(bin, rule, is_default)``: the bin, the rule that chose it and whether
            it is a default rule.
        :raises RuleError: for an unknown condition.
        """
        if condition not in CONDITIONS:
            raise RuleError(f'unknown condition {condition!r}')
        candidates = [(r.specificity, i, r) for i, r in enumerate(self._rules)
                      if r.matches(condition, color, shape) and r.allows(condition)]
        if candidates:
            rule = max(candidates, key=lambda c: (c[0], c[1]))[2]
            return rule.bin, rule, False
        rule = DEFAULT_RULES[0] if condition == 'ok' else DEFAULT_RULES[1]
        return rule.bin, rule, True

    def to_list(self) -> List[Dict[str, str]]:
        """Return the operator rules as dicts (``lepton.cell_state/1`` ``rules``)."""
        return [r.to_dict() for r in self._rules]
