"""
Pinhole camera with plumb_bob distortion: the calibrated overhead camera of the cell.

Pure numpy, no pybullet: the detector uses it to map image points on the belt to the
``world`` frame. The optical frame follows REP-103: z forward (out of the lens), x right,
y down. ``P`` is ``[K | 0]``: the rectified image has the same intrinsics as the raw one.
"""

from dataclasses import dataclass
import math
from typing import Any, Dict, Mapping

from lepton_robot.errors import ConfigError
import numpy as np

#: world z of the belt surface in the default scenario (parts sit on it)
BELT_TOP_Z = 0.10

_UNDISTORT_ITERATIONS = 20


def look_down_pose(position, yaw: float = 0.0, tilt_x: float = 0.0,
                   tilt_y: float = 0.0) -> np.ndarray:
    """
    Return ``world_T_camera`` for a camera above the belt looking straight down.

    With zero angles the image x axis is world +x (downstream) and image y is world -y.

    :param position: optical centre (x, y, z) in the world
    :param yaw: rotation about the optical axis, radians
    :param tilt_x: small rotation about the optical x axis, radians
    :param tilt_y: small rotation about the optical y axis, radians
    :return: 4x4 homogeneous transform
    """
    base = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    cz, sz = math.cos(yaw), math.sin(yaw)
    cx, sx = math.cos(tilt_x), math.sin(tilt_x)
    cy, sy = math.cos(tilt_y), math.sin(tilt_y)
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1.0]])
    rx = np.array([[1.0, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1.0, 0], [-sy, 0, cy]])
    out = np.eye(4)
    out[:3, :3] = base @ rz @ rx @ ry
    out[:3, 3] = np.asarray(position, dtype=float)
    return out


@dataclass
class CameraModel:
    """
    A calibrated camera: intrinsics ``K``, distortion ``D`` (plumb_bob), ``P`` and pose.

    :ivar width: image width, pixels
    :ivar height: image height, pixels
    :ivar K: 3x3 intrinsic matrix
    :ivar D: (5,) distortion k1, k2, p1, p2, k3
    :ivar P: 3x4 projection matrix of the rectified image
    :ivar world_T_camera: 4x4 pose of the optical frame in the world
    :ivar frame_id: name of the optical frame
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    P: np.ndarray
    world_T_camera: np.ndarray
    frame_id: str = 'camera_optical'

    def __post_init__(self):
        """Normalise arrays and check shapes."""
        self.K = np.asarray(self.K, dtype=float).reshape(3, 3)
        self.D = np.asarray(self.D, dtype=float).reshape(5)
        self.P = np.asarray(self.P, dtype=float).reshape(3, 4)
        self.world_T_camera = np.asarray(self.world_T_camera, dtype=float).reshape(4, 4)
        if not all(np.isfinite(a).all() for a in (self.K, self.D, self.P,
                                                  self.world_T_camera)):
            raise ConfigError('camera model has non-finite values')
        if self.width <= 0 or self.height <= 0:
            raise ConfigError(f'camera size must be positive, got {self.width}x{self.height}')
        self.camera_T_world = np.linalg.inv(self.world_T_camera)

    @classmethod
    def from_intrinsics(cls, width: int, height: int, fx: float, fy: float, cx: float,
                        cy: float, distortion, world_T_camera,
                        frame_id: str = 'camera_optical') -> 'CameraModel':
        """Build a model from focal lengths, principal point, distortion and pose."""
        k = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        p = np.hstack([k, np.zeros((3, 1))])
        return cls(int(width), int(height), k, np.asarray(distortion, float), p,
                   np.asarray(world_T_camera, float), frame_id)

    @property
    def position(self) -> np.ndarray:
        """Optical centre in the world frame."""
        return self.world_T_camera[:3, 3].copy()

    def world_to_camera(self, xyz: np.ndarray) -> np.ndarray:
        """Transform (N, 3) world points into the optical frame."""
        xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
        return xyz @ self.camera_T_world[:3, :3].T + self.camera_T_world[:3, 3]

    def distort(self, xn: np.ndarray) -> np.ndarray:
        """Apply plumb_bob distortion to (N, 2) normalised image coordinates."""
        k1, k2, p1, p2, k3 = self.D
        x, y = xn[:, 0], xn[:, 1]
        r2 = x * x + y * y
        radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
        yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def undistort(self, xd: np.ndarray) -> np.ndarray:
        """Invert :meth:`distort` (fixed-point iteration) for (N, 2) normalised points."""
        if not np.any(self.D):
            return xd.copy()
        xn = xd.copy()
        for _ in range(_UNDISTORT_ITERATIONS):
            err = self.distort(xn) - xd
            xn = xn - err
        return xn

    def project_ideal(self, xyz: np.ndarray) -> np.ndarray:
        """Project (N, 3) world points with the undistorted pinhole ``P``: (N, 2) pixels."""
        pc = self.world_to_camera(xyz)
        z = np.where(np.abs(pc[:, 2]) < 1e-9, 1e-9, pc[:, 2])
        uv = pc @ self.P[:, :3].T + self.P[:, 3]
        return uv[:, :2] / z[:, None]

    def world_to_pixel(self, xyz: np.ndarray) -> np.ndarray:
        """
        Project world points into the raw (distorted) image.

        :param xyz: (N, 3) or (3,) world points in front of the camera
        :return: (N, 2) pixel coordinates (u right, v down)
        """
        pc = self.world_to_camera(xyz)
        z = np.where(np.abs(pc[:, 2]) < 1e-9, 1e-9, pc[:, 2])
        xd = self.distort(pc[:, :2] / z[:, None])
        return xd @ self.K[:2, :2].T + self.K[:2, 2]

    def pixel_to_world(self, uv: np.ndarray, plane_z: float) -> np.ndarray:
        """
        Intersect the rays through raw image pixels with the plane ``z = plane_z``.

        :param uv: (N, 2) or (2,) pixel coordinates in the raw image
        :param plane_z: world z of the plane (e.g. :data:`BELT_TOP_Z` + part height)
        :return: (N, 3) world points
        :raises ValueError: when a ray is parallel to the plane or points away from it
        """
        uv = np.asarray(uv, dtype=float).reshape(-1, 2)
        kinv = np.linalg.inv(self.K)
        xd = (uv - self.K[:2, 2]) @ kinv[:2, :2].T
        xn = self.undistort(xd)
        rays = np.hstack([xn, np.ones((len(xn), 1))]) @ self.world_T_camera[:3, :3].T
        origin = self.world_T_camera[:3, 3]
        with np.errstate(divide='ignore', invalid='ignore'):
            s = (plane_z - origin[2]) / rays[:, 2]
        if not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f'pixel rays do not hit the plane z={plane_z}')
        return origin + rays * s[:, None]

    def in_image(self, uv: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Return a boolean mask of (N, 2) pixels inside the image (minus ``margin``)."""
        uv = np.asarray(uv, dtype=float).reshape(-1, 2)
        return ((uv[:, 0] >= margin) & (uv[:, 0] <= self.width - 1 - margin)
                & (uv[:, 1] >= margin) & (uv[:, 1] <= self.height - 1 - margin))

    def to_dict(self) -> Dict[str, Any]:
        """Return a JSON-serialisable dict (``CameraInfo`` fields plus the pose)."""
        return {'width': self.width, 'height': self.height,
                'distortion_model': 'plumb_bob',
                'K': self.K.reshape(-1).tolist(), 'D': self.D.tolist(),
                'P': self.P.reshape(-1).tolist(),
                'R': np.eye(3).reshape(-1).tolist(),
                'world_T_camera': self.world_T_camera.tolist(),
                'frame_id': self.frame_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> 'CameraModel':
        """
        Rebuild a model from :meth:`to_dict` output.

        :param d: the mapping
        :return: the camera model
        :raises ConfigError: when keys are missing or malformed
        """
        try:
            return cls(int(d['width']), int(d['height']), np.asarray(d['K'], float),
                       np.asarray(d['D'], float), np.asarray(d['P'], float),
                       np.asarray(d['world_T_camera'], float),
                       str(d.get('frame_id', 'camera_optical')))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f'bad camera model dict: {exc}') from exc


def camera_from_scenario(cam: Mapping[str, Any], rng=None) -> CameraModel:
    """
    Build the run's camera from a scenario ``camera`` section, with its mounting jitter.

    :param cam: the scenario's camera section
    :param rng: numpy Generator for the jitter; ``None`` gives the nominal camera
    :return: the calibrated camera model (jitter included: it is what calibration measures)
    """
    pos = np.asarray(cam['position'], float)
    angles = np.zeros(3)
    if rng is not None:
        pos = pos + rng.uniform(-1, 1, 3) * cam['jitter_position_m']
        angles = np.radians(rng.uniform(-1, 1, 3) * cam['jitter_angle_deg'])
    pose = look_down_pose(pos, yaw=angles[0], tilt_x=angles[1], tilt_y=angles[2])
    return CameraModel.from_intrinsics(cam['width'], cam['height'], cam['fx'], cam['fy'],
                                       cam['cx'], cam['cy'], cam['distortion'], pose)
