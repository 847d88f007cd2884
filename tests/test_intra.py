"""Intra-process delivery beside DDS (lepton_robot.ros.intra), on real rclpy and Fast DDS."""

import random
import threading
import time

from lepton_robot.ros import intra
from lepton_robot.ros.qos import RELIABLE
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile
from std_msgs.msg import String


@pytest.fixture(autouse=True)
def _domain(monkeypatch):
    monkeypatch.setattr(intra, '_disabled', None)
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')


class _Process:
    """Nodes of one 'process': one Context (one DDS participant), one spinning executor."""

    def __init__(self, kind='single'):
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.executor = None
        if kind == 'single':
            self.executor = SingleThreadedExecutor(context=self.ctx)
        elif kind == 'events':
            from rclpy.experimental import EventsExecutor
            self.executor = EventsExecutor(context=self.ctx)
        self.nodes = []

    def node(self, name):
        node = rclpy.create_node(name, context=self.ctx)
        self.nodes.append(node)
        if self.executor is not None:
            self.executor.add_node(node)
        return node

    def spin_once(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def close(self):
        for node in self.nodes:
            intra.release_node(node)
            node.destroy_node()
        if self.executor is not None:
            self.executor.shutdown()
        rclpy.shutdown(context=self.ctx)


def _spin_until(procs, cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        for p in procs:
            p.spin_once(0.02)
    return cond()


def test_in_process_subscriber_gets_the_object_on_its_executor_without_dds():
    proc = _Process('single')
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', RELIABLE)
        got = []
        sub = intra.IntraSubscription(
            proc.node('listener'), String, 'chatter',
            lambda m: got.append((m, threading.get_ident())), RELIABLE)
        assert pub.gid is not None
        sent = [String(data=f'm{i}') for i in range(20)]
        publisher_thread = threading.Thread(target=lambda: [pub.publish(m) for m in sent])
        publisher_thread.start()
        publisher_thread.join()
        assert _spin_until([proc], lambda: len(got) == 20)
        proc.spin_once(0.3)         # nothing more comes (no DDS copy)
        assert [m for m, _ in got] == sent and all(a is b for (a, _), b in zip(got, sent))
        # delivered on the executor's (this) thread, not the publisher's
        assert {t for _, t in got} == {threading.get_ident()}
        assert pub.stats == {'local': 20, 'dds': 0}
        assert sub.stats['dds'] == 0 and sub.stats['dropped_copies'] == 0
    finally:
        proc.close()


def test_outside_subscriber_gets_every_message_and_the_local_one_no_duplicate():
    proc, other = _Process(), _Process()
    qos = QoSProfile(depth=100)     # reliable, keep last 100: the burst of 30 fits
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', qos)
        local = []
        sub = intra.IntraSubscription(proc.node('listener'), String, 'chatter', local.append,
                                      qos)
        remote = []
        other.node('outside').create_subscription(String, 'chatter', remote.append, qos)
        assert _spin_until([proc, other], lambda: pub.get_subscription_count() == 2)
        for i in range(30):
            pub.publish(String(data=f'm{i}'))
        assert _spin_until([proc, other], lambda: len(remote) == 30)
        proc.spin_once(0.3)
        assert [m.data for m in remote] == [f'm{i}' for i in range(30)]
        assert [m.data for m in local] == [f'm{i}' for i in range(30)]
        assert pub.stats == {'local': 30, 'dds': 30}
        assert sub.stats == {'local': 30, 'dds': 0, 'dropped_copies': 30}
    finally:
        other.close()
        proc.close()


def test_messages_from_another_process_still_arrive_over_dds():
    proc, other = _Process(), _Process()
    try:
        got = []
        sub = intra.IntraSubscription(proc.node('listener'), String, 'chatter', got.append,
                                      RELIABLE)
        plain = other.node('outside').create_publisher(String, 'chatter', RELIABLE)
        assert _spin_until([proc, other], lambda: plain.get_subscription_count() == 1)
        for i in range(10):
            plain.publish(String(data=f'o{i}'))
        assert _spin_until([proc], lambda: len(got) == 10)
        assert [m.data for m in got] == [f'o{i}' for i in range(10)]
        assert sub.stats['dds'] == 10
    finally:
        other.close()
        proc.close()


def test_thread_safe_subscription_runs_on_the_publishers_thread():
    proc = _Process(kind=None)          # no executor at all: the direct call needs none
    try:
        pub = intra.IntraPublisher(proc.node('camera'), String, 'image', RELIABLE)
        got = []
        intra.IntraSubscription(proc.node('detector'), String, 'image',
                                lambda m: got.append(threading.get_ident()), RELIABLE,
                                thread_safe=True)
        pub.publish(String(data='frame'))
        assert got == [threading.get_ident()]
    finally:
        proc.close()


@pytest.mark.parametrize('off', ['env', 'events'])
def test_switched_off_everything_goes_through_dds_once(monkeypatch, off):
    """
    Switched off, every endpoint is a plain DDS one and each message arrives once.

    Off by LEPTON_INTRA_PROCESS=0, or by disable() (what run_nodes does for the
    EventsExecutor, which cannot pass MessageInfo).
    """
    if off == 'env':
        monkeypatch.setenv('LEPTON_INTRA_PROCESS', '0')
    else:
        intra.disable('test')
    proc = _Process('single' if off == 'env' else 'events')
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', RELIABLE)
        got = []
        sub = intra.IntraSubscription(proc.node('listener'), String, 'chatter', got.append,
                                      RELIABLE)
        assert not sub.local
        assert _spin_until([proc], lambda: pub.get_subscription_count() == 1)
        for i in range(5):
            pub.publish(String(data=f'm{i}'))
        assert _spin_until([proc], lambda: len(got) == 5)
        proc.spin_once(0.3)
        assert [m.data for m in got] == [f'm{i}' for i in range(5)]
        assert pub.stats == {'local': 0, 'dds': 5}
    finally:
        proc.close()


def test_a_released_node_gets_nothing_locally():
    proc = _Process()
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', RELIABLE)
        node = proc.node('listener')
        got = []
        intra.IntraSubscription(node, String, 'chatter', got.append, RELIABLE)
        intra.release_node(node)
        pub.publish(String(data='x'))
        assert pub.stats['local'] == 0
    finally:
        proc.close()


def test_a_destroyed_node_or_another_context_gets_nothing_locally():
    """Only live subscriptions of the publisher's own Context take the in-process path."""
    proc, other = _Process(), _Process()
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', RELIABLE)
        gone = proc.node('gone')
        intra.IntraSubscription(gone, String, 'chatter', lambda m: None, RELIABLE)
        got = []
        intra.IntraSubscription(other.node('elsewhere'), String, 'chatter', got.append,
                                RELIABLE)
        proc.nodes.remove(gone)
        gone.destroy_node()
        assert _spin_until([proc, other], lambda: pub.get_subscription_count() == 1)
        pub.publish(String(data='x'))
        assert pub.stats == {'local': 0, 'dds': 1}
        assert _spin_until([other], lambda: len(got) == 1)      # over DDS
    finally:
        other.close()
        proc.close()
