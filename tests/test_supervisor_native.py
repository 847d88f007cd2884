"""The supervisor node takes an in-process detector's inspection as a dict, and checks it."""

import math
import random

from lepton_robot.interfaces import SCHEMA_INSPECTION, TOPIC_INSPECTION
from lepton_robot.nodes.supervisor_node import SupervisorNode
from lepton_robot.ros import intra
from lepton_robot.ros.qos import RELIABLE
import pytest
import rclpy
from std_msgs.msg import String


@pytest.fixture
def composed(monkeypatch):
    """Yield a supervisor and a publisher in one Context (one process), no executor."""
    monkeypatch.setattr(intra, '_disabled', None)
    monkeypatch.setenv('ROS_DOMAIN_ID', str(random.SystemRandom().randint(1, 100)))
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = SupervisorNode(context=ctx)
    talker = rclpy.create_node('detector', context=ctx)
    pub = intra.IntraPublisher(talker, String, TOPIC_INSPECTION, RELIABLE)
    try:
        yield node, pub
    finally:
        for n in (node, talker):
            intra.release_node(n)
            n.destroy_node()
        node.close()
        rclpy.shutdown(context=ctx)


def _payload(prob_ok=0.9):
    return {'schema': SCHEMA_INSPECTION, 'stamp': 1.0, 'frame_id': 'camera_optical',
            'parts': [{'bbox': [1, 2, 3, 4], 'label': 'ok', 'score': 0.9,
                       'probs': {'ok': prob_ok}, 'color': 'red', 'shape': 'block',
                       'position': [0.1, 0.2, 0.3]}]}


def test_a_native_inspection_is_folded_in_without_json(composed):
    """The dict reaches the tracker; no JSON is written when nobody needs a message."""
    node, pub = composed
    built = []
    pub.publish_native(_payload(), lambda p: built.append(p) or String(data='{}'))
    assert built == []
    assert len(node.core.tracker.tracks) == 1
    assert node._bad_messages == 0


@pytest.mark.parametrize('bad', [
    {'schema': 'lepton.decision/1'},
    {'parts': 'none'},
    {'probs': math.nan},
    {'position': [0.1, math.inf, 0.3]},
])
def test_a_bad_native_inspection_is_dropped_and_counted(composed, bad):
    """It gets the same checks as JSON text (NaN included, which JSON cannot carry)."""
    node, pub = composed
    payload = _payload()
    if 'schema' in bad or 'parts' in bad:
        payload.update(bad)
    elif 'probs' in bad:
        payload['parts'][0]['probs'] = {'ok': bad['probs']}
    else:
        payload['parts'][0].update(bad)
    pub.publish_native(payload, lambda p: String(data='{}'))
    assert node._bad_messages == 1
    assert node.core.tracker.tracks == {}
