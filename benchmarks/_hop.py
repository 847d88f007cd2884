"""
The floor under ``bench_transport``: plain rclpy hops between two processes, no project node.

``bench_transport.py`` runs this twice, a subscriber and a publisher, in processes of their
own and on the same executor kind and process set-up as the nodes (``keep_frame_buffers``).
The publisher sends the benchmark's rendered frame as a ``sensor_msgs/Image`` (built as
``camera_node`` builds it, SENSOR QoS) and a ``std_msgs/String`` the size of an inspection
payload (RELIABLE), each at the camera rate. The subscriber records, per message, its
arrival minus the stamp taken before the message was built (one system clock), and writes
JSON. The separate graph's two hops (image, inspection) cost at least the sum of these.

Usage (by ``bench_transport.py``)::

    python _hop.py sub  EXECUTOR SECONDS OUT.json
    python _hop.py pub  EXECUTOR SECONDS FRAME.png RATE_HZ
"""

import json
import sys
import time

import numpy as np

IMAGE_TOPIC = 'hop/image'
STRING_TOPIC = 'hop/string'
#: bytes of a one-part ``inspection/parts`` payload, about
STRING_BYTES = 900


def _executor(kind: str):
    from lepton_robot.ros.node_main import make_executor
    return make_executor(kind)


def _stats(values):
    a = np.asarray(values[5:], np.float64)       # the first few ride on discovery
    if not a.size:
        return {'n': 0}
    return {'p50': round(float(np.percentile(a, 50)), 3),
            'p90': round(float(np.percentile(a, 90)), 3), 'n': int(a.size)}


def subscriber(kind: str, seconds: float, out: str) -> None:
    """Record one-way latencies of both topics for ``seconds``; write them to ``out``."""
    import rclpy
    from lepton_robot.ros.qos import RELIABLE, SENSOR
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    rclpy.init()
    node = rclpy.create_node('hop_subscriber')
    image_ms, string_ms = [], []
    arrivals = []       # monotonic time of each message

    def on_image(msg: Image) -> None:
        arrivals.append(time.monotonic())
        now = time.time()
        np.frombuffer(msg.data, np.uint8)     # as the detector views it
        image_ms.append((now - msg.header.stamp.sec - 1e-9 * msg.header.stamp.nanosec) * 1e3)

    def on_string(msg: String) -> None:
        arrivals.append(time.monotonic())
        now = time.time()
        string_ms.append((now - float(json.loads(msg.data)['stamp'])) * 1e3)
    node.create_subscription(Image, IMAGE_TOPIC, on_image, SENSOR)
    node.create_subscription(String, STRING_TOPIC, on_string, RELIABLE)
    executor = _executor(kind)
    executor.add_node(node)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.1)
        if arrivals and time.monotonic() - arrivals[-1] > 2.0:
            break       # the publisher is done
    with open(out, 'w') as f:
        json.dump({'image_hop_ms': _stats(image_ms), 'string_hop_ms': _stats(string_ms)}, f)
    node.destroy_node()
    rclpy.shutdown()


def publisher(kind: str, seconds: float, frame_path: str, rate_hz: float) -> None:
    """Publish the frame and a payload-sized string at ``rate_hz`` for ``seconds``."""
    import cv2
    import rclpy
    from lepton_robot.detector.image_msg import bgr_to_data
    from lepton_robot.ros.qos import RELIABLE, SENSOR
    from sensor_msgs.msg import Image
    from std_msgs.msg import String
    frame = cv2.imread(frame_path, cv2.IMREAD_COLOR)
    rclpy.init()
    node = rclpy.create_node('hop_publisher')
    pub_image = node.create_publisher(Image, IMAGE_TOPIC, SENSOR)
    pub_string = node.create_publisher(String, STRING_TOPIC, RELIABLE)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and (pub_image.get_subscription_count() == 0
                                           or pub_string.get_subscription_count() == 0):
        time.sleep(0.05)
    time.sleep(0.5)
    period = 1.0 / rate_hz
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = time.time()
        msg = Image()
        sec = int(now)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((now - sec) * 1e9)
        msg.header.frame_id = 'camera_optical_frame'
        msg.height, msg.width = int(frame.shape[0]), int(frame.shape[1])
        msg.encoding, msg.step = 'bgr8', int(frame.shape[1] * 3)
        msg.data = bgr_to_data(frame)
        pub_image.publish(msg)
        time.sleep(period / 2)
        payload = json.dumps({'stamp': time.time(), 'pad': 'x' * STRING_BYTES})
        pub_string.publish(String(data=payload))
        time.sleep(period / 2)
    node.destroy_node()
    rclpy.shutdown()


def main(argv) -> int:
    """Run one side."""
    from lepton_robot.ros.node_main import keep_frame_buffers
    keep_frame_buffers()
    role, kind, seconds = argv[0], argv[1], float(argv[2])
    if role == 'sub':
        subscriber(kind, seconds, argv[3])
    else:
        publisher(kind, seconds, argv[3], float(argv[4]))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
