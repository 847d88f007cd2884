"""command_parser_node: parameters in-process, and utterances over real DDS from a process."""

import json
from pathlib import Path
import subprocess

from conftest import REPO_ROOT
from graph_harness import spin_until as _spin_until
from lepton_robot.parser.runtime import default_model_path
import pytest

rclpy = pytest.importorskip('rclpy')

pytestmark = [pytest.mark.ros,
              pytest.mark.skipif(not default_model_path().is_file(),
                                 reason='no shipped parser model')]

DISCOVERY_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 30.0
UTTERANCES = [
    ('stop the line', 'stop', {}),
    ('put all scratched parts in the rework bin', 'sort',
     {'defect': 'scratch', 'bin': 'rework'}),
    ('set speed to forty percent', 'set_speed', {'value': 40}),
    ('e-stop!', 'emergency_stop', {}),
    ('', 'unknown', {}),
    ('tell me a joke', 'unknown', {}),
    ('grab part twelve', 'pick', {'part_id': 12}),
]


def test_parameters_validated_in_process():
    """
    Validate parameter edits on a node in its own Context.

    Steps: reject confidence_floor 1.5 and a model_path change (read-only); accept
    confidence_floor 0.9 and check the parser uses it.
    """
    from lepton_robot.nodes.command_parser_node import CommandParserNode
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    ctx = Context()
    rclpy.init(context=ctx)
    node = None
    try:
        node = CommandParserNode(context=ctx)
        assert node.describe_parameter('model_path').read_only
        assert node.describe_parameter('confidence_floor').floating_point_range[0].to_value == 1.0
        bad = node.set_parameters([Parameter('confidence_floor', value=1.5)])[0]
        assert not bad.successful
        ro = node.set_parameters([Parameter('model_path', value='/tmp/other.onnx')])[0]
        assert not ro.successful
        ok = node.set_parameters([Parameter('confidence_floor', value=0.9)])[0]
        assert ok.successful
        assert node._parser.confidence_floor == pytest.approx(0.9)
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_node_over_dds(ros_subprocess_env, python_exe, tmp_path):
    """
    Parse utterances sent over DDS to the node running as a separate process.

    Steps: start the node process; from a test node in its own Context publish utterances
    on operator/command; expect one lepton.intent/1 per utterance, in order, with the
    right intent and slots; expect /diagnostics with counts and the model version.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from lepton_robot.interfaces import validate_intent
    from lepton_robot.ros.qos import RELIABLE
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import String

    env = dict(ros_subprocess_env, HOME=str(tmp_path), ROS_LOG_DIR=str(tmp_path / 'log'))
    log = open(tmp_path / 'node.log', 'w')
    proc = subprocess.Popen([python_exe, '-m', 'lepton_robot.nodes.command_parser_node',
                             '--ros-args', '-p', 'diagnostics_period:=0.5'],
                            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    ctx = Context()
    rclpy.init(context=ctx)
    node = None
    try:
        node = rclpy.create_node('parser_test_client', context=ctx)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        intents, diags = [], []
        node.create_subscription(String, 'operator/intent',
                                 lambda m: intents.append(json.loads(m.data)), RELIABLE)
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda m: diags.extend(m.status), 10)
        pub = node.create_publisher(String, 'operator/command', RELIABLE)
        assert _spin_until(executor, lambda: pub.get_subscription_count() > 0 and
                           node.count_publishers('operator/intent') > 0,
                           DISCOVERY_TIMEOUT_S), \
            f'node never appeared:\n{Path(tmp_path / "node.log").read_text()}'
        # the node's matching of our subscription may lag its publisher's discovery
        _spin_until(executor, lambda: bool(diags), DISCOVERY_TIMEOUT_S)
        for text, _, _ in UTTERANCES:
            pub.publish(String(data=text))
        assert _spin_until(executor, lambda: len(intents) >= len(UTTERANCES),
                           REPLY_TIMEOUT_S), f'got {len(intents)} of {len(UTTERANCES)}'
        for (text, intent, slots), got in zip(UTTERANCES, intents):
            validate_intent(got)
            assert got['text'] == text
            assert (got['intent'], got['slots']) == (intent, slots), got
        assert _spin_until(executor, lambda: any(
            any(kv.key == 'commands' and int(kv.value) >= len(UTTERANCES) for kv in s.values)
            for s in diags), REPLY_TIMEOUT_S)
        status = [s for s in diags if 'command_parser' in s.name][-1]
        values = {kv.key: kv.value for kv in status.values}
        assert values['model_version']
        assert float(values['latency_ms_p50']) > 0
        assert int(values['unknown']) >= 2
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
