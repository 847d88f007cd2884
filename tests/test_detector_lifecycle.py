"""
defect_detector_node as a managed (lifecycle) node, driven from outside over real DDS.

The node runs as its own process with ``autostart:=false``; this test is the lifecycle
manager, a plain rclpy client of the standard ``lifecycle_msgs`` services (what ``ros2
lifecycle set`` and launch_ros call). Frames go in the whole time; inspections must come
out only while the node is active, its heartbeat writer (the supervisor's liveness watch)
must exist only then, and ``cleanup`` + ``configure`` must load the model again.
"""

import time

from detector_helpers import needs_model, render_dataset
from graph_harness import first_answer
from lepton_robot.detector.dataset import read_image, read_labels
from lepton_robot.interfaces import heartbeat_topic, loads, SCHEMA_INSPECTION
from lepton_robot.ros.qos import SENSOR
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_detector_node import _start_node, _stop, image_msg, START_TIMEOUT_S

pytestmark = [pytest.mark.ros, needs_model]

NODE = '/defect_detector'


@pytest.fixture(scope='module')
def frame(tmp_path_factory):
    """One real sim frame with parts on it."""
    out = render_dataset(tmp_path_factory.mktemp('lifecycle') / 'sim', 2, seed=4711)
    return read_image(str(read_labels(str(out))[0].path))


class Manager:
    """An outside lifecycle manager plus a camera and an inspection listener."""

    def __init__(self, proc):
        self.proc = proc
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('lifecycle_manager', context=self.ctx)
        self.change = self.node.create_client(ChangeState, f'{NODE}/change_state')
        self.get = self.node.create_client(GetState, f'{NODE}/get_state')
        self.stamps = []
        self.node.create_subscription(
            String, 'inspection/parts',
            lambda m: self.stamps.append(loads(m.data, SCHEMA_INSPECTION)['stamp']), 10)
        self.pub = self.node.create_publisher(Image, 'camera/image_raw', SENSOR)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)

    def spin_until(self, cond, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            assert self.proc.poll() is None, self.proc.stdout.read().decode(errors='replace')
            self.executor.spin_once(timeout_sec=0.05)
        return cond()

    def open_services(self):
        """Get one answer from each service (see ``graph_harness.first_answer``)."""
        assert first_answer(self.get, GetState.Request(), self.spin_until, START_TIMEOUT_S)
        noop = ChangeState.Request(transition=Transition(label='no-such-transition'))
        response = first_answer(self.change, noop, self.spin_until, START_TIMEOUT_S)
        assert response is not None and not response.success

    def call(self, client, request, timeout=30.0):
        future = client.call_async(request)
        assert self.spin_until(future.done, timeout), f'no answer from {client.srv_name}'
        return future.result()

    def state(self) -> int:
        return self.call(self.get, GetState.Request()).current_state.id

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change, ChangeState.Request(
            transition=Transition(id=transition_id))).success

    def heartbeat_writers(self) -> int:
        return self.node.count_publishers(heartbeat_topic('defect_detector'))

    def frames_give_inspections(self, img, stamp0: float, seconds: float) -> bool:
        """Publish frames for ``seconds`` (or until one is inspected); True if one was."""
        n = len(self.stamps)
        deadline = time.monotonic() + seconds
        stamp = stamp0
        while time.monotonic() < deadline:
            self.pub.publish(image_msg(img, stamp=stamp))
            stamp += 0.01
            if self.spin_until(lambda: len(self.stamps) > n, 0.25):
                return True
        return False

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


@pytest.mark.slow
def test_outside_manager_drives_configure_activate_deactivate_cleanup(frame):
    """Inspections and the heartbeat exist only while active; cleanup + configure reloads."""
    proc = _start_node('-p', 'autostart:=false')
    manager = Manager(proc)
    try:
        manager.open_services()
        assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not manager.frames_give_inspections(frame, 1.0, 2.0)

        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == State.PRIMARY_STATE_INACTIVE
        assert not manager.frames_give_inspections(frame, 2.0, 2.0)
        assert manager.heartbeat_writers() == 0

        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert manager.state() == State.PRIMARY_STATE_ACTIVE
        assert manager.frames_give_inspections(frame, 3.0, 30.0)
        assert manager.spin_until(lambda: manager.heartbeat_writers() == 1, 10.0)

        assert manager.transition(Transition.TRANSITION_DEACTIVATE)
        assert manager.state() == State.PRIMARY_STATE_INACTIVE
        assert manager.spin_until(lambda: manager.heartbeat_writers() == 0, 10.0)
        manager.spin_until(lambda: False, 0.5)           # inspections already under way
        assert not manager.frames_give_inspections(frame, 4.0, 2.0)

        assert manager.transition(Transition.TRANSITION_CLEANUP)
        assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.transition(Transition.TRANSITION_ACTIVATE)
        assert manager.frames_give_inspections(frame, 5.0, 30.0)
        # an impossible transition is refused, and the node carries on
        assert not manager.transition(Transition.TRANSITION_CONFIGURE)
        assert manager.state() == State.PRIMARY_STATE_ACTIVE

        assert manager.transition(Transition.TRANSITION_ACTIVE_SHUTDOWN)
        assert manager.state() == State.PRIMARY_STATE_FINALIZED
        assert proc.poll() is None
    finally:
        manager.close()
        _stop(proc)


def test_failed_configure_leaves_the_node_unconfigured_and_saying_why(tmp_path):
    """Without autostart a missing model fails configure; the node stays up, unconfigured."""
    from lepton_robot.nodes.defect_detector_node import DefectDetectorNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    missing = tmp_path / 'missing.onnx'
    node = DefectDetectorNode(context=ctx, parameter_overrides=[
        Parameter('autostart', value=False), Parameter('model_path', value=str(missing)),
        Parameter('threads', value=1)])
    try:
        assert node.lifecycle_state == 'unconfigured' and node.detector is None
        node._on_image(Image())          # a frame before configure: counted, dropped
        assert node.stats()['not_active'] == 1
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.lifecycle_state == 'unconfigured'
        assert 'missing.onnx' in str(node._configure_error)
        # activate is not a transition out of unconfigured
        assert node.trigger_activate() != TransitionCallbackReturn.SUCCESS
        assert node.lifecycle_state == 'unconfigured'
    finally:
        node.close()
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def test_autostart_is_active_at_once(frame):
    """The default: configured and active after construction, as a plain node was."""
    from lepton_robot.nodes.defect_detector_node import DefectDetectorNode
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = DefectDetectorNode(context=ctx, parameter_overrides=[Parameter('threads', value=1)])
    try:
        assert node.lifecycle_state == 'active' and node.detector is not None
        assert node.count_publishers(heartbeat_topic('defect_detector')) == 1
        assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
        assert node.count_publishers(heartbeat_topic('defect_detector')) == 0
        node._on_image(image_msg(frame))
        assert node.stats()['not_active'] == 1 and node.stats()['processed'] == 0
        assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
        assert node.detector is None
    finally:
        node.close()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
