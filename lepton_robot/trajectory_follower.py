"""
Follow a joint trajectory in time, like ros2_control's ``joint_trajectory_controller``.

Used by the sim bridge to drive the simulated Panda (no ROS here). Semantics:

- A new trajectory replaces the active one. It starts at its ``start_time`` (the message
  stamp), or now when the stamp is zero or already past (deliberate: planning and transport
  take a little sim time; the planner re-plans from the current pose anyway). One whose
  stamp is in the future while another is being followed is queued: the active one runs
  on until that time and the new one takes over from there (trajectory replacement as in
  ``joint_trajectory_controller``; a controller can send the next motion ahead). A later
  trajectory replaces a queued one.
- Before the first point the arm moves from where it was when the trajectory arrived;
  between points positions follow cubic Hermite splines when velocities are given, linear
  interpolation otherwise; after the last point the last point is held.
- A trajectory without points cancels the active one and holds the current position.
- Path tolerance: if any joint is further than ``path_tolerance`` (rad) from where it
  should be, the trajectory is aborted and the arm holds where it is (``aborted`` says why).
"""

from dataclasses import dataclass
from typing import List, Optional, Sequence

from lepton_robot.errors import LeptonError
import numpy as np


class TrajectoryError(LeptonError):
    """A trajectory is malformed (unknown joints, wrong sizes, times not increasing)."""


@dataclass
class ActiveTrajectory:
    """A trajectory being followed, in the follower's joint order."""

    start_time: float
    q_start: np.ndarray
    times: np.ndarray
    positions: np.ndarray
    velocities: Optional[np.ndarray]


def _evaluate(tr: ActiveTrajectory, tau: float) -> np.ndarray:
    """Return the trajectory's positions ``tau`` seconds after its start (tau < end)."""
    if tau <= 0.0:
        return tr.q_start
    if tau <= tr.times[0]:
        a = tau / tr.times[0] if tr.times[0] > 0 else 1.0
        return tr.q_start + a * (tr.positions[0] - tr.q_start)
    i = int(np.searchsorted(tr.times, tau)) - 1
    t0, t1 = tr.times[i], tr.times[i + 1]
    h = t1 - t0
    s = (tau - t0) / h
    p0, p1 = tr.positions[i], tr.positions[i + 1]
    if tr.velocities is None:
        return p0 + s * (p1 - p0)
    v0, v1 = tr.velocities[i] * h, tr.velocities[i + 1] * h
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * v0
            + (-2 * s3 + 3 * s2) * p1 + (s3 - s2) * v1)


class TrajectoryFollower:
    """
    Sample the desired joint positions over time and watch the tolerances.

    :param joint_names: the arm's joints, in the order positions are returned.
    :param path_tolerance: the largest tracking error (rad) before aborting.
    """

    def __init__(self, joint_names: Sequence[str], path_tolerance: float = 0.3) -> None:
        self.joint_names = list(joint_names)
        self.path_tolerance = float(path_tolerance)
        self.active: Optional[ActiveTrajectory] = None
        #: a trajectory that takes over from ``active`` at its start time
        self.queued: Optional[ActiveTrajectory] = None
        self.hold: Optional[np.ndarray] = None
        self.aborted: Optional[str] = None
        self.completed = 0

    def set_trajectory(self, now: float, q_now: np.ndarray, joint_names: Sequence[str],
                       times: Sequence[float], positions: Sequence[Sequence[float]],
                       velocities: Optional[Sequence[Sequence[float]]] = None,
                       start_time: float = 0.0) -> None:
        """
        Replace the active trajectory (an empty one holds the current position).

        :param now: the current time.
        :param q_now: the measured joint positions (follower order).
        :param joint_names: the trajectory's joint order.
        :param times: time from start of each point (s), strictly increasing.
        :param positions: one row per point.
        :param velocities: one row per point, or None / empty rows.
        :param start_time: the header stamp (0 = now).
        :raises TrajectoryError: when the trajectory is malformed (the arm then holds).
        """
        q_now = np.asarray(q_now, dtype=float)
        self.aborted = None
        self.queued = None
        if len(times) == 0:
            self.active, self.hold = None, q_now.copy()
            return
        try:
            order = [list(joint_names).index(j) for j in self.joint_names]
        except ValueError as exc:
            self.active, self.hold = None, q_now.copy()
            raise TrajectoryError(f'trajectory lacks joints of {self.joint_names}') from exc
        t = np.asarray(times, dtype=float)
        pos = np.asarray(positions, dtype=float)
        if pos.shape != (len(t), len(joint_names)) or np.any(np.diff(t) <= 0) or t[0] < 0 \
                or not np.all(np.isfinite(pos)):
            self.active, self.hold = None, q_now.copy()
            raise TrajectoryError('trajectory points are malformed (sizes, times or NaN)')
        vel = None
        if velocities is not None and len(velocities) == len(t) and \
                all(len(v) == len(joint_names) for v in velocities):
            vel = np.asarray(velocities, dtype=float)[:, order]
        new = ActiveTrajectory(max(float(start_time), float(now)), q_now.copy(), t,
                               pos[:, order], vel)
        if self.active is not None and new.start_time > now:
            self.queued = new       # takes over from the active one at its start time
            return
        self.active = new
        self.hold = None

    def desired(self, now: float) -> Optional[np.ndarray]:
        """Return the joint positions wanted at ``now`` (None before any command)."""
        tr, nxt = self.active, self.queued
        if nxt is not None and now >= nxt.start_time:
            # hand over where the active trajectory is (or was) at the queued one's start
            if tr is not None:
                tau = nxt.start_time - tr.start_time
                if tau >= tr.times[-1]:
                    q0 = tr.positions[-1]
                    self.completed += 1
                else:
                    q0 = _evaluate(tr, tau)
            else:
                q0 = self.hold if self.hold is not None else nxt.q_start
            nxt.q_start = np.array(q0, dtype=float)
            self.active, self.queued, self.hold, tr = nxt, None, None, nxt
        if tr is None:
            return self.hold
        tau = now - tr.start_time
        if tau >= tr.times[-1]:
            self.hold = tr.positions[-1].copy()
            self.active = None
            self.completed += 1
            return self.hold
        return _evaluate(tr, tau)

    def desired_velocity(self, now: float, eps: float = 1e-3) -> np.ndarray:
        """Return the joint velocities wanted at ``now`` (zero when holding)."""
        tr = self.active
        if tr is None:
            return np.zeros(len(self.joint_names))
        tau = now - tr.start_time
        if tau < 0.0 or tau + eps >= tr.times[-1]:
            return np.zeros(len(self.joint_names))
        return (_evaluate(tr, tau + eps) - _evaluate(tr, tau)) / eps

    def check(self, q_measured: np.ndarray, q_desired: Optional[np.ndarray]) -> bool:
        """
        Abort and hold when the tracking error exceeds the path tolerance.

        :return: True when the trajectory was aborted by this call.
        """
        if self.active is None or q_desired is None:
            return False
        err = np.abs(np.asarray(q_measured, dtype=float) - q_desired)
        if float(err.max()) <= self.path_tolerance:
            return False
        j = int(err.argmax())
        self.aborted = (f'path tolerance violated on {self.joint_names[j]}: '
                        f'{err[j]:.3f} rad > {self.path_tolerance:.3f}')
        self.active = self.queued = None
        self.hold = np.asarray(q_measured, dtype=float).copy()
        return True

    @property
    def busy(self) -> bool:
        """Return True while a trajectory is being followed or waits to take over."""
        return self.active is not None or self.queued is not None

    def names(self) -> List[str]:
        """Return a copy of the follower's joint order."""
        return list(self.joint_names)
