"""Heartbeat liveliness over real DDS: a pause of the writer is not a death, a destruction is."""

import threading
import time

from graph_harness import wait_until
from lepton_robot.interfaces import HEARTBEAT_LEASE_S
from lepton_robot.ros.liveness import Heartbeat, local_writer_lives, watch_heartbeats
from lepton_robot.ros.probe import SpinningProbe
import pytest
import rclpy

LEASE_S = 0.5       # a little above the supervisor's default 0.35 s: margin under load
PAUSE_S = 1.5       # three leases without a heartbeat


@pytest.mark.parametrize('same_context', [True, False], ids=['one-context', 'two-contexts'])
def test_paused_heartbeat_keeps_liveliness_and_destroyed_writer_loses_it(same_context):
    """
    A heartbeat writer that stops publishing for 3 leases stays alive; destroyed, it is lost.

    Steps: a watcher node and a ``defect_detector`` node with a :class:`Heartbeat` (in the
    watcher's Context, as in the composed graph, or in a Context of its own, as in separate
    processes); wait until it is alive; cancel its heartbeat timer for 1.5 s, then restart
    it; destroy the writer's node. In one Context, Fast DDS lets the local writer's
    liveliness lapse during the pause (the watcher must not report that); in both cases
    the destruction must be reported as lost.
    """
    ns = f'/live_{int(time.time() * 1e3) % 100000}'
    events = []
    lapses = []
    lock = threading.Lock()

    def on_alive(name, alive):
        with lock:
            events.append((name, alive, time.monotonic()))

    watcher = SpinningProbe('supervisor', namespace=ns)
    writer = None if same_context else SpinningProbe('defect_detector', namespace=ns)
    node = (rclpy.create_node('defect_detector', namespace=ns, context=watcher.context)
            if same_context else writer.node)
    owner = watcher if same_context else writer
    try:
        if same_context:
            watcher.executor.add_node(node)
        beat = Heartbeat(node)
        subs = watch_heartbeats(watcher.node, ['defect_detector'], LEASE_S, on_alive,
                                lambda name: None, lapses.append)
        assert len(subs) == 1
        topic = f'{ns}/heartbeat/defect_detector'
        assert local_writer_lives(watcher.node, topic) is same_context
        watcher.start()
        if writer is not None:
            writer.start()
        wait_until(lambda: ('defect_detector', True) in [e[:2] for e in events], 30,
                   'the heartbeat writer seen alive', poll_s=0.05)

        beat._timer.cancel()                   # the node's executor stops its heartbeats
        time.sleep(PAUSE_S)
        beat._timer.reset()
        time.sleep(0.5)
        with lock:
            assert [e[:2] for e in events] == [('defect_detector', True)], events
        assert set(lapses) == ({'defect_detector'} if same_context else set())
        assert LEASE_S * 2 < PAUSE_S and HEARTBEAT_LEASE_S <= LEASE_S

        t_destroy = time.monotonic()
        owner.executor.remove_node(node)
        node.destroy_node()
        assert not local_writer_lives(watcher.node, topic)
        wait_until(lambda: ('defect_detector', False) in [e[:2] for e in events], 30,
                   'the destroyed writer reported lost', poll_s=0.05)
        with lock:
            lost = [t for name, alive, t in events if not alive]
        assert lost[0] >= t_destroy
    finally:
        watcher.close()
        if writer is not None:
            writer.close()
