"""``supervisor_node``: the cell's state machine, part tracking, sorting rules and fail-safe."""

import functools
import json
import threading
import time
from typing import Callable, Optional

from lepton_robot.errors import ConfigError, SchemaError
from lepton_robot.interfaces import (check, dumps, HEARTBEAT_LEASE_S, loads, SCHEMA_INSPECTION,
                                     SCHEMA_INTENT,
                                     SCHEMA_PICK_RESULT, TOPIC_BELT_SPEED, TOPIC_BELT_STATE,
                                     TOPIC_CELL_STATE, TOPIC_DECISION, TOPIC_ESTOP, TOPIC_FEEDBACK,
                                     TOPIC_INSPECTION, TOPIC_INTENT, TOPIC_MANIPULATION_ACTIVE,
                                     TOPIC_MANIPULATION_COMMAND, TOPIC_PICK_RESULT, TOPIC_SIM_ACK,
                                     WATCHED_NODES)
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from lepton_robot.ros.intra import IntraPublisher, IntraSubscription
from lepton_robot.ros.liveness import watch_heartbeats
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import ANY_WRITER, LATCHED, RELIABLE, SENSOR
from lepton_robot.supervisor import Outputs, Supervisor, SupervisorConfig
from lepton_robot.supervisor.liveness import parse_node_list
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32, String


def _serialised(method: Callable) -> Callable:
    """Run a node method under the node's lock (callbacks may come from other threads)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


def _float_range(lo: float, hi: float) -> list:
    return [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]


class SupervisorNode(Node):
    """Decide for every tracked part, run the cell state machine, answer the operator."""

    def __init__(self, **kwargs) -> None:
        super().__init__('supervisor', **kwargs)
        # Every callback runs under this lock, so the inspection callback may run on the
        # thread of an in-process detector (lepton_robot.ros.intra) as well as the executor's.
        self._lock = threading.RLock()
        ro = {'read_only': True}
        params = [
            ('max_belt_speed_mps', 0.1, 'belt speed at 100 % (m/s); must match the conveyor',
             dict(floating_point_range=_float_range(0.001, 2.0), **ro)),
            ('speed', 50.0, 'belt speed set point in percent',
             {'floating_point_range': _float_range(0.0, 100.0)}),
            ('sensitivity', 50.0, 'defect sensitivity in percent (higher flags more readily)',
             {'floating_point_range': _float_range(0.0, 100.0)}),
            ('min_views', 2, 'views a part needs before its decision',
             dict(integer_range=[IntegerRange(from_value=1, to_value=50, step=1)], **ro)),
            ('decide_views', 24, 'a part is decided after this many views, or when it leaves '
             'the view with at least min_views',
             dict(integer_range=[IntegerRange(from_value=1, to_value=200, step=1)], **ro)),
            ('decide_agreement', 0.85, 'share of its views the voted label needs for a '
             'decision at decide_views; a split vote waits for more views (max_views, '
             'decide_by_x)', dict(floating_point_range=_float_range(0.0, 1.0), **ro)),
            ('max_views', 40, 'a part whose views do not agree is decided at this many views',
             dict(integer_range=[IntegerRange(from_value=1, to_value=1000, step=1)], **ro)),
            ('decide_by_x', -0.20, 'a part whose views do not agree is decided when predicted '
             'past this world x (m; before the pick zone)', ro),
            ('lost_after_s', 1.0, 'a part unseen this long is decided fail-safe (s)',
             dict(floating_point_range=_float_range(0.05, 60.0), **ro)),
            ('stale_after_s', 1.5, 'hold the line when no inspection came for this long (s)',
             dict(floating_point_range=_float_range(0.1, 60.0), **ro)),
            ('gate_m', 0.04, 'largest distance between a track and a detection (m)',
             dict(floating_point_range=_float_range(0.001, 0.5), **ro)),
            ('initial_state', 'running', 'state at start-up: running or stopped', ro),
            ('guard_x', 0.19, 'belt guard: stop the belt while an unpicked part is past this '
             'world x (end of the pick zone, m)', ro),
            ('guard_hard_x', 0.30, 'belt guard: stop the belt even under the pick in progress '
             'when its part is past this world x (m)', ro),
            ('belt_end_x', 0.40, 'world x of the belt end (parts past it are gone, m)', ro),
            ('max_attempts', 3, 'pick attempts per part',
             dict(integer_range=[IntegerRange(from_value=1, to_value=10, step=1)], **ro)),
            ('tick_hz', 20.0, 'rate of the periodic checks (Hz, node clock)',
             dict(floating_point_range=_float_range(1.0, 200.0), **ro)),
            ('reclassify', False, 'decide the class from the mean probabilities and the '
             'sensitivity instead of the detector labels', ro),
            ('controller_timeout_s', 0.0, 'hold the line when the manipulation controller '
             'is silent (manipulation/active heartbeat) this long (s); 0 = off',
             dict(floating_point_range=_float_range(0.0, 60.0), **ro)),
            ('watch_nodes', ', '.join(WATCHED_NODES),
             'hold the line while one of these nodes is missing (their heartbeat/<node> '
             'topics); comma-separated node names, empty = watch none', ro),
            ('liveliness_lease_s', 0.35, 'a watched node whose DDS liveliness lapses this '
             f"long (wall s) is gone; at least the nodes' lease {HEARTBEAT_LEASE_S} s",
             dict(floating_point_range=_float_range(HEARTBEAT_LEASE_S, 60.0), **ro)),
            ('heartbeat_timeout_s', 2.0, 'a watched node alive by DDS but without a '
             'heartbeat message this long (node clock: sim time in the sim) is missing; '
             '0 = off', dict(floating_point_range=_float_range(0.0, 600.0), **ro)),
            ('db_path', '', 'SQLite traceability database; empty = none', ro),
            ('run_label', '', 'label of this run in the database (default: start time)', ro),
        ]
        for name, default, text, extra in params:
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      **extra))
        p = {name: self.get_parameter(name).value for name, *_ in params}
        if p['initial_state'] not in ('running', 'stopped'):
            raise ConfigError(f'initial_state must be running or stopped, '
                              f'not {p["initial_state"]!r}')
        self.core = Supervisor(SupervisorConfig(
            max_belt_speed_mps=p['max_belt_speed_mps'], speed=p['speed'],
            sensitivity=p['sensitivity'], min_views=p['min_views'],
            decide_views=p['decide_views'], decide_agreement=p['decide_agreement'],
            max_views=p['max_views'], decide_by_x=p['decide_by_x'],
            lost_after_s=p['lost_after_s'], stale_after_s=p['stale_after_s'],
            gate_m=p['gate_m'], initial_state=p['initial_state'], guard_x=p['guard_x'],
            guard_hard_x=p['guard_hard_x'],
            belt_end_x=p['belt_end_x'], max_attempts=p['max_attempts'],
            reclassify=p['reclassify'], controller_timeout_s=p['controller_timeout_s'],
            watch_nodes=parse_node_list(p['watch_nodes']),
            heartbeat_timeout_s=p['heartbeat_timeout_s']))
        self.trace = None
        if p['db_path']:
            from lepton_robot.traceability import TraceWriter
            self.trace = TraceWriter(p['db_path'], run=p['run_label'] or None)
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.pub_decision = IntraPublisher(self, String, TOPIC_DECISION, RELIABLE)
        self.pub_state = self.create_publisher(String, TOPIC_CELL_STATE, LATCHED)
        self.pub_feedback = self.create_publisher(String, TOPIC_FEEDBACK, RELIABLE)
        self.pub_belt = self.create_publisher(Float32, TOPIC_BELT_SPEED, LATCHED)
        self.pub_manip = self.create_publisher(String, TOPIC_MANIPULATION_COMMAND, RELIABLE)
        self.pub_ack = self.create_publisher(String, TOPIC_SIM_ACK, RELIABLE)
        self.diag = DiagnosticsPublisher(self)
        IntraSubscription(self, String, TOPIC_INSPECTION, self._on_inspection, RELIABLE,
                          thread_safe=True, native_callback=self._on_inspection_payload)
        self.create_subscription(String, TOPIC_INTENT, self._on_intent, RELIABLE)
        self.create_subscription(Bool, TOPIC_ESTOP, self._on_estop, LATCHED)
        # The contract's e-stop QoS is reliable + transient local, and a transient-local
        # reader does not match a volatile writer: an e-stop sent with default QoS was
        # silently dropped (session 12). A best-effort volatile reader matches every writer.
        self.create_subscription(Bool, TOPIC_ESTOP, self._on_estop, ANY_WRITER)
        self._last_estop = -1e9
        self.create_subscription(String, TOPIC_PICK_RESULT, self._on_pick_result, RELIABLE)
        self.create_subscription(String, TOPIC_MANIPULATION_ACTIVE, self._on_active, LATCHED)
        self.create_subscription(JointState, TOPIC_BELT_STATE, self._on_belt_state, SENSOR)
        self._local_lapses = dict.fromkeys(self.core.liveness.watched, 0)
        self._heartbeat_subs = watch_heartbeats(self, self.core.liveness.watched,
                                                p['liveliness_lease_s'], self._on_node_alive,
                                                self._on_heartbeat, self._on_local_lapse)
        self._diag_key = None
        self.create_timer(1.0 / p['tick_hz'], self._on_tick)
        self.create_timer(1.0, self._on_state_timer)
        self._bad_messages = 0
        self._model_version: Optional[str] = None
        self._publish(self.core.tick(self._now()).extend(Outputs(state_changed=True)))
        self.get_logger().info(f'supervisor up: state {self.core.state}, '
                               f'trace {p["db_path"] or "off"}, watching '
                               f'{", ".join(self.core.liveness.watched) or "no node"}')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    @_serialised
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Apply speed/sensitivity edits; ranges are enforced by the descriptors."""
        for param in params:
            if param.name == 'speed':
                self.core.speed = float(param.value)
            elif param.name == 'sensitivity':
                self.core.sensitivity = float(param.value)
        return SetParametersResult(successful=True)

    def _parse(self, msg: String, schema: str) -> Optional[dict]:
        try:
            return loads(msg.data, schema)
        except SchemaError as exc:
            self._bad_message(schema, exc)
            return None

    @_serialised
    def _bad_message(self, schema: str, exc: Exception) -> None:
        self._bad_messages += 1
        self.get_logger().warning(f'dropping a bad {schema} message: {exc}',
                                  throttle_duration_sec=5.0)

    def _on_inspection(self, msg: String) -> None:
        """Fold one frame's inspections (JSON text) into the tracks."""
        payload = self._parse(msg, SCHEMA_INSPECTION)
        if payload is not None:
            self._fold_inspection(payload)

    def _on_inspection_payload(self, payload: dict) -> None:
        """Fold one frame's inspections from an in-process detector (a dict, not text)."""
        try:
            check(payload, SCHEMA_INSPECTION)
        except SchemaError as exc:
            self._bad_message(SCHEMA_INSPECTION, exc)
            return
        self._fold_inspection(payload)

    @_serialised
    def _fold_inspection(self, payload: dict) -> None:
        self._model_version = str(payload.get('model_version', payload.get('backend', '')))
        out = self.core.on_inspection(payload, self._now())
        if self.trace is not None:
            for track_id, part in self.core.last_views:
                self.trace.inspection(track_id, payload['stamp'], part,
                                      model_version=self._model_version,
                                      image_hash=payload.get('image_hash'))
        self._publish(out)

    @_serialised
    def _on_intent(self, msg: String) -> None:
        """Act on an operator intent."""
        payload = self._parse(msg, SCHEMA_INTENT)
        if payload is not None:
            self.get_logger().info(f'intent {payload["intent"]} {payload["slots"]} '
                                   f'({payload["text"]!r})')
            self._publish(self.core.on_intent(payload, self._now()))

    @_serialised
    def _on_estop(self, msg: Bool) -> None:
        """Latch the e-stop on true (one message reaching both subscriptions counts once)."""
        now = time.monotonic()
        if msg.data and self.core.state == 'estopped' and now - self._last_estop < 1.0:
            return
        if msg.data:
            self._last_estop = now
        self._publish(self.core.on_estop(bool(msg.data), self._now()))

    @_serialised
    def _on_pick_result(self, msg: String) -> None:
        """Record a pick result."""
        payload = self._parse(msg, SCHEMA_PICK_RESULT)
        if payload is None:
            return
        if self.trace is not None:
            self.trace.pick_result(payload, self._now())
        self._publish(self.core.on_pick_result(payload, self._now()))

    @_serialised
    def _on_active(self, msg: String) -> None:
        """Track the controller's pick in progress (for the belt guard)."""
        try:
            part_id = json.loads(msg.data).get('part_id')
        except (ValueError, AttributeError):
            return
        if part_id == self.core.active_pick:     # a heartbeat: nothing changed
            self.core.last_controller = self._now()
            return
        self._publish(self.core.on_active_pick(part_id, self._now()))

    @_serialised
    def _on_node_alive(self, name: str, alive: bool) -> None:
        """Hold or release at once when a watched node's DDS liveliness changes."""
        if alive:
            self.get_logger().info(f'{name} is alive')
        else:
            self.get_logger().error(f'{name} is gone (liveliness lost)')
        self._publish(self.core.on_node_alive(name, alive, self._now()))

    @_serialised
    def _on_local_lapse(self, name: str) -> None:
        """Count a DDS liveliness lapse of a node in this process (not a loss: see liveness)."""
        self._local_lapses[name] = self._local_lapses.get(name, 0) + 1

    @_serialised
    def _on_heartbeat(self, name: str) -> None:
        """Note a watched node's heartbeat message."""
        self.core.on_heartbeat(name, self._now())

    @_serialised
    def _on_belt_state(self, msg: JointState) -> None:
        """Conveyor encoder: belt travel for the tracker's predictions."""
        if msg.position:
            t = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            self.core.odometer.observe(t, msg.position[0],
                                       msg.velocity[0] if msg.velocity else 0.0)

    @_serialised
    def _on_tick(self) -> None:
        """Run staleness checks and due decisions; tell the sim how far this node got."""
        now = self._now()
        self._publish(self.core.tick(now))
        self.pub_ack.publish(String(data=json.dumps({'node': 'supervisor', 't': now})))

    @_serialised
    def _on_state_timer(self) -> None:
        """Republish the cell state and diagnostics once a second."""
        self._publish(Outputs(state_changed=True))
        self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        held = self.core.hold_reason
        missing = [name for name, _ in self.core.liveness.missing(self._now())]
        level = ERROR if missing else (WARN if held or self.core.state != 'running' else OK)
        self.diag.publish(level, f'held: {held}' if held else f'state {self.core.state}',
                          {'state': self.core.state, 'tracks': len(self.core.tracker.tracks),
                           'in_flight': len(self.core.in_flight),
                           'missing_nodes': ','.join(missing),
                           'node_losses': ','.join(f'{n}={k}' for n, k in
                                                   self.core.liveness.losses.items()),
                           'local_liveliness_lapses': ','.join(
                               f'{n}={k}' for n, k in self._local_lapses.items()),
                           'bad_messages': self._bad_messages, **self.core.counts})

    def _publish(self, out: Outputs) -> None:
        for decision in out.decisions:
            self.pub_decision.publish(String(data=dumps(decision)))
            if self.trace is not None:
                self.trace.decision(decision)
            self.get_logger().info(f'decision part {decision["part_id"]}: {decision["bin"]} '
                                   f'({decision["reason"]})')
        for text in out.feedback:
            self.pub_feedback.publish(String(data=text))
            self.get_logger().info(f'feedback: {text}')
        for command in out.manipulation:
            self.pub_manip.publish(String(data=json.dumps(command)))
        if out.belt_speed is not None:
            self.pub_belt.publish(Float32(data=float(out.belt_speed)))
        if out.state_changed:
            self.pub_state.publish(String(data=dumps(self.core.cell_state())))
        if self.core.hold_key != self._diag_key:     # a new hold (or release): say it now
            self._diag_key = self.core.hold_key
            self._publish_diagnostics()

    def close(self) -> None:
        """Close the trace database."""
        if self.trace is not None:
            self.trace.close()


def main(args=None) -> int:
    """Run the supervisor node."""
    return run_node(SupervisorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
