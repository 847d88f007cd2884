"""
Arm kinematics and motion planning for the Panda with a suction cup (no ROS, no GUI).

:class:`ArmPlanner` owns a private PyBullet DIRECT client holding only the robot, for
forward and inverse kinematics. It plans time-parameterised joint trajectories that respect
per-joint velocity and acceleration limits: joint-space moves with a quintic time law, and
Cartesian segments (descend onto a part moving with the belt, lift) sampled through IK.
The ROS controller node and the ground-truth oracle both use it.
"""

from dataclasses import dataclass, field
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from lepton_robot.errors import ConfigError, LeptonError
from lepton_robot.sim.scenario import load_scenario, Scenario
import numpy as np

PANDA_URDF = 'franka_panda/panda.urdf'
JOINT_NAMES = [f'panda_joint{i}' for i in range(1, 8)]
TCP_LINK = 11
#: the suction cup's face is this far beyond ``panda_grasptarget`` along the tool z axis
CUP_OFFSET = 0.0115
HOME_Q = np.array([0.0, -0.5, 0.0, -2.2, 0.0, 1.7, 0.785])
#: Panda datasheet limits
Q_MIN = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
Q_MAX = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
V_MAX = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
A_MAX = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0])
#: Panda reach from the shoulder (joint 2), metres
REACH = 0.855
SHOULDER_Z = 0.333
SAMPLE_DT = 0.01
#: the cup stops this far above the part's top face: the suction seals across the gap
CUP_GAP = 0.001
#: the bellows cup seals when its face comes within this of the part's top face, m
SEAL_GAP = 0.003
#: how far the bellows cup compresses when the arm keeps descending after the seal, m
CUP_STROKE = 0.015


class UnreachableError(LeptonError):
    """A pose cannot be reached (out of reach, joint limits, IK failure, NaN/inf input)."""


class PlanningError(LeptonError):
    """A trajectory cannot be planned within the limits or clearances."""


@dataclass
class Trajectory:
    """
    A time-parameterised joint trajectory.

    :ivar joint_names: the 7 arm joints
    :ivar times: (N,) seconds from the start
    :ivar positions: (N, 7) rad
    :ivar velocities: (N, 7) rad/s
    :ivar suction: (time, on) events
    :ivar marks: named instants ('contact', 'grasp_check', 'release', ...)
    """

    joint_names: List[str]
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray
    suction: List[Tuple[float, bool]] = field(default_factory=list)
    marks: Dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Length of the trajectory, seconds."""
        return float(self.times[-1]) if len(self.times) else 0.0

    def sample(self, t: float) -> Tuple[np.ndarray, np.ndarray]:
        """Return interpolated (positions, velocities) at time ``t`` (clamped)."""
        t = min(max(t, 0.0), self.duration)
        i = int(np.searchsorted(self.times, t, side='right')) - 1
        i = min(max(i, 0), len(self.times) - 2)
        t0, t1 = self.times[i], self.times[i + 1]
        a = 0.0 if t1 <= t0 else (t - t0) / (t1 - t0)
        q = self.positions[i] + a * (self.positions[i + 1] - self.positions[i])
        qd = self.velocities[i] + a * (self.velocities[i + 1] - self.velocities[i])
        return q, qd

    def limit_ratios(self, v_max: np.ndarray = V_MAX,
                     a_max: np.ndarray = A_MAX) -> Tuple[float, float]:
        """Return the peak |velocity| / limit and |acceleration| / limit (finite differences)."""
        dt = np.diff(self.times)[:, None]
        vel = np.diff(self.positions, axis=0) / dt
        acc = np.diff(self.velocities, axis=0) / dt
        return float(np.max(np.abs(vel) / v_max)), float(np.max(np.abs(acc) / a_max))

    def extend(self, other: 'Trajectory') -> 'Trajectory':
        """Return this trajectory followed by ``other`` (whose times start at 0)."""
        shift = self.duration
        return Trajectory(self.joint_names,
                          np.concatenate([self.times, other.times[1:] + shift]),
                          np.vstack([self.positions, other.positions[1:]]),
                          np.vstack([self.velocities, other.velocities[1:]]),
                          self.suction + [(t + shift, on) for t, on in other.suction],
                          {**self.marks, **{k: v + shift for k, v in other.marks.items()}})


def _quintic(s: np.ndarray) -> np.ndarray:
    return 10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5


def _ramp_law(delta: np.ndarray, v_max: np.ndarray, a_max: np.ndarray,
              min_duration: float) -> Tuple[float, float, float]:
    """
    Return (duration, ramp time, cruise rate) of the fastest synchronised ramp profile.

    The path parameter s goes 0 -> 1 with a raised-cosine acceleration ramp (continuous
    acceleration, finite jerk), a cruise at rate ``V`` and the mirrored deceleration. Its peak
    rate is ``V`` and its peak acceleration ``V * pi / (2 * Ta)``; every joint ``j`` moving
    ``delta[j]`` stays within ``v_max[j]`` and ``a_max[j]``. Compared with a quintic (peak
    velocity 1.875x the mean) it cruises at the velocity limit, so long moves take ~25 % less.
    """
    d_v = float(np.max(delta / v_max))
    d_a = float(np.max(delta / a_max))
    if d_v <= 0.0 or d_a <= 0.0:
        return min_duration, min_duration / 2.0, 2.0 / min_duration
    rate = min(1.0 / d_v, math.sqrt(2.0 / (math.pi * d_a)))
    ramp = rate * math.pi * d_a / 2.0
    duration = ramp + 1.0 / rate
    if duration < min_duration:
        duration, ramp, rate = min_duration, min_duration / 2.0, 2.0 / min_duration
    return duration, min(ramp, duration / 2.0), rate


def _ramp_s(t: np.ndarray, duration: float, ramp: float,
            rate: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return (s, ds/dt) of the ramp profile of :func:`_ramp_law` at times ``t``."""
    def up(tt):
        tt = np.clip(tt, 0.0, ramp)
        return (rate / 2.0 * (tt - ramp / math.pi * np.sin(math.pi * tt / ramp)),
                rate / 2.0 * (1.0 - np.cos(math.pi * tt / ramp)))

    s1, v1 = up(t)
    s3, v3 = up(duration - t)
    s = np.where(t < ramp, s1, np.where(t > duration - ramp, 1.0 - s3,
                                        rate * ramp / 2.0 + rate * (t - ramp)))
    v = np.where(t < ramp, v1, np.where(t > duration - ramp, v3, rate))
    return np.clip(s, 0.0, 1.0), v


class ArmPlanner:
    """
    Kinematics and pick-and-place planning for the cell's Panda.

    :param scenario: scenario (gives the arm base, bins, belt and clearances)
    :param speed_scale: fraction of the Panda's velocity limits used by joint moves
        (default: the scenario's ``arm.speed_scale``, else 0.8)
    :param accel_scale: fraction of its acceleration limits (``arm.accel_scale``, else 0.5)
    """

    def __init__(self, scenario: Union[Scenario, str] = 'default',
                 speed_scale: Optional[float] = None, accel_scale: Optional[float] = None):
        import pybullet
        import pybullet_data
        from pybullet_utils import bullet_client
        self.scenario = load_scenario(scenario)
        arm = self.scenario.arm
        self._pb = pybullet
        self._client = bullet_client.BulletClient(connection_mode=pybullet.DIRECT)
        self._client.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.base_position = np.asarray(arm['base_position'], float)
        self._robot = self._client.loadURDF(PANDA_URDF, basePosition=self.base_position.tolist(),
                                            useFixedBase=True)
        self.home = HOME_Q.copy()
        speed_scale = float(arm.get('speed_scale', 0.8) if speed_scale is None else speed_scale)
        accel_scale = float(arm.get('accel_scale', 0.5) if accel_scale is None else accel_scale)
        if not (0 < speed_scale <= 1 and 0 < accel_scale <= 1):
            raise ConfigError(f'arm speed/accel scales must be in (0, 1], got {speed_scale}, '
                              f'{accel_scale}')
        self.v_max = V_MAX * speed_scale
        self.a_max = A_MAX * accel_scale
        self.bin_positions: Dict[str, Tuple[float, float, float]] = {
            k: tuple(v) for k, v in arm['bins'].items()}
        self.bin_size = tuple(arm['bin_size'])
        self.clearance_z = float(arm['clearance_z'])
        self.belt_top_z = float(self.scenario.belt['top_z'])
        # pick timing (scenario ``arm`` keys, defaults = the original slow cycle)
        self.pre_height = float(arm.get('pre_height', 0.08))      # cup above the part, m
        self.descend_time = float(arm.get('descend_s', 0.7))      # pre -> contact
        self.dwell_time = float(arm.get('dwell_s', 0.15))         # ride along, suction seals
        self.lift_time = float(arm.get('lift_s', 0.9))            # contact -> travel height
        self.release_time = float(arm.get('release_s', 0.3))      # hold above the bin
        #: the cup stops this high above a bin's walls when placing
        self.place_clearance = float(arm.get('place_clearance', 0.12))
        #: tallest part the feeder makes (a held part hangs this far below the cup)
        sc_parts = self.scenario.parts
        self.part_height = max(float(sc_parts['block']['size'][1]),
                               float(sc_parts['cylinder']['height'][1]),
                               float(sc_parts['plate']['height'][1]))

    def close(self) -> None:
        """Disconnect the private client."""
        if self._client is not None:
            self._client.disconnect()
            self._client = None

    # ----------------------------------------------------------------- kinematics
    def _set(self, q: Sequence[float]) -> None:
        for j in range(7):
            self._client.resetJointState(self._robot, j, float(q[j]))

    def fk(self, q: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the suction cup position and the tool quaternion for joint angles ``q``.

        :param q: 7 joint angles
        :return: (xyz of the cup face, quaternion xyzw of the tool)
        """
        self._set(q)
        state = self._client.getLinkState(self._robot, TCP_LINK, computeForwardKinematics=True)
        pos, quat = np.array(state[4]), np.array(state[5])
        rot = np.array(self._client.getMatrixFromQuaternion(quat)).reshape(3, 3)
        return pos + rot[:, 2] * CUP_OFFSET, quat

    def tool_yaw(self, xyz: Sequence[float]) -> float:
        """Return the natural tool yaw at ``xyz`` (keeps joint 7 near its home angle)."""
        d = np.asarray(xyz[:2], float) - self.base_position[:2]
        return float(math.atan2(d[1], d[0]))

    def ik(self, xyz: Sequence[float], yaw: Optional[float] = None,
           q_seed: Optional[Sequence[float]] = None, tol: float = 0.002,
           _refine: int = 5) -> np.ndarray:
        """
        Solve for joint angles putting the cup at ``xyz``, pointing down, tool at ``yaw``.

        :param xyz: cup face position in the world, metres
        :param yaw: tool rotation about the vertical (default: :meth:`tool_yaw`)
        :param q_seed: starting joint angles (default: home)
        :param tol: allowed position error, metres
        :return: (7,) joint angles within the joint limits
        :raises UnreachableError: NaN/inf input, out of reach, or no accurate solution
        """
        xyz = np.asarray(xyz, dtype=float).reshape(-1)
        if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
            raise UnreachableError(f'target position must be 3 finite numbers, got {xyz}')
        if yaw is not None and not math.isfinite(yaw):
            raise UnreachableError(f'target yaw must be finite, got {yaw}')
        shoulder = self.base_position + [0.0, 0.0, SHOULDER_Z]
        tcp_target = xyz + [0.0, 0.0, CUP_OFFSET]
        dist = float(np.linalg.norm(tcp_target + [0.0, 0.0, 0.107] - shoulder))
        if dist > REACH:
            raise UnreachableError(f'target {np.round(xyz, 3).tolist()} is {dist:.3f} m from '
                                   f'the shoulder, beyond the Panda reach ({REACH} m)')
        if xyz[2] < 0.0:
            raise UnreachableError(f'target {np.round(xyz, 3).tolist()} is below the floor')
        yaw = self.tool_yaw(xyz) if yaw is None else float(yaw)
        quat = self._client.getQuaternionFromEuler([math.pi, 0.0, yaw])
        # posture preference: home turned towards the target; seeds: the caller's, that
        # posture, and a low-reach posture (targets close to the base and low)
        theta = float(np.clip(self.tool_yaw(xyz), Q_MIN[0], Q_MAX[0]))
        rest = self.home.copy()
        rest[0] = theta
        low = np.array([theta, 0.05, 0.0, -2.65, 0.0, 2.7, self.home[6]])
        seeds = ([(np.asarray(q_seed, float), _refine)] if q_seed is not None else []) + [
            (rest, 5), (low, 5)]
        best_err = float('inf')
        for seed, refine in seeds:
            self._set(seed)
            for k in range(refine):
                # first with the null space (posture near ``rest``), then plain refinement
                kwargs = {} if k or refine < 5 else {
                    'lowerLimits': Q_MIN.tolist() + [0.0, 0.0],
                    'upperLimits': Q_MAX.tolist() + [0.04, 0.04],
                    'jointRanges': (Q_MAX - Q_MIN).tolist() + [0.04, 0.04],
                    'restPoses': list(rest) + [0.0, 0.0]}
                sol = self._client.calculateInverseKinematics(
                    self._robot, TCP_LINK, tcp_target.tolist(), quat, maxNumIterations=100,
                    residualThreshold=1e-7, **kwargs)
                q = np.clip(np.array(sol[:7]), Q_MIN, Q_MAX)
                self._set(q)
            pos, got = self.fk(q)
            err = float(np.linalg.norm(pos - xyz))
            down = np.array(self._client.getMatrixFromQuaternion(got)).reshape(3, 3)[:, 2]
            if down[2] > -0.995:
                err += 1.0
            best_err = min(best_err, err)
            if err <= tol:
                return q
        raise UnreachableError(f'no IK solution for {np.round(xyz, 3).tolist()} yaw '
                               f'{yaw:.2f} (best error {best_err * 1000:.1f} mm)')

    # ----------------------------------------------------------------- trajectories
    def joint_move(self, q0: Sequence[float], q1: Sequence[float],
                   min_duration: float = 0.2) -> Trajectory:
        """
        Plan a rest-to-rest joint move within the velocity and acceleration limits.

        The time law is a synchronised trapezoid with raised-cosine ramps (:func:`_ramp_law`).

        :param q0: start joint angles
        :param q1: goal joint angles
        :param min_duration: shortest duration, seconds
        :return: the trajectory
        :raises UnreachableError: when a goal is outside the joint limits or not finite
        """
        q0, q1 = np.asarray(q0, float), np.asarray(q1, float)
        if not (np.all(np.isfinite(q0)) and np.all(np.isfinite(q1))):
            raise UnreachableError('joint targets must be finite')
        if np.any(q1 < Q_MIN - 1e-6) or np.any(q1 > Q_MAX + 1e-6):
            raise UnreachableError(f'joint goal {np.round(q1, 3).tolist()} is outside the '
                                   'joint limits')
        delta = np.abs(q1 - q0)
        duration, ramp, rate = _ramp_law(delta, self.v_max, self.a_max, min_duration)
        n = max(2, int(math.ceil(duration / SAMPLE_DT)) + 1)
        times = np.linspace(0.0, duration, n)
        s, sd = _ramp_s(times, duration, ramp, rate)
        pos = q0 + np.outer(s, q1 - q0)
        vel = np.outer(sd, q1 - q0)
        pos[-1], vel[[0, -1]] = q1, 0.0
        return Trajectory(JOINT_NAMES, times, pos, vel)

    def cartesian_path(self, q_start: Sequence[float], path: Callable[[float], np.ndarray],
                       duration: float, yaw: float) -> Trajectory:
        """
        Follow a timed Cartesian path of the cup (tool pointing down) through IK.

        :param q_start: joint angles at the start (must put the cup at ``path(0)``)
        :param path: function of time (0..duration) returning the cup position
        :param duration: seconds
        :param yaw: tool yaw
        :return: the trajectory
        :raises UnreachableError: when a point of the path has no IK solution
        :raises PlanningError: when following the path would exceed the velocity limits
        """
        n = max(2, int(math.ceil(duration / (5 * SAMPLE_DT))) + 1)
        times = np.linspace(0.0, duration, n)
        qs = [np.asarray(q_start, float)]
        for t in times[1:]:
            # seeded with the previous sample: a few plain refinements are enough
            qs.append(self.ik(path(t), yaw, q_seed=qs[-1], _refine=3))
            if np.max(np.abs(qs[-1] - qs[-2])) > 0.25:
                raise PlanningError('the Cartesian path crosses an IK branch change near '
                                    f'{np.round(path(t), 3).tolist()}')
        pos = np.array(qs)
        vel = np.gradient(pos, times, axis=0)
        vel[0] = 0.0 if duration <= 0 else vel[0]
        if np.any(np.abs(vel) > V_MAX):
            raise PlanningError('the Cartesian path would exceed the joint velocity limits')
        return Trajectory(JOINT_NAMES, times, pos, vel)

    def _lift_if_low(self, q: np.ndarray) -> Tuple[Trajectory, np.ndarray]:
        cup, quat = self.fk(q)
        if cup[2] >= self.clearance_z - 0.06:
            return Trajectory(JOINT_NAMES, np.array([0.0]), q[None, :], np.zeros((1, 7))), q
        yaw = self._client.getEulerFromQuaternion(quat.tolist())[2]
        up = cup.copy()
        up[2] = self.clearance_z
        q_up = self.ik(up, yaw, q_seed=q)
        return self.joint_move(q, q_up), q_up

    def plan_home(self, q_start: Sequence[float]) -> Trajectory:
        """
        Plan a move back to the home configuration (lifting first when low).

        :param q_start: current joint angles
        :return: the trajectory
        """
        q_start = np.asarray(q_start, float)
        traj, q = self._lift_if_low(q_start)
        return traj.extend(self.joint_move(q, self.home))

    def plan_pick_place(self, q_start: Sequence[float], pick_pose: Sequence[float],
                        bin_name: str, *, belt_velocity: Sequence[float] = (0.0, 0.0, 0.0),
                        t_pick: Optional[float] = None, press_depth: float = 0.0) -> Trajectory:
        """
        Plan approach, descend, grasp, lift, transfer and release of one part.

        The part moves with the belt: at time ``t`` after the start of the trajectory it is
        at ``pick_pose[:3] + belt_velocity * t``. The cup meets it at ``t_pick`` (default:
        as early as the arm can) while moving along with it, so the belt need not stop.

        :param q_start: current joint angles
        :param pick_pose: (x, y, z, yaw) of the part's top face centre now; z is the top face
        :param bin_name: 'accept', 'reject' or 'rework'
        :param belt_velocity: (vx, vy, vz) of the belt, m/s
        :param t_pick: when the cup should touch the part, seconds from now
        :param press_depth: how far below ``z`` the cup descends (m, at most
            :data:`CUP_STROKE`): covers the uncertainty of a measured top face; the bellows
            cup seals on the way down and absorbs the rest
        :return: the trajectory; marks 'contact', 'grasp_check', 'release', 'end'
        :raises UnreachableError: when the part (at pick time) or the bin is out of reach
        :raises ValueError: on an unknown bin or a press depth outside [0, CUP_STROKE]
        """
        if not 0.0 <= press_depth <= CUP_STROKE:
            raise ValueError(f'press_depth must be in [0, {CUP_STROKE}] m, got {press_depth}')
        if bin_name not in self.bin_positions:
            raise ValueError(f'unknown bin {bin_name!r}; expected one of '
                             f'{sorted(self.bin_positions)}')
        pose = np.asarray(pick_pose, float).reshape(-1)
        if pose.shape != (4,) or not np.all(np.isfinite(pose)):
            raise UnreachableError(f'pick pose must be 4 finite numbers, got {pose}')
        vel = np.asarray(belt_velocity, float)
        if not np.all(np.isfinite(vel)):
            raise UnreachableError('belt velocity must be finite')
        p0 = pose[:3]
        q_start = np.asarray(q_start, float)
        lift, q_up = self._lift_if_low(q_start)
        td = self.descend_time
        # where the cup waits above the part: it then accelerates to the belt speed while
        # descending, meeting the part after td (see _descend)
        t_contact = lift.duration + 1.0 if t_pick is None else float(t_pick)
        for _ in range(8):
            contact = p0 + vel * t_contact
            pre = contact - vel * td / 2.0 + [0.0, 0.0, self.pre_height]
            yaw = self.tool_yaw(contact)
            q_pre = self.ik(pre, yaw)
            approach = self.joint_move(q_up, q_pre)
            needed = lift.duration + approach.duration + td
            if t_pick is not None:
                if needed > t_pick + 1e-6:
                    raise UnreachableError(f'the arm needs {needed:.2f} s to reach the part, '
                                           f'more than t_pick={t_pick:.2f} s')
                break
            if 0.0 <= t_contact - needed < 0.05:
                break
            t_contact = needed + 0.02
        wait = t_contact - needed
        if wait < -1e-6:
            raise PlanningError('the intercept with the moving part did not converge')
        traj = lift.extend(approach)
        if wait > 1e-3:
            traj = traj.extend(Trajectory(JOINT_NAMES, np.array([0.0, wait]),
                                          np.vstack([q_pre, q_pre]), np.zeros((2, 7))))
        vx = vel.copy()

        def descend(t):
            s = _quintic(np.array(t / td))
            return pre + vx * (t * t / (2.0 * td)) - [
                0.0, 0.0, (self.pre_height - CUP_GAP + press_depth) * float(s)]

        down = self.cartesian_path(q_pre, descend, td, yaw)
        contact_pt = descend(td)
        t_touch = traj.duration + td
        traj = traj.extend(down)
        traj.suction.append((t_touch - 0.25 * td, True))
        traj.marks['contact'] = t_touch

        def dwell(t):
            # ride along with the part while the suction seals (no pressing: the part sits
            # on the belt and pressing it would only load the joints)
            return contact_pt + vx * t

        traj = traj.extend(self.cartesian_path(down.positions[-1], dwell, self.dwell_time, yaw))
        start = dwell(self.dwell_time)
        tl = self.lift_time

        # lift straight to the travel height (decelerating the belt-speed ride-along)
        lift_height = max(0.03, self.clearance_z - float(start[2]))

        def up(t):
            s = _quintic(np.array(t / tl))
            return start + vx * (t - t * t / (2.0 * tl)) + [0.0, 0.0, lift_height * float(s)]

        traj = traj.extend(self.cartesian_path(traj.positions[-1], up, tl, yaw))
        traj.marks['grasp_check'] = traj.duration
        place = self.bin_positions[bin_name]
        above = np.array([place[0], place[1], max(
            self.clearance_z, place[2] + self.bin_size[2] + self.place_clearance)])
        q_bin = self.ik(above, self.tool_yaw(above))
        lifted_cup, _ = self.fk(traj.positions[-1])
        if lifted_cup[2] < self.clearance_z - 0.02:
            high = lifted_cup.copy()
            high[2] = self.clearance_z
            q_high = self.ik(high, yaw, q_seed=traj.positions[-1])
            traj = traj.extend(self.joint_move(traj.positions[-1], q_high))
        traj = traj.extend(self.joint_move(traj.positions[-1], q_bin))
        traj.suction.append((traj.duration, False))
        traj.marks['release'] = traj.duration
        hold = self.release_time
        traj = traj.extend(Trajectory(JOINT_NAMES, np.array([0.0, hold]),
                                      np.vstack([q_bin, q_bin]), np.zeros((2, 7))))
        traj.marks['end'] = traj.duration
        traj.velocities = np.gradient(traj.positions, traj.times, axis=0)
        traj.velocities[[0, -1]] = 0.0
        self._check_clearance(traj)
        return traj

    def _check_clearance(self, traj: Trajectory) -> None:
        """
        Raise PlanningError when the cup passes low over a bin wall or the belt edge.

        While a part is carried (from the 'grasp_check' mark to 'release') the tallest part
        hangs below the cup: it must clear the bin walls, and the parts standing on the belt.
        """
        belt = self.scenario.belt
        sx, sy, wall = self.bin_size
        t0 = traj.marks.get('grasp_check', math.inf)
        t1 = traj.marks.get('release', -math.inf)
        for t, q in zip(traj.times[::5], traj.positions[::5]):
            cup, _ = self.fk(q)
            carrying = t0 <= t <= t1
            hang = self.part_height if carrying else 0.0
            over_belt = (abs(cup[1] - belt['y']) < belt['width'] / 2 + 0.03
                         and belt['x_start'] < cup[0] < belt['x_end'])
            if carrying and over_belt and cup[2] < self.belt_top_z + self.part_height + hang:
                raise PlanningError(f'a carried part passes {cup[2]:.3f} m high over the '
                                    'parts on the belt')
            for name, (bx, by, bz) in self.bin_positions.items():
                near_wall = (abs(cup[0] - bx) < sx / 2 + 0.04 and abs(cup[1] - by) < sy / 2 + 0.04
                             and not (abs(cup[0] - bx) < sx / 2 - 0.04
                                      and abs(cup[1] - by) < sy / 2 - 0.04))
                if near_wall and cup[2] < bz + wall + hang + 0.03:
                    raise PlanningError(f'path passes {cup[2]:.3f} m high over the wall of '
                                        f'bin {name}')
            edge = abs(abs(cup[1] - belt['y']) - belt['width'] / 2) < 0.03
            if edge and belt['x_start'] < cup[0] < belt['x_end'] and cup[2] < (
                    self.belt_top_z + 0.02):
                raise PlanningError('path grazes the belt edge')
