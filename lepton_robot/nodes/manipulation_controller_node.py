"""
``manipulation_controller_node``: decisions in, arm trajectories and suction commands out.

Each ``pick_place`` decision becomes one trajectory planned by ``lepton_robot.sim.arm``'s
``ArmPlanner`` (the Panda's kinematics; on a real cell the same planner feeds the real
``joint_trajectory_controller``). Decisions queue and run one at a time. The part's pose is
predicted to the planning time with the belt odometer fed by ``conveyor/speed_command``.

Outputs: ``arm_controller/joint_trajectory`` (trajectory_msgs/JointTrajectory, stamped with
the start time), ``gripper/command`` (std_msgs/Bool, true = suction on) at the planned
times, and one ``manipulation/result`` per decision. A halt (cell ``stopped`` /
``estopped``) publishes an empty trajectory at once: the controller then holds the arm
where it is (ros2_control semantics).

A pick on a moving belt is an intercept planned for one belt speed: when the belt changes
speed (encoder or command) before the cup holds the part, the controller stops the arm and
plans the pick again for the belt as it is (``belt_replans`` in diagnostics); it plans only
while the belt runs at its commanded speed.

Planning runs in a thread of its own, never on the executor's: a plan can take most of a
second, and meanwhile a halt must still reach the arm at once. A plan that a halt, a failed
pick or a belt change overtakes is dropped when it ends, and its decision goes back to the
queue.
"""

from collections import deque, OrderedDict
from concurrent.futures import ThreadPoolExecutor
import json
import math
import threading
import time
from typing import Deque, List, Optional, Tuple

from builtin_interfaces.msg import Duration
from lepton_robot.errors import LeptonError, SchemaError
from lepton_robot.interfaces import (dumps, loads, SCHEMA_CELL_STATE, SCHEMA_DECISION,
                                     SCHEMA_PICK_RESULT, TOPIC_BELT_SPEED, TOPIC_BELT_STATE,
                                     TOPIC_CELL_STATE, TOPIC_DECISION, TOPIC_GRIPPER,
                                     TOPIC_GRIPPER_STATE, TOPIC_JOINT_STATES,
                                     TOPIC_JOINT_TRAJECTORY, TOPIC_MANIPULATION_ACTIVE,
                                     TOPIC_MANIPULATION_COMMAND, TOPIC_MANIPULATION_PLANNING,
                                     TOPIC_PICK_RESULT, TOPIC_SIM_ACK)
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, ERROR, OK
from lepton_robot.ros.intra import IntraSubscription
from lepton_robot.ros.liveness import Heartbeat
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import LATCHED, RELIABLE, SENSOR
from lepton_robot.supervisor.tracker import BeltOdometer
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float32, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

#: belt speeds closer than this (m/s) count as the same speed for a planned intercept
BELT_TOLERANCE_MPS = 0.002


def _duration(seconds: float) -> Duration:
    sec = int(math.floor(seconds))
    return Duration(sec=sec, nanosec=int(round((seconds - sec) * 1e9)) % 1000000000)


def trajectory_msg(joint_names: List[str], times: np.ndarray, positions: np.ndarray,
                   velocities: Optional[np.ndarray]) -> JointTrajectory:
    """Convert planner arrays to a JointTrajectory (times relative to the header stamp)."""
    msg = JointTrajectory()
    msg.joint_names = list(joint_names)
    for i, t in enumerate(times):
        point = JointTrajectoryPoint()
        point.positions = [float(v) for v in positions[i]]
        if velocities is not None:
            point.velocities = [float(v) for v in velocities[i]]
        point.time_from_start = _duration(float(t))
        msg.points.append(point)
    return msg


def _part_id_of(text: str) -> Optional[int]:
    """Return the integer ``part_id`` of a JSON object, or None (for answering bad input)."""
    try:
        obj = json.loads(text)
    except (TypeError, ValueError):
        return None
    part_id = obj.get('part_id') if isinstance(obj, dict) else None
    return part_id if isinstance(part_id, int) and not isinstance(part_id, bool) else None


class ManipulationControllerNode(Node):
    """Plan and command one pick-and-place per decision; halt at once on stop."""

    def __init__(self, **kwargs) -> None:
        super().__init__('manipulation_controller', **kwargs)
        ro = {'read_only': True}
        params = [
            ('max_belt_speed_mps', 0.1, 'belt speed at 100 % (m/s); must match the conveyor',
             dict(floating_point_range=[FloatingPointRange(from_value=0.001, to_value=2.0)],
                  **ro)),
            ('scenario', 'default', 'sim scenario whose arm, bins and belt to plan for', ro),
            ('rate_hz', 100.0, 'control loop rate (node clock)', ro),
            ('speed_scale', 0.0, 'fraction of the Panda joint velocity limits used '
             "(0 = the scenario's arm.speed_scale)",
             {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=1.0)],
              **ro}),
            ('accel_scale', 0.0, 'fraction of the Panda joint acceleration limits used '
             "(0 = the scenario's arm.accel_scale)",
             {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=1.0)],
              **ro}),
            ('pick_zone_x_min', -0.12, 'a pick starts only when the part will meet the cup at '
             'or past this world x (m)', ro),
            ('approach_s', 2.2, 'typical time from plan start to contact (s), for the '
             'pick-zone test', ro),
            ('give_up_x', 0.30, 'report a pick as failed when planning fails for a part past '
             'this world x (m); before it, planning is retried', ro),
            ('max_plan_failures', 8, 'planning attempts per decision', ro),
            ('contact_x_max', 0.25, 'a pick on a moving belt whose contact falls past this '
             'world x waits for the belt to stop (m)', ro),
            ('settle_s', 0.15, 'sim seconds between the end of a pick and planning the next '
             '(the belt command for it settles)', ro),
            ('replan_s', 0.3, 'sim seconds between planning attempts', ro),
            ('sim_pauses_for_planning', False, 'the sim bridge pauses sim time while this '
             'node plans (sim graph): plan with the shortest lead', ro),
            ('press_depth_m', 0.006, 'the cup descends this far below the reported top face '
             '(m): a camera-only detector knows part heights to a few mm and the bellows cup '
             'seals on the way down and absorbs the rest',
             {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=0.015)],
              **ro}),
            ('retry_press_step_m', 0.004, 'each failed grasp of a part ("nothing held") sends '
             'its next attempt this much deeper (m; the total stays within the cup stroke): '
             'the part sits lower than the nominal height of its shape',
             {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=0.015)],
              **ro}),
            ('pipeline_picks', True, 'plan the next pick once the current part is held and '
             'send it ahead: the arm goes from the bin straight to the next part', ro),
            ('release_margin_s', 0.0, 'extra time a pipelined pick waits over the bin after '
             "the current trajectory's end (s): room for a suction-off that arrives late",
             {'floating_point_range': [FloatingPointRange(from_value=0.0, to_value=2.0)],
              **ro}),
            ('min_lead_s', 0.3, 'shortest planning lead: trajectories start this long after '
             'planning began (s); adapts to the measured planning time', ro),
        ]
        for name, default, text, extra in params:
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      **extra))
        p = {name: self.get_parameter(name).value for name, *_ in params}
        from lepton_robot.sim.arm import ArmPlanner, CUP_STROKE
        self.cup_stroke = CUP_STROKE
        self.planner = ArmPlanner(p['scenario'] or 'default',
                                  speed_scale=p['speed_scale'] or None,
                                  accel_scale=p['accel_scale'] or None)
        self.odometer = BeltOdometer(p['max_belt_speed_mps'])
        self.pick_zone_x_min = float(p['pick_zone_x_min'])
        self.approach_s = float(p['approach_s'])
        self.min_lead_s = float(p['min_lead_s'])
        self.plan_wall_s: Deque[float] = deque(maxlen=10)
        self.clock_samples: Deque[Tuple[float, float]] = deque(maxlen=200)
        self.give_up_x = float(p['give_up_x'])
        self.max_plan_failures = int(p['max_plan_failures'])
        self.replan_s = float(p['replan_s'])
        self.sim_pauses = bool(p['sim_pauses_for_planning'])
        self.settle_s = float(p['settle_s'])
        self.contact_x_max = float(p['contact_x_max'])
        self.press_depth = float(p['press_depth_m'])
        self.retry_press_step = float(p['retry_press_step_m'])
        self.grasp_misses: 'OrderedDict[int, int]' = OrderedDict()   # part id -> misses
        self.pipeline = bool(p['pipeline_picks'])
        self.release_margin = float(p['release_margin_s'])
        self.next_job: Optional[dict] = None      # planned to follow self.job
        self.next_start = 0.0
        # The planner (a PyBullet client) is used by one thread at a time: the planning
        # thread, or the executor's for the short plans of a resume or a move home.
        self._planner_lock = threading.Lock()
        self._planning: Optional[dict] = None     # the plan in flight in the planning thread
        self._planner_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix='planner')
        self._warm_up()
        self.queue: Deque[dict] = deque()
        self.job: Optional[dict] = None
        self.interrupted: Optional[dict] = None
        self.halted = False
        self.q: Optional[np.ndarray] = None
        self.joint_names: Optional[List[str]] = None
        self.holding = False
        self.pending_home = False
        self._bad = 0
        self.job: Optional[dict] = None

        self.pub_traj = self.create_publisher(JointTrajectory, TOPIC_JOINT_TRAJECTORY, RELIABLE)
        self.pub_gripper = self.create_publisher(Bool, TOPIC_GRIPPER, RELIABLE)
        self.pub_result = self.create_publisher(String, TOPIC_PICK_RESULT, RELIABLE)
        self.pub_active = self.create_publisher(String, TOPIC_MANIPULATION_ACTIVE, LATCHED)
        self.pub_planning = self.create_publisher(Bool, TOPIC_MANIPULATION_PLANNING, RELIABLE)
        self.pub_ack = self.create_publisher(String, TOPIC_SIM_ACK, RELIABLE)
        self._last_ack = -1.0
        self._active: Optional[int] = -1
        self._active_t = -math.inf    # last manipulation/active (also the supervisor's heartbeat)
        self.diag = DiagnosticsPublisher(self)
        self._heartbeat = Heartbeat(self)   # heartbeat/<name>: the supervisor's liveness watch
        IntraSubscription(self, String, TOPIC_DECISION, self._on_decision, RELIABLE)
        self.create_subscription(String, TOPIC_MANIPULATION_COMMAND, self._on_command,
                                 RELIABLE)
        self.create_subscription(String, TOPIC_CELL_STATE, self._on_cell_state, LATCHED)
        self.create_subscription(Float32, TOPIC_BELT_SPEED, self._on_belt_speed, LATCHED)
        self.create_subscription(JointState, TOPIC_JOINT_STATES, self._on_joint_states, SENSOR)
        self.create_subscription(Bool, TOPIC_GRIPPER_STATE, self._on_gripper_state, RELIABLE)
        self.create_subscription(JointState, TOPIC_BELT_STATE, self._on_belt_state, SENSOR)
        self.create_timer(1.0 / p['rate_hz'], self._on_timer)
        self.create_timer(1.0, self._on_diag_timer)
        # Wall clock: while it plans, the sim graph stops sim time (sync_planning), and so
        # every node-clock timer. Runs only while a plan is in flight.
        self._plan_poll = self.create_timer(0.002, self._on_plan_poll,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME),
                                            autostart=False)
        self.stats = {'ok': 0, 'failed': 0, 'replans': 0, 'plan_ms': []}

    def _warm_up(self) -> None:
        """Plan one typical pick at start-up: loads caches and measures planning time."""
        sc = self.planner.scenario
        x = 0.5 * sum(sc.arm.get('pick_zone_x', [0.0, 0.0]))
        pose = (x, float(sc.belt['y']), float(sc.belt['top_z']) + 0.03, 0.0)
        wall0 = time.monotonic()
        try:
            with self._planner_lock:
                self.planner.plan_pick_place(self.planner.home, pose, 'reject',
                                             belt_velocity=(self.odometer.max_speed_mps / 2,
                                                            0, 0))
        except (LeptonError, ValueError) as exc:
            self.get_logger().warning(f'warm-up plan failed ({exc}); planning time unknown')
            return
        self.plan_wall_s.append(time.monotonic() - wall0)
        self.get_logger().info(f'warm-up plan took {self.plan_wall_s[-1]:.2f} s wall')

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ------------------------------------------------------------------------------
    def _on_decision(self, msg: String) -> None:
        """Queue a decision."""
        try:
            decision = loads(msg.data, SCHEMA_DECISION)
        except SchemaError as exc:
            self._bad += 1
            self.get_logger().warning(f'bad decision dropped: {exc}', throttle_duration_sec=5.0)
            self._refuse(_part_id_of(msg.data), f'rejected: invalid decision ({exc})')
            return
        if decision['action'] != 'pick_place':
            return
        pose = decision['pick_pose']
        if not all(math.isfinite(v) for v in pose):
            # refused now, not when the arm is free: the sender hears at once
            self._refuse(decision['part_id'], f'rejected: pick pose is not finite {pose}')
            return
        self.queue.append(decision)

    def _refuse(self, part_id: Optional[int], error: str) -> None:
        """Answer a decision that will not be executed with a failed pick result."""
        if part_id is None:         # nothing to answer to: the log line says it
            return
        result = {'schema': SCHEMA_PICK_RESULT, 'part_id': part_id, 'ok': False,
                  'error': error, 'duration_s': 0.0, 'bin': None, 'plan_ms': None}
        self.pub_result.publish(String(data=dumps(result)))
        self.stats['failed'] += 1
        self.get_logger().warning(f'part {part_id}: {error}')

    def _on_command(self, msg: String) -> None:
        """Handle halt / resume / home from the supervisor."""
        try:
            command = json.loads(msg.data).get('command')
        except (ValueError, AttributeError):
            self.get_logger().warning(f'bad manipulation command {msg.data!r}')
            return
        if command == 'halt':
            if not self.halted:
                self._halt('halted: ' + str(json.loads(msg.data).get('reason', 'stop')))
        elif command == 'resume':
            self._resume()
        elif command == 'home':
            self.pending_home = True

    def _on_cell_state(self, msg: String) -> None:
        """Halt on stopped/estopped even if the halt command was missed."""
        try:
            state = loads(msg.data, SCHEMA_CELL_STATE)['state']
        except SchemaError:
            return
        if state in ('stopped', 'estopped') and not self.halted:
            self._halt(f'halted: cell {state}')
        elif state in ('running', 'paused'):
            self._resume()

    def _on_belt_speed(self, msg: Float32) -> None:
        """Track belt travel for pose prediction."""
        self.odometer.set_speed(self._now(), float(msg.data))

    def _on_belt_state(self, msg: JointState) -> None:
        """Conveyor encoder: belt travel and speed."""
        if msg.position:
            t = msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec
            self.odometer.observe(t, msg.position[0], msg.velocity[0] if msg.velocity else 0.0)

    def _on_joint_states(self, msg: JointState) -> None:
        """Keep the latest joint positions."""
        self.joint_names = list(msg.name)
        self.q = np.asarray(msg.position, dtype=float)

    def _on_gripper_state(self, msg: Bool) -> None:
        """Vacuum sensor: is a part held."""
        if msg.data and self.job is not None and not self.job.get('home'):
            self.job['held'] = True
        self.holding = bool(msg.data)

    # --- control -----------------------------------------------------------------------------
    def _publish_hold(self) -> None:
        """Publish a trajectory without points: the arm holds where it is (ros2_control)."""
        hold = JointTrajectory()
        hold.header.stamp = self.get_clock().now().to_msg()
        hold.joint_names = list(self.joint_names or [])
        self.pub_traj.publish(hold)

    def _drop_next(self) -> None:
        """Put the pick planned (or in planning) to follow the current one back in the queue."""
        self._cancel_planning()
        if self.next_job is not None:
            self.queue.appendleft(self.next_job['decision'])
            self.next_job = None

    def _halt(self, reason: str) -> None:
        self.halted = True
        self._drop_next()       # the empty trajectory below cancels it in the follower too
        self._publish_hold()
        if self.job is not None and not self.job.get('home'):
            # Keep the part if one is held (never drop a part on a stop); finish on resume.
            self.interrupted = self.job
        self.job = None
        self.get_logger().warning(reason)

    def _resume(self) -> None:
        if not self.halted:
            return
        self.halted = False
        self._place_interrupted(self._now())

    def _place_interrupted(self, now: float) -> None:
        """Finish the pick a stop interrupted: place a held part, or report the pick failed."""
        job = self.interrupted
        if job is None:
            return
        traj, error = None, 'interrupted by a stop before the grasp'
        if (self.holding or job['held']) and self.q is not None:
            if not self._planner_lock.acquire(blocking=False):
                return      # a dropped plan is ending in the planning thread: the timer retries
            try:
                traj = self._plan_place(self.q, job['decision']['bin'])
            except (LeptonError, ValueError) as exc:
                error = f'cannot place the held part after the stop: {exc}'
            finally:
                self._planner_lock.release()
        self.interrupted = None
        self.job = job
        if traj is None:
            self._fail(error, now)
            return
        job['checked'] = True
        job['events'] = []
        self._send(traj, now, job)

    def _plan_place(self, q: np.ndarray, bin_name: str):
        """Plan up to the clearance height, over the bin, release (a part is held)."""
        planner = self.planner
        cup, _ = planner.fk(q)
        high = np.array([cup[0], cup[1], max(cup[2], planner.clearance_z)])
        q_high = planner.ik(high, planner.tool_yaw(high), q_seed=q)
        place = planner.bin_positions[bin_name]
        above = np.array([place[0], place[1], max(planner.clearance_z,
                                                  place[2] + planner.bin_size[2] + 0.12)])
        q_bin = planner.ik(above, planner.tool_yaw(above), q_seed=q_high)
        traj = planner.joint_move(q, q_high).extend(planner.joint_move(q_high, q_bin))
        traj.suction.append((traj.duration, False))
        traj.marks['release'] = traj.duration
        traj = traj.extend(planner.joint_move(q_bin, q_bin, min_duration=0.3))
        traj.marks['end'] = traj.duration
        return traj

    def _finish(self, ok: bool, error: Optional[str]) -> None:
        job, self.job = self.job, None
        # let the supervisor's belt decision for the next pick land before planning it
        self.next_start = self._now() + self.settle_s
        result = {'schema': SCHEMA_PICK_RESULT, 'part_id': int(job['decision']['part_id']),
                  'ok': bool(ok), 'error': error,
                  'duration_s': round(self._now() - job['t0'], 3),
                  'bin': job['decision'].get('bin'), 'plan_ms': job.get('plan_ms')}
        self.pub_result.publish(String(data=dumps(result)))
        self.stats['ok' if ok else 'failed'] += 1
        if not ok:
            self.get_logger().warning(f'part {result["part_id"]}: {error}')

    def _predict(self, decision: dict, now: float) -> Tuple[float, float, float, float]:
        x, y, z, yaw = (float(v) for v in decision['pick_pose'])
        stamp = float(decision.get('stamp', now))
        x += self.odometer.travel(now) - self.odometer.travel(stamp)
        return x, y, z, yaw

    def _lead(self) -> float:
        """Return how far ahead (sim s) to start a trajectory: planning takes sim time."""
        if self.sim_pauses:
            return self.min_lead_s
        wall = max(self.plan_wall_s) if self.plan_wall_s else 0.6
        return max(self.min_lead_s, 1.5 * wall * self._rtf() + 0.1)

    def _rtf(self) -> float:
        """Return the sim's recent real-time factor (sim seconds per wall second)."""
        if len(self.clock_samples) < 2:
            return 1.0
        (w0, s0), (w1, s1) = self.clock_samples[0], self.clock_samples[-1]
        return max(0.1, (s1 - s0) / (w1 - w0)) if w1 > w0 else 1.0

    def _ready(self, decision: dict, now: float) -> bool:
        """Return True when the part will be in the pick zone by the time the cup meets it."""
        if decision.get('retry_at', 0.0) > now:
            return False
        x = self._predict(decision, now)[0]
        if not math.isfinite(x):
            return True       # _start reports it
        return x + self.odometer.velocity * (self.approach_s + self._lead()) \
            >= self.pick_zone_x_min

    def _start(self, decision: dict, now: float, after: Optional[dict] = None) -> None:
        """
        Plan one pick: now, or (``after``, a job in progress) to follow that job.

        The plan runs in the planning thread; ``_planned`` sends it when it ends. A pick
        planned to follow another starts from that job's last pose at its end time (the
        follower queues it); if it cannot be planned, the decision simply goes back to the
        queue.
        """
        job = {'decision': decision, 't0': now, 'held': False}
        if after is None:
            self.job = job
            self._publish_active()      # before planning: the belt guard must not stop under it
        self._submit({'job': job, 'decision': decision, 'after': after, 'now': now,
                      'lead': self._lead(), 'attempt': 0})

    def _submit(self, request: dict) -> None:
        """Hand one planning attempt of ``request`` to the planning thread."""
        decision, after, now = request['decision'], request['after'], request['now']
        if after is None:
            t_start, q_from = now + request['lead'], self.q
        else:
            t_start, q_from = after['t_end'] + self.release_margin, after['q_end']
        pose = self._predict(decision, t_start)
        if not all(math.isfinite(v) for v in pose):
            if after is not None:
                self._not_ahead_of(after, decision)
                return
            self._finish(False, f'rejected: pick pose is not finite {pose}')
            return
        velocity = self.odometer.velocity
        request.update(t_start=t_start, pose=pose, belt_v=velocity, wall0=time.monotonic())
        self.pub_planning.publish(Bool(data=True))
        request['future'] = self._planner_thread.submit(
            self._plan_pick_place, q_from, pose, decision['bin'], velocity,
            self._press_depth(decision))
        self._planning = request
        self._plan_poll.reset()

    def _plan_pick_place(self, q_from, pose, bin_name: str, velocity: float, press: float):
        """Plan a pick (the planning thread); return the plan and its wall time."""
        with self._planner_lock:
            wall0 = time.monotonic()
            traj = self.planner.plan_pick_place(q_from, pose, bin_name,
                                                belt_velocity=(velocity, 0.0, 0.0),
                                                press_depth=press)
            return traj, time.monotonic() - wall0

    def _on_plan_poll(self) -> None:
        """Take the plan in flight when it ends (wall-clock timer: sim time may be stopped)."""
        request = self._planning
        if request is not None and not request['future'].done():
            return
        self._plan_poll.cancel()
        if request is None:
            return
        self._planning = None
        exc = request['future'].exception()
        if exc is not None and not isinstance(exc, (LeptonError, ValueError)):
            raise exc       # a defect, not a pose the arm cannot reach: fail loudly
        self._planned(request, exc)

    def _cancel_planning(self) -> None:
        """Drop the plan in flight (it is discarded when it ends); requeue its decision."""
        request, self._planning = self._planning, None
        if request is None:
            return
        self._plan_poll.cancel()
        self._requeue(request)

    def _requeue(self, request: dict) -> None:
        """Put a decision whose plan will not be sent back at the head of the queue."""
        self.pub_planning.publish(Bool(data=False))
        if self.job is request['job']:
            self.job = None
        self.queue.appendleft(request['decision'])

    def _planned(self, request: dict, exc: Optional[Exception]) -> None:
        """Send a plan that has ended in the planning thread, or deal with its failure."""
        job, decision, after, now = (request[k] for k in ('job', 'decision', 'after', 'now'))
        if self.halted or (after is None and self.job is not job) or (
                after is not None and (self.job is not after or self.next_job is not None)):
            self._requeue(request)     # overtaken while it planned
            return
        if exc is not None:     # unreachable, NaN, bad bin: carry on
            self.pub_planning.publish(Bool(data=False))
            if after is not None:       # plan it later, from where the arm will be
                self._not_ahead_of(after, decision)
                return
            self._planning_failed(decision, request['pose'], exc, now)
            return
        traj, plan_wall = request['future'].result()
        self.plan_wall_s.append(plan_wall)
        job['plan_ms'] = round(1e3 * plan_wall, 2)
        wall = time.monotonic() - request['wall0']      # with any wait for the planner
        v, pose, t_start = request['belt_v'], request['pose'], request['t_start']
        if abs(self.odometer.velocity - v) > BELT_TOLERANCE_MPS:
            decision['retry_at'] = self._now()      # planned for a belt that has changed
            self._requeue(request)
            return
        spent = 0.0 if self.sim_pauses else wall * self._rtf()
        if after is not None and spent > t_start - now:
            self.pub_planning.publish(Bool(data=False))
            self._not_ahead_of(after, decision)     # too late to follow on
            return
        if spent > request['lead'] and request['attempt'] == 0 and after is None:
            self.pub_planning.publish(Bool(data=False))
            # planning took longer than the lead: the arm would start late and miss a
            # moving part; plan once more for a later start
            self.get_logger().warning(f'planning took ~{spent:.2f} s sim, more than the '
                                      f'{request["lead"]:.2f} s lead: planning again',
                                      throttle_duration_sec=10.0)
            request.update(lead=1.5 * spent + 0.2, attempt=1)
            self._submit(request)
            return
        contact_x = pose[0] + v * float(traj.marks.get('contact', 0.0))
        if v > 0.0 and contact_x > self.contact_x_max:
            self.pub_planning.publish(Bool(data=False))
            # the cup would meet the part past the pick zone: wait for the belt guard to
            # stop the belt (it does between picks) and pick it on a still belt
            if after is not None:
                self._not_ahead_of(after, decision)
                return
            decision['retry_at'] = now + self.replan_s
            self.queue.append(decision)
            self.job = None
            self.get_logger().info(f'part {decision["part_id"]}: contact at x={contact_x:.2f} '
                                   f'is past {self.contact_x_max:.2f}; waiting for the belt '
                                   'to stop', throttle_duration_sec=2.0)
            return
        self.get_logger().info(
            f'part {decision["part_id"]}: pick at {np.round(pose, 3).tolist()} '
            f'(belt {v:.3f} m/s), start {t_start:.2f} s '
            f'({"after the current pick" if after else "lead %.2f s" % request["lead"]}), '
            f'contact at +{traj.marks.get("contact", float("nan")):.2f} s')
        job['belt_v'] = v
        self._send(traj, t_start, job)
        if after is not None:
            self.next_job = job
        # the trajectory is on its way before the sim's planning pause ends (sim graph)
        self.pub_planning.publish(Bool(data=False))

    def _planning_failed(self, decision: dict, pose, exc: Exception, now: float) -> None:
        failures = decision.get('plan_failures', 0) + 1
        if isinstance(exc, LeptonError) and pose[0] < self.give_up_x \
                and failures < self.max_plan_failures:
            # the part may come into reach (or leave a singular spot): try again soon
            decision['plan_failures'] = failures
            decision['retry_at'] = now + self.replan_s
            self.queue.append(decision)
            self.job = None
            self.get_logger().info(f'part {decision["part_id"]}: planning failed ({exc}); '
                                   'retrying', throttle_duration_sec=2.0)
            return
        self._finish(False, f'rejected: {exc}')

    def _send(self, traj, now: float, job: dict) -> None:
        """Publish a trajectory that starts at sim time ``now`` (may be in the future)."""
        msg = trajectory_msg(traj.joint_names, traj.times, traj.positions,
                             getattr(traj, 'velocities', None))
        sec = int(math.floor(now))
        msg.header.stamp.sec = sec
        msg.header.stamp.nanosec = min(999999999, int((now - sec) * 1e9))
        self.pub_traj.publish(msg)
        marks = getattr(traj, 'marks', {}) or {}
        job['events'] = sorted((now + float(t), bool(on)) for t, on in traj.suction)
        job['t_end'] = now + float(traj.times[-1])
        job['t_check'] = now + float(marks['grasp_check']) if 'grasp_check' in marks else None
        job['t_release'] = now + float(marks['release']) if 'release' in marks else None
        job['q_end'] = np.asarray(traj.positions[-1], dtype=float)

    def _go_home(self, now: float) -> None:
        if self.q is None:
            return
        if not self._planner_lock.acquire(blocking=False):
            self.pending_home = True    # a dropped plan is ending: the next tick tries again
            return
        try:
            traj = self.planner.plan_home(self.q)
        except LeptonError as exc:
            self.get_logger().error(f'cannot plan home: {exc}')
            return
        finally:
            self._planner_lock.release()
        self._drop_next()
        self.job = {'decision': None, 't0': now, 'home': True}
        self._send(traj, now, self.job)

    def _press_depth(self, decision: dict) -> float:
        """Return how far below the reported top face to send the cup for this pick."""
        misses = self.grasp_misses.get(int(decision['part_id']), 0)
        return min(self.cup_stroke, self.press_depth + misses * self.retry_press_step)

    def _grasp_missed(self, now: float) -> None:
        """Fail the pick in progress with nothing held; its part's next try goes deeper."""
        part_id = int(self.job['decision']['part_id'])
        self.grasp_misses[part_id] = self.grasp_misses.pop(part_id, 0) + 1
        while len(self.grasp_misses) > 64:
            self.grasp_misses.popitem(last=False)
        self._fail('grasp failed: nothing held after the lift', now)

    def _fail(self, error: str, now: float) -> None:
        if self.next_job is not None:
            self._publish_hold()        # cancels the queued follow-on pick too
        self._drop_next()
        self.pub_gripper.publish(Bool(data=False))
        self._finish(False, error)
        self._go_home(now)

    def _on_timer(self) -> None:
        """Run the suction schedule, check the grasp, finish jobs, start the next one."""
        now = self._now()
        if now - self._last_ack >= 0.05:
            self._last_ack = now
            self.pub_ack.publish(String(data=json.dumps({'node': 'controller', 't': now})))
        wall = time.monotonic()
        if not self.clock_samples or wall - self.clock_samples[-1][0] > 0.05:
            self.clock_samples.append((wall, now))
            while wall - self.clock_samples[0][0] > 3.0:
                self.clock_samples.popleft()
        job = self.job
        if job is not None and self._belt_changed_under(job, now):
            self._replan_after_belt_change(job, now)
            job = None
        if job is not None and 'events' in job and not self.halted:
            while job['events'] and job['events'][0][0] <= now:
                _, on = job['events'].pop(0)
                self.pub_gripper.publish(Bool(data=on))
            if job.get('home'):
                if now >= job['t_end']:
                    self.job = None
            else:
                if job['t_check'] is not None and not job.get('checked') \
                        and now >= job['t_check']:
                    job['checked'] = True
                    if not (self.holding or job['held']):
                        self._grasp_missed(now)
                        return
                released = job['t_release'] is not None and now >= job['t_release']
                if job.get('checked') and not released and not self.holding:
                    self._fail('dropped: the part fell off before the bin', now)
                    return
                if now >= job['t_end']:
                    self._finish(True, None)
                    if self.next_job is not None:     # already sent: the follower runs it
                        self.job, self.next_job = self.next_job, None
                        self._publish_active()
                        return
                elif self._can_plan_ahead(job):
                    self._plan_ahead(job, now)
        self._publish_active()     # also 'idle' between picks: the belt guard acts then
        if self.interrupted is not None and not self.halted:
            self._place_interrupted(now)    # a resume found the planner busy
        if self.job is not None or self.halted or self.q is None or self._planning is not None \
                or self.interrupted is not None:
            return
        if self.pending_home:
            self.pending_home = False
            self._go_home(now)
            return
        if now < self.next_start or not self.odometer.settled(BELT_TOLERANCE_MPS):
            return      # a belt speed change is on its way: plan for the belt it brings
        nxt = self._take_next(now)
        if nxt is not None:
            self._start(nxt, now)
        self._publish_active()

    def _can_plan_ahead(self, job: dict) -> bool:
        """Return True when the next pick may be planned to follow ``job``."""
        return (self.pipeline and self.next_job is None and self._planning is None
                and job.get('checked', False)
                and 'q_end' in job and not self.halted and not self.pending_home
                and bool(self.queue) and self.odometer.settled(BELT_TOLERANCE_MPS))

    def _not_ahead_of(self, job: dict, decision: dict) -> None:
        """Queue a decision that could not follow ``job``: plan it after, not every tick."""
        decision['not_ahead_of'] = id(job)
        self.queue.appendleft(decision)

    def _plan_ahead(self, job: dict, now: float) -> None:
        """Plan the next ready pick to start where and when ``job`` ends."""
        nxt = self._take_next(job['t_end'] + self.release_margin, after=job)
        if nxt is not None:
            self._start(nxt, now, after=job)

    def _take_next(self, t: float, after: Optional[dict] = None) -> Optional[dict]:
        """
        Remove and return the decision to pick at ``t`` (``None`` when none is ready).

        Of the ready ones, the part furthest down the belt: it leaves the pick zone first.
        """
        ready = [d for d in self.queue if self._ready(d, t) and (
            after is None or d.get('not_ahead_of') != id(after))]
        if not ready:
            return None

        def x_at_t(d: dict) -> float:
            x = self._predict(d, t)[0]
            return x if math.isfinite(x) else math.inf     # _start reports a bad pose
        nxt = max(ready, key=x_at_t)
        self.queue.remove(nxt)
        return nxt

    def _belt_changed_under(self, job: dict, now: float) -> bool:
        """Return True when the belt changed speed before the cup got its part."""
        if job.get('home') or 'belt_v' not in job or job['held'] or self.halted:
            return False
        if job['t_check'] is None or now >= job['t_check']:
            return False
        cmd = self.odometer.commanded_velocity
        return abs(self.odometer.velocity - job['belt_v']) > BELT_TOLERANCE_MPS or (
            cmd is not None and abs(cmd - job['belt_v']) > BELT_TOLERANCE_MPS)

    def _replan_after_belt_change(self, job: dict, now: float) -> None:
        """Stop the arm and pick again for the belt as it is now (not a failed attempt)."""
        self._publish_hold()
        self.pub_gripper.publish(Bool(data=False))
        self._drop_next()
        decision = job['decision']
        decision['retry_at'] = now
        self.queue.appendleft(decision)
        self.job = None
        self.stats['replans'] += 1
        self.get_logger().info(f'part {decision["part_id"]}: the belt changed speed '
                               f'({job["belt_v"]:.3f} -> {self.odometer.velocity:.3f} m/s) '
                               'before the grasp: planning the pick again')

    def _publish_active(self) -> None:
        job = self.job
        active = None
        if job is not None and job.get('decision') is not None:
            active = int(job['decision']['part_id'])
        elif self.interrupted is not None:
            active = int(self.interrupted['decision']['part_id'])
        now = self._now()
        # republished every 0.05 s (node clock) as the controller's heartbeat: the supervisor
        # can hold the line when it stops (its controller_timeout_s)
        if active != self._active or not 0.0 <= now - self._active_t < 0.05:
            self._active = active
            self._active_t = now
            self.pub_active.publish(String(data=json.dumps({'part_id': active})))

    def destroy_node(self) -> None:
        """Stop the planning thread (a plan in flight ends first), then the node."""
        self._planning = None
        self._planner_thread.shutdown(wait=True, cancel_futures=True)
        super().destroy_node()

    def _on_diag_timer(self) -> None:
        """Publish diagnostics."""
        level = ERROR if self.q is None else OK
        self.diag.publish(level, 'no joint_states yet' if self.q is None else
                          ('halted' if self.halted else 'ok'),
                          {'queue': len(self.queue), 'busy': self.job is not None,
                           'ok': self.stats['ok'], 'failed': self.stats['failed'],
                           'belt_replans': self.stats['replans']})


def main(args=None) -> int:
    """Run the manipulation controller node."""
    return run_node(ManipulationControllerNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
