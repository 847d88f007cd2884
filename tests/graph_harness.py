"""Helpers for the ROS 2 tests: a probe node that watches and drives the cell, and waits."""

import json
import time
from typing import Callable, List, Optional, Tuple

from lepton_robot.interfaces import make_intent


class Probe:
    """
    Watch and drive the graph from a test-side node in its own Context.

    Records what the graph publishes (with the sim time it arrived at) and publishes
    operator input.
    """

    def __init__(self, namespace: str = '') -> None:
        from lepton_robot.ros.probe import SpinningProbe
        from lepton_robot.ros.qos import LATCHED, RELIABLE, SENSOR
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, String
        self._String, self._Bool = String, Bool
        self.probe = SpinningProbe('graph_probe', namespace)
        self.node = self.probe.node
        self.context = self.probe.context
        self.sim_time = 0.0
        self.decisions: List[Tuple[float, dict]] = []
        self.results: List[Tuple[float, dict]] = []
        self.states: List[Tuple[float, dict]] = []
        self.feedback: List[Tuple[float, str]] = []
        self.belt: List[Tuple[float, float]] = []
        self.joint_speed: List[Tuple[float, float]] = []
        self.summary: Optional[dict] = None
        n = self.node
        n.create_subscription(Clock, '/clock', self._on_clock, 10)
        n.create_subscription(String, 'decision', self._rec(self.decisions, json.loads),
                              RELIABLE)
        n.create_subscription(String, 'manipulation/result', self._rec(self.results, json.loads),
                              RELIABLE)
        n.create_subscription(String, 'cell/state', self._rec(self.states, json.loads), LATCHED)
        n.create_subscription(String, 'operator/feedback', self._rec(self.feedback, str),
                              RELIABLE)
        n.create_subscription(JointState, 'conveyor/state', self._on_belt, SENSOR)
        n.create_subscription(JointState, 'joint_states', self._on_joints, SENSOR)
        n.create_subscription(String, 'sim/summary', self._on_summary, LATCHED)
        self.pub_intent = n.create_publisher(String, 'operator/intent', RELIABLE)
        self.pub_command = n.create_publisher(String, 'operator/command', RELIABLE)
        self.pub_estop = n.create_publisher(Bool, 'estop', LATCHED)
        self.probe.start()

    def _rec(self, store: list, convert: Callable):
        def callback(msg):
            store.append((self.sim_time, convert(msg.data)))
        return callback

    def _on_clock(self, msg) -> None:
        self.sim_time = msg.clock.sec + 1e-9 * msg.clock.nanosec

    def _on_belt(self, msg) -> None:
        if msg.velocity:
            self.belt.append((self.sim_time, float(msg.velocity[0])))

    def _on_joints(self, msg) -> None:
        speed = max((abs(v) for v in msg.velocity), default=0.0)
        self.joint_speed.append((self.sim_time, speed))

    def _on_summary(self, msg) -> None:
        self.summary = json.loads(msg.data)

    # --- operator input ------------------------------------------------------------------
    @staticmethod
    def _matched(pub, timeout_s: float = 20.0) -> None:
        # reliable + volatile: a message sent before discovery matched is lost
        deadline = time.monotonic() + timeout_s
        while pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, f'nobody subscribes to {pub.topic_name}'
            time.sleep(0.05)

    def intent(self, intent: str, text: str = '', **slots) -> None:
        """Publish what the parser would send for an utterance."""
        payload = make_intent(text or intent, intent, slots, 0.99)
        self._matched(self.pub_intent)
        self.pub_intent.publish(self._String(data=json.dumps(payload)))

    def say(self, text: str) -> None:
        """Publish raw operator text (needs command_parser_node)."""
        self._matched(self.pub_command)
        self.pub_command.publish(self._String(data=text))

    def estop(self, engaged: bool) -> None:
        """Publish on the e-stop topic."""
        self._matched(self.pub_estop)
        self.pub_estop.publish(self._Bool(data=engaged))

    # --- queries -------------------------------------------------------------------------
    def state(self) -> Optional[dict]:
        """Return the latest cell state."""
        return self.states[-1][1] if self.states else None

    def close(self) -> None:
        """Stop spinning and shut down."""
        self.probe.close()


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout_s`` passes; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.05)
    return predicate()


def poll_until(cond: Callable[[], bool], timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll ``cond`` (spun elsewhere, e.g. by a Probe) until true or ``timeout_s``; return it."""
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(poll_s)
    return cond()


def wait_until(cond: Callable[[], bool], timeout_s: float, what: str, graph=None,
               poll_s: float = 0.05) -> None:
    """Poll ``cond`` until true; fail with ``what`` (and node logs) after ``timeout_s`` wall."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if graph is not None:
            dead = [n for n in graph.dead() if n in graph.required]
            assert not dead, f'{dead[0]} died while waiting for {what}:\n' \
                             f'{graph.log_tail(dead[0], 30)}'
        assert time.monotonic() < deadline, f'timed out after {timeout_s} s waiting for {what}'
        time.sleep(poll_s)


def first_answer(client, request,
                 wait: Callable[[Callable[[], bool], float], bool] = poll_until,
                 timeout_s: float = 60.0, attempt_s: float = 2.0):
    """
    Call a service until one call is answered; return that response (None: no answer).

    ``service_is_ready`` means the server's request reader matched this client; the
    server's response writer may not have matched this client's reader yet, and a
    response sent before that is lost. Only for requests that may be repeated safely:
    getters, or a ``ChangeState`` with an unknown label, which changes nothing and opens
    the response path for the real transitions. ``wait(cond, seconds)`` spins or sleeps
    until ``cond()`` or the time is up, and returns ``cond()`` (default: :func:`poll_until`,
    for a client whose node is spun elsewhere).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not wait(client.service_is_ready, min(attempt_s, deadline - time.monotonic())):
            continue
        future = client.call_async(request)
        if wait(future.done, attempt_s):
            return future.result()
        client.remove_pending_request(future)
    return None
