"""
Scenario files: the description of a simulated cell and its randomisation ranges.

A scenario is a YAML file in ``sim/scenarios/`` (see ``default.yaml``). Every ``[lo, hi]``
pair is a range sampled from the run's seed. :meth:`Scenario.load` validates the file and
raises :class:`~lepton_robot.errors.ConfigError` naming the file and the key at fault.
"""

import copy
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence, Union

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import BINS, COLORS, CONDITIONS, SHAPES
from lepton_robot.paths import sim_dir
import yaml

#: section -> key -> kind; kind is 'num', 'range' ([lo, hi]), 'vec3', 'list' or 'map'
_SCHEMA = {
    'physics': {'dt': 'num', 'gravity': 'num'},
    'camera': {'width': 'int', 'height': 'int', 'fx': 'num', 'fy': 'num', 'cx': 'num',
               'cy': 'num', 'distortion': 'list', 'position': 'vec3', 'rate_hz': 'num',
               'jitter_position_m': 'num', 'jitter_angle_deg': 'num', 'noise_std': 'range'},
    'belt': {'x_start': 'num', 'x_end': 'num', 'y': 'num', 'width': 'num', 'top_z': 'num',
             'max_speed': 'num', 'speed_percent': 'num', 'gray': 'range'},
    'feeder': {'spawn_x': 'num', 'y_offset': 'range', 'interval_s': 'range', 'shapes': 'map',
               'colors': 'map', 'conditions': 'map'},
    'parts': {'mass_kg': 'num', 'friction': 'num', 'block': 'map', 'cylinder': 'map',
              'plate': 'map', 'colors': 'map', 'color_jitter': 'num',
              'tint_gradient': 'range', 'highlight': 'range'},
    'defects': {'scratch': 'map', 'crack': 'map', 'stain': 'map', 'chip': 'map'},
    'lighting': {'brightness': 'range', 'color_temperature': 'range', 'azimuth_deg': 'range',
                 'elevation_deg': 'range', 'ambient': 'range', 'vignetting': 'range'},
    'arm': {'base_position': 'vec3', 'pick_zone_x': 'range', 'bins': 'map',
            'bin_size': 'vec3', 'clearance_z': 'num'},
}

#: lighting ranges widened by :meth:`Scenario.widened`
_WIDEN = (('lighting', 'brightness'), ('lighting', 'color_temperature'),
          ('lighting', 'ambient'), ('lighting', 'vignetting'), ('camera', 'noise_std'))


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value)


@dataclass
class Scenario:
    """
    A validated scenario: one dict per section of the YAML file.

    :ivar name: scenario name
    :ivar source: the file it was loaded from ('' when built in memory)
    """

    name: str
    physics: Dict[str, Any]
    camera: Dict[str, Any]
    belt: Dict[str, Any]
    feeder: Dict[str, Any]
    parts: Dict[str, Any]
    defects: Dict[str, Any]
    lighting: Dict[str, Any]
    arm: Dict[str, Any]
    source: str = field(default='', compare=False)

    @classmethod
    def load(cls, name_or_path: str = 'default') -> 'Scenario':
        """
        Load a scenario by name (``sim/scenarios/<name>.yaml``) or by file path.

        :param name_or_path: a scenario name or a path to a YAML file
        :return: the validated scenario
        :raises ConfigError: when the file is missing, not YAML, or fails validation
        """
        path = Path(name_or_path)
        if path.suffix not in ('.yaml', '.yml'):
            path = sim_dir() / 'scenarios' / f'{name_or_path}.yaml'
        if not path.is_file():
            known = sorted(p.stem for p in (sim_dir() / 'scenarios').glob('*.yaml'))
            raise ConfigError(f'scenario {name_or_path!r} not found ({path}); known: {known}')
        try:
            data = yaml.safe_load(path.read_text(encoding='utf-8'))
        except yaml.YAMLError as exc:
            raise ConfigError(f'scenario file {path} is not valid YAML: {exc}') from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = '<dict>') -> 'Scenario':
        """
        Build a scenario from a mapping, validating it.

        :param data: the parsed YAML mapping
        :param source: where it came from, for error messages
        :return: the validated scenario
        :raises ConfigError: naming the key at fault
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f'scenario {source}: top level must be a mapping, '
                              f'got {type(data).__name__}')
        data = copy.deepcopy(dict(data))
        for section, keys in _SCHEMA.items():
            sec = data.get(section)
            if not isinstance(sec, Mapping):
                raise ConfigError(f'scenario {source}: missing or invalid section {section!r}')
            for key, kind in keys.items():
                _check(source, f'{section}.{key}', sec.get(key), kind)
        _check_semantics(source, data)
        return cls(name=str(data.get('name', Path(source).stem)), source=source,
                   **{s: dict(data[s]) for s in _SCHEMA})

    def to_dict(self) -> Dict[str, Any]:
        """Return the scenario as a plain mapping (YAML-serialisable)."""
        out = {'name': self.name}
        for section in _SCHEMA:
            out[section] = copy.deepcopy(getattr(self, section))
        return out

    def widened(self, factor: float) -> 'Scenario':
        """
        Return a copy whose lighting, colour and noise randomisation is widened.

        Each widened ``[lo, hi]`` range keeps its centre and has its half-width multiplied
        by ``factor``; the part colour jitter is multiplied too. Used for robustness tests.

        :param factor: >= 1 widens, 1 is the identity
        :return: a new scenario
        :raises ConfigError: when ``factor`` is not a positive number
        """
        if not _is_num(factor) or factor <= 0:
            raise ConfigError(f'widening factor must be a positive number, got {factor!r}')
        data = self.to_dict()
        for section, key in _WIDEN:
            lo, hi = data[section][key]
            mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0 * factor
            lo, hi = mid - half, mid + half
            if key in ('vignetting', 'noise_std', 'ambient'):
                lo = max(0.0, lo)
            if key == 'brightness':
                lo = max(0.2, lo)
            data[section][key] = [lo, hi]
        data['parts']['color_jitter'] = min(0.5, data['parts']['color_jitter'] * factor)
        data['name'] = f'{self.name}-x{factor:g}'
        return Scenario.from_dict(data, source=f'{self.source} widened x{factor:g}')


def _check(source: str, key: str, value: Any, kind: str) -> None:
    where = f'scenario {source}: {key}'
    if value is None:
        raise ConfigError(f'{where} is missing')
    if kind == 'num' and not _is_num(value):
        raise ConfigError(f'{where} must be a finite number, got {value!r}')
    if kind == 'int' and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
        raise ConfigError(f'{where} must be a positive integer, got {value!r}')
    if kind == 'range':
        if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
                or not all(_is_num(v) for v in value)):
            raise ConfigError(f'{where} must be a [lo, hi] pair of numbers, got {value!r}')
        if value[0] > value[1]:
            raise ConfigError(f'{where} has lo > hi: {value!r}')
    if kind == 'vec3' and (not isinstance(value, Sequence) or len(value) != 3
                           or not all(_is_num(v) for v in value)):
        raise ConfigError(f'{where} must be [x, y, z] numbers, got {value!r}')
    if kind == 'list' and (not isinstance(value, Sequence) or isinstance(value, str)
                           or not all(_is_num(v) for v in value)):
        raise ConfigError(f'{where} must be a list of numbers, got {value!r}')
    if kind == 'map' and not isinstance(value, Mapping):
        raise ConfigError(f'{where} must be a mapping, got {value!r}')


def _check_weights(source: str, key: str, weights: Mapping, vocabulary: Sequence[str]) -> None:
    unknown = sorted(set(weights) - set(vocabulary))
    if unknown:
        raise ConfigError(f'scenario {source}: {key} has unknown names {unknown}; '
                          f'allowed: {list(vocabulary)}')
    if not all(_is_num(w) and w >= 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError(f'scenario {source}: {key} weights must be >= 0 with a positive sum')


def _check_semantics(source: str, data: Dict[str, Any]) -> None:
    cam, belt, feeder, parts, arm = (data['camera'], data['belt'], data['feeder'],
                                     data['parts'], data['arm'])
    if len(cam['distortion']) != 5:
        raise ConfigError(f'scenario {source}: camera.distortion must have 5 coefficients '
                          f'(plumb_bob k1 k2 p1 p2 k3), got {len(cam["distortion"])}')
    if cam['position'][2] <= belt['top_z']:
        raise ConfigError(f'scenario {source}: camera.position z must be above belt.top_z')
    for key in ('fx', 'fy', 'rate_hz'):
        if cam[key] <= 0:
            raise ConfigError(f'scenario {source}: camera.{key} must be > 0')
    if not 0 < data['physics']['dt'] <= 0.02:
        raise ConfigError(f'scenario {source}: physics.dt must be in (0, 0.02] s')
    if belt['x_end'] <= belt['x_start'] or belt['width'] <= 0 or belt['max_speed'] <= 0:
        raise ConfigError(f'scenario {source}: belt needs x_end > x_start, width > 0 '
                          'and max_speed > 0')
    if not 0 <= belt['speed_percent'] <= 100:
        raise ConfigError(f'scenario {source}: belt.speed_percent must be in [0, 100]')
    if feeder['interval_s'][0] <= 0:
        raise ConfigError(f'scenario {source}: feeder.interval_s must be > 0')
    _check_weights(source, 'feeder.shapes', feeder['shapes'], SHAPES)
    _check_weights(source, 'feeder.colors', feeder['colors'], COLORS)
    _check_weights(source, 'feeder.conditions', feeder['conditions'], CONDITIONS)
    missing = [c for c in COLORS if c not in parts['colors']]
    if missing:
        raise ConfigError(f'scenario {source}: parts.colors lacks {missing}')
    for name, bgr in parts['colors'].items():
        if (not isinstance(bgr, Sequence) or len(bgr) != 3
                or not all(_is_num(v) and 0 <= v <= 255 for v in bgr)):
            raise ConfigError(f'scenario {source}: parts.colors.{name} must be 3 values '
                              f'in 0..255 (BGR), got {bgr!r}')
    for shape, keys in (('block', ('size',)), ('cylinder', ('radius', 'height')),
                        ('plate', ('length', 'width', 'height'))):
        for key in keys:
            _check(source, f'parts.{shape}.{key}', parts[shape].get(key), 'range')
            if parts[shape][key][0] <= 0:
                raise ConfigError(f'scenario {source}: parts.{shape}.{key} must be > 0')
    missing = [b for b in BINS if b not in arm['bins']]
    if missing:
        raise ConfigError(f'scenario {source}: arm.bins lacks {missing}')
    for name, pos in arm['bins'].items():
        _check(source, f'arm.bins.{name}', pos, 'vec3')
    for defect, params in data['defects'].items():
        for key, value in params.items():
            _check(source, f'defects.{defect}.{key}', value, 'range')


def load_scenario(scenario: Union['Scenario', str, Path, None]) -> Scenario:
    """
    Return ``scenario`` itself, or load it by name/path (``None`` means 'default').

    :param scenario: a Scenario, a name or a path
    :return: the scenario
    :raises ConfigError: when loading fails
    """
    if isinstance(scenario, Scenario):
        return scenario
    return Scenario.load(str(scenario) if scenario is not None else 'default')
