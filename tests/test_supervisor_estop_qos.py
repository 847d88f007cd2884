"""An e-stop from any publisher reaches the supervisor, whatever QoS the publisher uses."""

import time

from lepton_robot.interfaces import TOPIC_ESTOP, TOPIC_FEEDBACK
from lepton_robot.nodes.supervisor_node import SupervisorNode
from lepton_robot.ros.qos import LATCHED, RELIABLE
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Bool, String

DEFAULT = QoSProfile(depth=10)          # what `ros2 topic pub` and most clients use
BEST_EFFORT = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.VOLATILE)


@pytest.mark.parametrize('qos', [DEFAULT, BEST_EFFORT, LATCHED],
                         ids=['reliable-volatile', 'best-effort', 'contract'])
def test_estop_from_any_publisher_engages_once(qos):
    """
    An e-stop engages once, whether its writer is volatile, best effort or as the contract.

    The contract says reliable + transient local, but a client that publishes with default
    QoS must not be ignored: a transient-local reader alone does not match a volatile
    writer, and the supervisor dropped such an e-stop silently before session 12.
    """
    cell, client = rclpy.Context(), rclpy.Context()
    rclpy.init(context=cell)
    rclpy.init(context=client)
    sup = SupervisorNode(context=cell)
    other = rclpy.create_node('outside_client', context=client)
    executor = SingleThreadedExecutor(context=cell)
    executor.add_node(sup)
    other_exec = SingleThreadedExecutor(context=client)
    other_exec.add_node(other)
    feedback = []
    other.create_subscription(String, TOPIC_FEEDBACK, lambda m: feedback.append(m.data),
                              RELIABLE)
    pub = other.create_publisher(Bool, TOPIC_ESTOP, qos)
    try:
        deadline = time.monotonic() + 10.0
        while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            other_exec.spin_once(timeout_sec=0.0)
        assert pub.get_subscription_count() >= 1, 'the supervisor did not match the writer'
        pub.publish(Bool(data=True))
        deadline = time.monotonic() + 10.0
        while sup.core.state != 'estopped' and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            other_exec.spin_once(timeout_sec=0.0)
        assert sup.core.state == 'estopped'
        end = time.monotonic() + 1.0        # let a second delivery arrive, if any
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            other_exec.spin_once(timeout_sec=0.0)
        engaged = [t for t in feedback if 'E-stop' in t or 'EMERGENCY' in t]
        assert len(engaged) == 1, engaged
    finally:
        for node in (sup, other):
            node.destroy_node()
        sup.close()
        executor.shutdown()
        other_exec.shutdown()
        rclpy.shutdown(context=cell)
        rclpy.shutdown(context=client)
