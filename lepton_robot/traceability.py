"""
Traceability: every inspected part, decision and pick result in a SQLite database.

One row per event, each written in its own transaction, with the time it happened (sim or
wall time, as the writer's clock says), the wall time it was written, the model version and
the hash of the image it came from (when the detector provides them).

Durability: the database runs in WAL mode with ``synchronous=FULL``. In WAL mode a
committed transaction survives a crash of the *process* (``kill -9``) with either FULL or
NORMAL, because the commit has reached the operating system; NORMAL can still lose the last
commits on *power loss*, and on a robot cell power loss is a normal event (an e-stop may cut
power). The write rate here is a few rows per second, so the fsync per commit that FULL
costs is affordable. Readers (``lepton-robot report``) never block the writer.
"""

import json
from pathlib import Path
import sqlite3
import time
from typing import Any, Dict, Mapping, Optional, Union

from lepton_robot.errors import LeptonError

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inspections (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, part_id INTEGER NOT NULL, stamp REAL NOT NULL,
    written REAL NOT NULL, label TEXT NOT NULL, score REAL, probs TEXT, color TEXT,
    shape TEXT, position TEXT, model_version TEXT, image_hash TEXT);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, part_id INTEGER NOT NULL, stamp REAL NOT NULL,
    written REAL NOT NULL, action TEXT NOT NULL, bin TEXT, condition TEXT, reason TEXT,
    payload TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pick_results (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, part_id INTEGER NOT NULL, stamp REAL NOT NULL,
    written REAL NOT NULL, ok INTEGER NOT NULL, error TEXT, duration_s REAL);
CREATE TABLE IF NOT EXISTS ground_truth (
    id INTEGER PRIMARY KEY, run TEXT NOT NULL, sim_part_id INTEGER NOT NULL,
    condition TEXT NOT NULL, location TEXT NOT NULL, expected_bin TEXT,
    predicted TEXT, written REAL NOT NULL);
CREATE INDEX IF NOT EXISTS inspections_part ON inspections (run, part_id);
CREATE INDEX IF NOT EXISTS decisions_part ON decisions (run, part_id);
"""


class TraceError(LeptonError):
    """The traceability database cannot be opened or written."""


def connect(path: Union[str, Path], readonly: bool = False) -> sqlite3.Connection:
    """
    Open (and create) a traceability database in WAL mode.

    :param path: the database file.
    :param readonly: open for reading only (never creates anything).
    :return: an open connection.
    :raises TraceError: when the file cannot be opened or is not a trace database.
    """
    path = Path(path)
    try:
        if readonly:
            if not path.is_file():
                raise TraceError(f'no such database: {path}')
            conn = sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=10.0)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # The writer may be called from more than one thread (the supervisor serialises
            # its callbacks under one lock); sqlite3 itself is built serialised.
            conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute('PRAGMA journal_mode=WAL')
            conn.execute('PRAGMA synchronous=FULL')
            conn.executescript(_DDL)
            conn.execute('INSERT OR IGNORE INTO meta VALUES (?, ?)',
                         ('schema_version', str(SCHEMA_VERSION)))
        conn.row_factory = sqlite3.Row
        conn.execute('SELECT count(*) FROM decisions').fetchone()
    except sqlite3.Error as exc:
        raise TraceError(f'cannot open trace database {path}: {exc}') from exc
    return conn


class TraceWriter:
    """
    Append events to a trace database, one committed transaction per event.

    :param path: the database file (created if missing).
    :param run: a label that groups the rows of one run (defaults to the start time).
    """

    def __init__(self, path: Union[str, Path], run: Optional[str] = None) -> None:
        self.path = Path(path)
        self.run = run or time.strftime('%Y%m%dT%H%M%S')
        self._conn = connect(self.path)

    def _insert(self, table: str, row: Mapping[str, Any]) -> None:
        cols = ', '.join(row)
        marks = ', '.join('?' for _ in row)
        try:
            with self._conn:   # BEGIN ... COMMIT (or ROLLBACK on error)
                self._conn.execute('BEGIN')
                self._conn.execute(f'INSERT INTO {table} ({cols}) VALUES ({marks})',
                                   tuple(row.values()))
        except sqlite3.Error as exc:
            raise TraceError(f'cannot write to {self.path}: {exc}') from exc

    def inspection(self, part_id: int, stamp: float, part: Mapping[str, Any],
                   model_version: Optional[str] = None,
                   image_hash: Optional[str] = None) -> None:
        """Record one view of a part (a ``lepton.inspection/1`` part entry)."""
        self._insert('inspections', {
            'run': self.run, 'part_id': int(part_id), 'stamp': float(stamp),
            'written': time.time(), 'label': str(part.get('label')),
            'score': part.get('score'), 'probs': json.dumps(part.get('probs')),
            'color': part.get('color'), 'shape': part.get('shape'),
            'position': json.dumps(part.get('position')), 'model_version': model_version,
            'image_hash': image_hash or part.get('image_hash')})

    def decision(self, decision: Mapping[str, Any]) -> None:
        """Record a ``lepton.decision/1`` payload."""
        self._insert('decisions', {
            'run': self.run, 'part_id': int(decision['part_id']),
            'stamp': float(decision.get('stamp', 0.0)), 'written': time.time(),
            'action': decision['action'], 'bin': decision.get('bin'),
            'condition': decision.get('condition'), 'reason': decision.get('reason'),
            'payload': json.dumps(decision, default=str)})

    def pick_result(self, result: Mapping[str, Any], stamp: float) -> None:
        """Record a ``lepton.pick_result/1`` payload."""
        self._insert('pick_results', {
            'run': self.run, 'part_id': int(result['part_id']), 'stamp': float(stamp),
            'written': time.time(), 'ok': int(bool(result['ok'])), 'error': result.get('error'),
            'duration_s': result.get('duration_s')})

    def ground_truth(self, sim_part_id: int, condition: str, location: str,
                     expected_bin: Optional[str] = None, predicted: Optional[str] = None) -> None:
        """Record where a simulated part really ended (from the sim's summary)."""
        self._insert('ground_truth', {
            'run': self.run, 'sim_part_id': int(sim_part_id), 'condition': condition,
            'location': location, 'expected_bin': expected_bin, 'predicted': predicted,
            'written': time.time()})

    def close(self) -> None:
        """Close the database."""
        self._conn.close()


def report(path: Union[str, Path], run: Optional[str] = None) -> Dict[str, Any]:
    """
    Summarise a trace database.

    :param path: the database file.
    :param run: only this run (default: every run in the file).
    :return: ``{"runs", "parts", "decisions": {bin: n} (each part's last decision),
        "picks": {"ok", "failed"},
        "defect_rate", "per_class": {label: n}, "ground_truth": null | {"parts",
        "escapes", "false_rejects", "sorting_accuracy"}}``.
    :raises TraceError: when the file is missing or not a trace database.
    """
    conn = connect(path, readonly=True)
    try:
        where, args = ('WHERE run = ?', (run,)) if run else ('', ())
        q = conn.execute
        runs = [r[0] for r in q('SELECT DISTINCT run FROM decisions UNION '
                                'SELECT DISTINCT run FROM inspections ORDER BY 1')]
        parts = q(f'SELECT count(DISTINCT run || ":" || part_id) FROM inspections {where}',
                  args).fetchone()[0]
        # one row per part: its last decision (a retried pick decides again)
        final = (f'SELECT * FROM decisions WHERE id IN (SELECT max(id) FROM decisions '
                 f'{where} GROUP BY run, part_id)')
        bins = {r['bin']: r['n'] for r in q(
            f'SELECT bin, count(*) AS n FROM ({final}) GROUP BY bin', args)}
        per_class = {r['condition']: r['n'] for r in q(
            f'SELECT condition, count(*) AS n FROM ({final}) GROUP BY condition', args)}
        picks = {r['ok']: r['n'] for r in q(
            f'SELECT ok, count(*) AS n FROM pick_results {where} GROUP BY ok', args)}
        decided = sum(per_class.values())
        defective = decided - per_class.get('ok', 0)
        truth = [dict(r) for r in q(f'SELECT * FROM ground_truth {where}', args)]
    except sqlite3.Error as exc:
        raise TraceError(f'cannot read {path}: {exc}') from exc
    finally:
        conn.close()
    gt = None
    if truth:
        escapes = sum(1 for t in truth if t['condition'] != 'ok'
                      and t['location'] in ('accept', 'belt_end'))
        false_rejects = sum(1 for t in truth if t['condition'] == 'ok'
                            and t['location'] == 'reject')
        correct = sum(1 for t in truth if t['expected_bin'] == t['location'])
        gt = {'parts': len(truth), 'escapes': escapes, 'false_rejects': false_rejects,
              'sorting_accuracy': correct / len(truth)}
    return {'runs': runs, 'parts': parts, 'decisions': bins,
            'picks': {'ok': picks.get(1, 0), 'failed': picks.get(0, 0)},
            'defect_rate': (defective / decided) if decided else None,
            'per_class': per_class, 'ground_truth': gt}


def format_report(rep: Mapping[str, Any]) -> str:
    """Return a report dict as readable text."""
    lines = [f'runs: {", ".join(rep["runs"]) or "-"}',
             f'parts inspected: {rep["parts"]}',
             'decisions: ' + (', '.join(f'{k} {v}' for k, v in sorted(
                 rep['decisions'].items(), key=lambda kv: str(kv[0]))) or '-'),
             f'picks: {rep["picks"]["ok"]} ok, {rep["picks"]["failed"]} failed']
    rate = rep['defect_rate']
    lines.append('defect rate: ' + ('-' if rate is None else f'{100 * rate:.1f} %'))
    lines.append('per class: ' + (', '.join(f'{k} {v}' for k, v in sorted(
        rep['per_class'].items(), key=lambda kv: str(kv[0]))) or '-'))
    gt = rep['ground_truth']
    if gt:
        lines.append(f'ground truth: {gt["parts"]} parts, escapes {gt["escapes"]}, '
                     f'false rejects {gt["false_rejects"]}, '
                     f'sorting accuracy {100 * gt["sorting_accuracy"]:.1f} %')
    else:
        lines.append('ground truth: not recorded (escapes unknown)')
    return '\n'.join(lines)
