"""
``camera_node``: frames from a V4L2/USB device, a video file or an image folder.

Publishes ``camera/image_raw`` (bgr8) and ``camera/camera_info`` at ``rate_hz``. Frames are
grabbed on a worker thread (a device read blocks). When the source is lost the node
publishes an ERROR diagnostic and re-opens it with exponential backoff; it never exits on
its own. In the simulated cell the sim bridge publishes the camera topics itself.
"""

import json
from pathlib import Path
import threading
import time
from typing import Optional

from lepton_robot.camera_sources import Backoff, make_source, SOURCE_TYPES, SourceError
from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import TOPIC_CAMERA_INFO, TOPIC_IMAGE
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, ERROR, OK
from lepton_robot.ros.intra import IntraPublisher
from lepton_robot.ros.native import LocalImage
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import SENSOR
import numpy as np
from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor
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
            ('rate_hz', 10.0, 'publish rate (Hz)',
             {'floating_point_range': [FloatingPointRange(from_value=0.1, to_value=120.0)],
              **ro}),
            ('loop', True, 'start a video/folder again at its end', ro),
            ('frame_id', 'camera_optical', 'frame id of the images', ro),
            ('camera_info_file', '', 'camera.json or calibration YAML (empty: no intrinsics)',
             ro),
            ('width', 0, 'requested device width (0 = default)', ro),
            ('height', 0, 'requested device height (0 = default)', ro),
            ('max_backoff_s', 8.0, 'largest delay between re-open attempts (s)', ro),
        ]
        for name, default, text, extra in params:
            self.declare_parameter(name, default, ParameterDescriptor(description=text,
                                                                      **extra))
        self.p = {name: self.get_parameter(name).value for name, *_ in params}
        if self.p['source_type'] not in SOURCE_TYPES:
            raise ConfigError(f'source_type must be one of {SOURCE_TYPES}')
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
        self.reopens = 0
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
        if self.info is not None:
            self.info.header.stamp = stamp
            self.info.header.frame_id = self.p['frame_id']
            self.pub_info.publish(self.info)
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
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _on_diag_timer(self) -> None:
        """Report the source's health."""
        self.diag.publish(ERROR if self.fault else OK, self.fault or 'streaming',
                          {'frames': self.frames, 'reopen_attempts': self.reopens,
                           'source': self.source.description})

    def close(self) -> None:
        """Stop the grabber and release the source."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.source.close()


def main(args=None) -> int:
    """Run the camera node."""
    return run_node(CameraNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
