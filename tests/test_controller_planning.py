"""
The controller plans in a thread of its own: a halt reaches the arm while a plan runs.

Real node, real rclpy and DDS. The planner is held inside a plan (an Event it waits on) so
that the plan lasts as long as the test wants; on a real arm a plan takes up to ~0.8 s.
"""

import threading
import time

from graph_harness import spin_until as _spin_until
from lepton_robot.interfaces import (dumps, SCHEMA_CELL_STATE, SCHEMA_DECISION,
                                     TOPIC_CELL_STATE, TOPIC_JOINT_TRAJECTORY,
                                     TOPIC_MANIPULATION_PLANNING)
from lepton_robot.sim.arm import JOINT_NAMES
import pytest

rclpy = pytest.importorskip('rclpy')


@pytest.fixture
def graph():
    """Yield (controller, probe node, executor) in one Context (the run's domain, conftest)."""
    from lepton_robot.nodes.manipulation_controller_node import ManipulationControllerNode
    from rclpy.executors import SingleThreadedExecutor
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    controller = ManipulationControllerNode(context=ctx)
    probe = rclpy.create_node('planning_probe', context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(controller)
    executor.add_node(probe)
    try:
        yield controller, probe, executor
    finally:
        executor.shutdown()
        probe.destroy_node()
        controller.destroy_node()
        rclpy.shutdown(context=ctx)


def _cell_state(state: str):
    from std_msgs.msg import String
    return String(data=dumps({'schema': SCHEMA_CELL_STATE, 'state': state, 'rules': [],
                              'speed': 1.0, 'sensitivity': 0.5, 'counts': {}}))


def test_a_halt_during_a_plan_reaches_the_arm_at_once_and_the_plan_is_dropped(graph):
    from lepton_robot.ros.qos import LATCHED, RELIABLE
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool, String
    from trajectory_msgs.msg import JointTrajectory
    controller, probe, executor = graph

    trajectories, planning = [], []
    probe.create_subscription(JointTrajectory, TOPIC_JOINT_TRAJECTORY,
                              lambda m: trajectories.append((time.monotonic(), m)), RELIABLE)
    probe.create_subscription(Bool, TOPIC_MANIPULATION_PLANNING,
                              lambda m: planning.append(m.data), RELIABLE)
    pub_state = probe.create_publisher(String, TOPIC_CELL_STATE, LATCHED)

    # Hold the planner inside its next plan until the test lets it go.
    release, entered = threading.Event(), threading.Event()
    plan = controller.planner.plan_pick_place

    def held_plan(*args, **kwargs):
        entered.set()
        assert release.wait(20.0), 'the test never released the planner'
        return plan(*args, **kwargs)
    controller.planner.plan_pick_place = held_plan

    # A part at rest in the middle of the pick zone; the arm at home.
    controller._on_joint_states(JointState(name=list(JOINT_NAMES),
                                           position=[float(v) for v in controller.planner.home]))
    sc = controller.planner.scenario
    x = 0.5 * sum(sc.arm.get('pick_zone_x', [0.0, 0.0]))
    decision = {'schema': SCHEMA_DECISION, 'part_id': 41, 'action': 'pick_place',
                'bin': 'reject', 'reason': 'test',
                'pick_pose': [x, float(sc.belt['y']), float(sc.belt['top_z']) + 0.03, 0.0],
                'stamp': controller._now()}
    controller._on_decision(String(data=dumps(decision)))
    assert _spin_until(executor, entered.is_set, 10.0), 'the controller never started a plan'
    assert controller._planning is not None and controller.job is not None

    # E-stop while the planner is busy: the hold (a trajectory without points) must come
    # while the plan is still running, not after it.
    t_estop = time.monotonic()
    pub_state.publish(_cell_state('estopped'))
    assert _spin_until(executor, lambda: any(not m.points for _, m in trajectories), 5.0)
    t_hold = next(t for t, m in trajectories if not m.points)
    assert not release.is_set()
    assert t_hold - t_estop < 0.5, f'halt took {t_hold - t_estop:.3f} s'
    assert controller.halted and controller._planning is None and controller.job is None
    # the sim's planning pause ends with it
    assert _spin_until(executor, lambda: planning and planning[-1] is False, 2.0)

    # The plan ends after the halt: it is dropped and the part goes back to the queue.
    release.set()
    _spin_until(executor, lambda: False, 1.0)
    assert all(not m.points for _, m in trajectories), 'a dropped plan reached the arm'
    assert [d['part_id'] for d in controller.queue] == [41]
    assert controller.interrupted is None       # nothing was held: no place to finish

    # Running again: the same part is planned again and its pick is sent.
    pub_state.publish(_cell_state('running'))
    assert _spin_until(executor, lambda: any(m.points for _, m in trajectories), 10.0)
    assert controller.job is not None and controller.job['decision']['part_id'] == 41
    assert not controller.queue


def test_a_plan_that_fails_in_the_planning_thread_is_handled_on_the_executor(graph):
    """An unreachable pose fails in the planning thread; the node retries, then rejects it."""
    from lepton_robot.interfaces import TOPIC_PICK_RESULT
    from lepton_robot.ros.qos import RELIABLE
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    import json
    controller, probe, executor = graph
    results = []
    probe.create_subscription(String, TOPIC_PICK_RESULT,
                              lambda m: results.append(json.loads(m.data)), RELIABLE)
    threads = []
    plan = controller.planner.plan_pick_place

    def recording_plan(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return plan(*args, **kwargs)
    controller.planner.plan_pick_place = recording_plan
    controller._on_joint_states(JointState(name=list(JOINT_NAMES),
                                           position=[float(v) for v in controller.planner.home]))
    sc = controller.planner.scenario
    # Far past the arm's reach and past give_up_x: rejected after the first failed plan.
    decision = {'schema': SCHEMA_DECISION, 'part_id': 42, 'action': 'pick_place',
                'bin': 'accept', 'reason': 'test',
                'pick_pose': [3.0, float(sc.belt['y']), float(sc.belt['top_z']) + 0.03, 0.0],
                'stamp': controller._now()}
    controller._on_decision(String(data=dumps(decision)))
    assert _spin_until(executor, lambda: bool(results), 10.0)
    assert results[0]['part_id'] == 42 and results[0]['ok'] is False
    assert results[0]['error'].startswith('rejected:')
    assert threads and all(name.startswith('planner') for name in threads)
    assert controller.job is None and controller._planning is None
