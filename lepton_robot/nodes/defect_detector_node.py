"""
ROS 2 node: camera frames in, ``lepton.inspection/1`` parts, markers and diagnostics out.

Only the newest frame is kept (a frame arriving while the worker is busy replaces the
waiting one and counts as dropped); inference runs on the node's own worker thread, never
on the executor. Malformed frames (unsupported encoding, size/step mismatch, empty, too
large) are counted, raise diagnostics and are skipped: the node never dies on input.
"""

import math
import threading
import time
import traceback
from typing import List, Optional

from diagnostic_msgs.msg import DiagnosticStatus
from lepton_robot import interfaces
from lepton_robot.detector.detector import default_model_path, DefectDetector, FrameResult
from lepton_robot.detector.image_msg import DEFAULT_MAX_PIXELS, image_to_bgr
from lepton_robot.detector.options import load_camera, scenario_camera
from lepton_robot.errors import ConfigError, ImageError, LeptonError, SchemaError
from lepton_robot.ros.diagnostics import DiagnosticsPublisher
from lepton_robot.ros.intra import IntraPublisher, IntraSubscription
from lepton_robot.ros.liveness import Heartbeat
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import LATCHED, RELIABLE, SENSOR
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

OK = DiagnosticStatus.OK[0]
WARN = DiagnosticStatus.WARN[0]
ERROR = DiagnosticStatus.ERROR[0]

#: Depth (m) at which boxes are drawn along the pixel ray when no world calibration is known.
MARKER_RAY_DEPTH = 1.0


def _inspection_msg(payload: dict) -> String:
    """``to_msg`` of the inspection payload: ``lepton.inspection/1`` JSON text."""
    return String(data=interfaces.dumps(payload))


class DefectDetectorNode(LifecycleNode):
    """
    Detect and classify parts in camera frames on a worker thread; a managed (lifecycle) node.

    ``configure`` loads the model and creates the topics and the worker, ``activate`` starts
    inspecting frames and the heartbeat that the supervisor watches, ``deactivate`` stops
    both (the supervisor then holds the cell: no part goes by uninspected), ``cleanup``
    releases the model (a later ``configure`` loads the model file again), ``shutdown``
    releases everything. With ``autostart`` (the default) the node configures and activates
    itself at start-up and a configure failure is fatal, as for a plain node; without it the
    node waits, unconfigured, for a lifecycle manager (``ros2 lifecycle set``, launch_ros's
    ``LifecycleNode``), and a failed configure leaves it unconfigured, with the reason in
    the log and on ``/diagnostics``.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__('defect_detector', **kwargs)
        self._declare_parameters()
        p = self._params()
        self.detector: Optional[DefectDetector] = None
        self._lifecycle = 'unconfigured'
        self._configure_error: Optional[Exception] = None
        self._active = False
        self._max_pixels = p['max_image_pixels']
        self._follow_cell_state = p['follow_cell_state']
        self._cell_sensitivity: Optional[float] = None
        self._camera_k: Optional[List[float]] = None
        self._frame_id = 'camera_optical'

        self._lock = threading.Condition()
        self._pending: Optional[Image] = None
        self._stop = False
        self._stats = {'received': 0, 'processed': 0, 'dropped': 0, 'bad_frames': 0,
                       'errors': 0, 'parts': 0, 'not_active': 0}
        self._last_bad = ''
        self._last_bad_warn = 0.0
        self._latencies: List[float] = []
        self._infer_ms: List[float] = []
        self._fps_window: List[float] = []

        self._pub_parts: Optional[IntraPublisher] = None
        self._pub_markers = None
        self._image_sub: Optional[IntraSubscription] = None
        self._subs: list = []
        self._heartbeat: Optional[Heartbeat] = None
        self._worker: Optional[threading.Thread] = None
        self._diag = DiagnosticsPublisher(self)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(p['diagnostics_period'], self._on_diagnostics_timer)
        if p['autostart']:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                error = self._configure_error or ConfigError('defect_detector: configure failed')
                self.destroy_node()     # a constructor that fails leaves no node behind
                raise error
            self.trigger_activate()
        else:
            self.get_logger().info('defect detector unconfigured (autostart false): waiting '
                                   'for a lifecycle manager to configure and activate it')

    # --- lifecycle ---------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model; create the topics and the worker."""
        try:
            self._configure()
        except Exception as exc:  # noqa: BLE001 - rclpy would swallow it: say why, then fail
            self._configure_error = exc
            self._release()
            expected = isinstance(exc, (LeptonError, OSError))
            self.get_logger().error(f'configure failed: {exc}' if expected else
                                    f'configure failed:\n{traceback.format_exc()}')
            self._diag.publish(ERROR, 'configure failed', {'error': str(exc),
                                                           'lifecycle_state': 'unconfigured'})
            return TransitionCallbackReturn.FAILURE if expected else TransitionCallbackReturn.ERROR
        self._configure_error = None
        self._lifecycle = 'inactive'
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Inspect frames from now on; start the heartbeat."""
        with self._lock:
            self._active = True
        self._heartbeat = Heartbeat(self)   # heartbeat/<name>: the supervisor's liveness watch
        self._lifecycle = 'active'
        self.get_logger().info(
            f'defect detector active: backend {self.detector.backend.name}, model '
            f'{self.detector.backend.model_path} (v{self.detector.meta.version}), sensitivity '
            f'{self.detector.sensitivity:g} (ok threshold {self.detector.threshold:.3f})')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop inspecting (frames are counted and dropped) and stop the heartbeat."""
        self._deactivate()
        self._lifecycle = 'inactive'
        self.get_logger().info('defect detector inactive: frames are not inspected')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model, the topics and the worker."""
        self._release()
        self._lifecycle = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything, from whichever state."""
        self.close()
        self._lifecycle = 'finalized'
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release everything after a transition raised; go back to unconfigured."""
        self.get_logger().error(f'lifecycle error in state {state.label}: releasing')
        self.close()
        self._lifecycle = 'unconfigured'
        return TransitionCallbackReturn.SUCCESS

    @property
    def lifecycle_state(self) -> str:
        """Return ``unconfigured``, ``inactive``, ``active`` or ``finalized``."""
        return self._lifecycle

    def _configure(self) -> None:
        p = self._params()
        if p['camera_calibration']:
            camera, belt_z = load_camera(p['camera_calibration'])
        elif p['scenario']:
            camera, belt_z = scenario_camera(p['scenario'])
        else:
            camera, belt_z = None, None
        self.detector = DefectDetector.from_model(
            p['model_path'] or p['model'] or default_model_path(), backend=p['backend'],
            threads=p['threads'], spin=p['spin'], sensitivity=p['sensitivity'],
            camera=camera, belt_z=belt_z)
        if p['input_size'] and p['input_size'] != self.detector.meta.input_size:
            raise ConfigError(f'input_size {p["input_size"]} does not match the model '
                              f'({self.detector.meta.input_size}); set 0 to use the model value')
        self._pub_parts = IntraPublisher(self, String, interfaces.TOPIC_INSPECTION, RELIABLE)
        self._pub_markers = self.create_publisher(MarkerArray, interfaces.TOPIC_MARKERS,
                                                  RELIABLE)
        # _on_image only swaps the pending frame under a lock: safe on any thread, so an
        # in-process camera hands its frames over directly (lepton_robot.ros.intra).
        # It takes the camera's LocalImage (intra.publish_native) as it takes an Image.
        self._image_sub = IntraSubscription(self, Image, interfaces.TOPIC_IMAGE,
                                            self._on_image, SENSOR, thread_safe=True,
                                            native_callback=self._on_image)
        self._subs = [
            self.create_subscription(CameraInfo, interfaces.TOPIC_CAMERA_INFO,
                                     self._on_camera_info, SENSOR),
            self.create_subscription(String, interfaces.TOPIC_CELL_STATE,
                                     self._on_cell_state, LATCHED)]
        with self._lock:
            self._stop = False
        self._worker = threading.Thread(target=self._work, name='detector-worker',
                                        daemon=True)
        self._worker.start()
        self.get_logger().info(f'defect detector configured: model '
                               f'{self.detector.backend.model_path} on '
                               f'{self.detector.backend.name}')

    def _deactivate(self) -> None:
        with self._lock:
            self._active = False
            if self._pending is not None:
                self._stats['not_active'] += 1
                self._pending = None
        if self._heartbeat is not None:
            self._heartbeat.destroy()
            self._heartbeat = None

    def _release(self) -> None:
        """Stop the worker, destroy the topics, close the backend (each only if present)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._worker is not None:
            if self._worker.is_alive():
                self._worker.join(timeout=5.0)
            self._worker = None
        if self._image_sub is not None:
            self._image_sub.destroy()
            self._image_sub = None
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        if self._pub_parts is not None:
            self._pub_parts.destroy()
            self._pub_parts = None
        if self._pub_markers is not None:
            self.destroy_publisher(self._pub_markers)
            self._pub_markers = None
        if self.detector is not None:
            self.detector.close()
            self.detector = None

    # --- parameters ------------------------------------------------------------------------
    def _declare_parameters(self) -> None:
        """Declare every parameter with a descriptor (defaults as in the YAML)."""
        def desc(text, read_only=False, **ranges):
            return ParameterDescriptor(description=text, read_only=read_only, **ranges)
        self.declare_parameter('model_path', '', desc(
            'ONNX model file; empty = the shipped models/defect_detector.onnx', True))
        self.declare_parameter('model', '', desc(
            'alias of model_path (used when model_path is empty)', True))
        self.declare_parameter('backend', 'auto', desc(
            'auto | onnxruntime | onnxruntime-cpu | onnxruntime-cuda | onnxruntime-tensorrt '
            '| tensorrt', True))
        self.declare_parameter('sensitivity', 50.0, desc(
            '0..100: higher flags defects more readily (shifts the ok threshold)',
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=100.0,
                                                     step=0.0)]))
        self.declare_parameter('input_size', 0, desc(
            'expected network input side in pixels; 0 = take it from the model metadata',
            True, integer_range=[IntegerRange(from_value=0, to_value=1024, step=1)]))
        self.declare_parameter('threads', 2, desc(
            'ONNX Runtime intra-op threads (0 = its default)', True,
            integer_range=[IntegerRange(from_value=0, to_value=64, step=1)]))
        self.declare_parameter('spin', 'run', desc(
            "how ONNX Runtime's pool threads wait for work: run = spin within a frame's "
            'inference and stop when it returns; never; always = its own default, they keep '
            'spinning between frames and hold a core the other nodes need', True))
        self.declare_parameter('max_image_pixels', DEFAULT_MAX_PIXELS, desc(
            'frames with more pixels are refused (diagnostics, skipped)',
            integer_range=[IntegerRange(from_value=64, to_value=100_000_000, step=1)]))
        self.declare_parameter('camera_calibration', '', desc(
            'camera.json (CameraModel.to_dict() with world_T_camera) for exact world '
            'positions; empty = the nominal camera of the scenario', True))
        self.declare_parameter('scenario', 'default', desc(
            'sim scenario whose nominal camera gives world positions when no '
            'camera_calibration is set (~1 cm off: mounting jitter); empty = no positions',
            True))
        self.declare_parameter('follow_cell_state', True, desc(
            'apply the sensitivity published in cell/state by the supervisor'))
        self.declare_parameter('autostart', True, desc(
            'configure and activate at start-up; false: wait unconfigured for a lifecycle '
            'manager (configure loads the model, activate starts inspecting)', True))
        self.declare_parameter('diagnostics_period', 1.0, desc(
            'seconds between /diagnostics messages', True,
            floating_point_range=[FloatingPointRange(from_value=0.05, to_value=60.0,
                                                     step=0.0)]))

    def _params(self) -> dict:
        names = ('model_path', 'model', 'backend', 'sensitivity', 'input_size', 'threads',
                 'spin', 'max_image_pixels', 'camera_calibration', 'scenario', 'follow_cell_state',
                 'diagnostics_period', 'autostart')
        return {n: self.get_parameter(n).value for n in names}

    def _on_set_parameters(self, params: List[Parameter]) -> SetParametersResult:
        """Validate and apply runtime parameter changes."""
        for param in params:
            if param.name == 'sensitivity':
                value = param.value
                if not isinstance(value, (int, float)) or not math.isfinite(value) \
                        or not 0.0 <= value <= 100.0:
                    return SetParametersResult(successful=False,
                                               reason='sensitivity must be in 0..100')
                if self.detector is not None:     # else applied at the next configure
                    self.detector.set_sensitivity(float(value))
            elif param.name == 'max_image_pixels':
                self._max_pixels = int(param.value)
            elif param.name == 'follow_cell_state':
                self._follow_cell_state = bool(param.value)
        return SetParametersResult(successful=True)

    # --- callbacks (executor thread: cheap only) -------------------------------------------
    def _on_image(self, msg: Image) -> None:
        """Keep only the newest frame for the worker (frames while inactive are dropped)."""
        with self._lock:
            self._stats['received'] += 1
            if not self._active:
                self._stats['not_active'] += 1
                return
            if self._pending is not None:
                self._stats['dropped'] += 1
            self._pending = msg
            self._lock.notify()
        # Give up the GIL: the worker starts on the frame now, not after this thread has
        # gone back into its executor's wait (rclpy rebuilds the wait set in Python).
        time.sleep(0)

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Remember the intrinsics (used to place markers when no world pose is known)."""
        k = [float(v) for v in msg.k]
        if len(k) == 9 and k[0] > 0 and k[4] > 0:
            self._camera_k = k

    def _on_cell_state(self, msg: String) -> None:
        """Follow the supervisor's sensitivity (cell/state) when enabled."""
        if not self._follow_cell_state:
            return
        try:
            state = interfaces.loads(msg.data, interfaces.SCHEMA_CELL_STATE)
        except SchemaError as exc:
            self.get_logger().warning(f'ignoring bad cell/state: {exc}',
                                      throttle_duration_sec=5.0)
            return
        value = float(state['sensitivity'])
        if value == self._cell_sensitivity or not 0.0 <= value <= 100.0:
            return
        self._cell_sensitivity = value
        self.set_parameters([Parameter('sensitivity', Parameter.Type.DOUBLE, value)])

    def _on_diagnostics_timer(self) -> None:
        """Publish fps, latency, backend and frame counters."""
        now = time.monotonic()
        with self._lock:
            stats = dict(self._stats)
            lat = sorted(self._latencies)
            inf = sorted(self._infer_ms)
            fps_window = [t for t in self._fps_window if now - t <= 5.0]
            self._fps_window = fps_window
            self._latencies, self._infer_ms = [], []
            last_bad = self._last_bad
        fps = len(fps_window) / 5.0
        detector, image_sub = self.detector, self._image_sub
        values = {'lifecycle_state': self._lifecycle, 'fps': f'{fps:.2f}', **stats}
        if detector is None or image_sub is None:
            why = f' ({self._configure_error})' if self._configure_error else ''
            self._diag.publish(WARN, f'unconfigured: frames are not inspected{why}', values)
            return
        values.update({'backend': detector.backend.name,
                       'latency_p50_ms': _pct(lat, 50), 'latency_p99_ms': _pct(lat, 99),
                       'infer_p50_ms': _pct(inf, 50), 'sensitivity': detector.sensitivity,
                       'ok_threshold': f'{detector.threshold:.4f}', 'tta': detector.tta,
                       'frames_in_process': image_sub.stats['local'],
                       'frames_over_dds': image_sub.stats['dds']})
        if last_bad:
            values['last_bad_frame'] = last_bad
        level, message = OK, 'running'
        if not self._active:
            level, message = WARN, 'inactive: frames are not inspected'
        elif stats['errors']:
            level, message = ERROR, 'inference errors'
        elif stats['bad_frames']:
            level, message = WARN, f'{stats["bad_frames"]} bad frame(s) skipped'
        self._diag.publish(level, message, values)

    # --- worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._lock.wait(0.5)
                if self._stop:
                    return
                msg, self._pending = self._pending, None
            try:
                self._process(msg)
            except Exception as exc:    # a bug: count it, say it, keep inspecting
                with self._lock:
                    self._stats['errors'] += 1
                self.get_logger().error(f'frame not processed: {exc!r}',
                                        throttle_duration_sec=2.0)
                self._diag.publish(ERROR, 'frame not processed', {'error': repr(exc)})

    def _process(self, msg: Image) -> None:
        t0 = time.perf_counter()
        try:
            image = image_to_bgr(msg.height, msg.width, msg.encoding, msg.step, msg.data,
                                 self._max_pixels)
            result = self.detector.detect(image)
        except ImageError as exc:
            self._bad_frame(str(exc))
            return
        except LeptonError as exc:
            with self._lock:
                self._stats['errors'] += 1
            self.get_logger().error(f'inference failed: {exc}', throttle_duration_sec=2.0)
            self._diag.publish(ERROR, 'inference failed', {'error': str(exc)})
            return
        if not self._active:            # deactivated while this frame was in the network
            with self._lock:
                self._stats['not_active'] += 1
            return
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        frame_id = msg.header.frame_id or 'camera_optical'
        self._frame_id = frame_id
        # An in-process supervisor takes the dict itself (and validates it); the JSON text is
        # made only for subscribers that need a message. A payload that breaks the contract
        # (SchemaError: a bug) is counted and reported by _work, which goes on.
        self._pub_parts.publish_native(result.to_payload(stamp, frame_id), _inspection_msg)
        if self._pub_markers.get_subscription_count() > 0:   # RViz: built only when watched
            self._pub_markers.publish(self._markers(result, msg))
        total = (time.perf_counter() - t0) * 1e3
        with self._lock:
            self._stats['processed'] += 1
            self._stats['parts'] += len(result.parts)
            self._latencies.append(total)
            self._infer_ms.append(result.latency_ms['infer'])
            self._fps_window.append(time.monotonic())

    def _bad_frame(self, reason: str) -> None:
        with self._lock:
            self._stats['bad_frames'] += 1
            self._last_bad = reason
            count = self._stats['bad_frames']
            now = time.monotonic()
            publish = now - self._last_bad_warn >= 0.2
            if publish:
                self._last_bad_warn = now
        self.get_logger().warning(f'skipping bad frame: {reason}', throttle_duration_sec=2.0)
        if publish:   # raise it at once (rate-limited), not only on the next timer tick
            self._diag.publish(WARN, 'bad frame skipped', {'reason': reason,
                                                           'bad_frames': count})

    def _markers(self, result: FrameResult, msg: Image) -> MarkerArray:
        array = MarkerArray()
        clear = Marker(action=Marker.DELETEALL)
        clear.header = msg.header
        array.markers.append(clear)
        for i, part in enumerate(result.parts):
            pose = self._marker_xyz(part)
            if pose is None:
                continue
            frame, xyz = pose
            defect = part.label != 'ok'
            for kind in (Marker.CUBE, Marker.TEXT_VIEW_FACING):
                m = Marker(ns='inspection', id=2 * i + (kind == Marker.TEXT_VIEW_FACING),
                           type=kind, action=Marker.ADD)
                m.header.stamp = msg.header.stamp
                m.header.frame_id = frame
                m.pose.position.x, m.pose.position.y, m.pose.position.z = xyz
                m.pose.orientation.w = 1.0
                m.color.a = 0.8
                m.color.r, m.color.g = (1.0, 0.1) if defect else (0.1, 1.0)
                if kind == Marker.CUBE:
                    m.scale.x = m.scale.y = m.scale.z = 0.04
                else:
                    m.scale.z = 0.02
                    m.pose.position.z += 0.05 if frame == 'world' else -0.05
                    m.text = f'#{part.track_id} {part.label} {part.score:.2f}'
                m.lifetime.nanosec = 500_000_000
                array.markers.append(m)
        return array

    def _marker_xyz(self, part):
        if part.position is not None:
            return 'world', tuple(part.position)
        if self._camera_k is None:
            return None
        k = self._camera_k
        u, v = part.centroid
        d = MARKER_RAY_DEPTH
        return self._frame_id, ((u - k[2]) / k[0] * d, (v - k[5]) / k[4] * d, d)

    def close(self) -> None:
        """Stop inspecting, stop the worker and release the backend (idempotent)."""
        self._deactivate()
        self._release()

    def destroy_node(self) -> None:
        """
        Destroy the node and its lifecycle state machine.

        rclpy's ``LifecycleNode.destroy_node`` leaves the state machine, which holds the rcl
        node, to the garbage collector: until then the node, and with it the process's DDS
        participant and its threads, outlives ``rclpy.shutdown`` (a process that forks
        afterwards, e.g. a multiprocessing pool, can deadlock in the child on a lock one of
        those threads held).
        """
        super().destroy_node()
        state_machine = getattr(self, '_state_machine', None)
        if state_machine is not None:
            state_machine.destroy_when_not_in_use()

    def stats(self) -> dict:
        """Return a copy of the frame counters (tests and diagnostics)."""
        with self._lock:
            return dict(self._stats)


def _pct(values: List[float], q: float) -> str:
    if not values:
        return '-'
    idx = min(len(values) - 1, int(round(q / 100.0 * (len(values) - 1))))
    return f'{values[idx]:.2f}'


def main(args=None) -> int:
    """Run the node."""
    return run_node(DefectDetectorNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
