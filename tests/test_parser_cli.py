"""``lepton-robot parse`` and ``lepton-robot evaluate-parser`` as users run them."""

import json
import subprocess
import sys

from conftest import REPO_ROOT
from lepton_robot.interfaces import validate_intent
from lepton_robot.parser.runtime import default_model_path
import pytest

pytestmark = pytest.mark.skipif(not default_model_path().is_file(),
                                reason='no shipped parser model')
CLI_TIMEOUT_S = 120


def _cli(*args, stdin=None):
    return subprocess.run([sys.executable, '-m', 'lepton_robot', *args], cwd=REPO_ROOT,
                          input=stdin, capture_output=True, timeout=CLI_TIMEOUT_S)


def _lines(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    for obj in out:
        validate_intent(obj)
    return out


def test_parse_json_in_order_with_stdin_and_double_dash():
    """Steps: two args, '-' reading three stdin lines (one invalid UTF-8), '--', a dash text."""
    proc = _cli('parse', '--json', 'stop the line', '-', 'go home', '--', '-fast',
                stdin=b'grey cube to bin two\n\xff\xfe\nset speed to forty\n')
    out = _lines(proc)
    assert [o['text'] for o in out] == ['stop the line', 'grey cube to bin two', '\ufffd\ufffd',
                                        'set speed to forty', 'go home', '-fast']
    assert out[0]['intent'] == 'stop'
    assert out[1]['slots'].get('bin') == 'reject' and out[1]['slots'].get('color') == 'gray'
    assert out[2]['intent'] == 'unknown' and 'UTF-8' in out[2]['reason']
    assert out[3]['intent'] == 'set_speed' and out[3]['slots'] == {'value': 40}
    assert out[4]['intent'] == 'home'


def test_parse_bad_inputs_are_unknown_with_reason():
    out = _lines(_cli('parse', '--json', '', '   ', 'a\x01b', 'x' * 100000))
    assert [o['intent'] for o in out] == ['unknown'] * 4
    assert all(o['reason'] for o in out)


def test_parse_readable_output():
    proc = _cli('parse', 'pick up the red cylinder')
    assert proc.returncode == 0
    line = proc.stdout.decode().strip()
    assert line.startswith('pick') and 'color=red' in line and 'shape=cylinder' in line


def test_parse_without_text_fails_cleanly():
    proc = _cli('parse')
    assert proc.returncode == 2
    assert b'no utterance' in proc.stderr


def test_parse_bad_option_values():
    assert _cli('parse', '--confidence-floor', '3', 'stop').returncode == 2
    proc = _cli('parse', '--model', '/nonexistent.onnx', 'stop')
    assert proc.returncode == 2 and b'not found' in proc.stderr


def test_evaluate_parser_json_and_png(tmp_path):
    proc = _cli('evaluate-parser', '--json', '--out', str(tmp_path), '--val-size', '300')
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    for split in ('validation', 'handwritten'):
        r = report[split]
        assert 0.0 <= r['intent_accuracy'] <= 1.0 and 0.0 <= r['slot_f1'] <= 1.0
        assert r['n'] == sum(sum(row.values()) for row in r['confusion'].values())
        png = tmp_path / f'confusion_{split}.png'
        assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert report['validation']['n'] == 300
    assert json.loads((tmp_path / 'report.json').read_text())['model_version']
