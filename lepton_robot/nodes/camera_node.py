"""
``camera_node``: frames from a V4L2/USB device, a video file or an image folder.

Publishes ``camera/image_raw`` (bgr8) and ``camera/camera_info`` at ``rate_hz`` (without a
calibration file the info is the uncalibrated one: the frame's size, K all zeros, as ROS
drivers do). Frames are grabbed on a worker thread (a device read blocks). When the source
is lost the node publishes an ERROR diagnostic and re-opens it with exponential backoff; it
never exits on its own. A video or folder that is not looped stops at its end (a WARN
diagnostic says so). In the simulated cell the sim bridge publishes the camera topics
itself.
"""

import json
from pathlib import Path
import threading
import time
from typing import Optional

from lepton_robot.camera_sources import (Backoff, make_source, SOURCE_TYPES, SourceEnded,
                                         SourceError)
from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import TOPIC_CAMERA_INFO, TOPIC_IMAGE
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from lepton_robot.ros.intra import IntraPublisher
from lepton_robot.ros.native import LocalImage
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import SENSOR
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header


def load_camera_info(path: str) -> CameraInfo:
    """
    Read intrinsics from ``camera.json`` (``CameraModel.to_dict()``) or a ROS calibration YAML.

    :raises ConfigError: when the file is missing or lacks K.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f'camera_info_file not found: {path}')
    if p.suffix == '.json':
        data = json.loads(p.read_text())
    else:
        import yaml
        data = yaml.safe_load(p.read_text())
    msg = CameraInfo()

    def flat(key, alt):
        value = data.get(key, data.get(alt))
        if isinstance(value, dict):
            value = value.get('data')
        return [float(v) for v in np.asarray(value, dtype=float).ravel()] if value is not None \
            else None
    k = flat('K', 'camera_matrix')
    if k is None or len(k) != 9:
        raise ConfigError(f'{path}: no 3x3 K / camera_matrix')
    msg.k = k
    msg.d = flat('D', 'distortion_coefficients') or []
    msg.p = flat('P', 'projection_matrix') or [k[0], k[1], k[2], 0.0, k[3], k[4], k[5], 0.0,
                                               k[6], k[7], k[8], 0.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.distortion_model = 'plumb_bob'
    msg.width = int(data.get('width', data.get('image_width', 0)))
    msg.height = int(data.get('height', data.get('image_height', 0)))
    return msg


class CameraNode(Node):
    """Publish frames of a device, video or folder at a set rate; survive source loss."""

    def __init__(self) -> None:
        super().__init__('camera')
        ro = {'read_only': True}
        params = [
            ('source_type', 'device', f'one of {", ".join(SOURCE_TYPES)}', ro),
            ('source', '0', 'device (/dev/video0 or index), video file or image folder', ro),
            ('rate_hz', 10.0, 'publish rate (Hz), 0.1..120', {'dynamic_typing': True, **ro}),
            ('loop', True, 'start a video/folder again at its end', ro),
            ('frame_id', 'camera_optical', 'frame id of the images', ro),
            ('camera_info_file', '', 'camera.json or calibration YAML (empty: no intrinsics)',
             ro),
            ('width', 0, 'requested device width (0 = default)', ro),
            ('height', 0, 'requested device height (0 = default)', ro),
            ('max_backoff_s', 8.0, 'largest delay between re-open attempts (s), 0.5..600',
             {'dynamic_typing': True, **ro}),
        ]
        for name, default, text, extra in params:
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      **extra))
        self.p = {name: self.get_parameter(name).value for name, *_ in params}
        if self.p['source_type'] not in SOURCE_TYPES:
            raise ConfigError(f'source_type must be one of {SOURCE_TYPES}')
        # numbers given as integers (-p rate_hz:=10) are fine; out of range is one clear error
        self.p['rate_hz'] = _number(self.p['rate_hz'], 'rate_hz', 0.1, 120.0)
        self.p['max_backoff_s'] = _number(self.p['max_backoff_s'], 'max_backoff_s', 0.5, 600.0)
        self.source = make_source(self.p['source_type'], str(self.p['source']),
                                  loop=self.p['loop'], width=self.p['width'],
                                  height=self.p['height'])
        self.info: Optional[CameraInfo] = (load_camera_info(self.p['camera_info_file'])
                                           if self.p['camera_info_file'] else None)
        self.pub_image = IntraPublisher(self, Image, TOPIC_IMAGE, SENSOR)
        self.pub_info = self.create_publisher(CameraInfo, TOPIC_CAMERA_INFO, SENSOR)
        self.diag = DiagnosticsPublisher(self, hardware_id=self.source.description)
        self.frames = 0
        self.fault: Optional[str] = None
        self.ended: Optional[str] = None
        self.reopens = 0
        self._size_warned = False
        self._diag_frames, self._diag_t = 0, time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name='camera', daemon=True)
        self._thread.start()
        self.create_timer(1.0, self._on_diag_timer)

    def _publish(self, frame: np.ndarray) -> None:
        stamp = self.get_clock().now().to_msg()
        # In a composed graph the detector takes the frame as it is (intra.publish_native);
        # the Image message is built only for subscribers that need one (DDS, others).
        header = Header(stamp=stamp, frame_id=self.p['frame_id'])
        self.pub_image.publish_native(LocalImage(header, frame), LocalImage.to_msg)
        # Give up the GIL for a moment: an in-process subscriber (the composed detector,
        # woken by the intra-process hand-off) starts on the frame now instead of after the
        # CameraInfo below (composed camera -> decision transport p50 0.98 -> 0.80 ms in
        # benchmarks/bench_transport.py --modes composed; free in a process of its own).
        time.sleep(0)
        info = self.info if self.info is not None else _uncalibrated(frame)
        size = (int(frame.shape[1]), int(frame.shape[0]))
        if self.info is not None and (info.width or info.height) \
                and (info.width, info.height) != size and not self._size_warned:
            self._size_warned = True
            self.get_logger().warning(
                f'camera_info_file is for {info.width}x{info.height} but the frames are '
                f'{size[0]}x{size[1]}: the intrinsics do not fit these frames')
        info.header.stamp = stamp
        info.header.frame_id = self.p['frame_id']
        self.pub_info.publish(info)
        self.frames += 1

    def _run(self) -> None:
        backoff = Backoff(maximum=self.p['max_backoff_s'])
        period = 1.0 / self.p['rate_hz']
        opened = False
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                if not opened:
                    self.source.connect()
                    opened = True
                    if self.fault:
                        self.get_logger().info(f'{self.source.description} is back')
                    self.fault = None
                    backoff.reset()
                self._publish(self.source.read())
            except SourceEnded as exc:
                self.source.close()
                self.ended = str(exc)
                self.get_logger().warning(f'{exc}: no more frames')
                self._on_diag_timer()
                return
            except SourceError as exc:
                self.source.close()
                opened = False
                delay = backoff.next_delay()
                if self.fault != str(exc):
                    self.get_logger().error(f'{exc}; retrying (backoff up to '
                                            f'{self.p["max_backoff_s"]} s)')
                self.fault = str(exc)
                self.reopens += 1
                self._on_diag_timer()
                self._stop.wait(delay)
                next_t = time.monotonic()
                continue
            except Exception as exc:    # noqa: BLE001 - the grabber must not die silently
                if self._stop.is_set() or not self.context.ok():
                    return              # shutting down: the publisher's context is gone
                self.get_logger().error(f'frame not published: {exc!r}',
                                        throttle_duration_sec=2.0)
                self.fault = f'frame not published: {exc!r}'
                self._stop.wait(backoff.next_delay())
                next_t = time.monotonic()
                continue
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _on_diag_timer(self) -> None:
        """Report the source's health, the measured rate and the files a folder skipped."""
        now = time.monotonic()
        rate = (self.frames - self._diag_frames) / max(now - self._diag_t, 1e-6)
        self._diag_frames, self._diag_t = self.frames, now
        values = {'frames': self.frames, 'rate_hz': f'{rate:.2f}',
                  'reopen_attempts': self.reopens, 'source': self.source.description}
        skipped = getattr(self.source, 'skipped', {})
        if skipped:
            last = next(reversed(skipped))
            values.update(skipped_files=len(skipped), last_skipped=f'{last} ({skipped[last]})')
        if self.fault:
            level, message = ERROR, self.fault
        elif self.ended:
            level, message = WARN, self.ended
        elif skipped:
            level, message = WARN, f'streaming; {len(skipped)} unreadable file(s) skipped'
        else:
            level, message = OK, 'streaming'
        self.diag.publish(level, message, values)

    def close(self) -> None:
        """Stop the grabber and release the source."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()


def _number(value, name: str, lo: float, hi: float) -> float:
    """Return a numeric parameter as a float in ``[lo, hi]``; raise ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ConfigError(f'{name} must be a number in {lo:g}..{hi:g}, not {value!r}')
    return float(value)


def _uncalibrated(frame: np.ndarray) -> CameraInfo:
    """Return the CameraInfo of a camera without calibration (K all zeros, ROS convention)."""
    return CameraInfo(height=int(frame.shape[0]), width=int(frame.shape[1]))


def main(args=None) -> int:
    """Run the camera node."""
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
