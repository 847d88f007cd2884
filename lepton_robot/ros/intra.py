"""
Intra-process delivery for nodes composed in one process, beside DDS.

rclpy has no intra-process communication: two nodes in one process exchange a message
through the middleware (convert to C, serialise, write, read, deserialise, convert back,
then the subscriber's executor wakes up), about 1 ms per hop for a camera frame here. This
module gives the hot path of the graph (camera image -> detector -> inspection ->
supervisor -> decision) what rclcpp's intra-process manager gives C++ nodes:

- an :class:`IntraPublisher` hands each message *object* to every :class:`IntraSubscription`
  on the same topic and type in the process, and writes it to DDS only when a subscriber
  outside those exists (another process, a ``ros2 topic echo``, a plain subscription);
- a subscription declared ``thread_safe`` (its callback may run on any thread: the
  detector's keep-the-newest-frame hand-off, the supervisor's callbacks under its lock) is
  called at once on the publisher's thread; any other callback runs on its node's executor
  (``Executor.create_task``), never concurrently with the node's other callbacks on a
  single-threaded executor;
- :meth:`IntraPublisher.publish_native` passes a native object instead of a message (what
  REP 2007's type adaptation gives rclcpp): a subscription with a ``native_callback`` gets
  the object itself, first; the message is built from it (``to_msg``, once) only for
  local subscriptions without one and for DDS. The camera's frame goes to the detector as
  a numpy array (:class:`lepton_robot.ros.native.LocalImage`), the detector's inspection
  to the supervisor as a dict (checked there by :func:`lepton_robot.interfaces.check`):
  no ``Image`` to fill and read back, no JSON to write and parse on that path;
- every subscription is also a real DDS subscription: messages from other processes (or
  from publishers that do not use this module) arrive as before. A message that reached a
  subscription both ways is delivered once: the publisher records the (writer GID, DDS
  sequence number) of each write that it also delivered locally, and the subscription drops
  that copy when DDS brings it (``MessageInfo`` carries both).

Subscribers share the message object: they must not modify it (as with rclcpp's
``const`` shared pointers). Publishers from this module are not meant for latched (transient
local) topics. ``LEPTON_INTRA_PROCESS=0`` turns local delivery off (everything through DDS),
and so does the experimental ``EventsExecutor`` (:func:`disable`, called by
``lepton_robot.ros.node_main.run_nodes``): it cannot pass ``MessageInfo`` to a callback
in this rclpy ("SystemError: null argument to internal routine"), and without it the copies
cannot be told apart.
"""

from collections import deque
import os
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.qos import QoSProfile

#: how many recent (GID, sequence) pairs a subscription remembers to drop (best-effort
#: copies that DDS never brings would otherwise pile up)
SKIP_MEMORY = 256


#: why intra-process delivery is off in this process (None: it is not), see :func:`disable`
_disabled: Optional[str] = None


def disable(reason: str) -> None:
    """Turn intra-process delivery off for endpoints created from now on in this process."""
    global _disabled
    _disabled = reason


def enabled() -> bool:
    """Return whether intra-process delivery is on (``LEPTON_INTRA_PROCESS``, default on)."""
    return _disabled is None and os.environ.get('LEPTON_INTRA_PROCESS', '1').strip().lower() \
        not in ('0', 'false', 'no', 'off')


class _Registry:
    """The process's intra-process subscriptions, by fully qualified topic name."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.subs: Dict[str, List['IntraSubscription']] = {}

    def add(self, sub: 'IntraSubscription') -> None:
        with self.lock:
            self.subs.setdefault(sub.topic_name, []).append(sub)

    def remove(self, sub: 'IntraSubscription') -> None:
        with self.lock:
            subs = self.subs.get(sub.topic_name, [])
            if sub in subs:
                subs.remove(sub)

    def subscribers(self, topic_name: str) -> List['IntraSubscription']:
        with self.lock:
            return list(self.subs.get(topic_name, ()))


REGISTRY = _Registry()
#: serialises endpoint creation, so the graph difference names the new publisher's GID
_CREATE_LOCK = threading.Lock()


def _gids(node: Node, topic_name: str) -> Set[bytes]:
    return {bytes(info.endpoint_gid) for info in node.get_publishers_info_by_topic(topic_name)}


class IntraPublisher:
    """A publisher that delivers in-process without DDS and to DDS only when needed."""

    def __init__(self, node: Node, msg_type: Any, topic: str, qos: QoSProfile) -> None:
        self.node = node
        self.msg_type = msg_type
        self.topic_name = node.resolve_topic_name(topic)
        with _CREATE_LOCK:
            before = _gids(node, self.topic_name)
            self.publisher = node.create_publisher(msg_type, topic, qos)
            new = _gids(node, self.topic_name) - before
        # Without its own GID the publisher cannot tell a subscription which DDS copy to
        # drop: it then publishes through DDS only.
        self.gid: Optional[bytes] = new.pop() if len(new) == 1 else None
        self._local = enabled() and self.gid is not None
        self._lock = threading.Lock()
        self._writes = 0
        self.stats = {'local': 0, 'dds': 0}

    def get_subscription_count(self) -> int:
        """Return the number of matched DDS subscriptions (local ones included)."""
        return self.publisher.get_subscription_count()

    def destroy(self) -> None:
        """Destroy the DDS publisher (local delivery ends with it)."""
        self._local = False
        self.node.destroy_publisher(self.publisher)

    def publish(self, msg: Any) -> None:
        """Deliver ``msg`` to the local subscriptions, then write it to DDS if anyone else."""
        self._publish(msg, None)

    def publish_native(self, value: Any, to_msg: Callable[[Any], Any]) -> None:
        """
        Publish a native object (ROS 2's type adaptation, REP 2007, for Python).

        Local subscriptions that take the native type (``native_callback``) get ``value``
        itself, before anyone else; the message ``to_msg(value)`` is built only if a local
        subscription without one, or a DDS subscriber outside the process, needs it, and
        then once for all of them. The composed graph passes the camera frame as a numpy
        array and the inspection as a dict this way: no ``Image`` to fill and read back, no
        JSON to write and parse, on the way to the supervisor's decision.
        """
        self._publish(value, to_msg)

    def _publish(self, value: Any, to_msg: Optional[Callable[[Any], Any]]) -> None:
        # Same process means same rclpy Context (one DDS participant): nodes of another
        # Context in this interpreter (tests do that) are other processes to each other.
        targets = [s for s in REGISTRY.subscribers(self.topic_name)
                   if s.node.context is self.node.context and s.msg_type is self.msg_type
                   and s.ready()] if self._local else []
        if to_msg is None:
            msg, native = value, []
        else:
            msg = None
            native = [s for s in targets if s.native_callback is not None]
            targets = [s for s in targets if s.native_callback is None]
        with self._lock:
            remote = self.publisher.get_subscription_count() > len(targets) + len(native)
            if remote:
                self._writes += 1
                for sub in native + targets:
                    sub.expect_dds_copy(self.gid, self._writes)
            for sub in native:          # the native type first: no message to build
                sub.deliver_native(value)
            if msg is None and (targets or remote):
                try:
                    msg = to_msg(value)
                except Exception:
                    if remote:      # no write: the next one takes this sequence number
                        self._writes -= 1
                    raise
            for sub in targets:         # local first: the DDS write is the slow part
                sub.deliver(msg)
            self.stats['local'] += len(targets) + len(native)
            if remote:
                try:
                    self.publisher.publish(msg)
                except Exception:
                    self._writes -= 1
                    raise
                self.stats['dds'] += 1


class IntraSubscription:
    """A subscription that takes messages from in-process publishers directly, and DDS."""

    def __init__(self, node: Node, msg_type: Any, topic: str,
                 callback: Callable[[Any], None], qos: QoSProfile,
                 thread_safe: bool = False,
                 native_callback: Optional[Callable[[Any], None]] = None) -> None:
        self.node = node
        self.msg_type = msg_type
        self.callback = callback
        self.thread_safe = thread_safe
        #: takes the native object of :meth:`IntraPublisher.publish_native` (same thread
        #: rules as ``callback``); messages (DDS, ``publish``) still go to ``callback``
        self.native_callback = native_callback
        self.topic_name = node.resolve_topic_name(topic)
        self._skip_lock = threading.Lock()
        self._skip: Set[Tuple[bytes, int]] = set()
        self._skip_order: Deque[Tuple[bytes, int]] = deque()
        self.stats = {'local': 0, 'dds': 0, 'dropped_copies': 0}
        self.local = enabled()
        if not self.local:      # a plain subscription (no MessageInfo needed)
            self.subscription = node.create_subscription(msg_type, topic, self._on_plain, qos)
            return
        with _CREATE_LOCK:
            self.subscription = node.create_subscription(msg_type, topic, self._on_dds, qos)
        REGISTRY.add(self)

    def ready(self) -> bool:
        """
        Return whether a message can be delivered locally now.

        A callback that is not thread-safe needs its node on one of rclpy's Python
        executors: their ``create_task`` may be called from any thread. The experimental
        ``EventsExecutor`` of this rclpy fails in ``spin_once`` ("SystemError: null argument
        to internal routine") when a task arrives from another thread, so on it such a
        subscription takes the DDS path.
        """
        if not self.node.context.ok() or self.subscription not in self.node.subscriptions:
            REGISTRY.remove(self)       # its node was destroyed (or its context shut down)
            return False
        return self.thread_safe or isinstance(self.node.executor, Executor)

    def destroy(self) -> None:
        """Leave the process's registry and destroy the DDS subscription."""
        REGISTRY.remove(self)
        self.node.destroy_subscription(self.subscription)

    def expect_dds_copy(self, gid: bytes, sequence: int) -> None:
        """Remember to drop the DDS copy of a write that this subscription gets locally."""
        key = (gid, sequence)
        with self._skip_lock:
            self._skip.add(key)
            self._skip_order.append(key)
            while len(self._skip_order) > SKIP_MEMORY:
                self._skip.discard(self._skip_order.popleft())

    def _first(self, how: str) -> None:
        self.node.get_logger().info(f'{self.topic_name}: first message arrived {how}')

    def deliver(self, msg: Any) -> None:
        """Run the callback with a message from an in-process publisher."""
        self._run_local(self.callback, msg, 'in-process (no DDS copy)')

    def deliver_native(self, value: Any) -> None:
        """Run the native callback with an object from :meth:`IntraPublisher.publish_native`."""
        self._run_local(self.native_callback, value, 'in-process, native type (no message built)')

    def _run_local(self, callback: Callable[[Any], None], value: Any, how: str) -> None:
        self.stats['local'] += 1
        if self.stats['local'] == 1:
            self._first(how)
        executor = None if self.thread_safe else self.node.executor
        if executor is None:
            callback(value)
        else:
            executor.create_task(callback, value)

    def _on_plain(self, msg: Any) -> None:
        self.stats['dds'] += 1
        if self.stats['dds'] == 1:
            self._first('over DDS')
        self.callback(msg)

    def _on_dds(self, msg: Any, info: Dict[str, Any]) -> None:
        gid = (info.get('publisher_gid') or {}).get('data')
        key = (bytes(gid) if gid is not None else b'', info.get('publication_sequence_number'))
        with self._skip_lock:
            if key in self._skip:
                self._skip.discard(key)
                self.stats['dropped_copies'] += 1
                return
        self._on_plain(msg)


def release_node(node: Node) -> None:
    """Take every intra-process subscription of ``node`` out of the registry."""
    with REGISTRY.lock:
        for subs in REGISTRY.subs.values():
            subs[:] = [s for s in subs if s.node is not node]
