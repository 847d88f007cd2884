"""
Tests of defect_detector_node: in-process (own Context) and as a real process over DDS.

Includes the malformed-image suite of issue 6: every wrong encoding, size/step mismatch,
empty and huge frames; zero crashes, diagnostics raised, the next good frame processed.
"""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from conftest import REPO_ROOT, ros_env
from detector_helpers import needs_model, render_dataset
from diagnostic_msgs.msg import DiagnosticArray
from lepton_robot.detector.dataset import read_image, read_labels
from lepton_robot.interfaces import loads, SCHEMA_INSPECTION
from lepton_robot.ros.qos import LATCHED, SENSOR
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
from visualization_msgs.msg import MarkerArray

pytestmark = [pytest.mark.ros, needs_model]

TIMEOUT_S = 30.0
START_TIMEOUT_S = 90.0
# Above the sim camera's 384x288 = 110 592 pixels; the 'huge' frame exceeds it while small
# enough (384 kB) that a best-effort DDS sample of it arrives: a 1.44 MB one (800x600) was
# lost often enough over Fast DDS on this host to fail the test about one run in two.
MAX_PIXELS = 120_000


def image_msg(img: np.ndarray, encoding: str = 'bgr8', stamp: float = 1.0) -> Image:
    """Build a sensor_msgs/Image from a BGR array."""
    msg = Image(height=img.shape[0], width=img.shape[1], encoding=encoding,
                step=img.shape[1] * img.shape[2], data=img.tobytes())
    msg.header.frame_id = 'camera_optical'
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int((stamp % 1) * 1e9)
    return msg


def raw(height, width, encoding, step, nbytes) -> Image:
    """Build an Image with arbitrary (possibly inconsistent) fields."""
    return Image(height=height, width=width, encoding=encoding, step=step,
                 data=bytes(nbytes))


#: (name, message factory, words expected in the reason)
MALFORMED = [
    ('mono8', lambda: raw(48, 64, 'mono8', 64, 48 * 64), 'unsupported encoding'),
    ('mono16', lambda: raw(48, 64, 'mono16', 128, 48 * 128), 'unsupported encoding'),
    ('16UC1', lambda: raw(48, 64, '16UC1', 128, 48 * 128), 'unsupported encoding'),
    ('32FC1', lambda: raw(48, 64, '32FC1', 256, 48 * 256), 'unsupported encoding'),
    ('bgr16', lambda: raw(48, 64, 'bgr16', 384, 48 * 384), 'unsupported encoding'),
    ('rgba16', lambda: raw(48, 64, 'rgba16', 512, 48 * 512), 'unsupported encoding'),
    ('yuv422', lambda: raw(48, 64, 'yuv422', 128, 48 * 128), 'unsupported encoding'),
    ('bayer_rggb8', lambda: raw(48, 64, 'bayer_rggb8', 64, 48 * 64), 'unsupported encoding'),
    ('jpeg', lambda: raw(48, 64, 'jpeg', 64, 1000), 'unsupported encoding'),
    ('no encoding', lambda: raw(48, 64, '', 192, 48 * 192), 'unsupported encoding'),
    ('step too small', lambda: raw(48, 64, 'bgr8', 100, 48 * 100), 'step'),
    ('data too short', lambda: raw(48, 64, 'bgr8', 192, 48 * 192 - 1), 'data size'),
    ('data too long', lambda: raw(48, 64, 'bgr8', 192, 48 * 192 + 7), 'data size'),
    ('height lies', lambda: raw(96, 64, 'bgr8', 192, 48 * 192), 'data size'),
    ('empty 0x0', lambda: raw(0, 0, 'bgr8', 0, 0), 'empty'),
    ('zero width', lambda: raw(48, 0, 'bgr8', 0, 0), 'empty'),
    ('claims huge', lambda: raw(100000, 100000, 'bgr8', 300000, 300), 'too large'),
    ('huge for the limit', lambda: raw(320, 400, 'bgr8', 1200, 320 * 1200), 'too large'),
]


@pytest.fixture(scope='module')
def frames(tmp_path_factory):
    """Render a few real sim frames with their labels."""
    out = render_dataset(tmp_path_factory.mktemp('node') / 'sim', 6, seed=31337)
    return [(read_image(str(f.path)), f.parts) for f in read_labels(str(out))]


class Harness:
    """A node plus a probe node in one Context, spun by hand."""

    def __init__(self, **params):
        from lepton_robot.nodes.defect_detector_node import DefectDetectorNode
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        overrides = [Parameter(k, value=v) for k, v in
                     {'max_image_pixels': MAX_PIXELS, 'threads': 1, **params}.items()]
        try:
            self.node = DefectDetectorNode(context=self.ctx, parameter_overrides=overrides)
        except Exception:
            rclpy.shutdown(context=self.ctx)
            raise
        self.probe = rclpy.create_node('probe', context=self.ctx)
        self.parts, self.diags, self.markers = [], [], []
        self.probe.create_subscription(String, 'inspection/parts',
                                       lambda m: self.parts.append(m.data), 10)
        self.probe.create_subscription(DiagnosticArray, '/diagnostics',
                                       lambda m: self.diags.extend(m.status), 50)
        self.probe.create_subscription(MarkerArray, 'inspection/markers',
                                       lambda m: self.markers.append(m), 10)
        self.pub = self.probe.create_publisher(Image, 'camera/image_raw', SENSOR)
        self.pub_state = self.probe.create_publisher(String, 'cell/state', LATCHED)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.executor.add_node(self.probe)

    def spin_until(self, cond, timeout=TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def send(self, msg, counter):
        """Publish until the node's ``counter`` stat moves (best-effort QoS may drop)."""
        before = self.node.stats()[counter]
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.pub.publish(msg)
            if self.spin_until(lambda: self.node.stats()[counter] > before, timeout=2.0):
                return True
        return False

    def close(self):
        self.executor.shutdown()
        self.node.close()
        self.node.destroy_node()
        self.probe.destroy_node()
        rclpy.shutdown(context=self.ctx)


@pytest.fixture
def harness():
    """Start an in-process node with a small max_image_pixels ('huge' frames exceed it)."""
    h = Harness()
    try:
        yield h
    finally:
        h.close()


def test_good_frame_gives_a_valid_inspection_with_positions(harness, frames):
    """
    A real frame gives one lepton.inspection/1 message with located, classified parts.

    Steps: publish a sim frame; wait for inspection/parts; validate the payload, compare
    part count with the labels, check positions lie on the belt and markers arrive.
    """
    img, labels = frames[0]
    assert harness.send(image_msg(img, stamp=12.5), 'processed')
    assert harness.spin_until(lambda: harness.parts and harness.markers)
    payload = loads(harness.parts[-1], SCHEMA_INSPECTION)
    assert payload['stamp'] == pytest.approx(12.5)
    assert payload['frame_id'] == 'camera_optical'
    assert payload['backend'].startswith('onnxruntime')
    whole = [p for p in labels if not p.get('truncated')]
    assert abs(len(payload['parts']) - len(whole)) <= 1
    for part in payload['parts']:
        x, y, z = part['position']
        assert -1.0 < x < 0.4 and 0.3 < y < 0.7 and 0.1 < z < 0.16
    assert any(m.type == m.CUBE for m in harness.markers[-1].markers) or not payload['parts']


def test_rgb8_frame_is_converted_not_refused(harness, frames):
    """An rgb8 frame is converted to BGR and classified like the bgr8 one."""
    img, _ = frames[1]
    assert harness.send(image_msg(img), 'processed')
    assert harness.spin_until(lambda: harness.parts)
    bgr = loads(harness.parts[-1])
    assert harness.send(image_msg(np.ascontiguousarray(img[..., ::-1]), 'rgb8'), 'processed')
    assert harness.spin_until(lambda: len(harness.parts) >= 2)
    rgb = loads(harness.parts[-1])
    assert [p['label'] for p in rgb['parts']] == [p['label'] for p in bgr['parts']]
    assert [p['color'] for p in rgb['parts']] == [p['color'] for p in bgr['parts']]


@pytest.mark.parametrize('name,factory,reason', MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_frame_raises_diagnostics_and_next_frame_is_processed(harness, frames,
                                                                        name, factory,
                                                                        reason):
    """
    A malformed frame is skipped with a WARN diagnostic; the next good frame still works.

    Steps: send the bad frame, wait for bad_frames to count it and a WARN status naming the
    reason; send a good frame; wait for its inspection.
    """
    assert harness.send(factory(), 'bad_frames'), f'{name}: bad frame never counted'
    assert harness.spin_until(lambda: any(
        s.level == b'\x01' and any(kv.key == 'reason' and reason in kv.value
                                   for kv in s.values) for s in harness.diags))
    before = len(harness.parts)
    assert harness.send(image_msg(frames[2][0]), 'processed')
    assert harness.spin_until(lambda: len(harness.parts) > before)
    loads(harness.parts[-1], SCHEMA_INSPECTION)
    assert harness.node.stats()['errors'] == 0


def test_an_unexpected_error_in_a_frame_is_counted_and_the_worker_goes_on(harness, frames):
    """
    A bug that raises while a frame is processed never ends the worker thread.

    Steps: make the detector raise once (a stand-in for any bug past the frame checks),
    send a frame, see the error counted and an ERROR diagnostic; the next frame gives an
    inspection as usual.
    """
    img, _ = frames[0]
    real = harness.node.detector.detect
    calls = []

    def broken(image):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError('a bug')
        return real(image)
    harness.node.detector.detect = broken
    assert harness.send(image_msg(img, stamp=3.0), 'received')
    assert harness.spin_until(lambda: harness.node.stats()['errors'] == 1)
    assert harness.spin_until(lambda: any(d.message == 'frame not processed'
                                          for d in harness.diags))
    assert harness.node._worker.is_alive()
    assert harness.send(image_msg(img, stamp=4.0), 'processed')
    assert harness.spin_until(lambda: any(
        loads(p, SCHEMA_INSPECTION)['stamp'] == pytest.approx(4.0) for p in harness.parts))


def test_periodic_diagnostics_report_backend_fps_and_counters(harness, frames):
    """The 1 Hz status carries backend, fps, latency and the frame counters."""
    harness.send(image_msg(frames[0][0]), 'processed')
    harness.send(raw(4, 4, 'mono8', 4, 16), 'bad_frames')

    def periodic():
        return [s for s in harness.diags if any(kv.key == 'fps' for kv in s.values)]
    assert harness.spin_until(lambda: any(
        {kv.key: kv.value for kv in s.values}.get('bad_frames') == '1' for s in periodic()))
    values = {kv.key: kv.value for kv in periodic()[-1].values}
    assert values['backend'].startswith('onnxruntime')
    for key in ('fps', 'latency_p50_ms', 'received', 'processed', 'dropped', 'bad_frames'):
        assert key in values
    assert int(values['processed']) >= 1


def test_only_the_newest_frame_is_kept(harness, frames):
    """Frames arriving while the worker is busy replace the waiting one (counted dropped)."""
    node = harness.node
    for i in range(10):              # straight into the callback: a burst faster than DDS
        node._on_image(image_msg(frames[i % len(frames)][0], stamp=float(i)))
    assert harness.spin_until(lambda: node.stats()['processed'] + node.stats()['dropped']
                              == 10)
    assert harness.spin_until(lambda: len(harness.parts) == node.stats()['processed'])
    assert node.stats()['dropped'] >= 1
    assert loads(harness.parts[-1])['stamp'] == pytest.approx(9.0)


@pytest.mark.parametrize('value,ok', [(80.0, True), (0.0, True), (100.0, True),
                                      (-1.0, False), (100.5, False)])
def test_sensitivity_parameter_is_validated(harness, value, ok):
    """Sensitivity in 0..100 is applied; outside it is rejected and nothing changes."""
    before = harness.node.detector.sensitivity
    result = harness.node.set_parameters([Parameter('sensitivity', value=value)])[0]
    assert result.successful == ok
    assert harness.node.detector.sensitivity == (value if ok else before)


def test_read_only_parameters_cannot_change(harness):
    """Parameters that need a restart (model, backend) are read-only."""
    result = harness.node.set_parameters([Parameter('backend', value='tensorrt')])[0]
    assert not result.successful
    result = harness.node.set_parameters([Parameter('spin', value='always')])[0]
    assert not result.successful


def test_ort_pool_threads_stop_spinning_between_frames(harness):
    """The node's session leaves the cores to the other nodes between frames (spin)."""
    assert harness.node.get_parameter('spin').value == 'run'
    opts = harness.node.detector.backend.session.get_session_options()
    assert opts.get_session_config_entry('session.force_spinning_stop') == '1'


def test_sensitivity_follows_cell_state(harness):
    """A cell/state from the supervisor with a new sensitivity is applied."""
    state = {'schema': 'lepton.cell_state/1', 'state': 'running', 'rules': [], 'speed': 50,
             'sensitivity': 85, 'counts': {}}
    harness.pub_state.publish(String(data=json.dumps(state)))
    assert harness.spin_until(lambda: harness.node.detector.sensitivity == 85.0)
    assert harness.node.get_parameter('sensitivity').value == 85.0


def test_bad_model_fails_fast_in_process(tmp_path):
    """A missing model raises ModelError from the constructor (run_node exits 1)."""
    from lepton_robot.errors import ModelError
    with pytest.raises(ModelError, match='not found'):
        Harness(model_path=str(tmp_path / 'missing.onnx'))


# --- as a real process over DDS ---------------------------------------------------------------
def _start_node(*ros_args):
    env = ros_env()
    log_dir = Path(env['ROS_LOG_DIR'])
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, '-m', 'lepton_robot.nodes.defect_detector_node', '--ros-args',
         '-p', f'max_image_pixels:={MAX_PIXELS}', '-p', 'threads:=1', *ros_args],
        cwd=str(REPO_ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.mark.slow
def test_node_process_survives_malformed_frames_over_dds(frames):
    """
    The node as a separate process: bad frames of every kind, then good frames, over DDS.

    Steps: start the node process; publish good frames until an inspection arrives
    (discovery + start-up); then for each malformed kind publish it followed by a good
    frame and wait for that good frame's inspection (by stamp); finally check the
    process is alive and its diagnostics counted the bad frames.
    """
    proc = _start_node()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    probe = rclpy.create_node('dds_probe', context=ctx)
    stamps, counters, warnings = set(), {}, []

    def on_parts(msg):
        stamps.add(round(loads(msg.data, SCHEMA_INSPECTION)['stamp'], 3))

    def on_diag(msg):
        for s in msg.status:
            if 'defect_detector' not in s.name:
                continue
            values = {kv.key: kv.value for kv in s.values}
            if 'fps' in values:
                counters.update(values)
            if 'reason' in values:
                warnings.append(values['reason'])
    probe.create_subscription(String, 'inspection/parts', on_parts, 10)
    probe.create_subscription(DiagnosticArray, '/diagnostics', on_diag, 50)
    pub = probe.create_publisher(Image, 'camera/image_raw', SENSOR)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(probe)

    def spin_until(cond, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            assert proc.poll() is None, proc.stdout.read().decode(errors='replace')
            executor.spin_once(timeout_sec=0.05)
        return cond()

    def until_effect(msg, effect, timeout):
        """Publish ``msg`` once a second until ``effect()`` holds (best effort may drop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pub.publish(msg)
            if spin_until(effect, 1.0):
                return True
        return False

    try:
        assert until_effect(image_msg(frames[0][0], stamp=0.5), lambda: 0.5 in stamps,
                            START_TIMEOUT_S), 'node never answered'
        for i, (name, factory, reason) in enumerate(MALFORMED):
            seen = len(warnings)
            assert until_effect(factory(), lambda: any(reason in w for w in warnings[seen:]),
                                TIMEOUT_S), f'no diagnostics for {name}'
            stamp = round(10.0 + i, 3)
            assert until_effect(image_msg(frames[0][0], stamp=stamp), lambda: stamp in stamps,
                                TIMEOUT_S), f'no inspection after {name}'
        assert spin_until(lambda: int(counters.get('bad_frames', 0)) >= len(MALFORMED),
                          TIMEOUT_S)
        assert counters['errors'] == '0'
        assert proc.poll() is None
    finally:
        executor.shutdown()
        probe.destroy_node()
        rclpy.shutdown(context=ctx)
        _stop(proc)
    assert proc.returncode in (0, -signal.SIGINT), proc.stdout.read().decode(errors='replace')


@pytest.mark.slow
def test_node_process_with_missing_model_exits_with_a_clear_error(tmp_path):
    """Start-up with a missing model exits 1 with one [FATAL] line naming the file."""
    proc = _start_node('-p', f'model_path:={tmp_path / "missing.onnx"}')
    try:
        out, _ = proc.communicate(timeout=START_TIMEOUT_S)
    finally:
        _stop(proc)
    assert proc.returncode == 1
    assert b'[FATAL]' in out and b'missing.onnx' in out
