"""SpinningProbe: a node in its own Context, spun on a thread, closed cleanly (real DDS)."""

import threading
import time

from graph_harness import wait_until
from lepton_robot.ros.probe import SpinningProbe
from lepton_robot.ros.qos import RELIABLE
from std_msgs.msg import String


def test_two_probes_in_one_process_talk_and_close_cleanly():
    """
    Two probes (two Contexts) in one process exchange a message; close() tears down once.

    Steps: a listener probe subscribes to a topic and starts; a talker probe publishes
    until the listener got a message; both close; the spin threads are gone, the contexts
    are shut down and a second close() is a no-op.
    """
    topic = f'probe_test_{int(time.time() * 1e3) % 100000}'
    got = []
    listener = SpinningProbe('probe_listener', namespace='/probe_ns')
    talker = SpinningProbe('probe_talker', namespace='probe_ns', start=True)
    threads_before = threading.active_count()
    try:
        listener.node.create_subscription(String, topic, lambda m: got.append(m.data),
                                          RELIABLE)
        assert not listener.spinning
        listener.start()
        assert listener.spinning and listener.node.get_namespace() == '/probe_ns'
        pub = talker.node.create_publisher(String, topic, RELIABLE)

        def delivered():
            pub.publish(String(data='hello'))
            return bool(got)
        wait_until(delivered, 30, 'a message between the probes', poll_s=0.1)
        assert got[0] == 'hello'
    finally:
        listener.close()
        talker.close()
    assert not listener.spinning and not talker.spinning
    assert not listener.context.ok() and not talker.context.ok()
    assert threading.active_count() <= threads_before
    listener.close()     # idempotent


def test_probe_as_context_manager_without_signal_handlers():
    """The probe starts on enter and closes on exit; signal_handlers=False is accepted."""
    with SpinningProbe('probe_cm', signal_handlers=False) as probe:
        assert probe.spinning and probe.context.ok()
    assert not probe.spinning and not probe.context.ok()
