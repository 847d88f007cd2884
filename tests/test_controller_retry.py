"""A missed grasp sends the next attempt at the same part deeper (real node, real rclpy)."""

from lepton_robot.sim.arm import CUP_STROKE
import pytest

rclpy = pytest.importorskip('rclpy')


@pytest.fixture
def controller():
    from lepton_robot.nodes.manipulation_controller_node import ManipulationControllerNode
    from rclpy.parameter import Parameter
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = ManipulationControllerNode(context=ctx, parameter_overrides=[
        Parameter('press_depth_m', Parameter.Type.DOUBLE, 0.006),
        Parameter('retry_press_step_m', Parameter.Type.DOUBLE, 0.004)])
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def _miss(node, part_id, error=None):
    """End a pick of ``part_id``: a missed grasp, or a failure ``error`` of another kind."""
    node.job = {'decision': {'part_id': part_id, 'bin': 'reject'}, 't0': 0.0}
    if error is None:
        node._grasp_missed(0.0)
    else:
        node._fail(error, 0.0)
    assert node.job is None


def test_each_missed_grasp_presses_the_same_part_deeper_up_to_the_stroke(controller):
    assert controller._press_depth({'part_id': 7}) == pytest.approx(0.006)
    _miss(controller, 7)
    assert controller._press_depth({'part_id': 7}) == pytest.approx(0.010)
    assert controller._press_depth({'part_id': 8}) == pytest.approx(0.006)   # other parts not
    _miss(controller, 7)
    _miss(controller, 7)
    assert controller._press_depth({'part_id': 7}) == pytest.approx(CUP_STROKE)   # 0.018 capped
    # A drop or an interrupted pick says nothing about the part's height.
    _miss(controller, 8, 'dropped: the part fell off before the bin')
    _miss(controller, 8, 'interrupted by a stop before the grasp')
    assert controller._press_depth({'part_id': 8}) == pytest.approx(0.006)
    assert controller.stats['failed'] == 5
