"""The project's Fast DDS profile: camera frames larger than 512 KiB reach other processes."""

import os
import subprocess
import sys
import time

from conftest import ros_env
from lepton_robot.ros import dds

PUBLISHER = r"""
import sys, time
from lepton_robot.ros import dds
import os
dds.apply_default_profile(os.environ)
import rclpy
from lepton_robot.ros.qos import SENSOR
from sensor_msgs.msg import Image
rclpy.init()
node = rclpy.create_node('big_frames')
pub = node.create_publisher(Image, 'big_frames', SENSOR)
deadline = time.monotonic() + 20.0
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
msg = Image(height=480, width=640, encoding='bgr8', step=640 * 3)
msg.data = bytes(640 * 480 * 3)
for _ in range(10):
    pub.publish(msg)
    time.sleep(0.2)
time.sleep(0.5)
node.destroy_node()
rclpy.shutdown()
"""


def test_profile_is_set_only_where_nothing_else_is_configured():
    """The user's profile, another RMW and the opt-out all win over the project's profile."""
    env = {}
    assert dds.apply_default_profile(env) == dds.profile_path()
    assert env['FASTDDS_DEFAULT_PROFILES_FILE'].endswith('fastdds.xml')
    assert os.path.isfile(env['FASTDDS_DEFAULT_PROFILES_FILE'])
    for preset in ({'FASTDDS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                   {'FASTRTPS_DEFAULT_PROFILES_FILE': '/mine.xml'},
                   {'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'},
                   {'LEPTON_FASTDDS_PROFILE': '0'}):
        env = dict(preset)
        assert dds.apply_default_profile(env) is None
        assert env == preset
    env = {'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'}
    assert dds.apply_default_profile(env) is not None


def test_a_640x480_frame_crosses_processes_best_effort():
    """
    A 640x480 ``bgr8`` frame (900 KiB) on the contract's best-effort QoS reaches another process.

    With Fast DDS's built-in transports none arrived on these machines (session 12); the
    publisher's shared-memory segment is the one that counts, and the project's processes
    (every node, through node_main) take ``config/fastdds.xml``.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from lepton_robot.ros.qos import SENSOR
    from sensor_msgs.msg import Image

    got = []
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('big_frames_listener', context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.create_subscription(
        Image, 'big_frames', lambda m: got.append((m.width, m.height, len(m.data))), SENSOR)
    env = ros_env()
    env.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)     # the publisher sets it itself
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER], env=env)
    try:
        deadline = time.monotonic() + 40.0
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        for _ in range(10):
            executor.spin_once(timeout_sec=0.05)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        node.destroy_node()
        executor.shutdown()
        rclpy.shutdown(context=context)
    assert got, 'no 640x480 frame arrived'
    assert got[0] == (640, 480, 640 * 480 * 3)
