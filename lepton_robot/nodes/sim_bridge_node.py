"""
``sim_bridge_node``: the simulated cell (PyBullet ``WorkCell``) as the cell's hardware.

The bridge owns the ``WorkCell`` and steps it on its own worker thread (PyBullet is used
from that thread only; ROS callbacks only hand over commands). It publishes ``/clock``
(every node of the sim graph runs with ``use_sim_time``), ``joint_states``, the camera
(``camera/image_raw`` + ``camera/camera_info``: in the sim graph the bridge *is* the camera
driver, so no ``camera_node`` runs there), and the vacuum sensor ``gripper/state``. It
drives the belt at ``conveyor/speed_command``, follows ``arm_controller/joint_trajectory``
like ros2_control's joint_trajectory_controller (``TrajectoryFollower``) and switches the
suction on ``gripper/command``.

Pacing: the sim runs no faster than ``max_rtf`` x real time; with ``sync_inspection`` it
also waits (up to ``sync_timeout_s`` of wall time) for the inspection of each frame before
stepping on, so a slow detector on a loaded machine does not miss parts. When the detector
is gone the bridge stops waiting until inspections come back.

At the end of the run (every part spawned and off the belt, or ``max_sim_time_s``) it
computes the ground-truth summary with ``lepton_robot.sim.summary``, writes it to
``summary_path`` and publishes it once on ``sim/summary`` (transient local).
"""

import json
import math
import threading
import time
from typing import Dict, List, Optional, Tuple

from lepton_robot.errors import ConfigError, SchemaError
from lepton_robot.interfaces import (dumps, loads, SCHEMA_CELL_STATE, SCHEMA_DECISION,
                                     SCHEMA_INSPECTION, SCHEMA_PICK_RESULT, TOPIC_BELT_SPEED,
                                     TOPIC_BELT_STATE, TOPIC_CAMERA_INFO, TOPIC_CELL_STATE,
                                     TOPIC_CLOCK, TOPIC_DECISION, TOPIC_GRIPPER,
                                     TOPIC_GRIPPER_STATE, TOPIC_IMAGE, TOPIC_INSPECTION,
                                     TOPIC_JOINT_STATES, TOPIC_JOINT_TRAJECTORY,
                                     TOPIC_MANIPULATION_PLANNING, TOPIC_PICK_RESULT, TOPIC_SIM_ACK)
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from lepton_robot.ros.intra import IntraPublisher, IntraSubscription
from lepton_robot.ros.native import LocalImage
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import LATCHED, RELIABLE, SENSOR
from lepton_robot.supervisor.tracker import BeltOdometer
from lepton_robot.trajectory_follower import TrajectoryError, TrajectoryFollower
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float32, Header, String
from trajectory_msgs.msg import JointTrajectory

TOPIC_SIM_SUMMARY = 'sim/summary'


def _stamp(t: float):
    from builtin_interfaces.msg import Time
    sec = int(math.floor(t))
    return Time(sec=sec, nanosec=min(999999999, int(round((t - sec) * 1e9))))


def camera_info_msg(camera, stamp) -> CameraInfo:
    """Build a CameraInfo from a ``CameraModel``."""
    msg = CameraInfo()
    msg.header.stamp = stamp
    msg.header.frame_id = camera.frame_id
    msg.width, msg.height = int(camera.width), int(camera.height)
    msg.distortion_model = 'plumb_bob'
    msg.d = [float(v) for v in np.asarray(camera.D).ravel()]
    msg.k = [float(v) for v in np.asarray(camera.K).ravel()]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(v) for v in np.asarray(camera.P).ravel()]
    return msg


class SimBridgeNode(Node):
    """Step the simulated cell and expose it as camera, conveyor, arm and suction."""

    def __init__(self) -> None:
        super().__init__('sim_bridge', parameter_overrides=[
            Parameter('use_sim_time', Parameter.Type.BOOL, False)])
        ro = {'read_only': True}
        params = [
            ('scenario', 'default', 'scenario name or YAML path', ro),
            ('seed', 0, 'seed of the run (parts, defects, lighting, timing)', ro),
            ('parts', 20, 'parts the feeder spawns before the run ends', ro),
            ('gui', False, 'open the PyBullet GUI', ro),
            ('camera_rate_hz', 0.0, 'camera frame rate in sim time (0 = scenario rate)', ro),
            ('clock_rate_hz', 100.0, '/clock publish rate in sim time', ro),
            ('joint_state_rate_hz', 50.0, 'joint_states rate in sim time', ro),
            ('max_rtf', 1.0, 'largest real-time factor (0 = as fast as possible)', ro),
            ('sync_inspection', True, "wait for each frame's inspection before stepping on",
             ro),
            ('sync_timeout_s', 1.0, 'wall seconds to wait for an inspection', ro),
            ('sync_nodes', True, 'at each camera frame wait until the nodes reporting on '
             'sim/ack have caught up with the sim clock (a loaded CPU slows the run instead '
             'of changing it)', ro),
            ('sync_nodes_lag_s', 0.05, 'how far behind (sim s) a node may be: bounds how late a '
             'timed command (suction on/off) can reach the sim', ro),
            ('sync_planning', True, 'pause sim time while the controller plans '
             '(manipulation/planning)', ro),
            ('planning_timeout_s', 15.0, 'wall seconds to wait for a planning controller', ro),
            ('path_tolerance_rad', 0.3, 'trajectory abort threshold (rad)', ro),
            ('max_sim_time_s', 0.0, 'end the run at this sim time (0 = parts x 12 s + 60)',
             ro),
            ('settle_s', 2.0, 'sim seconds to run on after the last part left the belt', ro),
            ('summary_path', '', 'write the run summary JSON here', ro),
            ('db_path', '', 'traceability database: add where each part really ended', ro),
            ('truth_inspection', False,
             'TEST DOUBLE: publish inspection/parts from ground truth (a perfect detector) '
             'instead of running defect_detector_node; for testing the graph only', ro),
        ]
        for name, default, text, extra in params:
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      **extra))
        self.p = {name: self.get_parameter(name).value for name, *_ in params}
        if self.p['parts'] < 0:
            raise ConfigError('parts must be >= 0')
        from lepton_robot.sim.cell import WorkCell
        self.cell = WorkCell(self.p['scenario'], seed=int(self.p['seed']),
                             gui=bool(self.p['gui']))
        self.cell.parts_to_spawn = int(self.p['parts'])
        self.cell.feeder_enabled = False       # the feeder starts when the belt first runs
        self.cell.set_belt_speed(0.0)
        self.arm = self.cell.arm
        self.follower = TrajectoryFollower(self.arm.joint_names,
                                           self.p['path_tolerance_rad'])
        scenario_rate = float(self.cell.scenario.camera.get('rate_hz', 10.0)) \
            if hasattr(self.cell, 'scenario') else 10.0
        self.camera_period = 1.0 / (self.p['camera_rate_hz'] or scenario_rate)
        belt = getattr(self.cell, 'scenario', None)
        max_speed = float(belt.belt.get('max_speed', 0.1)) if belt is not None else 0.1
        self.odometer = BeltOdometer(max_speed)
        self.max_sim_time = self.p['max_sim_time_s'] or 12.0 * self.p['parts'] + 60.0

        self._lock = threading.Lock()
        self._belt_cmd: Optional[float] = None
        self._traj_cmds: List[JointTrajectory] = []
        self._suction_cmds: List[bool] = []
        self._inspected_stamp = -1.0
        self._inspection_event = threading.Event()
        self._detector_alive = True
        self._stop = threading.Event()
        self.decisions: List[dict] = []
        self.predictions: Dict[int, str] = {}
        self.decision_of_part: Dict[int, dict] = {}
        self.rules: List[dict] = []
        #: (sim time received, rules): which rules applied to a decision received when
        self.rules_history: List[Tuple[float, List[dict]]] = [(0.0, [])]
        self.latency: Dict[str, List[float]] = {'capture': [], 'inference': [],
                                                'planning': [], 'inspection_roundtrip': []}
        self._frame_wall: Dict[float, float] = {}
        self.summary: Optional[dict] = None
        self.late_trajectories = 0
        self.pick_results: List[dict] = []

        self.pub_clock = self.create_publisher(Clock, TOPIC_CLOCK, 10)
        self.pub_js = self.create_publisher(JointState, TOPIC_JOINT_STATES, SENSOR)
        self.pub_image = IntraPublisher(self, Image, TOPIC_IMAGE, SENSOR)
        self.pub_info = self.create_publisher(CameraInfo, TOPIC_CAMERA_INFO, SENSOR)
        self.pub_grip = self.create_publisher(Bool, TOPIC_GRIPPER_STATE, RELIABLE)
        self.pub_belt = self.create_publisher(JointState, TOPIC_BELT_STATE, SENSOR)
        self.pub_summary = self.create_publisher(String, TOPIC_SIM_SUMMARY, LATCHED)
        self.pub_truth = (IntraPublisher(self, String, TOPIC_INSPECTION, RELIABLE)
                          if self.p['truth_inspection'] else None)
        self.diag = DiagnosticsPublisher(self, hardware_id='pybullet-sim')
        self.create_subscription(Float32, TOPIC_BELT_SPEED, self._on_belt_speed, LATCHED)
        self.create_subscription(JointTrajectory, TOPIC_JOINT_TRAJECTORY, self._on_trajectory,
                                 RELIABLE)
        self.create_subscription(Bool, TOPIC_GRIPPER, self._on_gripper, RELIABLE)
        IntraSubscription(self, String, TOPIC_INSPECTION, self._on_inspection, RELIABLE)
        IntraSubscription(self, String, TOPIC_DECISION, self._on_decision, RELIABLE)
        self.create_subscription(String, TOPIC_CELL_STATE, self._on_cell_state, LATCHED)
        self.create_subscription(String, TOPIC_PICK_RESULT, self._on_pick_result, RELIABLE)
        self._planning = threading.Event()
        self._planning_done = threading.Event()
        self.create_subscription(Bool, TOPIC_MANIPULATION_PLANNING, self._on_planning, RELIABLE)
        self._acks: Dict[str, float] = {}
        self._ack_event = threading.Event()
        self._lagging: set = set()
        self.create_subscription(String, TOPIC_SIM_ACK, self._on_ack, RELIABLE)
        self.create_timer(1.0, self._on_diag_timer)
        self._wall0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name='sim', daemon=True)
        self._thread.start()
        self.get_logger().info(f'sim bridge up: scenario {self.p["scenario"]}, seed '
                               f'{self.p["seed"]}, {self.p["parts"]} parts, camera '
                               f'{1.0 / self.camera_period:.1f} Hz')

    # --- ROS callbacks (executor thread): hand over only -------------------------------------
    def _on_belt_speed(self, msg: Float32) -> None:
        """Take the commanded belt speed."""
        with self._lock:
            self._belt_cmd = float(msg.data)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        """Queue a trajectory for the follower; a planned trajectory also ends a planning pause."""
        with self._lock:
            self._traj_cmds.append(msg)
        if msg.points:
            self._planning.clear()
            self._planning_done.set()

    def _on_gripper(self, msg: Bool) -> None:
        """Queue a suction command."""
        with self._lock:
            self._suction_cmds.append(bool(msg.data))

    def _on_inspection(self, msg: String) -> None:
        """Note which frame was inspected (pacing) and the inference latency."""
        try:
            payload = loads(msg.data, SCHEMA_INSPECTION)
        except SchemaError:
            return
        stamp = float(payload['stamp'])
        lat = payload.get('latency_ms') or {}
        if 'infer' in lat:
            self.latency['inference'].append(float(lat['infer']))
        wall = self._frame_wall.pop(round(stamp, 6), None)
        if wall is not None:
            self.latency['inspection_roundtrip'].append(1e3 * (time.monotonic() - wall))
        self._inspected_stamp = max(self._inspected_stamp, stamp)
        self._detector_alive = True
        self._inspection_event.set()

    def _on_decision(self, msg: String) -> None:
        """Keep decisions to pair them with the parts the arm picks (for the summary)."""
        try:
            decision = loads(msg.data, SCHEMA_DECISION)
        except SchemaError:
            return
        decision['_received'] = self.cell.sim_time
        with self._lock:
            self.decisions.append(decision)

    def _on_cell_state(self, msg: String) -> None:
        """Keep the active sorting rules (the summary scores against them)."""
        try:
            self.rules = loads(msg.data, SCHEMA_CELL_STATE)['rules']
        except SchemaError:
            return
        if self.rules != self.rules_history[-1][1]:
            self.rules_history.append((self.cell.sim_time, list(self.rules)))

    def _on_pick_result(self, msg: String) -> None:
        """Keep planning latency from pick results."""
        try:
            result = loads(msg.data, SCHEMA_PICK_RESULT)
        except SchemaError:
            return
        self.pick_results.append(result)
        if result.get('plan_ms') is not None:
            self.latency['planning'].append(float(result['plan_ms']))

    def _on_planning(self, msg: Bool) -> None:
        """Note when the controller starts or ends planning: the sim waits meanwhile."""
        if msg.data:
            self._planning_done.clear()
            self._planning.set()
        else:
            self._planning.clear()
            self._planning_done.set()

    def _on_ack(self, msg: String) -> None:
        """Note how far a node's clock has got."""
        try:
            ack = json.loads(msg.data)
            self._acks[str(ack['node'])] = float(ack['t'])
        except (ValueError, KeyError, TypeError):
            return
        self._ack_event.set()

    def _wait_for_nodes(self, t: float) -> None:
        if not self.p['sync_nodes']:
            return
        need = t - self.p['sync_nodes_lag_s']
        deadline = time.monotonic() + self.p['sync_timeout_s']
        while not self._stop.is_set():
            behind = [n for n, tn in self._acks.items() if tn < need]
            # a node that missed the deadline once is waited for again once it caught up
            self._lagging &= set(behind)
            behind = [n for n in behind if n not in self._lagging]
            if not behind:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                self._lagging |= set(behind)
                self.get_logger().warning(f'not waiting for {behind}: behind the sim clock',
                                          throttle_duration_sec=10.0)
                return
            self._ack_event.clear()
            self._ack_event.wait(min(left, 0.02))

    def _wait_for_planning(self) -> None:
        if not self.p['sync_planning'] or not self._planning.is_set():
            return
        if not self._planning_done.wait(self.p['planning_timeout_s']):
            self.get_logger().warning('the controller has been planning for '
                                      f'{self.p["planning_timeout_s"]} s wall: not waiting')
            self._planning.clear()

    def _on_diag_timer(self) -> None:
        """Publish the bridge's diagnostics (wall timer)."""
        wall = time.monotonic() - self._wall0
        sim_t = self.cell.sim_time
        level = OK if self._detector_alive else WARN
        if self.follower.aborted:
            level = ERROR
        self.diag.publish(level, self.follower.aborted or
                          ('running' if self._detector_alive else 'no inspections'),
                          {'sim_time': round(sim_t, 2),
                           'rtf': round(sim_t / wall, 3) if wall > 0 else 0.0})

    # --- the sim loop (worker thread) --------------------------------------------------------
    def _apply_commands(self, t: float) -> None:
        with self._lock:
            belt, self._belt_cmd = self._belt_cmd, None
            trajs, self._traj_cmds = self._traj_cmds, []
            suction, self._suction_cmds = self._suction_cmds, []
        if belt is not None:
            self.cell.set_belt_speed(belt)
            self.odometer.set_speed(t, belt)
            if belt > 0 and not self.cell.feeder_enabled:
                self.cell.feeder_enabled = True
        q = self.arm.joint_positions()
        for msg in trajs:
            stamp = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            if msg.points and stamp > 0 and t - stamp > 0.05:
                self.late_trajectories += 1
                self.get_logger().warning(f'trajectory arrived {t - stamp:.2f} s after its start '
                                          'time: starting it now (late)',
                                          throttle_duration_sec=5.0)
            try:
                self.follower.set_trajectory(
                    t, q, msg.joint_names,
                    [p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec
                     for p in msg.points],
                    [list(p.positions) for p in msg.points],
                    [list(p.velocities) for p in msg.points] if msg.points and
                    all(len(p.velocities) for p in msg.points) else None, start_time=stamp)
            except TrajectoryError as exc:
                self.get_logger().error(f'trajectory refused, holding: {exc}')
        for on in suction:
            held = self.arm.holding()
            if not on and self.arm.suction and held is None:
                self._log_miss(t)
            if not on and held is not None:
                speed = self.arm.tcp_speed()
                if speed > 0.05:
                    self.get_logger().warning(
                        f'suction off at {t:.2f} s while the cup moves at {speed:.2f} m/s: '
                        f'part {held} is thrown')
            self.arm.set_suction(on)

    def _log_miss(self, t: float) -> None:
        """Say how close the cup came to a part when suction goes off with nothing held."""
        miss = self.arm.closest_miss
        if miss is None:
            self.get_logger().warning(f'suction off at {t:.2f} s with nothing held: the cup '
                                      'never came over a part on the belt')
        else:
            where = 'above' if miss > 0 else 'below'
            self.get_logger().warning(f'suction off at {t:.2f} s with nothing held: the cup '
                                      f'face came to {1000 * abs(miss):.1f} mm {where} the '
                                      'top face of the nearest part at best')

    def _note_pick(self, before, after, t: float) -> None:
        """Pair a part that just got attached with the decision that targeted it."""
        if after is None or after == before:
            return
        truth = {p.id: p for p in self.cell.parts()}.get(after)
        if truth is None:
            return
        best, best_d = None, math.inf
        with self._lock:
            candidates = [d for d in self.decisions if d['part_id'] not in
                          {v['part_id'] for v in self.decision_of_part.values()}]
        for d in candidates:
            x, y = d['pick_pose'][0], d['pick_pose'][1]
            x += self.odometer.travel(t) - self.odometer.travel(float(d.get('stamp', t)))
            dist = math.hypot(x - truth.position[0], y - truth.position[1])
            if dist < best_d:
                best, best_d = d, dist
        if best is not None and best_d < 0.1:
            self.decision_of_part[after] = best
            self.predictions[after] = best.get('condition', 'unknown')

    def _publish_clock(self, t: float) -> None:
        self.pub_clock.publish(Clock(clock=_stamp(t)))

    def _publish_joint_states(self, t: float) -> None:
        msg = JointState()
        msg.header.stamp = _stamp(t)
        msg.name = list(self.arm.joint_names)
        msg.position = [float(v) for v in self.arm.joint_positions()]
        msg.velocity = [float(v) for v in self.arm.joint_velocities()]
        self.pub_js.publish(msg)
        self.pub_grip.publish(Bool(data=self.arm.holding() is not None))
        belt = JointState()
        belt.header.stamp = msg.header.stamp
        belt.name = ['conveyor']
        belt.position = [float(self.cell.belt_travel)]
        belt.velocity = [float(self.cell.belt_speed)]
        self.pub_belt.publish(belt)

    def _publish_frame(self, t: float) -> None:
        t0 = time.perf_counter()
        img = np.ascontiguousarray(self.cell.render())
        self.latency['capture'].append(1e3 * (time.perf_counter() - t0))
        stamp = _stamp(t)
        frame = LocalImage(Header(stamp=stamp, frame_id=self.cell.camera.frame_id), img)
        self._frame_wall[round(t, 6)] = time.monotonic()
        if len(self._frame_wall) > 100:
            self._frame_wall.pop(next(iter(self._frame_wall)))
        self.pub_image.publish_native(frame, LocalImage.to_msg)
        time.sleep(0)   # the GIL to an in-process detector now (as camera_node._publish)
        self.pub_info.publish(camera_info_msg(self.cell.camera, stamp))
        if self.pub_truth is not None:
            self.pub_truth.publish(String(data=dumps(self._truth_inspection(t))))

    def _truth_inspection(self, t: float) -> dict:
        """Return what a perfect detector would report for the frame at ``t``."""
        parts = []
        for truth in self.cell.parts():
            if truth.location != 'belt':
                continue
            bbox, _, inside = self.cell.part_bbox(truth.id)
            if not inside:
                continue
            top = self.cell.part_top(truth.id) if hasattr(self.cell, 'part_top') \
                else truth.position
            parts.append({'track_id': truth.id, 'bbox': bbox, 'label': truth.condition,
                          'score': 1.0, 'probs': {truth.condition: 1.0},
                          'color': truth.color, 'shape': truth.shape,
                          'position': [float(v) for v in top],
                          'yaw': float(truth.yaw)})
        return {'schema': SCHEMA_INSPECTION, 'stamp': t, 'frame_id': self.cell.camera.frame_id,
                'parts': parts, 'backend': 'ground-truth', 'model_version': 'ground-truth',
                'latency_ms': {}}

    def _wait_for_inspection(self, t: float) -> None:
        if not self.p['sync_inspection'] or not self._detector_alive:
            return
        deadline = time.monotonic() + self.p['sync_timeout_s']
        while self._inspected_stamp < t - 1e-6 and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                self._detector_alive = False   # free-run until inspections come back
                self.get_logger().warning('no inspection of the last frame: not waiting for '
                                          'the detector until it answers again')
                return
            self._inspection_event.clear()
            self._inspection_event.wait(min(left, 0.05))

    def _finished(self, t: float) -> bool:
        if t >= self.max_sim_time:
            return True
        parts = self.cell.parts()
        spawned = len(parts) >= self.p['parts']
        return spawned and all(p.location not in ('belt', 'gripper') for p in parts)

    def _run(self) -> None:
        next_clock = next_js = next_frame = next_check = 0.0
        clock_period = 1.0 / self.p['clock_rate_hz']
        js_period = 1.0 / self.p['joint_state_rate_hz']
        wall0 = time.monotonic()
        sim0 = self.cell.sim_time
        done_at = None
        last_held = None
        try:
            while not self._stop.is_set():
                self._wait_for_planning()
                t = self.cell.sim_time
                self._apply_commands(t)
                q_des = self.follower.desired(t)
                if q_des is not None:
                    if self.follower.check(self.arm.joint_positions(), q_des):
                        self.get_logger().error(f'trajectory aborted: {self.follower.aborted}')
                        q_des = self.follower.desired(t)
                    self.arm.command_positions(q_des, self.follower.desired_velocity(t))
                self.cell.step(1)
                t = self.cell.sim_time
                held = self.arm.holding()
                if held != last_held:
                    self._note_pick(last_held, held, t)
                    last_held = held
                if t >= next_clock:
                    self._publish_clock(t)
                    next_clock += clock_period
                if t >= next_js:
                    self._publish_joint_states(t)
                    next_js += js_period
                if t >= next_frame:
                    self._publish_frame(t)
                    next_frame += self.camera_period
                    self._wait_for_inspection(t)
                    self._wait_for_nodes(t)
                if self.p['max_rtf'] > 0:
                    ahead = (t - sim0) / self.p['max_rtf'] - (time.monotonic() - wall0)
                    if ahead > 0.002:
                        time.sleep(ahead)
                if t >= next_check:
                    next_check += 0.5
                    if done_at is None and self._finished(t):
                        done_at = t
                    if done_at is not None and t >= done_at + self.p['settle_s']:
                        break
        except Exception as exc:   # noqa: BLE001 - report the crash; the launcher sees no summary
            self.get_logger().fatal(f'sim loop crashed: {type(exc).__name__}: {exc}')
            self.context.try_shutdown()     # ends the process: the launcher reports it
            raise
        if not self._stop.is_set():
            self._write_summary(time.monotonic() - self._wall0)

    def _rules_at(self, t: float) -> List[dict]:
        """Return the sorting rules in force at sim time ``t`` (as the bridge saw them)."""
        rules = self.rules_history[0][1]
        for since, r in self.rules_history:
            if since <= t:
                rules = r
        return rules

    def _write_summary(self, wall_s: float) -> None:
        from lepton_robot.sim.summary import run_summary
        results = list(self.pick_results)
        attempts = [r for r in results if not str(r.get('error') or '').startswith('rejected')]
        summary = run_summary(
            self.cell, self.rules, dict(self.predictions),
            pick_attempts=len(attempts), pick_successes=sum(r['ok'] for r in results),
            drops=sum(str(r.get('error') or '').startswith('dropped') for r in results),
            wall_time_s=wall_s, latencies_ms=self.latency,
            part_rules={pid: self._rules_at(d.get('_received', math.inf))
                        for pid, d in self.decision_of_part.items()},
            extra={'decisions': len(self.decisions), 'graph': True,
                   'late_trajectories': self.late_trajectories,
                   'pick_failures': sorted({str(r.get('error')) for r in results
                                            if not r['ok']})})
        self.summary = summary
        if self.p['db_path']:
            self._write_ground_truth(summary)
        if self.p['summary_path']:
            with open(self.p['summary_path'], 'w', encoding='utf-8') as fh:
                json.dump(summary, fh, indent=2)
        self.pub_summary.publish(String(data=json.dumps(summary)))
        self.get_logger().info(f'run finished: {summary.get("parts_sorted")} sorted, '
                               f'{summary.get("escapes")} escapes, '
                               f'{summary.get("sim_time_s")} s sim')

    def _write_ground_truth(self, summary: dict) -> None:
        from lepton_robot.traceability import TraceError, TraceWriter
        try:
            writer = TraceWriter(self.p['db_path'], run=f'sim-seed{self.p["seed"]}')
            for part in summary.get('parts', []):
                writer.ground_truth(part['id'], part['condition'], part['bin'],
                                    part.get('expected_bin'), part.get('predicted'))
            writer.close()
        except TraceError as exc:
            self.get_logger().error(f'cannot write ground truth: {exc}')

    def close(self) -> None:
        """Stop the sim thread and close the cell."""
        self._stop.set()
        self._inspection_event.set()
        self._thread.join(timeout=5.0)
        self.cell.close()


def main(args=None) -> int:
    """Run the sim bridge node."""
    return run_node(SimBridgeNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
