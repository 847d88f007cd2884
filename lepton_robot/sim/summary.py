"""
The run summary (``lepton-robot sim --summary FILE``), computed from ground truth.

Keys as in ``shared/spec/interfaces.md``; see :func:`run_summary`.
"""

from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import BINS
import numpy as np


def expected_bin(book, condition: str, color: str, shape: str, inspected: bool) -> str:
    """
    Return where a part should end: the bin its rule gives; never ``accept`` uninspected.

    :param book: the rules in force (:func:`rule_book`), resolved as the supervisor does.
    """
    return failsafe_bin(book.resolve(condition, color, shape)[0], inspected)


def failsafe_bin(target: str, inspected: bool) -> str:
    """Return ``target``, except that a part nobody inspected never goes to ``accept``."""
    return 'reject' if not inspected and target == 'accept' else target


def rule_book(rules: Optional[Iterable[Mapping[str, str]]] = None):
    """
    Return the supervisor's :class:`~lepton_robot.supervisor.rules.RuleBook` for ``rules``.

    The run summary scores parts with the same resolution the cell uses (filters on
    defect, color and shape; the most specific rule wins; defaults otherwise).

    :param rules: rule list as in ``lepton.cell_state/1`` (``None``: defaults only)
    :raises ConfigError: on a rule with an unknown bin or value
    """
    from lepton_robot.supervisor.rules import RuleBook, RuleError, SortRule
    book = RuleBook()
    for rule in rules or ():
        try:
            book.add(SortRule(**{k: rule.get(k) for k in ('bin', 'defect', 'color', 'shape')}))
        except (RuleError, TypeError) as exc:
            raise ConfigError(f'rule {dict(rule)}: {exc}') from exc
    return book


def percentiles(samples_ms: Sequence[float]) -> Dict[str, float]:
    """Return p50/p95/p99 (and count) of latency samples in ms."""
    if not len(samples_ms):
        return {'p50': None, 'p95': None, 'p99': None, 'n': 0}
    arr = np.asarray(samples_ms, float)
    return {'p50': round(float(np.percentile(arr, 50)), 3),
            'p95': round(float(np.percentile(arr, 95)), 3),
            'p99': round(float(np.percentile(arr, 99)), 3), 'n': int(arr.size)}


def run_summary(cell, rules=None, predictions: Optional[Mapping[int, str]] = None, *,
                pick_attempts: int = 0, pick_successes: int = 0, drops: int = 0,
                wall_time_s: float = 0.0, latencies_ms: Optional[Mapping[str, List]] = None,
                extra: Optional[Mapping] = None,
                part_rules: Optional[Mapping[int, Iterable[Mapping[str, str]]]] = None) -> Dict:
    """
    Compute the run summary from the cell's ground truth.

    :param cell: the :class:`~lepton_robot.sim.cell.WorkCell` after the run
    :param rules: active ``sort`` rules (default rule when ``None``)
    :param predictions: part id -> condition the pipeline predicted (for the confusion)
    :param pick_attempts: picks tried
    :param pick_successes: picks whose part reached a bin
    :param drops: parts lost after being grasped
    :param wall_time_s: wall-clock duration of the run
    :param latencies_ms: stage -> list of samples (ms)
    :param extra: more keys to include
    :param part_rules: part id -> the rules in force when that part was decided (an
        operator's ``sort`` command does not apply to parts decided before it)
    :return: the summary dict (keys of interfaces.md plus ``seed``, ``rules``, ``bins``)
    """
    book = rule_book(rules)
    predictions = dict(predictions or {})
    parts = []
    confusion: Dict[str, Dict[str, int]] = {}
    correct = escapes = false_rejects = sorted_n = inspected_n = 0
    truths = cell.parts()
    part_books = {pid: rule_book(r) for pid, r in (part_rules or {}).items()}
    for p in truths:
        inspected = p.inspected_frames > 0
        inspected_n += inspected
        pred = predictions.get(p.id)
        final = p.location
        want = expected_bin(part_books.get(p.id, book), p.condition, p.color, p.shape,
                            inspected)
        in_bin = final in BINS
        sorted_n += in_bin
        correct += final == want
        if p.condition != 'ok' and final in ('accept', 'belt_end'):
            escapes += 1
        if p.condition == 'ok' and final == 'reject':
            false_rejects += 1
        if pred is not None and inspected:
            row = confusion.setdefault(p.condition, {})
            row[pred] = row.get(pred, 0) + 1
        parts.append({'id': p.id, 'shape': p.shape, 'color': p.color,
                      'condition': p.condition, 'predicted': pred,
                      'bin': final, 'expected_bin': want,
                      'inspected_frames': p.inspected_frames})
    sim_time = float(cell.sim_time)
    out = {'seed': cell.seed, 'scenario': cell.scenario.name,
           'parts_spawned': len(truths), 'parts_inspected': inspected_n,
           'parts_sorted': sorted_n,
           'sorting_accuracy': round(correct / len(truths), 4) if truths else None,
           'escapes': escapes, 'false_rejects': false_rejects,
           'pick_attempts': pick_attempts, 'pick_successes': pick_successes, 'drops': drops,
           'confusion': confusion,
           'throughput_ppm': round(sorted_n / sim_time * 60.0, 3) if sim_time > 0 else 0.0,
           'sim_time_s': round(sim_time, 3), 'wall_time_s': round(float(wall_time_s), 3),
           'real_time_factor': round(sim_time / wall_time_s, 3) if wall_time_s > 0 else None,
           'latency_ms': {k: percentiles(v) for k, v in (latencies_ms or {}).items()},
           'rules': book.to_list(),
           'parts': parts}
    out.update(extra or {})
    return out
