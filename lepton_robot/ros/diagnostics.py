"""Small helpers to publish ``/diagnostics`` from any node."""

from typing import Dict, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from lepton_robot.interfaces import TOPIC_DIAGNOSTICS
from rclpy.node import Node

# DiagnosticStatus levels are bytes in rclpy; nodes pass these ints.
OK = DiagnosticStatus.OK[0]
WARN = DiagnosticStatus.WARN[0]
ERROR = DiagnosticStatus.ERROR[0]
STALE = DiagnosticStatus.STALE[0]


class DiagnosticsPublisher:
    """Publish one ``DiagnosticStatus`` per call for a node (name = node's full name)."""

    def __init__(self, node: Node, hardware_id: str = 'lepton_robot') -> None:
        self._node = node
        self._hardware_id = hardware_id
        self._pub = node.create_publisher(DiagnosticArray, TOPIC_DIAGNOSTICS, 10)

    def publish(self, level: int, message: str, values: Mapping[str, object] = None) -> None:
        """Publish the node's status with ``level`` (OK/WARN/ERROR/STALE) and key values."""
        status = DiagnosticStatus(level=bytes([level]), name=self._node.get_fully_qualified_name(),
                                  message=message, hardware_id=self._hardware_id)
        status.values = [KeyValue(key=str(k), value=str(v)) for k, v in (values or {}).items()]
        msg = DiagnosticArray()
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.status = [status]
        self._pub.publish(msg)


def level_name(level: int) -> str:
    """Return OK/WARN/ERROR/STALE for a level byte or int."""
    names: Dict[int, str] = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}
    if isinstance(level, (bytes, bytearray)):
        level = level[0]
    return names.get(level, str(level))
