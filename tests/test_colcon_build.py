"""``colcon build`` of the package installs what ``ros2 run`` / ``ros2 launch`` need."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

from conftest import REPO_ROOT
import pytest

COLCON_TIMEOUT_S = 300
COPY_IGNORE = shutil.ignore_patterns('.venv', '.git', 'build', 'install', 'log', '__pycache__',
                                     '*.egg-info', '.pytest_cache', 'data', 'runs', 'out')


def _console_scripts():
    """Return the executable names declared in setup.py's console_scripts."""
    import ast
    tree = ast.parse((REPO_ROOT / 'setup.py').read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == 'NODES':
            return [ast.literal_eval(e).split('=')[0].strip() for e in node.value.elts]
    raise AssertionError('NODES not found in setup.py')


@pytest.fixture(scope='module')
def colcon_install(tmp_path_factory):
    """Build the package with colcon in a temporary workspace; return the install prefix."""
    ws = tmp_path_factory.mktemp('colcon_ws')
    shutil.copytree(REPO_ROOT, ws / 'src' / 'lepton_robot', ignore=COPY_IGNORE)
    colcon = Path(sys.executable).parent / 'colcon'
    assert colcon.exists(), 'colcon-core is a dev dependency and must be installed'
    env = dict(os.environ, COLCON_LOG_PATH=str(ws / 'log'))
    proc = subprocess.run(
        [str(colcon), 'build', '--base-paths', 'src', '--event-handlers', 'console_direct-'],
        cwd=ws, env=env, capture_output=True, text=True, timeout=COLCON_TIMEOUT_S)
    assert proc.returncode == 0, f'colcon build failed:\n{proc.stdout}\n{proc.stderr}'
    return ws / 'install' / 'lepton_robot'


def test_share_files_installed(colcon_install):
    """package.xml, the ament index marker and every launch/config/model file are installed."""
    share = colcon_install / 'share' / 'lepton_robot'
    assert (share / 'package.xml').is_file()
    marker = colcon_install / 'share' / 'ament_index' / 'resource_index' / 'packages'
    assert (marker / 'lepton_robot').is_file()
    for folder in ('launch', 'config', 'models', 'sim'):
        for src in (REPO_ROOT / folder).rglob('*'):
            if src.is_file() and not any(p.startswith(('.', '__')) for p in src.parts):
                rel = src.relative_to(REPO_ROOT)
                assert (share / rel).is_file(), f'{rel} is not installed into share/'


def test_node_executables_where_ros2_run_looks(colcon_install):
    """Every node console script lands in lib/lepton_robot, where ``ros2 run`` looks."""
    lib = colcon_install / 'lib' / 'lepton_robot'
    for name in _console_scripts() + ['lepton-robot']:
        exe = lib / name
        assert exe.is_file() and os.access(exe, os.X_OK), f'{exe} missing or not executable'


def test_python_package_installed(colcon_install):
    """The Python package is importable from the install prefix."""
    site = list(colcon_install.glob('lib/python3*/site-packages/lepton_robot/__init__.py'))
    assert site, 'lepton_robot package not installed into site-packages'
