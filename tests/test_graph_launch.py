"""Static checks of the launch files (``launch_ros`` is not installable here) and the launcher."""

import ast
from pathlib import Path

from conftest import REPO_ROOT
from lepton_robot.errors import ConfigError
from lepton_robot.launcher import parse_say, ros_args, sim_graph, write_params
import pytest
import yaml

LAUNCH_FILES = ['sim.launch.py', 'robot.launch.py']


def _setup_nodes():
    tree = ast.parse((REPO_ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'NODES'
                                                for t in node.targets):
            return {ast.literal_eval(e).split('=')[0].strip() for e in node.value.elts}
    raise AssertionError('no NODES in setup.py')


def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, 'id', getattr(n.func, 'attr', None)) == name]


def _kw(call, key):
    for kw in call.keywords:
        if kw.arg == key:
            return kw.value
    return None


@pytest.mark.parametrize('launch_file', LAUNCH_FILES)
def test_launch_file_executables_exist(launch_file):
    """Every executable a launch file starts is a console script in setup.py NODES."""
    tree = ast.parse((REPO_ROOT / 'launch' / launch_file).read_text())
    executables = {ast.literal_eval(_kw(c, 'executable')) for c in _calls(tree, 'Node')}
    assert executables, 'no Node actions found'
    missing = executables - _setup_nodes()
    assert not missing, f'{launch_file} starts executables not in setup.py NODES: {missing}'


@pytest.mark.parametrize('launch_file', LAUNCH_FILES)
def test_launch_file_config_files_exist(launch_file):
    """Every config YAML a launch file names exists and is a ROS parameters file."""
    text = (REPO_ROOT / 'launch' / launch_file).read_text()
    tree = ast.parse(text)
    names = {n.value for n in ast.walk(tree)
             if isinstance(n, ast.Constant) and isinstance(n.value, str)
             and n.value.endswith('.yaml')}
    assert names
    for name in names:
        path = REPO_ROOT / 'config' / name
        assert path.is_file(), f'{launch_file} names config/{name}, which does not exist'
        data = yaml.safe_load(path.read_text())
        assert all('ros__parameters' in v for v in data.values()), name


@pytest.mark.parametrize('launch_file', LAUNCH_FILES)
def test_launch_arguments_are_described(launch_file):
    """Every DeclareLaunchArgument has a description; the contract's arguments are there."""
    tree = ast.parse((REPO_ROOT / 'launch' / launch_file).read_text())
    declared = {}
    for call in _calls(tree, 'DeclareLaunchArgument'):
        desc = _kw(call, 'description')
        assert desc is not None, ast.dump(call)
        declared[ast.literal_eval(call.args[0])] = desc
    assert {'namespace', 'use_sim_time', 'model', 'backend'} <= set(declared)
    used = {ast.literal_eval(c.args[0]) for c in _calls(tree, 'LaunchConfiguration')}
    assert used <= set(declared), f'undeclared launch arguments: {used - set(declared)}'


def test_launch_files_define_generate_launch_description():
    """Each launch file defines generate_launch_description()."""
    for name in LAUNCH_FILES:
        tree = ast.parse((REPO_ROOT / 'launch' / name).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == 'generate_launch_description'
                   for n in tree.body)


def test_launcher_graph_matches_setup_and_configs():
    """The launcher's sim graph starts only installed executables with existing configs."""
    specs = sim_graph(detector='truth', parser=False)
    assert [s.name for s in specs] == ['sim_bridge', 'supervisor', 'manipulation_controller']
    assert {s.executable for s in specs} <= _setup_nodes()
    for spec in specs:
        assert spec.config and (REPO_ROOT / 'config' / spec.config).is_file()
    bridge = specs[0]
    assert bridge.params['truth_inspection'] is True and not bridge.sim_time


def test_launcher_params_and_ros_args(tmp_path):
    """Parameter files are keyed by full node name; ros args carry namespace and files."""
    specs = sim_graph(parts=7, seed=3, detector='truth', parser=False)
    path = write_params(specs, 'cell1', tmp_path / 'p.yaml')
    data = yaml.safe_load(path.read_text())
    assert data['/cell1/sim_bridge']['ros__parameters']['parts'] == 7
    assert data['/cell1/supervisor']['ros__parameters']['use_sim_time'] is True
    args = ros_args(specs[1:2], 'cell1', path, True)
    assert args[:3] == ['--ros-args', '-r', '__ns:=/cell1']
    assert str(path) in args and 'use_sim_time:=true' in args


@pytest.mark.parametrize('values, expected', [
    (['2.5:stop the line', '1:start'], [(1.0, 'start'), (2.5, 'stop the line')]),
    (['0:put scratched parts: in rework'], [(0.0, 'put scratched parts: in rework')]),
])
def test_parse_say(values, expected):
    """--say T:TEXT is parsed and sorted by time (the text may contain colons)."""
    assert parse_say(values) == expected


@pytest.mark.parametrize('value', ['stop', 'x:stop', '-1:stop', '3:'])
def test_parse_say_rejects(value):
    """Malformed --say values are a ConfigError."""
    with pytest.raises(ConfigError):
        parse_say([value])


def test_unknown_detector_is_refused():
    """An unknown --detector is a ConfigError."""
    with pytest.raises(ConfigError):
        sim_graph(detector='magic', parser=False)


def test_launch_dir_is_installed():
    """setup.py installs launch/ and config/ into share/lepton_robot."""
    text = (REPO_ROOT / 'setup.py').read_text()
    assert "_tree('launch'" in text and "_tree('config'" in text
    assert Path(REPO_ROOT / 'launch').is_dir()


def test_overrides_take_the_type_of_the_parameter():
    """``--set supervisor.speed=100`` reaches a double parameter as 100.0; ints stay ints."""
    from lepton_robot.launcher import parse_overrides, sim_graph
    extra = parse_overrides(['supervisor.speed=100', 'supervisor.min_views=3',
                             'manipulation_controller.press_depth_m=0'])
    specs = {s.name: s for s in sim_graph(detector='truth', parser=False, extra=extra)}
    assert specs['supervisor'].params['speed'] == 100.0
    assert isinstance(specs['supervisor'].params['speed'], float)
    assert specs['supervisor'].params['min_views'] == 3
    assert isinstance(specs['supervisor'].params['min_views'], int)
    assert isinstance(specs['manipulation_controller'].params['press_depth_m'], float)
