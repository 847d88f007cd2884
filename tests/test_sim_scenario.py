"""Scenario files: the default loads, bad files give a ConfigError naming the fault."""

from lepton_robot.errors import ConfigError
from lepton_robot.sim.scenario import Scenario
import pytest
import yaml


def test_default_loads_and_widens():
    sc = Scenario.load('default')
    assert sc.name == 'default' and sc.belt['top_z'] > 0
    wide = sc.widened(2.0)
    lo, hi = sc.lighting['brightness']
    wlo, whi = wide.lighting['brightness']
    assert whi - wlo == pytest.approx(2 * (hi - lo))
    assert (wlo + whi) / 2 == pytest.approx((lo + hi) / 2)


@pytest.mark.parametrize('edit, message', [
    (lambda d: d.pop('belt'), "section 'belt'"),
    (lambda d: d['camera'].update(fx='wide'), 'camera.fx must be a finite number'),
    (lambda d: d['lighting'].update(brightness=[1.2, 0.8]), 'lo > hi'),
    (lambda d: d['feeder']['conditions'].update(dented=1.0), "unknown names \\['dented'\\]"),
    (lambda d: d['camera'].update(distortion=[0.1]), '5 coefficients'),
    (lambda d: d['arm']['bins'].pop('rework'), "lacks \\['rework'\\]"),
    (lambda d: d['belt'].update(speed_percent=150), 'speed_percent'),
])
def test_bad_scenario_file_is_a_clear_error(tmp_path, edit, message):
    data = Scenario.load().to_dict()
    edit(data)
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as err:
        Scenario.load(str(path))
    assert 'bad.yaml' in str(err.value)


def test_missing_and_unparsable_files(tmp_path):
    with pytest.raises(ConfigError, match='not found'):
        Scenario.load('no_such_scenario')
    path = tmp_path / 'broken.yaml'
    path.write_text('camera: [unclosed\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        Scenario.load(str(path))
    path.write_text('- a list\n')
    with pytest.raises(ConfigError, match='mapping'):
        Scenario.load(str(path))
