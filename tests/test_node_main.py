"""The nodes' standard main: the executor chosen by ``LEPTON_EXECUTOR``."""

from lepton_robot.errors import LeptonError
from lepton_robot.ros import node_main
from lepton_robot.ros.node_main import executor_kind, make_executor
import pytest
import rclpy


@pytest.fixture
def context():
    rclpy.init(args=[])
    yield
    rclpy.try_shutdown()


@pytest.mark.parametrize('value, name', [(None, 'EventsExecutor'),
                                         ('auto', 'EventsExecutor'),
                                         ('single', 'SingleThreadedExecutor'),
                                         (' Events ', 'EventsExecutor')])
def test_executor_from_environment(context, monkeypatch, value, name):
    """
    Unset or ``auto`` (one node) and ``events`` -> EventsExecutor; ``single`` -> single.

    (rclpy's ``EventsExecutor`` is a factory of the C++ class of that name.)
    """
    if value is None:
        monkeypatch.delenv('LEPTON_EXECUTOR', raising=False)
    else:
        monkeypatch.setenv('LEPTON_EXECUTOR', value)
    executor = make_executor()
    try:
        assert type(executor).__name__ == name
    finally:
        executor.shutdown()


def test_unknown_executor_is_a_clear_error(monkeypatch):
    """A typo in LEPTON_EXECUTOR names the accepted values instead of spinning something."""
    monkeypatch.setenv('LEPTON_EXECUTOR', 'multi')
    with pytest.raises(LeptonError, match="'multi'.*auto, single, events"):
        make_executor()


def test_auto_composes_on_single_and_falls_back_without_events(monkeypatch):
    """
    ``auto``: one node -> events (single without it); several -> single.

    Several nodes in a process need the single-threaded executor's in-process path; an
    rclpy without the EventsExecutor (Humble) gets single for one node too.
    """
    monkeypatch.delenv('LEPTON_EXECUTOR', raising=False)
    assert executor_kind(nodes=1) == 'events'
    assert executor_kind(nodes=4) == 'single'
    assert executor_kind('events', nodes=4) == 'events'
    assert executor_kind('single', nodes=1) == 'single'
    monkeypatch.setattr(node_main, 'events_executor_available', lambda: False)
    assert executor_kind(nodes=1) == 'single'


_COMPOSED = r"""
import sys, time
import rclpy
from rclpy.node import Node
from lepton_robot.ros.node_main import run_nodes

mode = sys.argv[1]
ticks = []


class Blocker(Node):
    def __init__(self):
        super().__init__('blocker')
        self.timer = self.create_timer(0.3, self.block)

    def block(self):
        self.timer.cancel()
        t0 = time.monotonic()
        n0 = len(ticks)
        time.sleep(1.0)                 # a long callback (a slow plan)
        print(f'ticks during block: {len(ticks) - n0}', flush=True)
        time.sleep(0.2)
        rclpy.try_shutdown()


class Ticker(Node):
    def __init__(self):
        super().__init__('ticker')
        self.create_timer(0.02, self.tick)

    def tick(self):
        ticks.append(time.monotonic())
        if mode == 'crash' and len(ticks) == 5:
            raise RuntimeError('ticker broke')


print('status', run_nodes([Blocker, Ticker], ['--ros-args']), flush=True)
"""


@pytest.mark.parametrize('mode', ['block', 'crash'])
def test_composed_nodes_have_their_own_executor_thread(mode):
    """
    run_nodes (single-threaded kind): one node's long callback does not stop another's.

    ``block``: the first node sleeps 1 s in a timer callback while the second node's 50 Hz
    timer keeps firing (in one shared executor it would fire 0 times), then the first
    shuts the context down: status 0. ``crash``: the second node's callback raises: the
    process reports which node crashed and returns 1 instead of running on without it.
    """
    import subprocess
    import sys
    env = dict(__import__('os').environ, LEPTON_EXECUTOR='single')
    proc = subprocess.run([sys.executable, '-c', _COMPOSED, mode], env=env, timeout=60,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    if mode == 'block':
        ticks = int(out.split('ticks during block: ')[1].split()[0])
        assert ticks >= 20, out
        assert 'status 0' in out, out
    else:
        assert 'status 1' in out, out
        assert "[FATAL] node ticker crashed: RuntimeError('ticker broke')" in out, out


def test_frame_buffer_tuning_applies_on_glibc_and_can_be_turned_off(monkeypatch):
    """Every node process sets glibc's thresholds unless ``LEPTON_MALLOC_TUNING=0``."""
    import platform

    from lepton_robot.ros.node_main import keep_frame_buffers
    monkeypatch.setenv('LEPTON_MALLOC_TUNING', '0')
    assert keep_frame_buffers() is False
    monkeypatch.delenv('LEPTON_MALLOC_TUNING')
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        pytest.skip('mallopt is glibc only')
    assert keep_frame_buffers() is True
