"""
``command_parser_node``: operator utterances in, ``lepton.intent/1`` JSON out.

Subscribes ``operator/command`` (std_msgs/String), publishes ``operator/intent``
(std_msgs/String, JSON, reliable) and ``/diagnostics`` (counts, unknown rate, latency,
model version, ONNX Runtime provider). Parsing takes well under a millisecond, so it runs
in the subscription callback; the parser never raises, so one bad utterance can never
take the node down.
"""

import collections
import time
from typing import List

from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import dumps, TOPIC_COMMAND, TOPIC_INTENT
from lepton_robot.parser.runtime import CommandParser
from lepton_robot.ros.diagnostics import DiagnosticsPublisher, OK, WARN
from lepton_robot.ros.liveness import Heartbeat
from lepton_robot.ros.node_main import run_node
from lepton_robot.ros.qos import RELIABLE
from rcl_interfaces.msg import (FloatingPointRange, ParameterDescriptor, ParameterType,
                                SetParametersResult)
from rclpy.node import Node
from std_msgs.msg import String

NODE_NAME = 'command_parser'
#: unknown-rate above which diagnostics turn WARN (over the latency window)
UNKNOWN_RATE_WARN = 0.5
_LATENCY_WINDOW = 200


class CommandParserNode(Node):
    """Parse operator commands into intents."""

    def __init__(self, **kwargs) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.declare_parameter('model_path', '', ParameterDescriptor(
            type=ParameterType.PARAMETER_STRING, read_only=True,
            description='ONNX parser model; empty = the shipped models/command_parser.onnx'))
        self.declare_parameter('confidence_floor', 0.5, ParameterDescriptor(
            type=ParameterType.PARAMETER_DOUBLE,
            description='below this intent probability the answer is "unknown"',
            floating_point_range=[FloatingPointRange(from_value=0.0, to_value=1.0,
                                                     step=0.0)]))
        self.declare_parameter('diagnostics_period', 1.0, ParameterDescriptor(
            type=ParameterType.PARAMETER_DOUBLE, read_only=True,
            description='seconds between /diagnostics messages',
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0,
                                                     step=0.0)]))
        model_path = self.get_parameter('model_path').value or None
        floor = float(self.get_parameter('confidence_floor').value)
        if not 0.0 <= floor <= 1.0:
            raise ConfigError(f'confidence_floor must be in 0..1, got {floor}')
        self._parser = CommandParser(model_path, confidence_floor=floor)
        self._parser.warmup()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._counts = collections.Counter()
        self._latency_ms = collections.deque(maxlen=_LATENCY_WINDOW)
        self._unknown_window = collections.deque(maxlen=_LATENCY_WINDOW)
        self._pub = self.create_publisher(String, TOPIC_INTENT, RELIABLE)
        self._sub = self.create_subscription(String, TOPIC_COMMAND, self._on_command, RELIABLE)
        self._diag = DiagnosticsPublisher(self)
        self._heartbeat = Heartbeat(self)   # heartbeat/<name>: the supervisor's liveness watch
        self._timer = self.create_timer(float(self.get_parameter('diagnostics_period').value),
                                        self._on_diagnostics)
        self.get_logger().info(
            f'parser model {self._parser.model_path} version {self._parser.version} on '
            f'{self._parser.providers[0]}, confidence floor {floor:.2f}')

    def _on_set_parameters(self, params: List) -> SetParametersResult:
        """Validate runtime parameter edits."""
        for param in params:
            if param.name == 'confidence_floor':
                value = param.value
                if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
                    return SetParametersResult(successful=False,
                                               reason='confidence_floor must be in 0..1')
                self._parser.confidence_floor = float(value)
        return SetParametersResult(successful=True)

    def _on_command(self, msg: String) -> None:
        """Parse one utterance and publish its intent."""
        start = time.perf_counter()
        result = self._parser.parse(msg.data)
        self._latency_ms.append((time.perf_counter() - start) * 1e3)
        self._counts['commands'] += 1
        self._counts[result['intent']] += 1
        self._unknown_window.append(result['intent'] == 'unknown')
        if result['intent'] == 'unknown':
            self.get_logger().warning(
                f'not understood: {result["text"][:80]!r} ({result.get("reason", "")})',
                throttle_duration_sec=2.0)
        self._pub.publish(String(data=dumps(result)))

    def _on_diagnostics(self) -> None:
        """Publish counts, unknown rate, latency and model version."""
        lat = sorted(self._latency_ms)
        unknown_rate = (sum(self._unknown_window) / len(self._unknown_window)
                        if self._unknown_window else 0.0)
        values = {'commands': self._counts['commands'],
                  'unknown': self._counts['unknown'],
                  'unknown_rate_recent': f'{unknown_rate:.3f}',
                  'latency_ms_p50': f'{lat[len(lat) // 2]:.3f}' if lat else 'n/a',
                  'latency_ms_max': f'{lat[-1]:.3f}' if lat else 'n/a',
                  'model_version': self._parser.version,
                  'model_path': str(self._parser.model_path),
                  'backend': f'onnxruntime {self._parser.providers[0]}',
                  'confidence_floor': f'{self._parser.confidence_floor:.2f}'}
        for intent in self._parser.intents:
            if self._counts[intent]:
                values[f'intent_{intent}'] = self._counts[intent]
        if len(self._unknown_window) >= 10 and unknown_rate > UNKNOWN_RATE_WARN:
            self._diag.publish(WARN, f'{unknown_rate:.0%} of recent commands not understood',
                               values)
        else:
            self._diag.publish(OK, 'parsing', values)


def main(args=None) -> int:
    """Run the node."""
    return run_node(CommandParserNode, args)


if __name__ == '__main__':
    raise SystemExit(main())
