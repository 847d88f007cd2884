"""Shared pytest fixtures: an isolated ROS 2 environment per test run."""

import os
from pathlib import Path
import random
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# One DDS domain per test run, discovery kept on this host: concurrent runs never meet.
# Domain ids 1..101 keep Fast DDS' port arithmetic inside the valid range.
_DOMAIN_ID = str(random.SystemRandom().randint(1, 101))
os.environ.setdefault('ROS_DOMAIN_ID', _DOMAIN_ID)
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.pop('RMW_IMPLEMENTATION', None)
os.environ.setdefault('HOME', str(Path.home()))
os.environ.setdefault('ROS_LOG_DIR', str(Path(os.environ.get('TMPDIR', '/tmp')) /
                                         f'lepton_ros_log_{os.getpid()}'))


def ros_env(**extra: str) -> dict:
    """Return the environment for a node subprocess (same domain, localhost discovery)."""
    env = dict(os.environ)
    env['PYTHONUNBUFFERED'] = '1'
    env.update(extra)
    return env


@pytest.fixture
def ros_subprocess_env():
    """Environment for starting node processes in this test run's ROS domain."""
    return ros_env()


@pytest.fixture
def python_exe():
    """Return the interpreter running the tests (the project's virtual environment)."""
    return sys.executable
