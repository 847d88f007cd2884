"""Unit tests of the supervisor core: state machine, rules, tracker, intents, fail-safe."""

import math

from lepton_robot.errors import SchemaError
from lepton_robot.interfaces import make_intent, validate_cell_state, validate_decision
from lepton_robot.supervisor import (BeltOdometer, CellStateMachine, classify, PartTracker,
                                     RuleBook, RuleError, SortRule, Supervisor,
                                     SupervisorConfig, TransitionError)
from lepton_robot.supervisor.liveness import parse_node_list
from lepton_robot.supervisor.tracker import TRAVEL_TOLERANCE_M
import numpy as np
import pytest

MAX_SPEED = 0.1


def _part(x, y=0.0, label='ok', score=0.97, color='red', shape='block'):
    rest = (1.0 - score) / 4
    probs = {c: (score if c == label else rest)
             for c in ('ok', 'scratch', 'crack', 'stain', 'chip')}
    return {'bbox': [0, 0, 10, 10], 'label': label, 'score': score, 'probs': probs,
            'color': color, 'shape': shape, 'position': [x, y, 0.02]}


def _inspection(stamp, parts):
    return {'schema': 'lepton.inspection/1', 'stamp': stamp, 'parts': parts}


def _intent(intent, **slots):
    return make_intent(f'<{intent}>', intent, slots, 0.99)


def _sup(**kw):
    kw.setdefault('guard_x', 10.0)    # the belt guard has its own tests
    kw.setdefault('guard_hard_x', 10.0)
    kw.setdefault('decide_views', kw.get('min_views', 2))   # decide_views has its own test
    kw.setdefault('decide_agreement', 0.0)   # and so has the agreement gate
    return Supervisor(SupervisorConfig(max_belt_speed_mps=MAX_SPEED, **kw))


def _result(part_id, ok, error=None):
    return {'schema': 'lepton.pick_result/1', 'part_id': part_id, 'ok': ok, 'error': error}


def _feed(sup, t0, t1, parts_at, dt=0.2):
    """Feed frames from t0 to t1; parts_at(t) gives the parts seen at t; return decisions."""
    decisions = []
    t = t0
    while t <= t1 + 1e-9:
        out = sup.on_inspection(_inspection(t, parts_at(t)), t)
        decisions += out.decisions
        t += dt
    return decisions


# --- state machine -----------------------------------------------------------------------
@pytest.mark.parametrize('start, events, end', [
    ('stopped', ['start'], 'running'),
    ('running', ['pause'], 'paused'),
    ('paused', ['start'], 'running'),
    ('running', ['stop'], 'stopped'),
    ('stopped', ['pause'], 'stopped'),
    ('running', ['emergency_stop'], 'estopped'),
    ('running', ['emergency_stop', 'stop'], 'estopped'),
    ('running', ['emergency_stop', 'pause'], 'estopped'),
    ('running', ['emergency_stop', 'start'], 'running'),
    ('stopped', ['emergency_stop', 'emergency_stop', 'start'], 'running'),
])
def test_state_machine_transitions(start, events, end):
    """Every event sequence ends in the expected state; the e-stop only leaves on start."""
    machine = CellStateMachine(start)
    for event in events:
        machine.apply(event)
    assert machine.state == end


def test_state_machine_rejects_unknown():
    """Unknown events and states raise TransitionError."""
    with pytest.raises(TransitionError):
        CellStateMachine('running').apply('dance')
    with pytest.raises(TransitionError):
        CellStateMachine('flying')


# --- rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize('rules, part, expected', [
    ([], ('ok', 'red', 'block'), 'accept'),
    ([], ('scratch', 'red', 'block'), 'reject'),
    ([], ('chip', 'gray', 'plate'), 'reject'),
    ([SortRule('rework', defect='scratch')], ('scratch', 'red', 'block'), 'rework'),
    ([SortRule('rework', defect='scratch')], ('crack', 'red', 'block'), 'reject'),
    ([SortRule('rework', defect='any')], ('stain', 'blue', 'block'), 'rework'),
    ([SortRule('rework', defect='any')], ('ok', 'blue', 'block'), 'accept'),
    # most specific wins, whatever the order
    ([SortRule('rework', defect='scratch', color='red'), SortRule('reject', defect='scratch')],
     ('scratch', 'red', 'block'), 'rework'),
    ([SortRule('reject', defect='scratch'), SortRule('rework', defect='scratch', color='red')],
     ('scratch', 'red', 'block'), 'rework'),
    # ties: the most recent wins
    ([SortRule('rework', color='red'), SortRule('reject', shape='block')],
     ('ok', 'red', 'block'), 'reject'),
    ([SortRule('reject', shape='block'), SortRule('rework', color='red')],
     ('ok', 'red', 'block'), 'rework'),
    # same filters: replaced
    ([SortRule('rework', defect='crack'), SortRule('accept', defect='crack')],
     ('crack', 'red', 'block'), 'accept'),
    # safety guard: a broad accept rule never takes a defective part
    ([SortRule('accept', color='red')], ('scratch', 'red', 'block'), 'reject'),
    ([SortRule('accept', color='red')], ('ok', 'red', 'block'), 'accept'),
    ([SortRule('accept', defect='any')], ('stain', 'red', 'block'), 'reject'),
    ([SortRule('reject', defect='none')], ('ok', 'red', 'cylinder'), 'reject'),
])
def test_rules_resolve(rules, part, expected):
    """Defaults, specificity, recency, replacement and the accept guard."""
    book = RuleBook()
    for rule in rules:
        book.add(rule)
    assert book.resolve(*part)[0] == expected


@pytest.mark.parametrize('slots', [{}, {'bin': 'trash'}, {'bin': 'reject', 'color': 'pink'},
                                   {'bin': 'reject', 'defect': 'dent'}])
def test_rules_reject_bad_slots(slots):
    """A rule without a bin or with non-canonical values is refused."""
    with pytest.raises(RuleError):
        RuleBook().add_from_slots(slots)


@pytest.mark.parametrize('probs, sensitivity, expected', [
    ({'ok': 0.9, 'scratch': 0.1}, 50, 'ok'),
    ({'ok': 0.4, 'scratch': 0.35, 'crack': 0.25}, 50, 'scratch'),
    ({'ok': 0.75, 'stain': 0.25}, 50, 'ok'),
    ({'ok': 0.75, 'stain': 0.25}, 80, 'stain'),
    ({'ok': 0.3, 'chip': 0.7}, 20, 'ok'),
    ({'ok': 1.0}, 100, 'ok'),
])
def test_classify_sensitivity(probs, sensitivity, expected):
    """Sensitivity moves the defect threshold."""
    assert classify(probs, sensitivity) == expected


# --- tracker -----------------------------------------------------------------------------
def test_odometer_integrates_speed_changes():
    """Belt travel integrates piecewise-constant speeds."""
    odo = BeltOdometer(0.2)
    odo.set_speed(0.0, 50)     # 0.1 m/s
    odo.set_speed(2.0, 0)
    odo.set_speed(5.0, 100)    # 0.2 m/s
    assert odo.travel(1.0) == pytest.approx(0.1)
    assert odo.travel(4.0) == pytest.approx(0.2)
    assert odo.travel(6.0) == pytest.approx(0.4)


def test_odometer_follows_encoder_samples():
    """Encoder samples replace the commanded-speed estimate, without a jump."""
    odo = BeltOdometer(0.1)
    odo.set_speed(0.0, 100)                 # commanded: 0.1 m/s
    odo.observe(1.0, 5.0, 0.05)             # encoder: the belt really runs at 0.05 m/s
    odo.observe(2.0, 5.05, 0.05)
    assert odo.travel(1.0) == pytest.approx(0.1)
    assert odo.travel(1.5) == pytest.approx(0.125)
    assert odo.travel(3.0) == pytest.approx(0.2)
    assert odo.velocity == pytest.approx(0.05)


def test_odometer_keeps_an_hour_of_encoder_samples_as_few_knots():
    """
    An hour at 50 Hz (stops, speed changes, ramps) keeps knots only where the speed changes.

    Every sample's time still maps to its travel within the tolerance, so an old decision
    stamp (a retry after a long hold) finds its belt travel; memory no longer grows with
    run time (the soak's supervisor growth).
    """
    odo = BeltOdometer(0.1)
    odo.set_speed(0.0, 100)
    rng = np.random.default_rng(3)
    speeds = [0.1, 0.05, 0.0, 0.1, 0.08]
    t, x, v, truth = 0.0, 0.0, 0.1, []
    for k in range(50 * 3600):
        target = speeds[(k // (50 * 600)) % len(speeds)]
        v += float(np.clip(target - v, -0.01, 0.01))      # 0.5 m/s^2 ramps at 50 Hz
        x += v * 0.02
        t += 0.02
        noisy = x + float(rng.normal(0.0, 5e-6))         # encoder quantisation noise
        odo.observe(t, noisy, v)
        truth.append((t, noisy))
    assert len(odo._samples) < 200
    for t_k, x_k in truth[::97]:
        assert abs(odo.travel(t_k) - odo.travel(truth[0][0]) - (x_k - truth[0][1])) \
            <= 2 * TRAVEL_TOLERANCE_M
    assert odo.velocity == pytest.approx(0.1)


@pytest.mark.parametrize('speed', [0.0, 30.0, 100.0])
def test_tracker_one_track_per_moving_part(speed):
    """Two parts riding the belt stay two tracks across frames at any belt speed."""
    odo = BeltOdometer(MAX_SPEED)
    odo.set_speed(0.0, speed)
    tracker = PartTracker(odo, gate_m=0.03)
    v = MAX_SPEED * speed / 100
    for k in range(20):
        t = 0.2 * k
        tracker.update(t, [_part(0.10 + v * t, 0.05), _part(0.15 + v * t, -0.05)])
    assert len(tracker.tracks) == 2
    assert sorted(t.n_views for t in tracker.tracks.values()) == [20, 20]


@pytest.mark.parametrize('views_before, tracks_after', [(1, 1), (3, 2)])
def test_a_first_view_off_by_a_few_cm_does_not_leave_a_ghost_track(views_before, tracks_after):
    """A one-view track gets twice the gate (edge views are off); an established one does not."""
    odo = BeltOdometer(MAX_SPEED)
    odo.set_speed(0.0, 0.0)
    tracker = PartTracker(odo, gate_m=0.04)
    for k in range(views_before):
        tracker.update(0.1 * k, [_part(0.10, 0.0)])
    tracker.update(1.0, [_part(0.13, 0.03)])        # 4.2 cm from the track
    assert len(tracker.tracks) == tracks_after


# --- the supervisor ----------------------------------------------------------------------
def _moving(label_of, xs, t_start=0.0):
    v = MAX_SPEED * 0.5

    def parts_at(t):
        return [_part(x + v * (t - t_start), label=label_of[i]) for i, x in enumerate(xs)
                if 0.0 <= x + v * (t - t_start) < 0.4]
    return parts_at


@pytest.mark.parametrize('change', [
    {'pick_pose': ['a', 'b', 'c', 'd']}, {'pick_pose': [None, None, None, None]},
    {'pick_pose': [True, 0.0, 0.0, 0.0]}, {'pick_pose': [0.0, 0.0, 0.0]},
    {'stamp': 'abc'}, {'belt_velocity': [0.1]}, {'part_id': '3'}, {'bin': 'floor'},
])
def test_decision_schema_refuses_what_a_controller_cannot_use(change):
    """Strings, nulls and short lists where numbers go are schema errors (they crashed nodes)."""
    decision = {'schema': 'lepton.decision/1', 'part_id': 3, 'action': 'pick_place',
                'bin': 'reject', 'pick_pose': [0.1, 0.2, 0.05, 0.0], 'stamp': 1.0,
                'belt_velocity': [0.05, 0.0, 0.0]}
    validate_decision(decision)
    with pytest.raises(SchemaError):
        validate_decision({**decision, **change})
    # NaN is a number: the controller refuses it itself, with a pick result that says why
    validate_decision({**decision, 'pick_pose': [math.nan, 0.0, 0.0, 0.0]})


def test_one_decision_per_part_with_default_rules():
    """Each part seen over many frames gets exactly one valid decision, bins by default."""
    sup = _sup(min_views=3)
    decisions = _feed(sup, 0.0, 6.0, _moving(['ok', 'scratch', 'crack'], [0.2, 0.1, 0.0]))
    assert len(decisions) == 3
    assert len({d['part_id'] for d in decisions}) == 3
    for d in decisions:
        validate_decision(d)
    assert sorted(d['bin'] for d in decisions) == ['accept', 'reject', 'reject']
    assert sup.counts['inspected'] == 3
    validate_cell_state(sup.cell_state())


@pytest.mark.parametrize('labels, expected', [
    (['ok', 'ok', 'stain'], 'ok'),
    (['ok', 'stain', 'stain'], 'stain'),
    (['ok', 'chip'], 'chip'),          # a tie: the defect wins
])
def test_label_vote_over_views(labels, expected):
    """The decision follows the detector's labels voted over the views."""
    sup = _sup(min_views=len(labels))
    decisions = []
    for i, label in enumerate(labels):
        score = 0.6
        decisions += sup.on_inspection(_inspection(0.1 * i, [_part(0.1, label=label,
                                                                   score=score)]),
                                       0.1 * i).decisions
    assert len(decisions) == 1 and decisions[0]['condition'] == expected


def test_decision_waits_for_decide_views_so_early_edge_views_are_outvoted():
    """Two bad views at the image edge do not decide the part: the vote uses all views."""
    sup = _sup(min_views=2, decide_views=6)
    decisions = []
    for i, label in enumerate(['chip', 'chip', 'ok', 'ok', 'ok', 'ok', 'ok']):
        decisions += sup.on_inspection(_inspection(0.1 * i, [_part(0.1, label=label)]),
                                       0.1 * i).decisions
        assert len(decisions) == (1 if i >= 5 else 0)
    assert decisions[0]['condition'] == 'ok' and decisions[0]['bin'] == 'accept'


def _views(sup, labels, x0=-0.6, dt=0.1):
    """Feed one part's views (riding the belt at 50 % from x0); return decisions per view."""
    v = MAX_SPEED * 0.5
    out = []
    for i, label in enumerate(labels):
        out.append(sup.on_inspection(_inspection(dt * i, [_part(x0 + v * dt * i, label=label)]),
                                     dt * i).decisions)
    return out


def test_a_split_vote_waits_for_more_views_instead_of_deciding_on_the_edge_ones():
    """A small chip looks ok from the image edge: 4 ok of 8 views do not decide the part."""
    sup = _sup(min_views=2, decide_views=8, decide_agreement=0.85, max_views=40,
               decide_by_x=0.0)
    labels = ['ok', 'chip', 'ok', 'chip', 'ok', 'ok', 'chip', 'chip'] + ['chip'] * 20
    per_view = _views(sup, labels)
    # 8 views: 4/8 agree; decided once the chip views reach 85 %: 23 of 27 (22/26 = 84.6 %).
    assert [i for i, d in enumerate(per_view) if d] == [26]
    decision = per_view[26][0]
    assert decision['condition'] == 'chip' and decision['bin'] == 'reject'
    assert decision['views'] == 27 and '(23/27 views)' in decision['reason']


def test_agreeing_views_decide_at_decide_views():
    """7 of 8 views agreeing (87.5 % >= 85 %) decide at the eighth view."""
    sup = _sup(min_views=2, decide_views=8, decide_agreement=0.85)
    per_view = _views(sup, ['chip'] + ['ok'] * 7)
    assert [bool(d) for d in per_view] == [False] * 7 + [True]
    assert per_view[7][0]['condition'] == 'ok' and '(7/8 views)' in per_view[7][0]['reason']


@pytest.mark.parametrize('limit', ['max_views', 'decide_by_x'])
def test_a_split_vote_is_decided_by_max_views_or_before_the_pick_zone(limit):
    """A vote that never agrees is decided at max_views, or as the part nears the pick zone."""
    # At 50 % the part moves 5 mm per view: from x = -0.7 it passes -0.65 at its 11th view.
    kw = {'max_views': 10, 'decide_by_x': 5.0} if limit == 'max_views' else \
        {'max_views': 1000, 'decide_by_x': -0.65}
    sup = _sup(min_views=2, decide_views=8, decide_agreement=0.85, **kw)
    per_view = _views(sup, ['ok', 'scratch'] * 20, x0=-0.7)
    decided = [i for i, d in enumerate(per_view) if d]
    assert decided == [9 if limit == 'max_views' else 10]
    # max_views: 5 ok / 5 scratch (a tie goes to the defect); decide_by_x: 6 ok / 5 scratch,
    # but ok needs agreeing views.
    decision = per_view[decided[0]][0]
    assert decision['condition'] == 'scratch' and decision['bin'] == 'reject'
    assert ('split vote (6 ok)' in decision['reason']) == (limit == 'decide_by_x')


@pytest.mark.parametrize('views, expected', [(1, 'reject'), (3, 'accept')])
def test_a_part_leaving_the_view_early_is_decided_then(views, expected):
    """Fewer than decide_views: decided when unseen for lost_after_s (fail-safe below min)."""
    sup = _sup(min_views=2, decide_views=8, lost_after_s=1.0)
    decisions = []
    for i in range(views):
        decisions += sup.on_inspection(_inspection(0.1 * i, [_part(0.1)]), 0.1 * i).decisions
    assert not decisions
    decisions += sup.tick(0.1 * views + 0.5).decisions
    assert not decisions
    decisions += sup.tick(0.1 * views + 1.2).decisions
    assert len(decisions) == 1 and decisions[0]['bin'] == expected


def test_sort_rule_changes_bin():
    """A sort intent sends scratched parts to rework."""
    sup = _sup()
    out = sup.on_intent(_intent('sort', defect='scratch', bin='rework'), 0.0)
    assert 'rework' in out.feedback[0]
    decisions = _feed(sup, 0.0, 3.0, _moving(['scratch', 'ok'], [0.2, 0.1]))
    assert {d['condition']: d['bin'] for d in decisions} == {'scratch': 'rework', 'ok': 'accept'}
    assert sup.cell_state()['rules'] == [{'defect': 'scratch', 'bin': 'rework'}]


@pytest.mark.parametrize('event, belt, halt', [('stop', 0.0, True),
                                               ('emergency_stop', 0.0, True),
                                               ('pause', 0.0, False)])
def test_stop_events_halt_and_block_decisions(event, belt, halt):
    """Stop, e-stop, pause: the belt goes to 0, no decision while not running."""
    sup = _sup()
    _feed(sup, 0.0, 0.4, lambda t: [])
    assert sup.belt_target() == 50.0
    out = sup.on_intent(_intent(event), 0.5)
    assert out.belt_speed == belt
    assert any(m['command'] == 'halt' for m in out.manipulation) == halt
    decisions = _feed(sup, 0.6, 3.0, lambda t: [_part(0.2)])
    assert decisions == []
    out = sup.on_intent(_intent('start'), 3.1)
    assert out.belt_speed == 50.0
    assert len(_feed(sup, 3.2, 4.0, lambda t: [_part(0.2)])) == 1


def test_pause_finishes_current_pick_first():
    """Paused with a pick in flight, the belt keeps going until its result arrives."""
    sup = _sup()
    decisions = _feed(sup, 0.0, 1.0, _moving(['ok'], [0.1]))
    assert len(decisions) == 1
    sup.on_intent(_intent('pause'), 1.1)
    assert sup.state == 'paused' and sup.belt_target() == 50.0
    out = sup.on_pick_result({'schema': 'lepton.pick_result/1',
                              'part_id': decisions[0]['part_id'], 'ok': True, 'error': None},
                             2.0)
    assert out.belt_speed == 0.0


def test_estop_latched_until_start():
    """The e-stop topic latches; stop/pause/estop(false) do not clear it; start does."""
    sup = _sup()
    sup.on_estop(True, 0.0)
    sup.on_estop(False, 0.1)
    sup.on_intent(_intent('stop'), 0.2)
    sup.on_intent(_intent('pause'), 0.3)
    assert sup.state == 'estopped'
    assert 'latched' in sup.on_intent(_intent('pick'), 0.4).feedback[0]
    sup.on_intent(_intent('start'), 0.5)
    assert sup.state == 'running'


def test_unknown_changes_nothing():
    """Gibberish (unknown) leaves state, rules, speed and sensitivity untouched."""
    sup = _sup()
    before = sup.cell_state()
    out = sup.on_intent(make_intent('asdf qwer', 'unknown', {}, 0.2), 0.0)
    assert out.decisions == [] and out.manipulation == [] and out.belt_speed is None
    assert sup.cell_state() == before


def test_stale_inspections_hold_then_release():
    """No inspections: held; inspections again: released."""
    sup = _sup(stale_after_s=1.0)
    assert sup.held and sup.belt_target() == 0.0
    _feed(sup, 0.0, 1.0, lambda t: [])
    assert not sup.held and sup.belt_target() == 50.0
    out = sup.tick(3.0)
    assert sup.held and out.belt_speed == 0.0 and 'stale' in out.feedback[0]
    assert 'stale' in sup.cell_state()['hold_reason']
    # a part in view while held gets no decision
    sup.on_inspection(_inspection(2.0, [_part(0.2)]), 3.1)   # late frame, still stale
    assert sup.tick(3.2).decisions == []
    out = sup.on_inspection(_inspection(3.3, [_part(0.2)]), 3.3)
    assert not sup.held and out.belt_speed == 50.0


def test_failsafe_never_accepts_uninspected():
    """A part seen once then lost is not reliably inspected: it goes to reject, not accept."""
    sup = _sup(min_views=3, lost_after_s=0.5)
    sup.on_intent(_intent('sort', defect='none', bin='accept'), 0.0)
    seen = _feed(sup, 0.0, 0.0, lambda t: [_part(0.1, label='ok')])
    later = _feed(sup, 0.2, 1.2, lambda t: [])
    decisions = seen + later
    assert len(decisions) == 1
    assert decisions[0]['bin'] == 'reject' and 'fail-safe' in decisions[0]['reason']


@pytest.mark.parametrize('slots, expected', [({'value': 30}, 30.0),
                                             ({'direction': 'up'}, 70.0),
                                             ({'direction': 'down'}, 30.0),
                                             ({'value': 100}, 100.0),
                                             # value with direction: a change in points
                                             ({'value': 10, 'direction': 'up'}, 60.0),
                                             ({'value': 15, 'direction': 'down'}, 35.0),
                                             ({'value': 90, 'direction': 'up'}, 100.0),
                                             ({'value': 80, 'direction': 'down'}, 10.0)])
def test_set_speed(slots, expected):
    """set_speed: value alone is the target, with direction a change, direction alone a step."""
    sup = _sup()
    _feed(sup, 0.0, 0.2, lambda t: [])
    out = sup.on_intent(_intent('set_speed', **slots), 0.3)
    assert sup.speed == expected and out.belt_speed == expected


def test_set_sensitivity_changes_classification():
    """With reclassify, a stricter sensitivity flags a borderline part."""
    sup = _sup(reclassify=True)
    sup.on_intent(_intent('set_sensitivity', value=90), 0.0)
    decisions = _feed(sup, 0.0, 1.0, lambda t: [_part(0.1, label='ok', score=0.8)])
    assert decisions[0]['bin'] == 'reject'


def test_parts_the_cell_does_not_make_get_their_own_reply():
    """The parser's ``no such parts`` refusal is answered with the colours and shapes known."""
    sup = _sup()
    rules = sup.rules.to_list()
    out = sup.on_intent(make_intent('put all orange parts in reject', 'unknown', {}, 1.0,
                                    reason='no such parts: "orange" (...): not acted on'), 0.0)
    assert 'no such parts' in out.feedback[0] and 'red, green, blue' in out.feedback[0]
    assert out.decisions == [] and sup.rules.to_list() == rules


def test_a_negated_command_changes_nothing_and_says_so():
    """The parser's unknown for a negated command gets its own reply; no rule is made."""
    sup = _sup()
    rules = sup.rules.to_list()
    out = sup.on_intent({'schema': 'lepton.intent/1', 'text': 'never send cracked ones to accept',
                         'intent': 'unknown', 'slots': {}, 'confidence': 1.0,
                         'reason': 'negated command ("never"): not acted on'}, 0.1)
    assert 'negated command' in out.feedback[0] and 'Nothing changed' in out.feedback[0]
    assert sup.rules.to_list() == rules and not out.manipulation and out.belt_speed is None


def test_a_rule_editing_request_changes_nothing_and_says_how():
    """The parser's unknown for ``clear all rules`` gets its own reply; no rule changes."""
    sup = _sup()
    sup.on_intent(_intent('sort', defect='scratch', bin='rework'), 0.0)
    rules = sup.rules.to_list()
    out = sup.on_intent({'schema': 'lepton.intent/1', 'text': 'clear all rules',
                         'intent': 'unknown', 'slots': {}, 'confidence': 1.0,
                         'reason': 'rule editing is not in the command language'}, 0.1)
    assert 'cannot be removed' in out.feedback[0] and 'Nothing changed' in out.feedback[0]
    assert sup.rules.to_list() == rules and out.belt_speed is None


@pytest.mark.parametrize('query, words', [('counts', 'inspected'),
                                          ('defect_rate', 'Defect rate'),
                                          ('state', 'running'),
                                          ('last_part', 'Last part')])
def test_status_answers(query, words):
    """Status answers each query in text and moves nothing."""
    sup = _sup()
    _feed(sup, 0.0, 1.0, _moving(['scratch'], [0.1]))
    out = sup.on_intent(_intent('status', query=query), 1.1)
    assert words in out.feedback[0]
    assert out.decisions == [] and out.belt_speed is None


def test_pick_intent_overrides_bin():
    """'take the red cylinder to rework' decides that part at once with the asked bin."""
    sup = _sup(min_views=5)
    sup.on_inspection(_inspection(0.0, [_part(0.1, color='red', shape='cylinder'),
                                        _part(0.2, color='blue', shape='block')]), 0.0)
    out = sup.on_intent(_intent('pick', color='red', shape='cylinder', bin='rework'), 0.1)
    assert len(out.decisions) == 1
    assert out.decisions[0]['bin'] == 'rework' and out.decisions[0]['color'] == 'red'
    # the operator hears what was done, not only the arm (a decision has no text)
    assert out.feedback == [f'Picking part {out.decisions[0]["part_id"]} into rework.']


def test_a_pick_without_a_bin_waits_for_the_inspection():
    """'pick up the red cylinder' (no bin) does not force a decision on one view."""
    sup = _sup(min_views=5)
    sup.on_inspection(_inspection(0.0, [_part(0.1, color='red', shape='cylinder')]), 0.0)
    out = sup.on_intent(_intent('pick', color='red', shape='cylinder'), 0.1)
    assert out.decisions == []
    assert 'still being inspected (1 views)' in out.feedback[0]
    assert not sup.tracker.tracks[0].decided


def test_home_and_inspect():
    """Home asks the controller to home; inspect resets an undecided part's views."""
    sup = _sup(min_views=5)
    assert sup.on_intent(_intent('home'), 0.0).manipulation == [{'command': 'home'}]
    sup.on_inspection(_inspection(0.0, [_part(0.1)]), 0.0)
    out = sup.on_intent(_intent('inspect', part_id=0), 0.1)
    assert 'Re-inspecting' in out.feedback[0]
    assert sup.tracker.tracks[0].n_views == 0


def test_belt_guard_stops_for_a_part_waiting_in_the_pick_zone():
    """Between picks a part past guard_x stops the belt; during a pick the guard is frozen."""
    sup = _sup(guard_x=0.3, min_views=1)
    parts = [_part(0.1), _part(0.0)]
    belt = {}
    t = 0.0
    while t < 12.0:
        if abs(t - 0.5) < 1e-6:
            sup.on_active_pick(0, t)          # the controller starts on part 0
        if abs(t - 7.0) < 1e-6:
            sup.on_pick_result(_result(0, True), t)
            sup.on_active_pick(None, t)       # between picks
        if abs(t - 7.5) < 1e-6:
            sup.on_active_pick(1, t)          # planned on the still belt
        if abs(t - 10.0) < 1e-6:
            sup.on_pick_result(_result(1, True), t)
            sup.on_active_pick(None, t)
        sup.on_inspection(_inspection(t, parts if t < 0.3 else []), t)
        belt[round(t, 1)] = sup.belt_target(t)
        t = round(t + 0.1, 1)
    # part 1 passes 0.3 at t=6 while part 0 is being picked: the belt keeps its speed
    assert belt[6.5] == 50.0
    # part 0 done: part 1 waits in the pick zone, the belt stops and stays stopped for
    # part 1's pick (planned on a still belt) ...
    assert belt[7.1] == 0.0 and belt[9.9] == 0.0
    # ... and runs again when the zone is clear
    assert belt[10.1] == 50.0


def test_belt_guard_hard_limit_stops_under_a_late_pick():
    """Past guard_hard_x the belt stops even for the pick in progress."""
    sup = _sup(guard_x=0.2, guard_hard_x=0.3, min_views=1)
    _feed(sup, 0.0, 0.2, lambda t: [_part(0.1)] if t < 0.1 else [])
    sup.on_active_pick(0, 0.3)
    assert sup.belt_target(3.0) == 50.0          # x = 0.25: exempt as the active pick
    assert sup.belt_target(4.5) == 0.0           # x = 0.325: past the hard limit
    assert 'part 0' in sup.guard_reason(4.5)


def test_failed_pick_is_retried_then_abandoned():
    """A failed pick is decided again (up to max_attempts), then given up."""
    sup = _sup(min_views=1, max_attempts=2)
    decisions = _feed(sup, 0.0, 0.2, lambda t: [_part(0.1, label='crack')] if t < 0.1 else [])
    assert len(decisions) == 1 and sup.counts['reject'] == 1
    out = sup.on_pick_result(_result(0, False, 'grasp failed'), 1.0)
    assert 'retrying' in out.feedback[0] and sup.counts['reject'] == 0
    again = sup.tick(1.1).decisions
    assert len(again) == 1 and again[0]['part_id'] == 0
    # the new pose is the part's predicted position now (it rode the belt meanwhile)
    assert again[0]['pick_pose'][0] == pytest.approx(0.1 + 0.05 * 1.1, abs=1e-6)
    out = sup.on_pick_result(_result(0, False, 'grasp failed'), 2.0)
    assert 'giving up' in out.feedback[0]
    assert sup.tick(2.1).decisions == []


# --- liveness watch (watch_nodes) ---------------------------------------------------------
WATCHED = ('defect_detector', 'command_parser', 'manipulation_controller')


def _live_sup(**kw):
    """Return a supervisor watching the three nodes, all alive, running with inspections."""
    kw.setdefault('watch_nodes', WATCHED)
    kw.setdefault('heartbeat_timeout_s', 2.0)
    sup = _sup(**kw)
    for name in kw['watch_nodes']:
        sup.on_node_alive(name, True, 0.0)
        sup.on_heartbeat(name, 0.0)
    sup.on_inspection(_inspection(0.0, []), 0.0)
    return sup


@pytest.mark.parametrize('text, expected', [
    ('', ()), ('a', ('a',)), ('a, b', ('a', 'b')), ('a b,,c a', ('a', 'b', 'c'))])
def test_parse_node_list(text, expected):
    """watch_nodes is a comma- or space-separated list; duplicates drop out."""
    assert parse_node_list(text) == expected


def test_liveness_waits_for_every_watched_node():
    """At start-up the line holds until every watched node has been seen alive."""
    sup = _sup(watch_nodes=WATCHED)
    sup.on_inspection(_inspection(0.0, []), 0.0)
    for name in WATCHED:
        assert sup.held and name in sup.hold_reason and 'not started' in sup.hold_reason
        assert sup.belt_target(0.0) == 0.0
        sup.on_node_alive(name, True, 0.1)
    assert not sup.held and sup.belt_target(0.1) == 50.0


@pytest.mark.parametrize('name', WATCHED)
def test_lost_node_holds_at_once_and_returns(name):
    """
    A watched node's liveliness lost: held at once (belt 0, no decisions, operator told).

    Steps: the line runs; ``name`` loses liveliness; the very call holds (belt 0) with a
    reason and a feedback line naming the node; a new part gets no decision while held;
    the node is alive again: released with a feedback line, the part is decided.
    """
    sup = _live_sup(min_views=1)
    assert not sup.held
    out = sup.on_node_alive(name, False, 1.0)
    assert sup.held and out.belt_speed == 0.0 and out.state_changed
    assert name in sup.hold_reason and 'gone' in sup.hold_reason
    assert any(name in text and text.startswith('Holding the line') for text in out.feedback)
    assert sup.cell_state()['held'] and name in sup.cell_state()['hold_reason']
    decisions = []
    for i in range(5):
        t = 1.1 + 0.1 * i
        decisions += sup.on_inspection(_inspection(t, [_part(-0.05)]), t).decisions
    assert decisions == [] and sup.held
    assert sup.liveness.losses[name] == 1
    out = sup.on_node_alive(name, True, 1.6)
    assert not sup.held and out.belt_speed == 50.0
    assert any('back' in text for text in out.feedback), out.feedback
    assert len(out.decisions) == 1


def test_held_feedback_once_per_cause():
    """The hold is announced once, not on every tick (its reason's numbers change)."""
    sup = _live_sup()
    sup.on_node_alive('command_parser', False, 1.0)
    texts = []
    for i in range(20):
        texts += sup.tick(1.0 + 0.05 * i).feedback
    assert texts == []


def test_silent_node_with_liveliness_is_missing_after_heartbeat_timeout():
    """A live process whose heartbeats stop (hung executor) is missing after the timeout."""
    sup = _live_sup(heartbeat_timeout_s=0.5)
    for name in WATCHED:
        if name != 'defect_detector':
            sup.on_heartbeat(name, 0.4)
    sup.on_inspection(_inspection(0.4, []), 0.4)
    assert not sup.held
    out = sup.tick(0.55)
    assert sup.held and 'defect_detector' in sup.hold_reason and 'silent' in sup.hold_reason
    assert out.belt_speed == 0.0
    sup.on_heartbeat('defect_detector', 0.6)
    sup.on_inspection(_inspection(0.6, []), 0.6)
    assert not sup.held


def test_heartbeat_timeout_zero_is_off():
    """heartbeat_timeout_s 0: only the liveliness counts."""
    sup = _live_sup(heartbeat_timeout_s=0.0)
    for t in (1.0, 5.0, 50.0):
        sup.on_inspection(_inspection(t, []), t)
    assert not sup.held


def test_unwatched_node_changes_nothing():
    """Liveliness of a node that is not watched is ignored."""
    sup = _live_sup(watch_nodes=('manipulation_controller',))
    out = sup.on_node_alive('command_parser', False, 1.0)
    assert not sup.held and out.belt_speed is None


def test_controller_loss_reopens_its_picks_without_an_attempt():
    """Picks in flight when the controller dies are decided again after it returns."""
    sup = _live_sup(min_views=1, max_attempts=1)
    first = _feed(sup, 0.2, 0.2, lambda t: [_part(0.0, label='crack')])
    assert len(first) == 1 and sup.in_flight
    sup.on_active_pick(first[0]['part_id'], 0.3)
    out = sup.on_node_alive('manipulation_controller', False, 0.5)
    assert sup.held and not sup.in_flight and out.decisions == []
    assert sup.active_pick is None and sup.counts['reject'] == 0
    out = sup.on_node_alive('manipulation_controller', True, 1.0)
    assert not sup.held
    # max_attempts 1: the interrupted pick did not use the part's only attempt
    assert [d['part_id'] for d in out.decisions] == [first[0]['part_id']]
    assert out.decisions[0]['bin'] == 'reject'


def test_no_watch_by_default_in_the_core():
    """The core watches nothing unless told (the node's default watches the three)."""
    sup = _sup()
    sup.on_inspection(_inspection(0.0, []), 0.0)
    assert not sup.held and sup.liveness.watched == ()


def test_node_back_but_inspections_stale_keeps_holding():
    """The detector back without inspections yet: the operator hears both."""
    sup = _live_sup(stale_after_s=1.0, heartbeat_timeout_s=0.0)
    sup.on_node_alive('defect_detector', False, 0.5)
    sup.tick(3.0)
    out = sup.on_node_alive('defect_detector', True, 3.5)
    assert sup.held and 'stale' in sup.hold_reason
    assert out.feedback == ['The defect detector is back; still holding: inspections stale '
                            '(none for 3.5 s).']
    out = sup.on_inspection(_inspection(3.6, []), 3.6)
    assert not sup.held and out.feedback == ['Inspections are back; line released.']


def test_first_start_says_up_not_back():
    """A node seen for the first time is 'up'; after a loss it is 'back'."""
    sup = _sup(watch_nodes=('command_parser',))
    assert 'not started' in sup.tick(0.0).feedback[0]
    out = sup.on_node_alive('command_parser', True, 0.1)
    assert out.feedback == ['The command parser is up; still holding: waiting for the first '
                            'inspection.']
