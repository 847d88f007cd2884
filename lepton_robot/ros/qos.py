"""QoS profiles of the external interface (``shared/spec/interfaces.md``)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, LivelinessPolicy, qos_profile_sensor_data,
                       QoSProfile, ReliabilityPolicy)

#: Camera streams and joint states: best effort, keep last, small depth.
SENSOR = qos_profile_sensor_data

#: Commands, intents, inspections, decisions, results: reliable, depth 10.
RELIABLE = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)

#: E-stop and cell state: reliable and transient local, so late joiners get the last value.
LATCHED = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: A reader that matches every writer of a topic whatever its reliability and durability
#: (best effort, volatile): the supervisor's second ``estop`` subscription.
ANY_WRITER = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)


def liveliness(lease_s: float) -> QoSProfile:
    """
    Return the QoS of the ``heartbeat/<node>`` topics: reliable, depth 1, DDS liveliness.

    Liveliness is AUTOMATIC: the middleware asserts it from its own thread (every 2/3 of
    the lease with Fast DDS), so a busy Python executor does not lose it; a killed process
    does. A reader matches writers that offer a lease no longer than the one it requests.

    :param lease_s: the lease duration in wall-clock seconds.
    """
    from rclpy.duration import Duration
    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE,
                      liveliness=LivelinessPolicy.AUTOMATIC,
                      liveliness_lease_duration=Duration(seconds=float(lease_s)))
