"""The launcher's ROS domain allocation (``lepton_robot/domain.py``): lock files per domain."""

import os
from pathlib import Path
import re
import subprocess
import sys
import time

from conftest import REPO_ROOT, ros_env
from lepton_robot.domain import (acquire, DEFAULT_RANGE, domain_range, DomainError, holder,
                                 lock_dir, ros_domain, try_lock)
from lepton_robot.errors import ConfigError
import pytest


@pytest.mark.parametrize('value, expected', [('', DEFAULT_RANGE), ('5-9', (5, 9)),
                                             ('7-7', (7, 7)), (' 0-232 ', (0, 232))])
def test_domain_range(value, expected):
    """LEPTON_DOMAIN_RANGE=LO-HI overrides the default range."""
    assert domain_range({'LEPTON_DOMAIN_RANGE': value}) == expected


@pytest.mark.parametrize('value', ['5', '9-5', 'a-b', '0-233', '-1-3'])
def test_domain_range_rejects(value):
    """A malformed range is a ConfigError."""
    with pytest.raises(ConfigError):
        domain_range({'LEPTON_DOMAIN_RANGE': value})


def test_leases_are_exclusive_and_reusable(tmp_path):
    """Two leases get two domains; a released domain is free again; all taken: DomainError."""
    a = acquire(range(10, 12), tmp_path)
    b = acquire(range(10, 12), tmp_path)
    assert (a.domain, b.domain) == (10, 11) and a.held and b.held
    assert holder(10, tmp_path) == os.getpid()
    with pytest.raises(DomainError, match='10..11'):
        acquire(range(10, 12), tmp_path)
    a.release()
    a.release()     # idempotent
    with acquire(range(10, 12), tmp_path) as c:
        assert c.domain == 10
    assert not c.held
    b.release()


def test_a_lock_held_by_another_process_is_skipped_until_it_dies(tmp_path):
    """A domain locked by another process is skipped; its SIGKILL frees the domain."""
    code = ('import fcntl, os, sys, time\n'
            f'fd = os.open({str(tmp_path / "domain-20.lock")!r}, os.O_RDWR | os.O_CREAT)\n'
            'fcntl.flock(fd, fcntl.LOCK_EX)\n'
            'print("locked", flush=True)\n'
            'time.sleep(60)\n')
    other = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'locked'
        with acquire(range(20, 23), tmp_path) as lease:
            assert lease.domain == 21
        other.kill()
        other.wait(timeout=10)
        with acquire(range(20, 23), tmp_path) as lease:
            assert lease.domain == 20
    finally:
        if other.poll() is None:
            other.kill()
            other.wait(timeout=10)


def test_ros_domain_chooses_sets_and_restores_the_environment(tmp_path):
    """Without ROS_DOMAIN_ID a free domain is chosen (localhost discovery); env restored."""
    env = {'LEPTON_DOMAIN_RANGE': '30-31'}
    busy = try_lock(30, tmp_path)
    try:
        with ros_domain(env, tmp_path) as info:
            assert info == {'domain': 31, 'chosen': True, 'note': ''}
            assert env['ROS_DOMAIN_ID'] == '31'
            assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
            assert try_lock(31, tmp_path) is None      # held for the run
        assert 'ROS_DOMAIN_ID' not in env and 'ROS_AUTOMATIC_DISCOVERY_RANGE' not in env
        with try_lock(31, tmp_path) as again:
            assert again is not None
    finally:
        busy.release()


def test_ros_domain_respects_an_explicit_domain(tmp_path):
    """An explicit ROS_DOMAIN_ID is used as is; a note says when another run holds it."""
    env = {'ROS_DOMAIN_ID': '40', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
    with ros_domain(env, tmp_path) as info:
        assert info == {'domain': 40, 'chosen': False, 'note': ''}
        assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
        with ros_domain(dict(env), tmp_path) as second:
            assert second['domain'] == 40 and 'uses domain 40' in second['note']
    assert env == {'ROS_DOMAIN_ID': '40', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
    with pytest.raises(ConfigError):
        with ros_domain({'ROS_DOMAIN_ID': 'x'}, tmp_path):
            pass


def test_sim_without_ros_domain_id_picks_a_free_domain(tmp_path):
    """
    ``lepton-robot sim`` without ROS_DOMAIN_ID picks a domain no other run holds.

    Steps: hold the lock of the first domain of a two-domain range (as a concurrent run
    would); run a 1-part sim (ground-truth inspections) with ROS_DOMAIN_ID unset and that
    range and no discovery range; expect it to print that it chose the second domain with
    localhost discovery, and finish with a summary.
    """
    lo = 140 + int(time.time()) % 8     # two domains of the default range
    busy = try_lock(lo) or pytest.skip(f'domain {lo} is in use by another run')
    env = ros_env(LEPTON_DOMAIN_RANGE=f'{lo}-{lo + 1}')
    env.pop('ROS_DOMAIN_ID')
    env.pop('ROS_AUTOMATIC_DISCOVERY_RANGE')
    try:
        out = subprocess.run(
            [sys.executable, '-m', 'lepton_robot', 'sim', '--detector', 'truth', '--parts',
             '1', '--seed', '3', '--max-rtf', '0', '--quiet', '--timeout', '240',
             '--summary', str(tmp_path / 'summary.json')],
            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    finally:
        busy.release()
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    chosen = re.search(r'ROS_DOMAIN_ID=(\d+) \(chosen', out.stdout)
    assert chosen and int(chosen.group(1)) == lo + 1, out.stdout
    assert 'discovery LOCALHOST' in out.stdout
    assert Path(tmp_path / 'summary.json').is_file()
    assert lock_dir().is_dir()
