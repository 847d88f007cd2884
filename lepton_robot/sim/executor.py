"""Play a :class:`~lepton_robot.sim.arm.Trajectory` on the simulated arm (sim time)."""

from typing import Optional

from lepton_robot.sim.arm import Trajectory


class TrajectoryExecutor:
    """
    Feed a trajectory's positions/velocities and suction events to a ``SimArm``.

    Call :meth:`update` after every physics step (or every few); it samples the trajectory
    at the cell's simulated time.

    :param cell: the :class:`~lepton_robot.sim.cell.WorkCell`
    :param trajectory: what to play
    :param start_time: sim time of the trajectory's t=0 (default: now)
    """

    def __init__(self, cell, trajectory: Trajectory, start_time: Optional[float] = None):
        self.cell = cell
        self.trajectory = trajectory
        self.start_time = cell.sim_time if start_time is None else float(start_time)
        self._next_event = 0

    @property
    def elapsed(self) -> float:
        """Seconds since the trajectory started."""
        return self.cell.sim_time - self.start_time

    @property
    def done(self) -> bool:
        """Whether the whole trajectory has been played."""
        return self.elapsed >= self.trajectory.duration

    def passed(self, mark: str) -> bool:
        """Return whether the named instant of the trajectory has passed."""
        t = self.trajectory.marks.get(mark)
        return t is not None and self.elapsed >= t

    def update(self) -> None:
        """Command the arm for the current sim time and fire due suction events."""
        t = self.elapsed
        q, qd = self.trajectory.sample(t)
        self.cell.arm.command_positions(q, qd)
        events = self.trajectory.suction
        while self._next_event < len(events) and events[self._next_event][0] <= t:
            self.cell.arm.set_suction(events[self._next_event][1])
            self._next_event += 1
