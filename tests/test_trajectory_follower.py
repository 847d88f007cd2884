"""Unit tests of the joint-trajectory follower (ros2_control JTC semantics, no ROS)."""

from lepton_robot.trajectory_follower import TrajectoryError, TrajectoryFollower
import numpy as np
import pytest

NAMES = ['j1', 'j2']


@pytest.mark.parametrize('velocities', [None, [[0, 0], [0, 0], [0, 0]]])
def test_follows_points_in_time_and_holds_the_last(velocities):
    """Desired positions pass through every point at its time, then hold the last one."""
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(10.0, [0, 0], NAMES, [1.0, 2.0, 3.0], [[1, 0], [2, 1], [3, 2]],
                     velocities, start_time=10.0)
    assert np.allclose(f.desired(10.5), [0.5, 0.0])
    for t, q in ((11.0, [1, 0]), (12.0, [2, 1])):
        assert np.allclose(f.desired(t), q)
    assert np.allclose(f.desired(13.5), [3, 2]) and not f.busy
    assert f.completed == 1


def test_reorders_joints_and_starts_now_for_past_stamps():
    """Joint order is mapped by name; a stamp in the past starts now."""
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(5.0, [0, 0], ['j2', 'j1'], [1.0], [[2.0, 1.0]], start_time=1.0)
    assert np.allclose(f.desired(6.0), [1.0, 2.0])


def test_empty_trajectory_holds_current_position():
    """No points: cancel and hold where the arm is."""
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(0.0, [0, 0], NAMES, [1.0], [[1, 1]])
    f.set_trajectory(0.5, [0.4, 0.4], NAMES, [], [])
    assert not f.busy and np.allclose(f.desired(2.0), [0.4, 0.4])


def test_path_tolerance_aborts_and_holds():
    """A tracking error beyond the tolerance aborts the trajectory and holds."""
    f = TrajectoryFollower(NAMES, path_tolerance=0.1)
    f.set_trajectory(0.0, [0, 0], NAMES, [1.0], [[1, 1]])
    desired = f.desired(0.5)
    assert not f.check([0.45, 0.5], desired)
    assert f.check([0.1, 0.5], desired)
    assert 'j1' in f.aborted and not f.busy
    assert np.allclose(f.desired(0.6), [0.1, 0.5])


@pytest.mark.parametrize('names, times, positions', [
    (['j1', 'x'], [1.0], [[0, 0]]),
    (NAMES, [1.0, 1.0], [[0, 0], [1, 1]]),
    (NAMES, [1.0], [[float('nan'), 0]]),
    (NAMES, [1.0], [[0, 0, 0]]),
])
def test_malformed_trajectories_raise_and_hold(names, times, positions):
    """Unknown joints, non-increasing times, NaN or bad sizes raise and hold."""
    f = TrajectoryFollower(NAMES)
    with pytest.raises(TrajectoryError):
        f.set_trajectory(0.0, [0.2, 0.3], names, times, positions)
    assert np.allclose(f.desired(1.0), [0.2, 0.3])


def test_a_future_trajectory_waits_for_its_start_and_takes_over_there():
    """Sent ahead, the next motion queues: the active one runs on until the new one's stamp."""
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(0.0, [0, 0], NAMES, [2.0], [[2, 2]], start_time=0.0)
    f.set_trajectory(0.5, [0.5, 0.5], NAMES, [1.0], [[0, 4]], start_time=1.0)
    assert f.busy
    assert np.allclose(f.desired(0.75), [0.75, 0.75])    # still the first trajectory
    assert np.allclose(f.desired(1.0), [1.0, 1.0])       # handover from where it is
    assert np.allclose(f.desired(1.5), [0.5, 2.5])       # halfway from (1, 1) to (0, 4)
    assert np.allclose(f.desired(3.0), [0, 4]) and not f.busy


def test_a_queued_trajectory_after_the_active_ends_starts_from_the_held_pose():
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(0.0, [0, 0], NAMES, [1.0], [[1, 1]], start_time=0.0)
    f.set_trajectory(0.2, [0.2, 0.2], NAMES, [1.0], [[3, 3]], start_time=2.0)
    assert np.allclose(f.desired(1.5), [1, 1]) and f.busy    # holds, the next still waits
    assert np.allclose(f.desired(2.5), [2, 2])
    assert f.completed == 1


@pytest.mark.parametrize('second', ['empty', 'now'])
def test_an_empty_or_immediate_trajectory_drops_the_queued_one(second):
    f = TrajectoryFollower(NAMES)
    f.set_trajectory(0.0, [0, 0], NAMES, [2.0], [[2, 2]], start_time=0.0)
    f.set_trajectory(0.5, [0.5, 0.5], NAMES, [1.0], [[0, 4]], start_time=1.5)
    if second == 'empty':
        f.set_trajectory(0.6, [0.6, 0.6], NAMES, [], [])
        assert np.allclose(f.desired(3.0), [0.6, 0.6]) and not f.busy
    else:
        f.set_trajectory(0.6, [0.6, 0.6], NAMES, [0.4], [[-1, -1]], start_time=0.0)
        assert np.allclose(f.desired(1.0), [-1, -1])
        assert np.allclose(f.desired(3.0), [-1, -1]) and not f.busy
