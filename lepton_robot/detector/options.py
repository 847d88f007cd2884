"""Command-line options shared by ``inspect``, ``evaluate`` and the benchmark."""

import argparse
import json
from pathlib import Path
from typing import Any, Optional, Tuple

from lepton_robot.detector.backends import BACKENDS
from lepton_robot.errors import ConfigError


def add_detector_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--model``, ``--backend``, ``--sensitivity``, ``--threads``, ``--camera``."""
    parser.add_argument('--model', default=None,
                        help='ONNX model (default: the shipped models/defect_detector.onnx)')
    parser.add_argument('--backend', default='auto', choices=BACKENDS,
                        help='inference backend (default %(default)s)')
    parser.add_argument('--sensitivity', type=float, default=50.0,
                        help='0..100; higher flags defects more readily (default 50)')
    parser.add_argument('--threads', type=int, default=0,
                        help='ONNX Runtime threads (0 = its default)')
    parser.add_argument('--camera', default=None,
                        help='camera.json (CameraModel.to_dict()) for world positions')


def load_camera(path: Optional[str]) -> Tuple[Any, Optional[float]]:
    """
    Load a camera calibration written by datagen (``camera.json``).

    :return: ``(camera, belt_z)``, or ``(None, None)`` when ``path`` is None.
    :raises ConfigError: if the file is unreadable or the sim's camera model is absent.
    """
    if not path:
        return None, None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f'cannot read camera calibration {path}: {exc}') from exc
    try:
        from lepton_robot.sim import camera as sim_camera
    except ImportError as exc:
        raise ConfigError(f'world positions need lepton_robot.sim.camera: {exc}') from exc
    try:
        camera = sim_camera.CameraModel.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f'bad camera calibration {path}: {exc}') from exc
    belt_z = data.get('belt_z', getattr(sim_camera, 'BELT_TOP_Z', None))
    return camera, None if belt_z is None else float(belt_z)


def scenario_camera(name: str) -> Tuple[Any, Optional[float]]:
    """
    Return the nominal camera and belt height of a sim scenario (no mounting jitter).

    A run's camera is mounted within the scenario's jitter (a few mm, < 1 degree), so
    positions from the nominal camera are off by up to ~1 cm; pass the run's
    ``camera.json`` for exact ones.

    :raises ConfigError: if the scenario cannot be loaded.
    """
    from lepton_robot.sim.camera import camera_from_scenario
    from lepton_robot.sim.scenario import Scenario
    scenario = Scenario.load(name)
    return camera_from_scenario(scenario.camera, None), float(scenario.belt['top_z'])


def build_detector(args: argparse.Namespace, track: bool = False,
                   camera_path: Optional[str] = None):
    """Build a :class:`DefectDetector` from parsed options."""
    from lepton_robot.detector.detector import DefectDetector
    camera, belt_z = load_camera(args.camera or camera_path)
    return DefectDetector.from_model(args.model, backend=args.backend, threads=args.threads,
                                     sensitivity=args.sensitivity, camera=camera,
                                     belt_z=belt_z, track=track)
