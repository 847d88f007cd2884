"""
Fault injection without ROS: impossible requests and a silent controller, on the cores.

The planner's own refusals (NaN, out of reach, unknown bin) are in ``test_sim_arm.py``; the
graph-level counterparts (real processes, real DDS) are in ``test_faults_graph.py``.
"""

from lepton_robot.interfaces import make_intent
from lepton_robot.supervisor import Supervisor, SupervisorConfig


def _part(x, label='ok'):
    probs = {c: (0.96 if c == label else 0.01) for c in ('ok', 'scratch', 'crack', 'stain',
                                                         'chip')}
    return {'bbox': [0, 0, 10, 10], 'label': label, 'score': 0.96, 'probs': probs,
            'color': 'red', 'shape': 'block', 'position': [x, 0.0, 0.02]}


def _inspection(stamp, parts):
    return {'schema': 'lepton.inspection/1', 'stamp': stamp, 'parts': parts}


def test_pick_of_a_part_that_does_not_exist_is_refused():
    """A pick of an unknown part id is refused with a reason; no pending pick, no decision."""
    sup = Supervisor(SupervisorConfig(guard_x=10.0, guard_hard_x=10.0, decide_views=2))
    sup.on_inspection(_inspection(0.0, [_part(-0.1)]), 0.0)
    out = sup.on_intent(make_intent('pick part 42', 'pick', {'part_id': 42}, 0.99), 0.1)
    assert not out.decisions
    assert out.feedback and 'no part 42' in out.feedback[0].lower()
    assert sup.pending_pick is None
    # the cell carries on: the known part is decided on its second view
    out = sup.on_inspection(_inspection(0.2, [_part(-0.09)]), 0.2)
    assert len(out.decisions) == 1


def test_silent_controller_holds_the_line_and_its_return_releases_it():
    """
    With controller_timeout_s, a silent controller holds the line; its heartbeat releases it.

    Steps: inspections and heartbeats flow (belt runs); heartbeats stop; within the timeout
    plus one tick the line is held with a reason naming the controller, belt 0, no decision
    for a new part; heartbeats return; the line is released and the part decided.
    """
    sup = Supervisor(SupervisorConfig(guard_x=10.0, guard_hard_x=10.0, decide_views=2,
                                      controller_timeout_s=0.4))
    t = 0.0
    assert sup.tick(t) and sup.held      # no controller yet
    belt = []
    while t < 1.0:
        sup.on_active_pick(None, t)
        out = sup.on_inspection(_inspection(t, []), t)
        belt.append(out.belt_speed)
        t = round(t + 0.05, 3)
    assert not sup.held and sup.belt_target(t) == 50.0
    t_silent = t
    while t < t_silent + 2.0:          # inspections go on, the controller is gone
        sup.on_inspection(_inspection(t, []), t)
        if sup.held:
            break
        t = round(t + 0.05, 3)
    assert sup.held and 'controller' in sup.hold_reason
    assert t - t_silent <= 0.45 + 1e-9
    assert sup.belt_target(t) == 0.0
    decisions = []
    for _ in range(10):      # a new part arrives while held: no decision
        t = round(t + 0.05, 3)
        decisions += sup.on_inspection(_inspection(t, [_part(-0.08)]), t).decisions
    assert not decisions and sup.held
    sup.on_active_pick(None, t)
    out = sup.on_inspection(_inspection(t + 0.05, [_part(-0.08)]), t + 0.05)
    assert not sup.held and len(out.decisions) == 1


def test_controller_timeout_off_by_default():
    """Without controller_timeout_s the supervisor never waits for a controller."""
    sup = Supervisor(SupervisorConfig(guard_x=10.0, guard_hard_x=10.0, decide_views=2))
    sup.on_inspection(_inspection(0.0, []), 0.0)
    sup.tick(5.0)
    sup.on_inspection(_inspection(5.0, []), 5.0)
    assert not sup.held
