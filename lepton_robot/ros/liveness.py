"""
Node liveness over DDS: each watched node publishes ``heartbeat/<name>``; a watcher reads them.

See ``lepton_robot.supervisor.liveness`` for how the supervisor turns the two signals
(DDS liveliness of the writer, heartbeat messages stamped with the node's clock) into holds.
"""

import json
from typing import Callable, Iterable, List

from lepton_robot.interfaces import HEARTBEAT_LEASE_S, HEARTBEAT_PERIOD_S, heartbeat_topic
from lepton_robot.ros.qos import liveliness
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from std_msgs.msg import String


class Heartbeat:
    """
    Publish a node's ``heartbeat/<name>`` (DDS liveliness plus a message every period).

    The timer runs on the node's clock (sim time under ``use_sim_time``), on the node's
    executor: a hung executor stops the messages, a dead process also the liveliness.

    :param node: the node whose liveness this announces.
    :param period_s: seconds of the node's clock between heartbeat messages.
    """

    def __init__(self, node: Node, period_s: float = HEARTBEAT_PERIOD_S) -> None:
        self._node = node
        self._name = node.get_name()
        self._pub = node.create_publisher(String, heartbeat_topic(self._name),
                                          liveliness(HEARTBEAT_LEASE_S))
        self._timer = node.create_timer(float(period_s), self.beat)

    def beat(self) -> None:
        """Publish one heartbeat message now."""
        t = self._node.get_clock().now().nanoseconds * 1e-9
        self._pub.publish(String(data=json.dumps({'node': self._name, 't': t})))


def watch_heartbeats(node: Node, names: Iterable[str], lease_s: float,
                     on_alive: Callable[[str, bool], None],
                     on_beat: Callable[[str], None]) -> List:
    """
    Subscribe to the heartbeats of ``names`` on ``node``.

    :param lease_s: requested liveliness lease (wall s); at least ``HEARTBEAT_LEASE_S``,
        the lease the writers offer (a shorter request would not match them).
    :param on_alive: called as ``on_alive(name, alive)`` when a node's liveliness changes
        (alive: at least one live writer).
    :param on_beat: called as ``on_beat(name)`` for every heartbeat message.
    :return: the subscriptions (keep them referenced).
    :raises ValueError: when ``lease_s`` is shorter than the writers' lease.
    """
    if lease_s < HEARTBEAT_LEASE_S:
        raise ValueError(f'liveliness lease {lease_s} s is shorter than the heartbeat '
                         f"writers' {HEARTBEAT_LEASE_S} s: they would never match")
    subs = []
    for name in names:
        def alive_cb(info, name=name):
            on_alive(name, info.alive_count > 0)

        def beat_cb(msg, name=name):
            on_beat(name)
        subs.append(node.create_subscription(
            String, heartbeat_topic(name), beat_cb, liveliness(lease_s),
            event_callbacks=SubscriptionEventCallbacks(liveliness=alive_cb)))
    return subs
