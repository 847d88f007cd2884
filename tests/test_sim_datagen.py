"""Dataset generator: format, determinism per seed, resuming, balance, CLI."""

import hashlib
import json

from lepton_robot.cli import main
from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import CONDITIONS
from lepton_robot.sim.camera import CameraModel
from lepton_robot.sim.datagen import iter_dataset
import pytest


def _files(d):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.iterdir()) if p.suffix in ('.png', '.jsonl')}


def test_format_and_determinism(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    assert list(iter_dataset(a, 4, seed=5)) == [0, 1, 2, 3]
    list(iter_dataset(b, 4, seed=5))
    assert _files(a) == _files(b)
    camera = CameraModel.from_dict(json.loads((a / 'camera.json').read_text()))
    lines = [json.loads(x) for x in (a / 'labels.jsonl').read_text().splitlines()]
    assert [x['image'] for x in lines] == [f'{i:06d}.png' for i in range(4)]
    n = 0
    for line in lines:
        for part in line['parts']:
            n += 1
            assert set(part) >= {'id', 'bbox', 'shape', 'color', 'condition', 'position',
                                 'yaw'}
            x, y, w, h = part['bbox']
            assert 0 <= x and 0 <= y and x + w <= camera.width and y + h <= camera.height
            if not part.get('truncated'):
                # the bbox contains the projection of the part's world position
                u, v = camera.world_to_pixel(part['position'])[0]
                assert x <= u <= x + w and y <= v <= y + h
    assert n >= 4


def test_resume_gives_identical_dataset(tmp_path):
    full, part = tmp_path / 'full', tmp_path / 'part'
    list(iter_dataset(full, 5, seed=2))
    list(iter_dataset(part, 2, seed=2))
    with open(part / 'labels.jsonl', 'a') as f:
        f.write('{"image": "000002.png", "par')  # an interrupted write
    assert list(iter_dataset(part, 5, seed=2)) == [2, 3, 4]
    assert _files(full) == _files(part)
    with pytest.raises(ConfigError, match='other --out|same options'):
        list(iter_dataset(part, 6, seed=3))


def test_balance_covers_every_condition(tmp_path):
    list(iter_dataset(tmp_path, 12, seed=1, balance=True))
    seen = {p['condition'] for line in (tmp_path / 'labels.jsonl').read_text().splitlines()
            for p in json.loads(line)['parts']}
    assert seen == set(CONDITIONS)


def test_cli(tmp_path, capsys):
    assert main(['datagen', '--out', str(tmp_path / 'd'), '--count', '2', '--seed', '1']) == 0
    assert len((tmp_path / 'd' / 'labels.jsonl').read_text().splitlines()) == 2
    assert main(['datagen', '--contact-sheet', str(tmp_path / 'sheet.png')]) == 0
    assert (tmp_path / 'sheet.png').stat().st_size > 10000
    assert main(['datagen', '--count', '1']) == 2
    assert '--out DIR is required' in capsys.readouterr().err
