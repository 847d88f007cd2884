"""Tests of the traceability database: rows, report, crash safety under SIGKILL."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from lepton_robot.cli import main as cli_main
from lepton_robot.traceability import connect, report, TraceError, TraceWriter
import pytest

WRITER = r"""
import sys
from lepton_robot.traceability import TraceWriter
w = TraceWriter(sys.argv[1], run='crash')
i = 0
while True:
    w.decision({'schema': 'lepton.decision/1', 'part_id': i, 'action': 'pick_place',
                'bin': 'reject', 'pick_pose': [0, 0, 0, 0], 'stamp': i * 0.1,
                'condition': 'scratch', 'reason': 'x' * 200})
    print(i, flush=True)   # after the commit returned: row i is committed
    i += 1
"""


def _decision(pid, bin_name, condition):
    return {'schema': 'lepton.decision/1', 'part_id': pid, 'action': 'pick_place',
            'bin': bin_name, 'pick_pose': [0.1, 0.0, 0.02, 0.0], 'stamp': 1.0 + pid,
            'condition': condition, 'reason': 'test'}


def test_rows_and_report(tmp_path, capsys):
    """Inspections, decisions, picks and truth are written and summarised."""
    db = tmp_path / 'trace.db'
    w = TraceWriter(db, run='r1')
    part = {'label': 'scratch', 'score': 0.9, 'probs': {'scratch': 0.9, 'ok': 0.1},
            'color': 'red', 'shape': 'block', 'position': [0.1, 0.0, 0.02]}
    w.inspection(0, 1.0, part, model_version='detector-1', image_hash='abc')
    w.inspection(1, 1.0, dict(part, label='ok'), model_version='detector-1')
    w.decision(_decision(0, 'reject', 'scratch'))
    w.decision(_decision(1, 'accept', 'ok'))
    w.pick_result({'part_id': 0, 'ok': True, 'error': None, 'duration_s': 2.0}, 3.0)
    w.pick_result({'part_id': 1, 'ok': False, 'error': 'unreachable', 'duration_s': 0.0}, 3.5)
    w.ground_truth(10, 'scratch', 'reject', 'reject', 'scratch')
    w.ground_truth(11, 'crack', 'accept', 'reject', 'ok')     # an escape
    w.close()
    rep = report(db)
    assert rep['parts'] == 2
    assert rep['decisions'] == {'accept': 1, 'reject': 1}
    assert rep['picks'] == {'ok': 1, 'failed': 1}
    assert rep['defect_rate'] == pytest.approx(0.5)
    assert rep['ground_truth']['escapes'] == 1
    assert rep['ground_truth']['sorting_accuracy'] == pytest.approx(0.5)
    conn = sqlite3.connect(db)
    assert conn.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'
    assert conn.execute('SELECT image_hash, model_version FROM inspections WHERE part_id=0'
                        ).fetchone() == ('abc', 'detector-1')
    conn.close()
    assert cli_main(['report', str(db), '--json']) == 0
    assert json.loads(capsys.readouterr().out)['ground_truth']['escapes'] == 1


def test_report_missing_db(tmp_path):
    """A missing database is a clear TraceError, not a new empty file."""
    with pytest.raises(TraceError):
        report(tmp_path / 'nope.db')
    assert not (tmp_path / 'nope.db').exists()


def test_sigkill_loses_no_committed_row(tmp_path):
    """
    A writer killed with SIGKILL mid-stream loses no committed row; the DB opens cleanly.

    Steps: start a writer process that commits one decision per loop and prints its index
    after each commit; read until at least 200 rows are reported; SIGKILL it; open the
    database, run an integrity check, and count rows >= the last reported index + 1.
    """
    db = tmp_path / 'crash.db'
    proc = subprocess.Popen([sys.executable, '-c', WRITER, str(db)], stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
    last = -1
    deadline = time.monotonic() + 60.0
    try:
        while last < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    assert last >= 200, 'writer did not get going'
    conn = connect(db)       # recovers the WAL like any later writer would
    assert conn.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
    ids = [r[0] for r in conn.execute('SELECT part_id FROM decisions ORDER BY part_id')]
    conn.close()
    assert len(ids) >= last + 1
    assert ids[:last + 1] == list(range(last + 1))
    assert report(db)['decisions']['reject'] == len(ids)
