"""QoS profiles of the external interface (``shared/spec/interfaces.md``)."""

from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)

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
