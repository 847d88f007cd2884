"""
Ground-truth oracle: a scripted run that sorts parts by their TRUE condition.

It proves the cell and the arm before any perception exists: parts are inspected by the
camera (rendered at ``camera_hz``), picked from the moving belt with an intercept plan, and
dropped into the bin the rules give. The summary is computed from ground truth.
"""

from dataclasses import dataclass, field
import time
from typing import Callable, Dict, List, Optional

from lepton_robot.errors import LeptonError
from lepton_robot.sim.arm import ArmPlanner, PlanningError, UnreachableError
from lepton_robot.sim.cell import LOC_BELT, LOC_GRIPPER, WorkCell
from lepton_robot.sim.executor import TrajectoryExecutor
from lepton_robot.sim.summary import expected_bin, rule_book, run_summary


@dataclass
class _Job:
    part_id: int
    bin: str  # noqa: A003 - a bin name
    executor: TrajectoryExecutor
    checked: bool = False
    released: bool = False
    failed: bool = False


@dataclass
class OracleStats:
    """Counters of the oracle's picks and timings."""

    pick_attempts: int = 0
    pick_successes: int = 0
    drops: int = 0
    belt_stops: int = 0
    plan_failures: int = 0
    errors: List[str] = field(default_factory=list)
    latencies_ms: Dict[str, List[float]] = field(
        default_factory=lambda: {'capture': [], 'plan': []})


class OracleRunner:
    """
    Sort every part of a cell by ground truth with the arm.

    :param cell: the cell (with arm)
    :param rules: ``sort`` rules (default: ok -> accept, defects -> reject)
    :param camera_hz: camera rate; rendered frames count parts as inspected
    :param control_every: physics steps between two arm commands
    """

    def __init__(self, cell: WorkCell, rules=None, camera_hz: Optional[float] = None,
                 control_every: int = 2):
        if cell.arm is None:
            raise LeptonError('the oracle needs a cell with an arm')
        self.cell = cell
        self.rules = rules
        self.book = rule_book(rules)     # resolved like the supervisor (and the summary)
        self.camera_hz = float(camera_hz or cell.scenario.camera['rate_hz'])
        self.control_every = int(control_every)
        self.planner = ArmPlanner(cell.scenario)
        self.stats = OracleStats()
        zone = cell.scenario.arm['pick_zone_x']
        self.pick_x_min, self.pick_x_max = float(zone[0]), float(zone[1])
        self._job: Optional[_Job] = None
        self._home: Optional[TrajectoryExecutor] = None
        self._next_frame = 0.0
        self._saved_speed: Optional[float] = None
        self._attempts: Dict[int, int] = {}
        self._success_pending: Dict[int, str] = {}

    def close(self) -> None:
        """Release the planner's client."""
        self.planner.close()

    # ----------------------------------------------------------------- main loop
    def run(self, parts: int, max_sim_time: Optional[float] = None,
            progress: Optional[Callable[[int], None]] = None) -> Dict:
        """
        Spawn ``parts`` parts and run until every one has left the belt.

        :param parts: number of parts the feeder spawns
        :param max_sim_time: stop after this many simulated seconds (default: generous)
        :param progress: called with the number of finished parts
        :return: the run summary
        """
        cell = self.cell
        cell.parts_to_spawn = int(parts)
        limit = max_sim_time if max_sim_time is not None else 60.0 + parts * 12.0
        start = time.perf_counter()
        cpu_start = time.process_time()
        finished_before = -1
        sim_start = cell.sim_time
        while cell.sim_time < limit:
            self.tick()
            if cell.gui:
                # with the viewer open, run at real time so a person can follow it
                ahead = (cell.sim_time - sim_start) - (time.perf_counter() - start)
                if ahead > 0:
                    time.sleep(ahead)
            locations = cell.locations()
            finished = sum(loc not in (LOC_BELT, LOC_GRIPPER) for loc in locations.values())
            if progress is not None and finished != finished_before:
                progress(finished)
                finished_before = finished
            if cell.parts_to_spawn == 0 and finished == len(locations) and self._job is None:
                break
        wall = time.perf_counter() - start
        return self.summary(wall, time.process_time() - cpu_start)

    def summary(self, wall_time_s: float, cpu_time_s: Optional[float] = None) -> Dict:
        """
        Return the run summary so far, computed from ground truth.

        :param wall_time_s: wall-clock duration of the run
        :param cpu_time_s: CPU time of this process during the run (the real-time factor
            against it does not depend on what else the machine runs)
        :return: the summary
        """
        s = self.stats
        preds = {p.id: p.condition for p in self.cell.parts() if p.inspected_frames > 0}
        return run_summary(self.cell, self.rules, preds, pick_attempts=s.pick_attempts,
                           pick_successes=s.pick_successes, drops=s.drops,
                           wall_time_s=wall_time_s, latencies_ms=s.latencies_ms,
                           extra={'belt_stops': s.belt_stops,
                                  'cpu_time_s': round(cpu_time_s, 3) if cpu_time_s else None,
                                  'real_time_factor_cpu': round(
                                      self.cell.sim_time / cpu_time_s, 3) if cpu_time_s
                                  else None,
                                  'plan_failures': s.plan_failures,
                                  'errors': s.errors[-20:],
                                  'mode': 'oracle'})

    def tick(self) -> None:
        """Advance the cell by ``control_every`` physics steps and run the oracle logic."""
        cell = self.cell
        if cell.sim_time + 1e-9 >= self._next_frame:
            t0 = time.perf_counter()
            cell.render()
            self.stats.latencies_ms['capture'].append((time.perf_counter() - t0) * 1e3)
            self._next_frame += 1.0 / self.camera_hz
        if self._job is not None:
            self._follow_job()
        elif self._home is not None:
            self._home.update()
            if self._home.done:
                self._home = None
        if self._job is None:
            self._start_job()
        self._belt_guard()
        cell.step(self.control_every)
        self._settle_pending()

    # ----------------------------------------------------------------- logic
    def _on_belt(self, p) -> bool:
        # a part just released above a bin is located 'belt' until it lands: not on the belt
        belt = self.cell.scenario.belt
        return (p.location == LOC_BELT and abs(p.position[1] - belt['y']) <= belt['width'] / 2
                and p.position[2] >= belt['top_z'] - 0.005)

    def _candidates(self):
        v = self.cell.belt_speed
        out = []
        for p in self.cell.parts():
            if not self._on_belt(p) or p.inspected_frames == 0:
                continue
            # lead: the arm needs ~1.2 s to get there, the part moves meanwhile
            if p.position[0] + v * 1.2 < self.pick_x_min:
                continue
            if self._attempts.get(p.id, 0) >= 3:
                continue
            out.append(p)
        out.sort(key=lambda p: -p.position[0])
        return out

    def _start_job(self) -> None:
        cell = self.cell
        for part in self._candidates():
            target = expected_bin(self.book, part.condition, part.color, part.shape,
                                  part.inspected_frames > 0)
            top = cell.part_top(part.id)
            q = cell.arm.joint_positions()
            v = cell.belt_speed
            t0 = time.perf_counter()
            try:
                traj = self.planner.plan_pick_place(q, (*top, part.yaw), target,
                                                    belt_velocity=(v, 0.0, 0.0))
                contact_x = top[0] + v * traj.marks['contact']
                if contact_x > self.pick_x_max:
                    if v > 0:
                        self._stop_belt()
                    traj = self.planner.plan_pick_place(q, (*top, part.yaw), target)
            except (UnreachableError, PlanningError) as exc:
                self.stats.plan_failures += 1
                self.stats.errors.append(f'part {part.id}: {exc}')
                self._attempts[part.id] = self._attempts.get(part.id, 0) + 1
                continue
            finally:
                self.stats.latencies_ms['plan'].append((time.perf_counter() - t0) * 1e3)
            if self._home is not None:
                self._home = None
            self._job = _Job(part.id, target, TrajectoryExecutor(cell, traj))
            self._attempts[part.id] = self._attempts.get(part.id, 0) + 1
            self.stats.pick_attempts += 1
            self._job.executor.update()
            return

    def _follow_job(self) -> None:
        job, cell = self._job, self.cell
        ex = job.executor
        ex.update()
        held = cell.arm.holding()
        if not job.checked and ex.passed('grasp_check'):
            job.checked = True
            if held != job.part_id:
                # grasp failed: let go, go home, the part may be retried
                cup = cell.arm.cup_position()
                top = cell.part_top(job.part_id) if cell.part(job.part_id).location == \
                    LOC_BELT else (float('nan'),) * 3
                self.stats.errors.append(
                    f'part {job.part_id}: grasp failed (held {held}); cup {cup.round(3)} '
                    f'part top {[round(v, 3) for v in top]}')
                job.failed = True
                cell.arm.set_suction(False)
                self._finish_job(go_home=True)
                return
        if job.checked and not job.released and not ex.passed('release') and held is None:
            self.stats.drops += 1
            job.failed = True
            self._finish_job(go_home=True)
            return
        if ex.passed('release'):
            job.released = True
        if ex.done:
            if not job.failed:
                self._success_pending[job.part_id] = job.bin
            self._finish_job(go_home=False)

    def _finish_job(self, go_home: bool) -> None:
        self._job = None
        if go_home:
            self._home = TrajectoryExecutor(self.cell, self.planner.plan_home(
                self.cell.arm.joint_positions()))
        self._resume_belt()

    def _settle_pending(self) -> None:
        if not self._success_pending:
            return
        for p in self.cell.parts():
            want = self._success_pending.get(p.id)
            if want is None or p.location in (LOC_BELT, LOC_GRIPPER):
                continue
            del self._success_pending[p.id]
            if p.location == want:
                self.stats.pick_successes += 1
            else:
                self.stats.drops += 1

    def _belt_guard(self) -> None:
        """Stop the belt when a part would leave the pick zone unpicked (stop-and-pick)."""
        cell = self.cell
        busy_with = self._job.part_id if self._job is not None else None
        for p in cell.parts():
            if self._on_belt(p) and p.id != busy_with and (
                    p.position[0] > self.pick_x_max - 0.02):
                if cell.belt_speed > 0:
                    self._stop_belt()
                return
        if self._job is None:
            self._resume_belt()

    def _stop_belt(self) -> None:
        if self._saved_speed is None:
            self._saved_speed = self.cell.belt_speed_percent
            self.cell.set_belt_speed(0.0)
            self.stats.belt_stops += 1

    def _resume_belt(self) -> None:
        if self._saved_speed is not None:
            self.cell.set_belt_speed(self._saved_speed)
            self._saved_speed = None


def run_oracle(parts: int, seed: int, scenario='default', gui: bool = False,
               rules=None, progress=None) -> Dict:
    """
    Build a cell, run the oracle over ``parts`` parts and return the summary.

    :param parts: number of parts
    :param seed: the run's seed
    :param scenario: scenario name, path or object
    :param gui: show the PyBullet GUI
    :param rules: ``sort`` rules
    :param progress: callback with the number of finished parts
    :return: the run summary
    """
    with WorkCell(scenario, seed=seed, gui=gui) as cell:
        runner = OracleRunner(cell, rules)
        try:
            return runner.run(parts, progress=progress)
        finally:
            runner.close()
