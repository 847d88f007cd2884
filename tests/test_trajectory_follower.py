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
