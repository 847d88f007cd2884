"""
Camera lost mid-run: camera_node -> defect_detector_node -> supervisor_node, real processes.

The camera streams sim-rendered frames from an image folder (the same set-up as
``benchmarks/bench_transport.py``, whose helpers it reuses); the folder is removed, then
restored. Needs the trained detector (``models/defect_detector.onnx``, or a model file named
by ``LEPTON_TEST_DETECTOR_MODEL``); skipped without one.
"""

import importlib.util
import json
import os
import shutil
import time

from conftest import REPO_ROOT, ros_env
from graph_harness import wait_until
from lepton_robot import paths
from lepton_robot.launcher import Graph
import pytest

MODEL = os.environ.get('LEPTON_TEST_DETECTOR_MODEL', '') or (
    str(paths.models_dir() / 'defect_detector.onnx')
    if (paths.models_dir() / 'defect_detector.onnx').is_file() else '')


def _bench_transport():
    spec = importlib.util.spec_from_file_location(
        'bench_transport', REPO_ROOT / 'benchmarks' / 'bench_transport.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Watch:
    """Record decisions, cell states, belt commands and camera diagnostics (wall clock)."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from lepton_robot.ros.probe import SpinningProbe
        from lepton_robot.ros.qos import LATCHED, RELIABLE
        from std_msgs.msg import Float32, String
        self.probe = SpinningProbe('camera_fault_probe')
        self.node = self.probe.node
        self.context = self.probe.context
        self.decisions, self.states, self.belt, self.camera_levels = [], [], [], []
        self.inspections = []
        n = self.node
        n.create_subscription(String, 'decision',
                              lambda m: self.decisions.append(time.monotonic()), RELIABLE)
        n.create_subscription(String, 'inspection/parts',
                              lambda m: self.inspections.append(time.monotonic()), RELIABLE)
        n.create_subscription(String, 'cell/state', lambda m: self.states.append(
            (time.monotonic(), json.loads(m.data))), LATCHED)
        n.create_subscription(Float32, 'conveyor/speed_command', lambda m: self.belt.append(
            (time.monotonic(), m.data)), LATCHED)
        n.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.probe.start()

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if 'camera' in status.name:
                self.camera_levels.append((time.monotonic(), int.from_bytes(
                    status.level, 'little') if isinstance(status.level, bytes)
                    else int(status.level)))

    def held(self) -> bool:
        return bool(self.states) and self.states[-1][1]['held']

    def close(self) -> None:
        self.probe.close()


@pytest.mark.slow
@pytest.mark.skipif(not MODEL, reason='the trained detector model is not installed')
def test_camera_lost_mid_run_holds_the_line_and_reconnects(tmp_path):
    """
    The camera source disappears mid-run: the line holds, the camera node reconnects.

    Steps: render frames (one part each) into a folder; start camera_node (folder source),
    defect_detector_node and supervisor_node (min_views 1, stale_after_s 1.0) as separate
    processes; wait for decisions and a running line; move the folder away; expect an
    ERROR diagnostic from camera_node, the supervisor held ('stale') with the belt command
    at 0 within 1.0 s + 1 s margin, and no decision while held (no part passes
    uninspected); put the folder back; expect inspections and decisions again, the hold
    released, and every process still alive.
    """
    bench = _bench_transport()
    frames = tmp_path / 'frames'
    info = bench.render_frames(frames, 4, seed=3)
    specs = bench.graph_specs(frames, info, MODEL, rate_hz=5.0)
    specs[0].params['max_backoff_s'] = 0.5
    specs[2].params['stale_after_s'] = 1.0
    graph = Graph(specs, run_dir=tmp_path / 'run', env=ros_env())
    watch = _Watch()
    away = tmp_path / 'frames_away'
    try:
        graph.start()
        wait_until(lambda: len(watch.decisions) >= 3 and not watch.held(), 180,
                   'decisions and a running line', graph)
        shutil.move(str(frames), str(away))
        t_lost = time.monotonic()
        wait_until(lambda: any(t > t_lost and lvl == 2 for t, lvl in watch.camera_levels),
                   30, 'an ERROR diagnostic from camera_node', graph)
        wait_until(watch.held, 30, 'the hold', graph)
        t_hold = next(t for t, s in watch.states if t > t_lost and s['held'])
        assert 'stale' in watch.states[-1][1]['hold_reason']
        assert t_hold - t_lost <= 2.0, f'held {t_hold - t_lost:.2f} s after the loss'
        wait_until(lambda: watch.belt and watch.belt[-1][1] == 0.0, 10, 'belt 0', graph)
        n = len(watch.decisions)
        # the source stays away while camera_node fails to re-open it a few times
        wait_until(lambda: sum(1 for t, lvl in watch.camera_levels
                               if t > t_lost and lvl == 2) >= 3, 30, 'failed re-opens', graph)
        assert len(watch.decisions) == n and watch.held()
        shutil.move(str(away), str(frames))
        t_back = time.monotonic()
        wait_until(lambda: watch.inspections and watch.inspections[-1] > t_back, 60,
                   'inspections after the source returns', graph)
        wait_until(lambda: not watch.held() and len(watch.decisions) > n, 60,
                   'the release and new decisions', graph)
        assert not graph.dead()
    finally:
        if away.exists() and not frames.exists():
            shutil.move(str(away), str(frames))
        watch.close()
        graph.shutdown()
