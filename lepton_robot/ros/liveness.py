"""
Node liveness over DDS: each watched node publishes ``heartbeat/<name>``; a watcher reads them.

See ``lepton_robot.supervisor.liveness`` for how the supervisor turns the two signals
(DDS liveliness of the writer, heartbeat messages stamped with the node's clock) into holds.

A writer in the watcher's own participant (the same ``Context``: the composed graph) is a
special case. Fast DDS asserts AUTOMATIC liveliness with participant messages that a
participant ignores when they come from itself (``WLPListener``: "Message from own
RTPSParticipant"). A local writer's liveliness is then renewed only by its samples, and it
lapses whenever the writer pauses for a lease (measured: a 1 s pause of the publishing
timer gives a lost/regained pair in one Context and nothing across two). A lapse of a
writer that this process still holds says nothing about the node: it is not reported.
"""

import json
from typing import Callable, Iterable, List, Optional, Tuple
import weakref

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
        _LOCAL[(id(node.context), self._pub.topic_name)] = self

    @property
    def writing(self) -> bool:
        """Return whether the heartbeat writer still exists (its node not destroyed)."""
        return self._pub in self._node.publishers

    def destroy(self) -> None:
        """Stop beating and destroy the writer: watchers see the liveliness lost at once."""
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._pub)

    def beat(self) -> None:
        """Publish one heartbeat message now."""
        t = self._node.get_clock().now().nanoseconds * 1e-9
        self._pub.publish(String(data=json.dumps({'node': self._name, 't': t})))


#: this process's heartbeats by (id of their Context, resolved topic)
_LOCAL: 'weakref.WeakValueDictionary[Tuple[int, str], Heartbeat]' = \
    weakref.WeakValueDictionary()


def local_writer_lives(node: Node, topic: str) -> bool:
    """
    Return whether ``topic`` (resolved) has a live :class:`Heartbeat` in ``node``'s Context.

    Such a writer is in the node's own DDS participant, whose AUTOMATIC liveliness towards
    the node's readers lapses with every pause in its samples (module docstring).
    """
    beat = _LOCAL.get((id(node.context), topic))
    return beat is not None and beat.writing


def watch_heartbeats(node: Node, names: Iterable[str], lease_s: float,
                     on_alive: Callable[[str, bool], None],
                     on_beat: Callable[[str], None],
                     on_local_lapse: Optional[Callable[[str], None]] = None) -> List:
    """
    Subscribe to the heartbeats of ``names`` on ``node``.

    :param lease_s: requested liveliness lease (wall s); at least ``HEARTBEAT_LEASE_S``,
        the lease the writers offer (a shorter request would not match them).
    :param on_alive: called as ``on_alive(name, alive)`` when a node's liveliness changes
        (alive: at least one live writer). A lapse of a writer in this node's own Context
        that still exists is not reported (module docstring); its destruction is.
    :param on_beat: called as ``on_beat(name)`` for every heartbeat message.
    :param on_local_lapse: called as ``on_local_lapse(name)`` for each lapse not reported.
    :return: the subscriptions (keep them referenced).
    :raises ValueError: when ``lease_s`` is shorter than the writers' lease.
    """
    if lease_s < HEARTBEAT_LEASE_S:
        raise ValueError(f'liveliness lease {lease_s} s is shorter than the heartbeat '
                         f"writers' {HEARTBEAT_LEASE_S} s: they would never match")
    subs = []
    reported = {}
    for name in names:
        topic = node.resolve_topic_name(heartbeat_topic(name))

        def alive_cb(info, name=name, topic=topic):
            alive = info.alive_count > 0
            if not alive and local_writer_lives(node, topic):
                node.get_logger().debug(f'{topic}: liveliness lapse of a writer in this '
                                        'participant ignored (it still exists)')
                if on_local_lapse is not None:
                    on_local_lapse(name)
                return
            if reported.get(name) != alive:
                reported[name] = alive
                on_alive(name, alive)

        def beat_cb(msg, name=name):
            on_beat(name)
        subs.append(node.create_subscription(
            String, heartbeat_topic(name), beat_cb, liveliness(lease_s),
            event_callbacks=SubscriptionEventCallbacks(liveliness=alive_cb)))
    return subs
