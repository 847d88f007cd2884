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


class _Native:
    """A native object and a counting ``to_msg`` for it."""

    def __init__(self, text):
        self.text = text

    built = []

    @classmethod
    def to_msg(cls, value):
        cls.built.append(value.text)
        return String(data=value.text)


def test_native_subscriber_gets_the_object_and_no_message_is_built():
    """Only native local subscribers, nobody outside: ``to_msg`` never runs."""
    proc = _Process(kind=None)
    _Native.built = []
    try:
        pub = intra.IntraPublisher(proc.node('camera'), String, 'frames', RELIABLE)
        got, texts = [], []
        sub = intra.IntraSubscription(proc.node('detector'), String, 'frames', texts.append,
                                      RELIABLE, thread_safe=True, native_callback=got.append)
        sent = [_Native(f'f{i}') for i in range(5)]
        for value in sent:
            pub.publish_native(value, _Native.to_msg)
        assert got == sent and all(a is b for a, b in zip(got, sent))
        assert texts == [] and _Native.built == []
        assert pub.stats == {'local': 5, 'dds': 0}
        assert sub.stats['local'] == 5
    finally:
        proc.close()


def test_native_publish_builds_the_message_once_for_the_others():
    """A message subscriber in the process and one outside share one ``to_msg`` result."""
    proc, other = _Process(), _Process()
    qos = QoSProfile(depth=100)
    _Native.built = []
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', qos)
        native, local, order = [], [], []
        nsub = intra.IntraSubscription(
            proc.node('fast'), String, 'chatter', lambda m: order.append('dds-copy'), qos,
            thread_safe=True, native_callback=lambda v: (native.append(v), order.append('n')))
        intra.IntraSubscription(proc.node('plain'), String, 'chatter',
                                lambda m: (local.append(m), order.append('m')), qos,
                                thread_safe=True)
        remote = []
        other.node('outside').create_subscription(String, 'chatter', remote.append, qos)
        assert _spin_until([proc, other], lambda: pub.get_subscription_count() == 3)
        for i in range(10):
            pub.publish_native(_Native(f'm{i}'), _Native.to_msg)
        assert _spin_until([proc, other], lambda: len(remote) == 10)
        proc.spin_once(0.3)
        assert _Native.built == [f'm{i}' for i in range(10)]        # once per publish
        assert [v.text for v in native] == [f'm{i}' for i in range(10)]
        assert [m.data for m in local] == [m.data for m in remote] == [f'm{i}' for i in range(10)]
        assert order[:2] == ['n', 'm']          # the native subscriber comes first
        assert 'dds-copy' not in order          # its DDS copies were dropped
        assert nsub.stats['dropped_copies'] == 10
        assert pub.stats == {'local': 20, 'dds': 10}
    finally:
        other.close()
        proc.close()


def test_a_failing_to_msg_loses_no_later_message_and_duplicates_none():
    """``to_msg`` raising (a payload that is not JSON) must not shift the DDS copy numbers."""
    proc, other = _Process(), _Process()
    qos = QoSProfile(depth=100)
    try:
        pub = intra.IntraPublisher(proc.node('talker'), String, 'chatter', qos)
        native = []
        sub = intra.IntraSubscription(proc.node('fast'), String, 'chatter',
                                      lambda m: native.append(('dds', m.data)), qos,
                                      thread_safe=True,
                                      native_callback=lambda v: native.append(('n', v)))
        remote = []
        other.node('outside').create_subscription(String, 'chatter', remote.append, qos)
        assert _spin_until([proc, other], lambda: pub.get_subscription_count() == 2)

        def to_msg(value):
            if value == 'bad':
                raise ValueError('not serialisable')
            return String(data=value)
        for value in ('a', 'bad', 'b', 'c'):
            try:
                pub.publish_native(value, to_msg)
            except ValueError:
                pass
        assert _spin_until([proc, other], lambda: len(remote) == 3)
        proc.spin_once(0.3)
        assert [m.data for m in remote] == ['a', 'b', 'c']
        assert native == [('n', 'a'), ('n', 'bad'), ('n', 'b'), ('n', 'c')]   # no DDS dup
        assert sub.stats['dropped_copies'] == 3
    finally:
        other.close()
        proc.close()


def test_native_subscriber_still_gets_messages_over_dds():
    """From another process the native subscriber's ordinary callback gets the message."""
    proc, other = _Process(), _Process()
    try:
        texts, native = [], []
        intra.IntraSubscription(proc.node('listener'), String, 'chatter', texts.append,
                                RELIABLE, native_callback=native.append)
        plain = other.node('outside').create_publisher(String, 'chatter', RELIABLE)
        assert _spin_until([proc, other], lambda: plain.get_subscription_count() == 1)
        plain.publish(String(data='o'))
        assert _spin_until([proc], lambda: len(texts) == 1)
        assert texts[0].data == 'o' and native == []
    finally:
        other.close()
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


def test_local_image_reads_like_an_image_message():
    """A LocalImage passes image_to_bgr as its Image does, shares the frame, is read-only."""
    np = pytest.importorskip('numpy')
    from lepton_robot.detector.image_msg import image_to_bgr
    from lepton_robot.ros.native import LocalImage
    from std_msgs.msg import Header
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    local = LocalImage(Header(frame_id='camera_optical'), frame)
    msg = local.to_msg()
    for view in (local, msg):
        out = image_to_bgr(view.height, view.width, view.encoding, view.step, view.data)
        assert np.array_equal(out, frame)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (48, 64, 192, 'bgr8')
    assert msg.header.frame_id == 'camera_optical'
    assert np.shares_memory(local.data, frame) and not local.data.flags.writeable
    assert frame.flags.writeable            # the camera's own array is left as it was
    with pytest.raises(ValueError):
        local.data[0] = 1
