"""
The simulated work cell: PyBullet physics (belt, parts, Panda arm, bins) + the camera.

:class:`WorkCell` owns its own bullet client (never the global connection), so several cells
run side by side; it is headless (DIRECT) unless ``gui=True``. Every random choice comes from
the seed: parts, defects, lighting, camera mounting jitter, feeder timing. The camera image
is drawn by :class:`~lepton_robot.sim.render.Renderer` from the parts' PyBullet poses with
the calibrated :class:`~lepton_robot.sim.camera.CameraModel`; ``render(mode='pybullet')``
uses PyBullet's own renderer with the same intrinsics, for debugging.
"""

from dataclasses import dataclass, field
import functools
import math
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import COLORS, CONDITIONS, SHAPES
from lepton_robot.sim.arm import CUP_OFFSET, CUP_STROKE, HOME_Q, JOINT_NAMES, SEAL_GAP
from lepton_robot.sim.camera import camera_from_scenario, CameraModel
from lepton_robot.sim.parts import (make_appearance, make_geometry, PartAppearance,
                                    PartGeometry)
from lepton_robot.sim.render import DrawPart, Lighting, Renderer, sample_lighting
from lepton_robot.sim.scenario import load_scenario, Scenario
import numpy as np

PANDA_URDF = 'franka_panda/panda.urdf'
ARM_JOINTS = tuple(range(7))
FINGER_JOINTS = (9, 10)
TCP_LINK = 11
#: maximum joint torques (N m) of the Panda, used as position-control force limits
JOINT_FORCES = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
_GAINS_P = (0.2,) * 7
_GAINS_D = (1.0,) * 7

LOC_BELT, LOC_GRIPPER, LOC_FLOOR, LOC_BELT_END = 'belt', 'gripper', 'floor', 'belt_end'


@dataclass
class PartTruth:
    """Ground truth of one spawned part (what the simulation knows, not the detector)."""

    id: int  # noqa: A003 - the contract names it id
    shape: str
    color: str
    condition: str
    position: Tuple[float, float, float]
    yaw: float
    location: str
    inspected_frames: int
    spawn_time: float = 0.0
    end_time: Optional[float] = None
    picked: int = 0


@dataclass
class _Part:
    id: int  # noqa: A003 - the contract names it id
    body: Optional[int]
    shape: str
    color: str
    condition: str
    geometry: PartGeometry
    appearance: PartAppearance
    location: str = LOC_BELT
    inspected_frames: int = 0
    spawn_time: float = 0.0
    end_time: Optional[float] = None
    position: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    orientation: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    picked: int = 0
    rest_z: float = 0.0
    extra: Dict = field(default_factory=dict)


def run_camera(scenario: Scenario, seed: int) -> CameraModel:
    """
    Return the calibrated camera of the cell run with ``seed`` (mounting jitter included).

    This is what a calibration of that run's camera measures; the launcher hands it to the
    detector as its ``camera.json`` so positions are exact, as on a calibrated real cell.
    """
    return camera_from_scenario(scenario.camera, np.random.default_rng([int(seed), 3]))


def _weighted_choice(rng: np.random.Generator, weights: Dict[str, float]) -> str:
    names = list(weights)
    w = np.asarray([weights[n] for n in names], float)
    return names[int(rng.choice(len(names), p=w / w.sum()))]


class SimArm:
    """
    The simulated Franka Panda: position-controlled joints and a suction tool.

    The suction cup sits at ``panda_grasptarget``; when suction is on, a part whose top face
    is at the cup is attached with a fixed constraint (checked every physics step).

    The cup is a bellows cup: it seals from :data:`~lepton_robot.sim.arm.SEAL_GAP` above the
    top face and compresses by up to :data:`~lepton_robot.sim.arm.CUP_STROKE` when the arm
    keeps descending after the seal (the part stays on the belt meanwhile). A planner that
    knows a part's height only to a few millimetres (a 2-D detector) therefore aims a little
    below the top face, as it would on a real cell.
    """

    joint_names = JOINT_NAMES

    def __init__(self, cell: 'WorkCell', base_position: Sequence[float]):
        """Load the Panda into ``cell``'s client at ``base_position``."""
        import pybullet_data
        self._cell = cell
        c = cell.client
        c.setAdditionalSearchPath(pybullet_data.getDataPath())
        self.body = c.loadURDF(PANDA_URDF, basePosition=list(base_position),
                               useFixedBase=True)
        self.base_position = np.asarray(base_position, float)
        for j, q in zip(ARM_JOINTS, HOME_Q):
            c.resetJointState(self.body, j, float(q))
        for j in FINGER_JOINTS:
            c.resetJointState(self.body, j, 0.0)
            c.setJointMotorControl2(self.body, j, cell.pb.POSITION_CONTROL, targetPosition=0.0,
                                    force=20.0)
        cid = c._client
        pb = cell.pb
        self._joint_states = functools.partial(pb.getJointStates, physicsClientId=cid)
        self._link_state = functools.partial(pb.getLinkState, physicsClientId=cid)
        self._motors = functools.partial(pb.setJointMotorControlArray, physicsClientId=cid)
        self._target = HOME_Q.copy()
        self.command_positions(HOME_Q)
        self._suction = False
        self._held: Optional[int] = None
        self._constraint: Optional[int] = None
        #: cup z when the seal was made and the bellows compression applied, m
        self._seal_z = 0.0
        self._compression = 0.0
        #: closest vertical miss (cup face minus top face, m) while suction was on and
        #: nothing was held: for the "nothing held" diagnostic
        self.closest_miss: Optional[float] = None

    def joint_positions(self) -> np.ndarray:
        """Return the 7 arm joint angles (rad)."""
        states = self._joint_states(self.body, ARM_JOINTS)
        return np.array([s[0] for s in states])

    def joint_velocities(self) -> np.ndarray:
        """Return the 7 arm joint velocities (rad/s)."""
        states = self._joint_states(self.body, ARM_JOINTS)
        return np.array([s[1] for s in states])

    def command_positions(self, q: np.ndarray, qd: Optional[np.ndarray] = None) -> None:
        """
        Set position targets (and optional velocity feed-forward) for the 7 joints.

        :param q: (7,) joint angles, rad
        :param qd: (7,) joint velocities, rad/s
        :raises ValueError: on a wrong shape or non-finite values
        """
        q = np.asarray(q, float).reshape(-1)
        if q.shape != (7,) or not np.all(np.isfinite(q)):
            raise ValueError(f'command_positions needs 7 finite joint angles, got {q}')
        qd = np.zeros(7) if qd is None else np.asarray(qd, float).reshape(7)
        self._target = q.copy()
        self._motors(self.body, ARM_JOINTS, self._cell.pb.POSITION_CONTROL,
                     targetPositions=q.tolist(), targetVelocities=qd.tolist(),
                     forces=JOINT_FORCES, positionGains=_GAINS_P, velocityGains=_GAINS_D)

    def tcp_pose(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return the suction cup (``panda_grasptarget``) position and quaternion."""
        state = self._link_state(self.body, TCP_LINK, computeForwardKinematics=True)
        return np.array(state[4]), np.array(state[5])

    def tcp_speed(self) -> float:
        """Return the speed (m/s) of the suction cup."""
        state = self._link_state(self.body, TCP_LINK, computeLinkVelocity=1,
                                 computeForwardKinematics=True)
        return float(np.linalg.norm(state[6]))

    def cup_position(self) -> np.ndarray:
        """Return the world position of the suction cup's face."""
        pos, quat = self.tcp_pose()
        rot = np.array(self._cell.client.getMatrixFromQuaternion(quat)).reshape(3, 3)
        return pos + rot[:, 2] * CUP_OFFSET

    @property
    def suction(self) -> bool:
        """Whether the suction is on."""
        return self._suction

    def set_suction(self, on: bool) -> None:
        """Switch the suction on (attaches a part at the cup) or off (releases it)."""
        if on and not self._suction:
            self.closest_miss = None
        self._suction = bool(on)
        if on:
            self._try_attach()
        elif self._held is not None:
            self._cell.client.removeConstraint(self._constraint)
            part = self._cell._parts.get(self._held)
            if part is not None and part.body is not None:
                for link in (7, 8, 9, 10, 11):
                    self._cell.client.setCollisionFilterPair(self.body, part.body, link, -1, 1)
                part.location = LOC_BELT
            self._held, self._constraint = None, None

    def holding(self) -> Optional[int]:
        """Return the id of the part held by the suction cup, or ``None``."""
        return self._held

    def _update(self) -> None:
        if self._suction and self._held is None:
            self._try_attach()
        elif self._held is not None:
            self._compress()

    def _compress(self) -> None:
        """Let the bellows absorb the arm's travel below the seal height (part stays put)."""
        c = self._cell.client
        compression = min(max(self._seal_z - float(self.cup_position()[2]), 0.0), CUP_STROKE)
        if abs(compression - self._compression) < 2e-4:
            return
        self._compression = compression
        part = self._cell._parts.get(self._held)
        if part is None or part.body is None:
            return
        _, orn = c.getBasePositionAndOrientation(part.body)
        rot = np.array(c.getMatrixFromQuaternion(orn)).reshape(3, 3)
        # the constraint pins the part's child pivot to the cup: shifting the pivot down
        # by the compression (in world z) holds the part that much higher relative to the cup
        pivot = rot.T @ np.array([0.0, 0.0, -compression])
        c.changeConstraint(self._constraint, jointChildPivot=pivot.tolist(), maxForce=300.0)

    def _try_attach(self) -> None:
        if self._held is not None:
            return
        cell = self._cell
        c = cell.client
        tcp, tcp_q = self.tcp_pose()
        cup = self.cup_position()
        for part in cell._parts.values():
            if part.body is None or part.location != LOC_BELT:
                continue
            pos, orn = c.getBasePositionAndOrientation(part.body)
            rot = np.array(c.getMatrixFromQuaternion(orn)).reshape(3, 3)
            top = np.asarray(pos) + rot @ np.array([0.0, 0.0, part.geometry.half_extents[2]])
            radius = 0.8 * min(part.geometry.half_extents[:2])
            if np.hypot(*(cup[:2] - top[:2])) > radius:
                continue
            gap = float(cup[2] - top[2])
            if self.closest_miss is None or abs(gap) < abs(self.closest_miss):
                self.closest_miss = gap
            if -CUP_STROKE <= gap <= SEAL_GAP:
                inv_p, inv_q = c.invertTransform(tcp.tolist(), tcp_q.tolist())
                rel_p, rel_q = c.multiplyTransforms(inv_p, inv_q, pos, orn)
                self._constraint = c.createConstraint(
                    self.body, TCP_LINK, part.body, -1, cell.pb.JOINT_FIXED, [0, 0, 0],
                    parentFramePosition=rel_p, childFramePosition=[0, 0, 0],
                    parentFrameOrientation=rel_q)
                c.changeConstraint(self._constraint, maxForce=300.0)
                for link in (7, 8, 9, 10, 11):
                    c.setCollisionFilterPair(self.body, part.body, link, -1, 0)
                self._held = part.id
                self._seal_z, self._compression = float(cup[2]), 0.0
                part.location = LOC_GRIPPER
                part.picked += 1
                return


class WorkCell:
    """
    A seeded simulated inspection-and-sorting cell.

    :param scenario: a :class:`Scenario`, a scenario name or a YAML path
    :param seed: the seed of everything random in the run
    :param gui: open the PyBullet GUI (one per process) instead of running headless
    :param with_arm: load the Panda (datasets do not need it)
    :param parts_to_spawn: how many parts the feeder spawns (``None``: no limit)
    :raises ConfigError: on a bad scenario
    """

    def __init__(self, scenario: Union[Scenario, str] = 'default', seed: int = 0,
                 gui: bool = False, with_arm: bool = True,
                 parts_to_spawn: Optional[int] = None):
        import pybullet
        from pybullet_utils import bullet_client
        self.scenario = load_scenario(scenario)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f'seed must be a non-negative integer, got {seed!r}')
        self.seed = int(seed)
        if gui and sys.platform.startswith('linux') and not (
                os.environ.get('DISPLAY') or os.environ.get('WAYLAND_DISPLAY')):
            # PyBullet's GUI calls exit() when it cannot reach an X server: fail cleanly first
            raise ConfigError('the PyBullet GUI needs a display (DISPLAY is not set); '
                              'run headless without --gui')
        self.gui = bool(gui)
        self.pb = pybullet
        self.client = bullet_client.BulletClient(
            connection_mode=pybullet.GUI if gui else pybullet.DIRECT)
        # bound once: BulletClient's attribute lookup costs more than the call itself
        cid = self.client._client
        self._get_pose = functools.partial(pybullet.getBasePositionAndOrientation,
                                           physicsClientId=cid)
        self._set_velocity = functools.partial(pybullet.resetBaseVelocity, physicsClientId=cid)
        self._step_physics = functools.partial(pybullet.stepSimulation, physicsClientId=cid)
        sc = self.scenario
        self.dt = float(sc.physics['dt'])
        self.client.setTimeStep(self.dt)
        self.client.setGravity(0, 0, float(sc.physics['gravity']))
        self._rng_feeder = np.random.default_rng([self.seed, 1])
        self._rng_light = np.random.default_rng([self.seed, 2])
        self.camera: CameraModel = run_camera(sc, self.seed)
        self.renderer = Renderer(self.camera, sc.belt, np.random.default_rng([self.seed, 4]))
        self.lighting: Lighting = sample_lighting(sc.lighting, sc.camera['noise_std'],
                                                  self._rng_light)
        self.sim_time = 0.0
        self.belt_travel = 0.0
        self.belt_speed_percent = float(sc.belt['speed_percent'])
        self.feeder_enabled = True
        self.parts_to_spawn = parts_to_spawn
        self.frames_rendered = 0
        self._parts: Dict[int, _Part] = {}
        self._next_id = 0
        self._next_spawn = 0.5
        self._steps = 0
        belt = sc.belt
        self.belt_top_z = float(belt['top_z'])
        self._build_static(sc)
        self.bin_positions = {name: tuple(pos) for name, pos in sc.arm['bins'].items()}
        self.arm: Optional[SimArm] = SimArm(self, sc.arm['base_position']) if with_arm else None

    # ----------------------------------------------------------------- world building
    def _build_static(self, sc: Scenario) -> None:
        c, pb = self.client, self.pb
        plane = c.createCollisionShape(pb.GEOM_PLANE)
        self._floor = c.createMultiBody(0, plane)
        belt = sc.belt
        length = belt['x_end'] - belt['x_start']
        half = [length / 2.0, belt['width'] / 2.0, belt['top_z'] / 2.0]
        centre = [(belt['x_end'] + belt['x_start']) / 2.0, belt['y'], belt['top_z'] / 2.0]
        col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=half)
        vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=[0.2, 0.2, 0.2, 1])
        self._belt = c.createMultiBody(0, col, vis, basePosition=centre)
        # parts ride the belt kinematically (velocity set every step), so no belt friction
        c.changeDynamics(self._belt, -1, lateralFriction=0.0)
        sx, sy, wall = sc.arm['bin_size']
        t = 0.01
        boxes = [([sx / 2 + t, sy / 2 + t, t / 2], [0, 0, t / 2]),
                 ([t / 2, sy / 2 + t, wall / 2], [sx / 2 + t / 2, 0, wall / 2]),
                 ([t / 2, sy / 2 + t, wall / 2], [-sx / 2 - t / 2, 0, wall / 2]),
                 ([sx / 2 + t, t / 2, wall / 2], [0, sy / 2 + t / 2, wall / 2]),
                 ([sx / 2 + t, t / 2, wall / 2], [0, -sy / 2 - t / 2, wall / 2])]
        colours = {'accept': [0.2, 0.7, 0.2, 1], 'reject': [0.8, 0.2, 0.2, 1],
                   'rework': [0.9, 0.7, 0.1, 1]}
        self._bins = {}
        for name, pos in sc.arm['bins'].items():
            col = c.createCollisionShapeArray([pb.GEOM_BOX] * 5,
                                              halfExtents=[b[0] for b in boxes],
                                              collisionFramePositions=[b[1] for b in boxes])
            vis = c.createVisualShapeArray([pb.GEOM_BOX] * 5,
                                           halfExtents=[b[0] for b in boxes],
                                           visualFramePositions=[b[1] for b in boxes],
                                           rgbaColors=[colours.get(name, [.5, .5, .5, 1])] * 5)
            self._bins[name] = c.createMultiBody(0, col, vis, basePosition=list(pos))
        self._bin_size = (sx, sy, wall)

    # ----------------------------------------------------------------- properties
    @property
    def belt_speed(self) -> float:
        """Belt surface speed, m/s."""
        return self.belt_speed_percent / 100.0 * float(self.scenario.belt['max_speed'])

    def set_belt_speed(self, percent: float) -> None:
        """
        Set the belt speed as a percentage of its maximum.

        :param percent: 0..100
        :raises ValueError: outside 0..100 or not finite
        """
        if not isinstance(percent, (int, float)) or not math.isfinite(percent) or not (
                0 <= percent <= 100):
            raise ValueError(f'belt speed must be within 0..100 %, got {percent!r}')
        self.belt_speed_percent = float(percent)

    @property
    def view_x_range(self) -> Tuple[float, float]:
        """World x range of the belt the camera sees (on the belt centre line)."""
        w, h = self.camera.width, self.camera.height
        pts = self.camera.pixel_to_world(np.array([[0, h / 2], [w - 1, h / 2]]),
                                         self.belt_top_z)
        return float(pts[:, 0].min()), float(pts[:, 0].max())

    # ----------------------------------------------------------------- parts
    def spawn_part(self, shape: Optional[str] = None, color: Optional[str] = None,
                   condition: Optional[str] = None, x: Optional[float] = None,
                   y: Optional[float] = None, yaw: Optional[float] = None,
                   rng: Optional[np.random.Generator] = None) -> int:
        """
        Spawn one part on the belt; unspecified attributes are drawn from the feeder.

        :param shape: one of ``SHAPES``
        :param color: one of ``COLORS``
        :param condition: one of ``CONDITIONS``
        :param x: world x (default: the feeder position)
        :param y: world y (default: random across the belt)
        :param yaw: rotation about z, rad (default: random)
        :param rng: generator for the unspecified choices (default: the feeder's)
        :return: the part id
        :raises ValueError: on an unknown shape, colour or condition
        """
        rng = self._rng_feeder if rng is None else rng
        feeder = self.scenario.feeder
        shape = shape or _weighted_choice(rng, feeder['shapes'])
        color = color or _weighted_choice(rng, feeder['colors'])
        condition = condition or _weighted_choice(rng, feeder['conditions'])
        for value, vocab, what in ((shape, SHAPES, 'shape'), (color, COLORS, 'color'),
                                   (condition, CONDITIONS, 'condition')):
            if value not in vocab:
                raise ValueError(f'unknown {what} {value!r}; expected one of {vocab}')
        x = float(feeder['spawn_x']) if x is None else float(x)
        y = float(self.scenario.belt['y'] + rng.uniform(*feeder['y_offset'])) if y is None \
            else float(y)
        yaw = float(rng.uniform(-math.pi, math.pi)) if yaw is None else float(yaw)
        pid = self._next_id
        self._next_id += 1
        # separate streams: the same part with another condition keeps its size and colour
        geom_rng, look_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(
            [self.seed, 7, pid, int(rng.integers(1 << 30))]).spawn(2))
        sc = self.scenario
        geom = make_geometry(shape, condition == 'chip', sc.parts, sc.defects['chip'],
                             geom_rng)
        app = make_appearance(geom, color, condition, sc.parts, sc.defects, look_rng)
        z = self.belt_top_z + geom.half_extents[2] + 0.0005
        body = self._create_body(geom, app, [x, y, z], yaw)
        part = _Part(pid, body, shape, color, condition, geom, app, spawn_time=self.sim_time,
                     position=(x, y, z), rest_z=z,
                     orientation=tuple(self.client.getQuaternionFromEuler([0, 0, yaw])))
        self._parts[pid] = part
        return pid

    def _create_body(self, geom: PartGeometry, app: PartAppearance, pos, yaw) -> int:
        c, pb = self.client, self.pb
        hx, hy, hz = geom.half_extents
        rgba = list(np.clip(app.base_bgr[::-1], 0, 1)) + [1.0]
        if geom.chip_plane is not None:
            verts = geom.vertices
            col = c.createCollisionShape(pb.GEOM_MESH, vertices=verts.tolist())
            index = {tuple(np.round(v, 7)): i for i, v in enumerate(verts)}
            tris = []
            for _, poly, _ in geom.faces:
                ids = [index[tuple(np.round(v, 7))] for v in poly]
                tris += [x for k in range(1, len(ids) - 1) for x in (ids[0], ids[k], ids[k + 1])]
            vis = c.createVisualShape(pb.GEOM_MESH, vertices=verts.tolist(), indices=tris,
                                      rgbaColor=rgba)
        elif geom.shape == 'cylinder':
            col = c.createCollisionShape(pb.GEOM_CYLINDER, radius=hx, height=2 * hz)
            vis = c.createVisualShape(pb.GEOM_CYLINDER, radius=hx, length=2 * hz,
                                      rgbaColor=rgba)
        else:
            col = c.createCollisionShape(pb.GEOM_BOX, halfExtents=[hx, hy, hz])
            vis = c.createVisualShape(pb.GEOM_BOX, halfExtents=[hx, hy, hz], rgbaColor=rgba)
        body = c.createMultiBody(float(self.scenario.parts['mass_kg']), col, vis,
                                 basePosition=list(pos),
                                 baseOrientation=c.getQuaternionFromEuler([0, 0, yaw]))
        c.changeDynamics(body, -1, lateralFriction=float(self.scenario.parts['friction']),
                         spinningFriction=0.001, rollingFriction=0.0005)
        return body

    def remove_part(self, part_id: int, location: Optional[str] = None) -> None:
        """Remove a part's body from the physics (its ground truth stays)."""
        part = self._parts[part_id]
        if part.body is not None:
            if self.arm is not None and self.arm.holding() == part_id:
                self.arm.set_suction(False)
            self.client.removeBody(part.body)
            part.body = None
            self.renderer.forget(part_id)
            # a removed part is never drawn again: drop its texture (~90 kB), or a long run
            # keeps every sorted part's texture (the 30-minute soak grew ~33 MiB)
            app = part.appearance
            part.appearance = PartAppearance(app.base_bgr, np.zeros((0, 0, 3), np.float32),
                                             np.zeros((0, 0), bool), dict(app.meta))
        if location is not None:
            part.location = location
        if part.end_time is None:
            part.end_time = self.sim_time

    def clear_parts(self) -> None:
        """Remove every part and forget them (datasets reuse one cell per image)."""
        for pid in list(self._parts):
            self.remove_part(pid)
        self._parts.clear()
        self._next_id = 0

    def parts(self) -> List[PartTruth]:
        """Return the ground truth of every spawned part, in spawn order."""
        out = []
        for part in self._parts.values():
            x, y, z, w = part.orientation
            yaw = math.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))
            out.append(PartTruth(part.id, part.shape, part.color, part.condition,
                                 tuple(float(v) for v in part.position), float(yaw),
                                 part.location, part.inspected_frames, part.spawn_time,
                                 part.end_time, part.picked))
        return out

    def part_top(self, part_id: int) -> Tuple[float, float, float]:
        """Return the world position of the centre of a part's top face (ground truth)."""
        part = self._parts[part_id]
        rot = np.array(self.client.getMatrixFromQuaternion(part.orientation)).reshape(3, 3)
        top = np.asarray(part.position) + rot @ np.array([0.0, 0.0,
                                                          part.geometry.half_extents[2]])
        return tuple(float(v) for v in top)

    def locations(self) -> Dict[int, str]:
        """Return part id -> location (cheap: no physics queries)."""
        return {pid: part.location for pid, part in self._parts.items()}

    def part(self, part_id: int) -> PartTruth:
        """Return the ground truth of one part."""
        return next(p for p in self.parts() if p.id == part_id)

    # ----------------------------------------------------------------- stepping
    def step(self, n: int = 1) -> None:
        """Advance the physics ``n`` steps of ``dt`` (feeder, belt, arm suction, parts)."""
        for _ in range(int(n)):
            self._feed()
            self._step_physics()
            self.sim_time += self.dt
            self._steps += 1
            v = self.belt_speed
            self.belt_travel += v * self.dt
            self._update_parts(v)
            if self.arm is not None:
                self.arm._update()

    def step_for(self, seconds: float) -> None:
        """Advance the physics by ``seconds`` of simulated time."""
        self.step(int(round(seconds / self.dt)))

    def _feed(self) -> None:
        if not self.feeder_enabled or self.sim_time < self._next_spawn:
            return
        if self.parts_to_spawn is not None and self.parts_to_spawn <= 0:
            return
        spawn_x = float(self.scenario.feeder['spawn_x'])
        for part in self._parts.values():
            if part.body is not None and part.location == LOC_BELT and abs(
                    part.position[0] - spawn_x) < 0.09:
                return  # wait until the spawn area is clear (belt stopped)
        self.spawn_part()
        if self.parts_to_spawn is not None:
            self.parts_to_spawn -= 1
        lo, hi = self.scenario.feeder['interval_s']
        self._next_spawn = self.sim_time + float(self._rng_feeder.uniform(lo, hi))

    def _update_parts(self, v: float) -> None:
        belt = self.scenario.belt
        x_end, y_mid, half = belt['x_end'], belt['y'], belt['width'] / 2.0
        held = self.arm.holding() if self.arm is not None else None
        for part in self._parts.values():
            if part.body is None:
                continue
            pos, orn = self._get_pose(part.body)
            part.position, part.orientation = pos, orn
            if part.id == held:
                continue
            x, y, z = pos
            if (x > x_end + 0.01 and part.location == LOC_BELT and abs(y - y_mid) <= half + 0.02
                    and z > self.belt_top_z - 0.05):
                self.remove_part(part.id, LOC_BELT_END)
                continue
            on_belt = abs(y - y_mid) <= half + 0.01 and belt['x_start'] <= x <= x_end + 0.01
            if on_belt and z <= part.rest_z + 0.004 and part.location == LOC_BELT:
                self._set_velocity(part.body, (v, 0.0, 0.0), (0.0, 0.0, 0.0))
                continue
            if z < self.belt_top_z - 0.005 or not on_belt:
                for name, bpos in self.bin_positions.items():
                    if (abs(x - bpos[0]) <= self._bin_size[0] / 2 + 0.005
                            and abs(y - bpos[1]) <= self._bin_size[1] / 2 + 0.005
                            and z <= bpos[2] + self._bin_size[2]):
                        self.remove_part(part.id, name)
                        break
                else:
                    if z < 0.03:
                        self.remove_part(part.id, LOC_FLOOR)

    # ----------------------------------------------------------------- camera
    def randomize_lighting(self, rng: Optional[np.random.Generator] = None) -> Lighting:
        """Draw a new lighting condition (from ``rng`` or the cell's lighting stream)."""
        sc = self.scenario
        self.lighting = sample_lighting(sc.lighting, sc.camera['noise_std'],
                                        rng if rng is not None else self._rng_light)
        return self.lighting

    def _near_view(self) -> List[_Part]:
        """Return the parts whose centre projects within ~a part size of the image."""
        parts = [p for p in self._parts.values() if p.body is not None]
        if not parts:
            return []
        cam = self.camera
        pc = cam.world_to_camera(np.array([p.position for p in parts]))
        z = np.maximum(pc[:, 2], 1e-6)
        u = cam.K[0, 0] * pc[:, 0] / z + cam.K[0, 2]
        v = cam.K[1, 1] * pc[:, 1] / z + cam.K[1, 2]
        margin = 0.08 * cam.K[0, 0] / z  # a part is < 8 cm across
        keep = ((pc[:, 2] > 0.05) & (u > -margin) & (u < cam.width + margin)
                & (v > -margin) & (v < cam.height + margin))
        return [p for p, k in zip(parts, keep) if k]

    def _draw_list(self, parts: List[_Part]) -> List[DrawPart]:
        out = []
        for part in parts:
            rot = np.array(self.client.getMatrixFromQuaternion(part.orientation)).reshape(3, 3)
            out.append(DrawPart(part.id, part.geometry, part.appearance, rot,
                                np.asarray(part.position, float)))
        return out

    def part_bbox(self, part_id: int) -> Tuple[List[float], bool, bool]:
        """
        Return a part's image bbox ``[x, y, w, h]`` (raw image), visible, fully-inside.

        :param part_id: the part
        :return: (bbox clipped to the image, any of it in the image, all of it inside)
        """
        part = self._parts[part_id]
        if part.body is None:
            return [0.0, 0.0, 0.0, 0.0], False, False
        rot = np.array(self.client.getMatrixFromQuaternion(part.orientation)).reshape(3, 3)
        world = part.geometry.vertices @ rot.T + np.asarray(part.position)
        if np.any(self.camera.world_to_camera(world)[:, 2] <= 0.01):
            return [0.0, 0.0, 0.0, 0.0], False, False
        uv = self.camera.world_to_pixel(world)
        x0, y0 = uv.min(axis=0)
        x1, y1 = uv.max(axis=0)
        w, h = self.camera.width, self.camera.height
        inside = x0 >= 0 and y0 >= 0 and x1 <= w - 1 and y1 <= h - 1
        cx0, cy0 = max(0.0, x0), max(0.0, y0)
        cx1, cy1 = min(w - 1.0, x1), min(h - 1.0, y1)
        visible = cx1 > cx0 and cy1 > cy0
        bbox = [round(float(cx0), 2), round(float(cy0), 2), round(float(cx1 - cx0), 2),
                round(float(cy1 - cy0), 2)]
        return bbox, bool(visible), bool(inside)

    def render(self, mode: str = 'fast', noise: bool = True,
               rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """
        Render the calibrated camera's image.

        Parts fully inside the image count as inspected (``inspected_frames``).

        :param mode: 'fast' (own rasteriser) or 'pybullet' (``getCameraImage``, debugging)
        :param noise: add the pixel noise of the lighting condition
        :param rng: generator of the pixel noise (default: derived from seed and frame count)
        :return: (H, W, 3) uint8 BGR image
        :raises ValueError: on an unknown mode
        """
        if mode == 'pybullet':
            img = self._render_pybullet()
        elif mode == 'fast':
            if rng is None and noise:
                rng = np.random.default_rng([self.seed, 5, self.frames_rendered])
            rng = rng if noise else None
            img = self.renderer.render(self._draw_list(self._near_view()), self.belt_travel,
                                       self.lighting, rng)
        else:
            raise ValueError(f"render mode must be 'fast' or 'pybullet', got {mode!r}")
        self.frames_rendered += 1
        for part in self._near_view():
            if part.location == LOC_BELT:
                if self.part_bbox(part.id)[2]:
                    part.inspected_frames += 1
        return img

    def _render_pybullet(self) -> np.ndarray:
        cam = self.camera
        w, h = cam.width, cam.height
        near, far = 0.05, 3.0
        fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
        proj = np.array([
            [2 * fx / w, 0, 1 - 2 * cx / w, 0],
            [0, 2 * fy / h, 2 * cy / h - 1, 0],
            [0, 0, -(far + near) / (far - near), -2 * far * near / (far - near)],
            [0, 0, -1, 0]])
        # OpenGL camera: x right, y up, looking along -z = optical frame with y, z flipped
        flip = np.diag([1.0, -1.0, -1.0, 1.0])
        view = flip @ cam.camera_T_world
        out = self.client.getCameraImage(
            w, h, viewMatrix=view.T.reshape(-1).tolist(),
            projectionMatrix=proj.T.reshape(-1).tolist(),
            renderer=self.pb.ER_TINY_RENDERER)
        rgba = np.asarray(out[2], np.uint8).reshape(h, w, 4)
        return np.ascontiguousarray(rgba[..., 2::-1])

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Disconnect the bullet client (idempotent)."""
        if self.client is not None:
            try:
                self.client.disconnect()
            finally:
                self.client = None

    def __enter__(self) -> 'WorkCell':
        """Return the cell."""
        return self

    def __exit__(self, *exc) -> None:
        """Close the cell."""
        self.close()
