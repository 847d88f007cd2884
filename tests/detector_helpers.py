"""Shared helpers of the detector tests (real sim renders, the shipped model)."""

from pathlib import Path

from lepton_robot.detector.detector import default_model_path
import pytest

SHIPPED_MODEL = Path(default_model_path())
INT8_MODEL = SHIPPED_MODEL.with_name(SHIPPED_MODEL.stem + '_int8.onnx')
CHECKPOINT = SHIPPED_MODEL.with_suffix('.pt')

needs_model = pytest.mark.skipif(not SHIPPED_MODEL.is_file(),
                                 reason=f'{SHIPPED_MODEL} not trained yet '
                                        '(lepton-robot train detector)')


def render_dataset(out: Path, count: int, seed: int, widen: float = 1.0,
                   balance: bool = False) -> Path:
    """Render a small real dataset with the sim's datagen (fast: ~15 frames/s)."""
    from lepton_robot.sim import datagen
    from lepton_robot.sim.scenario import Scenario
    scenario = Scenario.load('default')
    if widen != 1.0:
        scenario = scenario.widened(widen)
    for _ in datagen.iter_dataset(out, count, seed, balance=balance, scenario=scenario):
        pass
    return out
