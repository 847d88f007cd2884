"""Arm planning: IK reaches its targets, clear errors, trajectories respect the limits."""

import math

from lepton_robot.errors import LeptonError
from lepton_robot.sim.arm import A_MAX, ArmPlanner, Q_MAX, Q_MIN, UnreachableError, V_MAX
import numpy as np
import pytest


@pytest.fixture(scope='module')
def planner():
    p = ArmPlanner()
    yield p
    p.close()


PICK_TARGETS = [(x, y, z) for x in (-0.12, 0.05, 0.22) for y in (0.4, 0.5, 0.6)
                for z in (0.11, 0.15)]


@pytest.mark.parametrize('xyz', PICK_TARGETS + [(0.52, 0.14, 0.32), (0.52, -0.14, 0.32),
                                                (0.40, -0.40, 0.32)])
def test_ik_reaches_targets(planner, xyz):
    q = planner.ik(xyz)
    assert np.all(q >= Q_MIN - 1e-9) and np.all(q <= Q_MAX + 1e-9)
    cup, quat = planner.fk(q)
    assert np.linalg.norm(cup - xyz) < 0.002
    rot = np.array(planner._client.getMatrixFromQuaternion(quat)).reshape(3, 3)
    assert rot[2, 2] < -0.995  # the tool points down


@pytest.mark.parametrize('xyz, message', [
    ((1.5, 0.0, 0.2), 'beyond the Panda reach'),
    ((0.3, 0.3, -0.1), 'below the floor'),
    ((float('nan'), 0.5, 0.2), 'finite'),
    ((0.1, float('inf'), 0.2), 'finite'),
])
def test_unreachable_poses_are_clear_errors(planner, xyz, message):
    with pytest.raises(UnreachableError, match=message):
        planner.ik(xyz)
    assert issubclass(UnreachableError, LeptonError)


def test_pick_place_rejects_bad_input(planner):
    with pytest.raises(UnreachableError, match='4 finite'):
        planner.plan_pick_place(planner.home, (0.0, 0.5, math.nan, 0.0), 'reject')
    with pytest.raises(ValueError, match='unknown bin'):
        planner.plan_pick_place(planner.home, (0.0, 0.5, 0.15, 0.0), 'trash')
    with pytest.raises(UnreachableError, match='reach'):
        planner.plan_pick_place(planner.home, (1.2, 0.5, 0.15, 0.0), 'reject')


@pytest.mark.parametrize('q1', [np.array([1.0, 0.3, -0.5, -1.5, 0.4, 2.0, 0.0]),
                                np.array([-2.0, -1.0, 1.0, -2.8, -1.0, 3.0, 2.0])])
def test_joint_move_respects_limits(planner, q1):
    traj = planner.joint_move(planner.home, q1)
    v, a = traj.limit_ratios(planner.v_max, planner.a_max)
    assert v <= 1.0 + 1e-6 and a <= 1.05
    assert np.allclose(traj.positions[0], planner.home)
    assert np.allclose(traj.positions[-1], q1)
    assert np.allclose(traj.velocities[[0, -1]], 0.0)
    with pytest.raises(UnreachableError, match='joint limits'):
        planner.joint_move(planner.home, Q_MAX + 0.5)


@pytest.mark.parametrize('bin_name', ['accept', 'reject', 'rework'])
@pytest.mark.parametrize('speed', [0.0, 0.05, 0.1])
def test_pick_place_meets_the_moving_part_within_limits(planner, bin_name, speed):
    p0 = np.array([-0.1, 0.55, 0.15])
    traj = planner.plan_pick_place(planner.home, (*p0, 0.3), bin_name,
                                   belt_velocity=(speed, 0.0, 0.0))
    v, a = traj.limit_ratios(V_MAX, A_MAX)
    assert v <= 1.0 and a <= 1.0
    marks = traj.marks
    assert 0 < marks['contact'] < marks['grasp_check'] < marks['release'] <= marks['end']
    on = [t for t, s in traj.suction if s]
    off = [t for t, s in traj.suction if not s]
    assert on and on[0] < marks['contact'] and off and off[0] == pytest.approx(marks['release'])
    # the cup is on the part's top face when the part gets there
    q, _ = traj.sample(marks['contact'])
    cup, _ = planner.fk(q)
    assert np.linalg.norm(cup - (p0 + [speed * marks['contact'], 0, 0])) < 0.004
    # and above the bin when it lets go
    q, _ = traj.sample(marks['release'])
    cup, _ = planner.fk(q)
    bx, by, _ = planner.bin_positions[bin_name]
    assert abs(cup[0] - bx) < 0.02 and abs(cup[1] - by) < 0.02
    assert cup[2] > planner.bin_size[2] + 0.1


def test_plan_home_lifts_first(planner):
    low = planner.ik((0.05, 0.5, 0.13))
    traj = planner.plan_home(low)
    assert np.allclose(traj.positions[-1], planner.home)
    cups = np.array([planner.fk(q)[0] for q in traj.positions[::5]])
    # it goes up before it moves sideways
    first_far = np.argmax(np.linalg.norm(cups[:, :2] - cups[0, :2], axis=1) > 0.05)
    assert cups[first_far, 2] > 0.2


def test_simulated_arm_tracks_a_trajectory_and_suction_grasps():
    """Play a pick on the simulated arm: it follows the plan and the cup picks the part."""
    from lepton_robot.sim.cell import WorkCell
    from lepton_robot.sim.executor import TrajectoryExecutor
    with WorkCell(seed=2) as cell:
        cell.feeder_enabled = False
        cell.set_belt_speed(50)
        pid = cell.spawn_part('block', 'blue', 'ok', x=-0.25, y=0.5, yaw=0.2)
        cell.step(24)
        planner = ArmPlanner(cell.scenario)
        try:
            traj = planner.plan_pick_place(cell.arm.joint_positions(),
                                           (*cell.part_top(pid), 0.2), 'rework',
                                           belt_velocity=(cell.belt_speed, 0.0, 0.0))
        finally:
            planner.close()
        ex = TrajectoryExecutor(cell, traj)
        worst = 0.0
        held_at_check = None
        while not ex.done:
            ex.update()
            cell.step(2)
            q_ref, _ = traj.sample(ex.elapsed)
            worst = max(worst, float(np.max(np.abs(cell.arm.joint_positions() - q_ref))))
            if held_at_check is None and ex.passed('grasp_check'):
                held_at_check = cell.arm.holding()
        cell.step_for(1.0)
        assert held_at_check == pid
        assert worst < 0.05, f'tracking error {worst:.3f} rad'
        assert cell.part(pid).location == 'rework'


@pytest.mark.parametrize('z_error, press, grasped', [
    (0.0, 0.0, True),          # exact top face, no press: seals at the top
    (0.005, 0.0, False),       # top reported 5 mm too high (a short part): the cup stops short
    (0.005, 0.006, True),      # the same with the controller's press depth: seals on the way
    (-0.005, 0.006, True),     # a tall part: the bellows absorb 11 mm, the part stays put
    (0.010, 0.006, False),     # a block 10 mm under its nominal height: the first try misses
    (0.010, 0.010, True),      # the controller's retry, 4 mm deeper (retry_press_step_m)
])
def test_bellows_cup_covers_a_part_height_error(z_error, press, grasped):
    """A top face known to +-5 mm is picked when the cup presses a little below it."""
    from lepton_robot.sim.cell import WorkCell
    from lepton_robot.sim.executor import TrajectoryExecutor
    with WorkCell(seed=3) as cell:
        cell.feeder_enabled = False
        cell.set_belt_speed(50)
        pid = cell.spawn_part('block', 'red', 'ok', x=-0.25, y=0.5, yaw=0.0)
        cell.step(24)
        top = np.asarray(cell.part_top(pid))
        planner = ArmPlanner(cell.scenario)
        try:
            traj = planner.plan_pick_place(cell.arm.joint_positions(),
                                           (top[0], top[1], top[2] + z_error, 0.0), 'rework',
                                           belt_velocity=(cell.belt_speed, 0.0, 0.0),
                                           press_depth=press)
        finally:
            planner.close()
        ex = TrajectoryExecutor(cell, traj)
        held_at_check = None
        lowest_top = math.inf
        while not ex.done:
            ex.update()
            cell.step(2)
            if not ex.passed('grasp_check'):
                lowest_top = min(lowest_top, cell.part_top(pid)[2])
            if held_at_check is None and ex.passed('grasp_check'):
                held_at_check = cell.arm.holding()
        cell.step_for(1.0)
        assert (held_at_check == pid) == grasped
        assert (cell.part(pid).location == 'rework') == grasped
        # the compressing bellows never push the part into the belt
        assert lowest_top > top[2] - 0.002


def test_press_depth_beyond_the_stroke_is_refused(planner):
    with pytest.raises(ValueError, match='press_depth'):
        planner.plan_pick_place(planner.home, (0.0, 0.5, 0.15, 0.0), 'reject',
                                press_depth=0.05)


@pytest.fixture(scope='module')
def fast_planner():
    p = ArmPlanner('fast')
    yield p
    p.close()


def test_pick_cycle_fits_the_throughput_goal(fast_planner):
    """In the 'fast' scenario: bin -> part -> bin in ~3 s (20 parts/min), within limits."""
    planner = fast_planner
    durations = []
    for bin_name in ('accept', 'reject'):
        for x in (-0.1, 0.05, 0.2):
            q_bin = planner.ik((*planner.bin_positions[bin_name][:2], planner.clearance_z))
            traj = planner.plan_pick_place(q_bin, (x, 0.5, 0.14, 0.0), bin_name,
                                           belt_velocity=(0.05, 0.0, 0.0))
            durations.append(traj.duration)
            v, a = traj.limit_ratios(V_MAX, A_MAX)
            assert v <= 1.0 and a <= 1.0
            # while carried, the tallest part hangs below the cup: it clears the parts on
            # the belt and the bin walls (the planner raises PlanningError otherwise)
            t0, t1 = traj.marks['grasp_check'], traj.marks['release']
            cups = np.array([planner.fk(q)[0] for t, q in zip(traj.times, traj.positions)
                             if t0 <= t <= t1])
            assert cups[:, 2].min() >= planner.belt_top_z + 2 * planner.part_height - 1e-3
    # the far end of the pick zone to the far bin is the worst case
    assert max(durations) < 3.2 and sum(durations) / len(durations) < 2.9
