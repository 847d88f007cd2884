"""
Score a finished simulated run from ground truth (fallback for ``lepton_robot.sim.summary``).

The sim bridge uses the sim's own ``run_summary`` when it is installed and this module
otherwise; both produce the keys of ``interfaces.md`` ("Run summary"). Expected bins come
from the active sorting rules applied to the *true* condition, color and shape.
"""

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

from lepton_robot.supervisor.rules import RuleBook, SortRule

BINS_AND_ENDS = ('accept', 'reject', 'rework', 'belt_end', 'floor', 'belt', 'gripper')


def expected_bin(rules: Sequence[Mapping[str, str]], condition: str, color: str,
                 shape: str) -> str:
    """Return the bin a part of this true condition/color/shape belongs in under ``rules``."""
    book = RuleBook()
    for rule in rules:
        book.add(SortRule(**rule))
    return book.resolve(condition, color, shape)[0]


def summarise(parts: Iterable[Any], rules: Sequence[Mapping[str, str]],
              predictions: Mapping[int, str], sim_time_s: float,
              seed: Optional[int] = None) -> Dict[str, Any]:
    """
    Build the run summary from ground-truth parts.

    :param parts: ``PartTruth`` objects (``id``, ``shape``, ``color``, ``condition``,
        ``location``, ``inspected_frames``, ``picked``).
    :param rules: the operator's sorting rules at the end of the run.
    :param predictions: the condition the pipeline decided, per sim part id.
    :param sim_time_s: simulated duration of the run.
    :return: the summary dict (no wall time / latency: the caller adds them).
    """
    rows, confusion = [], {}
    sorted_n = correct = escapes = false_rejects = attempts = drops = 0
    for p in parts:
        exp = expected_bin(rules, p.condition, p.color, p.shape)
        loc = p.location
        in_bin = loc in ('accept', 'reject', 'rework')
        sorted_n += in_bin
        correct += loc == exp
        escapes += p.condition != 'ok' and loc in ('accept', 'belt_end')
        false_rejects += p.condition == 'ok' and loc == 'reject'
        picked = int(getattr(p, 'picked', 0))
        attempts += picked
        drops += picked > 0 and not in_bin
        pred = predictions.get(p.id)
        if pred is not None:
            confusion.setdefault(p.condition, {})
            confusion[p.condition][pred] = confusion[p.condition].get(pred, 0) + 1
        rows.append({'id': p.id, 'shape': p.shape, 'color': p.color,
                     'condition': p.condition, 'predicted': pred, 'bin': loc,
                     'expected_bin': exp, 'inspected_frames': p.inspected_frames})
    n = len(rows)
    return {'seed': seed, 'parts_spawned': n,
            'parts_inspected': sum(1 for r in rows if r['inspected_frames'] > 0),
            'parts_sorted': sorted_n, 'sorting_accuracy': (correct / n) if n else None,
            'escapes': escapes, 'false_rejects': false_rejects,
            'pick_attempts': attempts, 'pick_successes': sorted_n, 'drops': drops,
            'confusion': confusion,
            'throughput_ppm': round(60.0 * sorted_n / sim_time_s, 2) if sim_time_s else None,
            'sim_time_s': round(sim_time_s, 3), 'parts': rows}
