"""Ground-truth oracle and run summary: sorts a small batch into the right bins."""

import json

from lepton_robot.cli import main
from lepton_robot.errors import ConfigError
from lepton_robot.sim.summary import expected_bin, percentiles, rule_book, run_summary
import pytest

SUMMARY_KEYS = {'parts_spawned', 'parts_inspected', 'parts_sorted', 'sorting_accuracy',
                'escapes', 'false_rejects', 'pick_attempts', 'pick_successes', 'drops',
                'confusion', 'throughput_ppm', 'sim_time_s', 'wall_time_s',
                'real_time_factor', 'latency_ms', 'parts'}


def test_rules_resolve_like_the_supervisor():
    """Defaults, a defect rule, ``any``, color/shape filters; bad rules are a ConfigError."""
    book = rule_book(None)
    assert expected_bin(book, 'ok', 'red', 'block', True) == 'accept'
    assert expected_bin(book, 'crack', 'red', 'block', True) == 'reject'
    book = rule_book([{'defect': 'scratch', 'bin': 'rework'}])
    assert expected_bin(book, 'scratch', 'red', 'block', True) == 'rework'
    assert expected_bin(book, 'stain', 'red', 'block', True) == 'reject'
    book = rule_book([{'defect': 'any', 'bin': 'rework'}])
    assert all(expected_bin(book, d, 'red', 'block', True) == 'rework'
               for d in ('scratch', 'crack', 'stain', 'chip'))
    book = rule_book([{'color': 'blue', 'bin': 'rework'}])
    assert expected_bin(book, 'ok', 'blue', 'plate', True) == 'rework'
    assert expected_bin(book, 'ok', 'red', 'plate', True) == 'accept'
    with pytest.raises(ConfigError):
        rule_book([{'defect': 'scratch', 'bin': 'trash'}])
    with pytest.raises(ConfigError):
        rule_book([{'defect': 'dent', 'bin': 'reject'}])


def test_uninspected_part_is_never_accepted():
    """The fail-safe: an ok part nobody inspected is expected in reject, not accept."""
    book = rule_book(None)
    assert expected_bin(book, 'ok', 'red', 'block', True) == 'accept'
    assert expected_bin(book, 'ok', 'red', 'block', False) == 'reject'
    assert expected_bin(book, 'chip', 'red', 'block', False) == 'reject'


class _Part:
    def __init__(self, pid, condition, color, shape, location, frames=3):
        self.id, self.condition, self.color, self.shape = pid, condition, color, shape
        self.location, self.inspected_frames = location, frames


class _Cell:
    seed, sim_time = 0, 60.0

    class scenario:  # noqa: N801 - a stand-in for Scenario's name attribute
        name = 'test'

    def __init__(self, parts):
        self._parts = parts

    def parts(self):
        return self._parts


def test_summary_scores_with_the_cells_rules_and_the_rules_at_decision_time():
    """Color/shape rules resolve like the supervisor; a rule does not apply to earlier parts."""
    cell = _Cell([_Part(0, 'scratch', 'red', 'block', 'reject'),
                  _Part(1, 'scratch', 'red', 'block', 'rework'),
                  _Part(2, 'ok', 'red', 'plate', 'rework'),
                  _Part(3, 'ok', 'blue', 'plate', 'accept'),
                  _Part(4, 'ok', 'blue', 'plate', 'reject', frames=0)])
    rules = [{'defect': 'scratch', 'bin': 'rework'}, {'color': 'red', 'bin': 'rework'}]
    s = run_summary(cell, rules, part_rules={0: []})
    expected = ['reject', 'rework', 'rework', 'accept', 'reject']
    assert [p['expected_bin'] for p in s['parts']] == expected
    assert s['sorting_accuracy'] == 1.0 and s['rules'] == rules
    with pytest.raises(ConfigError, match='unknown'):
        run_summary(cell, [{'color': 'mauve', 'bin': 'rework'}])


def test_percentiles():
    p = percentiles(list(range(1, 101)))
    assert p['p50'] == pytest.approx(50.5) and p['p99'] == pytest.approx(99.01)
    assert percentiles([])['n'] == 0


@pytest.mark.slow
def test_oracle_sorts_a_small_batch(tmp_path, capsys):
    """
    Run ``sim --oracle`` on a few parts and check the summary against ground truth.

    Steps: run the CLI; every part must be inspected, picked and dropped in the bin its
    true condition and the default rule give; the summary has the contract's keys.
    """
    out = tmp_path / 'summary.json'
    assert main(['sim', '--oracle', '--parts', '4', '--seed', '3', '--summary',
                 str(out)]) == 0
    summary = json.loads(out.read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary['parts_spawned'] == 4 and summary['parts_sorted'] == 4
    assert summary['sorting_accuracy'] == 1.0
    assert summary['pick_successes'] == summary['pick_attempts'] == 4
    assert summary['escapes'] == 0 and summary['false_rejects'] == 0 and summary['drops'] == 0
    for part in summary['parts']:
        want = 'accept' if part['condition'] == 'ok' else 'reject'
        assert part['bin'] == part['expected_bin'] == want
        assert part['inspected_frames'] > 0
    assert summary['real_time_factor'] > 0 and summary['latency_ms']['capture']['n'] > 0
    assert 'parts_sorted=4' in capsys.readouterr().out


def test_graph_mode_bad_say_is_a_clear_error(capsys):
    """The graph mode refuses a malformed --say before starting anything."""
    assert main(['sim', '--parts', '1', '--say', 'stop']) == 2
    assert '--say needs' in capsys.readouterr().err
