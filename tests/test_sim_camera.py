"""Camera model: pixel <-> world round trip, serialisation, errors (pure numpy)."""

from lepton_robot.errors import ConfigError
from lepton_robot.sim.camera import BELT_TOP_Z, camera_from_scenario, CameraModel
from lepton_robot.sim.scenario import Scenario
import numpy as np
import pytest


@pytest.fixture(scope='module')
def camera():
    return camera_from_scenario(Scenario.load().camera, np.random.default_rng(3))


@pytest.mark.parametrize('plane_z', [BELT_TOP_Z, BELT_TOP_Z + 0.01, BELT_TOP_Z + 0.045])
def test_pixel_world_round_trip_on_belt_planes(camera, plane_z):
    rng = np.random.default_rng(0)
    uv = rng.uniform([0, 0], [camera.width - 1, camera.height - 1], (200, 2))
    world = camera.pixel_to_world(uv, plane_z)
    assert np.allclose(world[:, 2], plane_z)
    assert np.abs(camera.world_to_pixel(world) - uv).max() < 1e-6


def test_world_pixel_round_trip_and_orientation(camera):
    belt = Scenario.load().belt
    xyz = np.array([[-0.55, belt['y'], BELT_TOP_Z], [-0.50, belt['y'], BELT_TOP_Z],
                    [-0.55, belt['y'] + 0.05, BELT_TOP_Z]])
    uv = camera.world_to_pixel(xyz)
    assert np.allclose(camera.pixel_to_world(uv, BELT_TOP_Z), xyz, atol=1e-9)
    # image x follows the belt (+x world), image y goes to -y world
    assert uv[1, 0] > uv[0, 0] + 10
    assert uv[2, 1] < uv[0, 1] - 10


def test_distortion_is_applied_and_inverted(camera):
    assert np.any(camera.D)
    xn = np.array([[0.3, -0.2], [-0.25, 0.2]])
    assert not np.allclose(camera.distort(xn), xn)
    assert np.allclose(camera.undistort(camera.distort(xn)), xn, atol=1e-10)


def test_dict_round_trip(camera):
    again = CameraModel.from_dict(camera.to_dict())
    assert np.allclose(again.K, camera.K) and np.allclose(again.P, camera.P)
    assert np.allclose(again.world_T_camera, camera.world_T_camera)
    assert camera.to_dict()['distortion_model'] == 'plumb_bob'


def test_bad_dict_and_ray_missing_plane(camera):
    with pytest.raises(ConfigError, match='bad camera model'):
        CameraModel.from_dict({'width': 10})
    with pytest.raises(ValueError, match='do not hit'):
        camera.pixel_to_world(np.array([[10.0, 10.0]]), plane_z=5.0)
