"""
The supervisor's brain, free of ROS.

Inspections, intents and pick results in; decisions, belt speed, arm commands and operator
feedback out.

The node (``lepton_robot/nodes/supervisor_node.py``) converts messages and calls these
methods with the sim (or wall) time; every method returns an ``Outputs`` to publish.

Decision policy (one decision per tracked part, ``part_id`` = track id):

- A track is decided once it has ``decide_views`` views *and* its views agree (the voted
  label has at least ``decide_agreement`` of them), or, when they do not agree, once it has
  ``max_views`` views or is predicted past ``decide_by_x``; or when it leaves the view (not
  seen for ``lost_after_s``) with at least ``min_views``. The vote uses every view the
  camera had: a part entering the image at its edge is the hardest to classify, and a
  small chip can look ok from there; a split vote waits for the views from the middle of
  the image instead of deciding on the worst ones. Its class is the detector's label
  voted over the views (``Track.label``; when the views never agreed and the vote says
  ``ok``, the part gets the most voted defect instead: ok needs agreeing views, an escape
  costs more than a false reject; the detector applies the sensitivity, which it
  takes from ``cell/state``). With ``reclassify`` the supervisor decides from the mean
  probabilities instead: defective when the mean probability of all defects exceeds
  ``1 - sensitivity / 100``, then the most probable defect. The bin comes from
  ``RuleBook``.
- Fail-safe: a track that leaves the view (not seen for ``lost_after_s``) with fewer than
  ``min_views`` views was not reliably inspected: it goes to ``reject`` ("pick_place",
  reason says why) and never to ``accept``. A part the camera never saw has no track; the
  supervisor cannot act on it (the run summary counts it).
- No decision is made unless the state is ``running`` and the line is not held.
- The line is *held* (belt at 0, no decisions, diagnostic with the reason) while
  inspections are stale (none yet, or none for ``stale_after_s``), or while a node the
  line depends on is missing (``watch_nodes``: the detector, the command parser, the
  manipulation controller; see ``lepton_robot.supervisor.liveness``). Without the parser
  the operator cannot stop the line by voice or text, so the line holds (the ``estop``
  topic does not go through the parser). When the controller is lost, its picks in flight
  count as interrupted (not an attempt): the parts are decided again once it is back.
- ``pause`` lets an in-flight pick finish, then the belt stops; ``stop`` / e-stop stop
  belt and arm at once (``manipulation`` command ``halt``).
- Belt guard: between picks (no pick in progress, ``on_active_pick``) the belt stops
  while a part that still needs picking is predicted beyond ``guard_x`` (the end of the
  arm's pick zone): parts wait in reach instead of riding off the belt end. During a pick
  the guard keeps the belt as it was when the pick was planned (the trajectory assumes
  that belt speed), except that any part past ``guard_hard_x`` stops the belt at once.
  A failed pick is retried (up to ``max_attempts``; a stop's interruption does not count)
  while the part is predicted on the belt.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from lepton_robot.interfaces import (CONDITIONS, DEFECTS, REASON_NEGATED_COMMAND,
                                     REASON_NO_SUCH_PARTS, REASON_RULE_EDITING,
                                     SCHEMA_CELL_STATE, SCHEMA_DECISION)
from lepton_robot.supervisor.liveness import DESCRIPTIONS, LivenessWatch
from lepton_robot.supervisor.rules import RuleBook, RuleError
from lepton_robot.supervisor.state import CellStateMachine
from lepton_robot.supervisor.tracker import BeltOdometer, PartTracker, Track


@dataclass
class SupervisorConfig:
    """Tunables of the supervisor (the node reads them from parameters)."""

    max_belt_speed_mps: float = 0.1
    speed: float = 50.0
    sensitivity: float = 50.0
    min_views: int = 2
    decide_views: int = 24
    decide_agreement: float = 0.85      # share of views the vote needs to decide early
    max_views: int = 40                 # a split vote is decided at this many views ...
    decide_by_x: float = -0.20          # ... or when the part is predicted past this world x
    lost_after_s: float = 1.0
    stale_after_s: float = 1.5
    gate_m: float = 0.04
    speed_step: float = 20.0
    min_speed: float = 10.0
    initial_state: str = 'running'
    guard_x: float = 0.19
    guard_hard_x: float = 0.30
    belt_end_x: float = 0.40
    max_attempts: int = 3
    reclassify: bool = False
    controller_timeout_s: float = 0.0   # hold when the controller is silent this long (0: off)
    watch_nodes: Tuple[str, ...] = ()   # hold while one of these nodes is missing
    heartbeat_timeout_s: float = 2.0    # a watched node without heartbeat this long is missing


@dataclass
class Outputs:
    """What one call wants published."""

    decisions: List[dict] = field(default_factory=list)
    feedback: List[str] = field(default_factory=list)
    manipulation: List[dict] = field(default_factory=list)
    belt_speed: Optional[float] = None
    state_changed: bool = False

    def extend(self, other: 'Outputs') -> 'Outputs':
        """Merge another Outputs into this one and return self."""
        self.decisions += other.decisions
        self.feedback += other.feedback
        self.manipulation += other.manipulation
        if other.belt_speed is not None:
            self.belt_speed = other.belt_speed
        self.state_changed |= other.state_changed
        return self


def classify(probs: Mapping[str, float], sensitivity: float) -> str:
    """
    Return the condition for mean class probabilities at a sensitivity (0..100).

    :param probs: probability per condition.
    :param sensitivity: higher flags more readily.
    """
    p_defect = sum(probs.get(d, 0.0) for d in DEFECTS)
    if p_defect > 1.0 - sensitivity / 100.0 and p_defect > 0.0:
        return max(DEFECTS, key=lambda d: probs.get(d, 0.0))
    return 'ok'


class Supervisor:
    """The cell supervisor (state machine, tracker, rules, intents, fail-safe)."""

    def __init__(self, config: Optional[SupervisorConfig] = None) -> None:
        self.config = config or SupervisorConfig()
        self.machine = CellStateMachine(self.config.initial_state)
        self.rules = RuleBook()
        self.odometer = BeltOdometer(self.config.max_belt_speed_mps)
        self.tracker = PartTracker(self.odometer, gate_m=self.config.gate_m)
        self.speed = float(self.config.speed)
        self.sensitivity = float(self.config.sensitivity)
        self.last_inspection: Optional[float] = None
        self.hold_reason: Optional[str] = 'waiting for the first inspection'
        self.hold_key: Optional[str] = 'first'
        self.liveness = LivenessWatch(self.config.watch_nodes, self.config.heartbeat_timeout_s)
        self.in_flight: Dict[int, dict] = {}
        self.counts: Dict[str, int] = {'inspected': 0, 'accept': 0, 'reject': 0, 'rework': 0,
                                       'picked': 0, 'pick_failed': 0}
        self.per_class: Dict[str, int] = dict.fromkeys(CONDITIONS, 0)
        self.last_part: Optional[dict] = None
        self.pending_pick: Optional[dict] = None
        self._belt_out: Optional[float] = None
        self._guard_stopped = False
        self._guard_reason_before: Optional[str] = None
        self.active_pick: Optional[int] = None   # the controller's pick in progress
        self.last_views: List[tuple] = []   # (track_id, part) of the last inspection
        self.last_controller: Optional[float] = None   # last heartbeat of the controller

    # --- derived state ---------------------------------------------------------------------
    @property
    def state(self) -> str:
        """Return the cell state."""
        return self.machine.state

    @property
    def held(self) -> bool:
        """Return True while the fail-safe holds the line."""
        return self.hold_reason is not None

    def guard_reason(self, now: float) -> Optional[str]:
        """
        Return why the belt guard stops the belt now, or None.

        While a pick is in progress the guard keeps what it decided before (the pick was
        planned for that belt speed), except for a part past ``guard_hard_x``.
        """
        travel = self.odometer.travel(now)
        waiting = []
        for track in self.tracker.tracks.values():
            if track.picked or track.abandoned or not track.decided and track.n_views == 0:
                continue
            x = track.position(travel)[0]
            if x > self.config.belt_end_x:
                track.abandoned = True
                continue
            if x > self.config.guard_hard_x:
                return f'part {track.track_id} is about to leave the pick zone'
            if x > self.config.guard_x:
                waiting.append(track.track_id)
        if self.active_pick is not None:
            return self._guard_reason_before
        reason = f'part {waiting[0]} waits in the pick zone' if waiting else None
        self._guard_reason_before = reason
        return reason

    def belt_target(self, now: Optional[float] = None) -> float:
        """Return the belt speed (percent) the cell should run at now."""
        if self.state == 'running' and not self.held:
            if now is not None:
                self._guard_stopped = self.guard_reason(now) is not None
                if self._guard_stopped:
                    return 0.0
            return self.speed
        if self.state == 'paused' and self.in_flight:
            return self.speed     # finish the current pick: it was planned on a moving belt
        return 0.0

    def cell_state(self) -> dict:
        """Return the ``lepton.cell_state/1`` payload (plus ``held``/``hold_reason``)."""
        return {'schema': SCHEMA_CELL_STATE, 'state': self.state, 'rules': self.rules.to_list(),
                'speed': self.speed, 'sensitivity': self.sensitivity,
                'counts': dict(self.counts), 'held': self.held,
                'hold_reason': self.hold_reason}

    def _sync_belt(self, now: float, out: Outputs) -> Outputs:
        target = self.belt_target(now)
        if target != self._belt_out:
            self._belt_out = target
            self.odometer.set_speed(now, target)
            out.belt_speed = target
        return out

    # --- inputs ----------------------------------------------------------------------------
    def on_inspection(self, payload: Mapping, now: float) -> Outputs:
        """Fold one ``lepton.inspection/1`` payload in (its ``stamp`` is the frame time)."""
        out = Outputs()
        stamp = float(payload['stamp'])
        self.last_inspection = max(stamp, self.last_inspection or stamp)
        tracks = self.tracker.update(stamp, payload.get('parts', []))
        located = [p for p in payload.get('parts', []) if p.get('position') is not None]
        self.last_views = [(t.track_id, p) for t, p in zip(tracks, located)]
        for track in tracks:
            if track.n_views == 1 and not track.decided:
                self.counts['inspected'] += 1
                out.extend(self._apply_pending_pick(track))
        return out.extend(self.tick(now))

    def on_estop(self, engaged: bool, now: float) -> Outputs:
        """Handle the ``estop`` topic: ``True`` engages the latch (``False`` does not clear)."""
        if not engaged:
            return Outputs()
        return self._event('emergency_stop', now)

    def on_active_pick(self, part_id: Optional[int], now: float) -> Outputs:
        """Record which part the controller is picking now (None: idle); also its heartbeat."""
        self.active_pick = part_id
        self.last_controller = now
        return self._sync_belt(now, Outputs())

    def on_node_alive(self, name: str, alive: bool, now: float) -> Outputs:
        """
        Take a liveliness change of a watched node (``heartbeat/<name>``) and re-check holds.

        Losing the manipulation controller interrupts its picks in flight: their parts are
        decided again (without using up an attempt) once the line is released.
        """
        was = self.liveness.nodes.get(name)
        was_alive = was is not None and was.alive
        self.liveness.alive(name, alive, now)
        out = Outputs()
        if was_alive and not alive and name == 'manipulation_controller':
            self.active_pick = None
            for part_id in list(self.in_flight):
                out.extend(self.on_pick_result(
                    {'part_id': part_id, 'ok': False,
                     'error': 'interrupted: the manipulation controller was lost'}, now))
        return out.extend(self.tick(now))

    def on_heartbeat(self, name: str, now: float) -> None:
        """Take a heartbeat message of a watched node (received at ``now``)."""
        self.liveness.heartbeat(name, now)

    def on_pick_result(self, payload: Mapping, now: float) -> Outputs:
        """Handle a ``lepton.pick_result/1``."""
        part_id = int(payload['part_id'])
        decision = self.in_flight.pop(part_id, None)
        track = self.tracker.tracks.get(part_id)
        out = Outputs(state_changed=True)
        if payload.get('ok'):
            self.counts['picked'] += 1
            if track is not None:
                track.picked = True
            return self._sync_belt(now, out)
        self.counts['pick_failed'] += 1
        if decision is not None:
            self.counts[decision['bin']] -= 1
        if track is not None and str(payload.get('error') or '').startswith('interrupted'):
            track.attempts -= 1      # a stop is not the part's fault: not an attempt
        if track is not None:
            x = track.position(self.odometer.travel(now))[0]
            if track.attempts < self.config.max_attempts and x <= self.config.belt_end_x:
                track.decided = False          # decided again on the next tick
                out.feedback.append(f'Pick of part {part_id} failed ({payload.get("error")}); '
                                    f'retrying.')
            else:
                track.abandoned = True
                out.feedback.append(f'Pick of part {part_id} failed ({payload.get("error")}); '
                                    f'giving up after {track.attempts} attempt(s).')
        return self._sync_belt(now, out)

    def on_intent(self, payload: Mapping, now: float) -> Outputs:
        """Act on a ``lepton.intent/1`` (``unknown`` is ignored, with a short reply)."""
        intent = payload.get('intent', 'unknown')
        slots = payload.get('slots') or {}
        if intent in ('start', 'pause', 'stop', 'emergency_stop'):
            return self._event(intent, now)
        handler = getattr(self, f'_intent_{intent}', None)
        if handler is None:
            text = payload.get('text', '')
            reason = str(payload.get('reason', ''))
            if reason.startswith(REASON_RULE_EDITING):
                return Outputs(feedback=[f'Rules cannot be removed by command ("{text}"); a '
                                         'new sort rule overrides an older one, e.g. "put '
                                         'scratched parts in reject". Nothing changed.'])
            if reason.startswith(REASON_NO_SUCH_PARTS):
                return Outputs(feedback=[f'This cell has no such parts ("{text}"): colours '
                                         'red, green, blue, yellow, gray; shapes block, '
                                         'cylinder, plate. Nothing changed.'])
            if reason.startswith(REASON_NEGATED_COMMAND):
                return Outputs(feedback=[f'I do not act on a negated command ("{text}"); say '
                                         'what to do instead, e.g. "put cracked parts in '
                                         'reject". Nothing changed.'])
            return Outputs(feedback=[f'Sorry, I did not understand "{text}"; nothing changed.'])
        return handler(slots, now)

    def tick(self, now: float) -> Outputs:
        """Run the periodic checks: staleness, decisions due, forgotten tracks."""
        out = Outputs()
        key, reason = self._hold(now)
        self.hold_reason = reason
        if key != self.hold_key:
            before, self.hold_key = self.hold_key, key
            out.state_changed = True
            back = _missing_nodes(before) - _missing_nodes(key)
            if back:
                names = [n for n in self.liveness.watched if n in back]
                word = 'back' if any(self.liveness.losses[n] for n in names) else 'up'
                text = f'{_names(names)} {"is" if len(names) == 1 else "are"} {word}'
                out.feedback.append(text[0].upper() + text[1:] + (
                    f'; still holding: {reason}.' if reason else '; line released.'))
            elif reason:
                out.feedback.append(f'Holding the line: {reason}.')
            elif before == 'controller':
                out.feedback.append('The manipulation controller is back; line released.')
            else:
                out.feedback.append('Inspections are back; line released.')
        if self.state == 'running' and not self.held:
            for track in self.tracker.undecided():
                gone = now - track.last_seen > self.config.lost_after_s
                if self._due(track, now) or (gone and track.n_views >= self.config.min_views):
                    out.extend(self._decide(track, now, bin_override=track.forced_bin))
                elif gone:
                    out.extend(self._decide(track, now, failsafe=True))
        self.tracker.forget(now)
        return self._sync_belt(now, out)

    # --- internals -------------------------------------------------------------------------
    def _due(self, track: Track, now: float) -> bool:
        """Return whether a track in view has the views for its decision (module doc)."""
        cfg = self.config
        if track.n_views < max(cfg.decide_views, cfg.min_views):
            return False
        if track.agreement >= cfg.decide_agreement or track.n_views >= cfg.max_views:
            return True
        return track.position(self.odometer.travel(now))[0] >= cfg.decide_by_x

    def _hold(self, now: float) -> Tuple[Optional[str], Optional[str]]:
        """
        Return ``(key, reason)`` of the hold now (``(None, None)``: no hold).

        The key changes only when the cause does (the reason's numbers change every tick);
        the operator hears about key changes only.
        """
        missing = self.liveness.missing(now)
        if missing:
            key = 'missing:' + ','.join(name for name, _ in missing)
            return key, self.liveness.reason(now)
        if self.last_inspection is None:
            return 'first', 'waiting for the first inspection'
        age = now - self.last_inspection
        if age > self.config.stale_after_s:
            return 'stale', f'inspections stale (none for {age:.1f} s)'
        timeout = self.config.controller_timeout_s
        if timeout > 0.0:
            if self.last_controller is None:
                return 'controller', 'waiting for the manipulation controller'
            if now - self.last_controller > timeout:
                return 'controller', (f'manipulation controller silent (none for '
                                      f'{now - self.last_controller:.1f} s)')
        return None, None

    def _event(self, event: str, now: float) -> Outputs:
        changed, message = self.machine.apply(event)
        out = Outputs(feedback=[message], state_changed=changed)
        if self.state in ('stopped', 'estopped'):
            out.manipulation.append({'command': 'halt', 'reason': self.state})
        elif changed and self.state == 'running':
            out.manipulation.append({'command': 'resume'})
        return self._sync_belt(now, out)

    def _decide(self, track: Track, now: float, failsafe: bool = False,
                bin_override: Optional[str] = None, why: str = '') -> Outputs:
        probs = track.probs
        if failsafe:
            condition, bin_name = 'unknown', 'reject'
            reason = (f'fail-safe: only {track.n_views} view(s) before leaving the camera '
                      f'→ reject')
        else:
            condition = classify(probs, self.sensitivity) if self.config.reclassify \
                else (track.label or classify(probs, self.sensitivity))
            split = ''
            defect_votes = {c: k for c, k in track.labels.items() if c != 'ok'}
            if condition == 'ok' and not self.config.reclassify and defect_votes \
                    and track.agreement < self.config.decide_agreement:
                # Views that never agreed: ok is not established, the likeliest defect is.
                split = f'; split vote ({track.labels["ok"]} ok): ok needs agreeing views'
                condition = max(defect_votes, key=lambda c: (defect_votes[c], probs[c]))
            bin_name, rule, default = self.rules.resolve(condition, track.color, track.shape)
            score = probs.get(condition, 0.0)
            agree = track.labels.get(condition, 0)
            reason = (f'{condition} {score:.2f} ({agree}/{track.n_views} views{split}) → '
                      f'{"default" if default else "rule"}: {rule.describe()}')
        if bin_override is not None and not (failsafe and bin_override == 'accept'):
            bin_name = bin_override
            reason += f'; operator pick → {bin_override}{why}'
        x, y, z = track.position(self.odometer.travel(now))
        decision = {'schema': SCHEMA_DECISION, 'part_id': track.track_id,
                    'action': 'pick_place', 'bin': bin_name,
                    'pick_pose': [x, y, z, track.yaw], 'reason': reason, 'stamp': now,
                    'belt_velocity': [self.odometer.velocity, 0.0, 0.0],
                    'condition': condition, 'probs': probs, 'color': track.color,
                    'shape': track.shape, 'views': track.n_views}
        track.decided = True
        track.attempts += 1
        track.decision = decision
        self.in_flight[track.track_id] = decision
        self.counts[bin_name] += 1
        if condition in self.per_class:
            self.per_class[condition] += 1
        self.last_part = decision
        return Outputs(decisions=[decision], state_changed=True)

    def _apply_pending_pick(self, track: Track) -> Outputs:
        req = self.pending_pick
        if req is None or not _track_matches(track, req):
            return Outputs()
        self.pending_pick = None
        track.forced_bin = req.get('bin')
        return Outputs(feedback=[f'Part {track.track_id} arrived: picking it as asked.'])

    def _select(self, slots: Mapping, now: float) -> Optional[Track]:
        travel = self.odometer.travel(now)
        if 'part_id' in slots:
            track = self.tracker.tracks.get(int(slots['part_id']))
            return track
        candidates = [t for t in self.tracker.undecided() if _track_matches(t, slots)]
        if not candidates:
            return None
        position = slots.get('position', 'next')
        keys = {'next': lambda t: t.position(travel)[0],
                'nearest': lambda t: t.position(travel)[0],
                'last': lambda t: -t.position(travel)[0],
                'left': lambda t: t.y,
                'right': lambda t: -t.y}
        return max(candidates, key=keys.get(position, keys['next']))

    # --- intents ---------------------------------------------------------------------------
    def _intent_sort(self, slots: Mapping, now: float) -> Outputs:
        try:
            rule = self.rules.add_from_slots(slots)
        except RuleError as exc:
            return Outputs(feedback=[f'Cannot add that rule: {exc}.'])
        return Outputs(feedback=[f'New rule: {rule.describe()}.'], state_changed=True)

    def _intent_pick(self, slots: Mapping, now: float) -> Outputs:
        if self.state == 'estopped':
            return Outputs(feedback=['E-stop is latched; say "start" first.'])
        track = self._select(slots, now)
        if track is None and 'part_id' in slots:
            # an id names a part already seen: an unknown one is refused, not queued
            return Outputs(feedback=[f'There is no part {slots["part_id"]} on the line; '
                                     f'nothing changed.'])
        if track is None:
            self.pending_pick = dict(slots)
            return Outputs(feedback=['No matching part in view yet: I will pick the next one '
                                     'that matches.'])
        if track.decided:
            return Outputs(feedback=[f'Part {track.track_id} already has a decision: '
                                     f'{track.decision["bin"]}.'])
        track.forced_bin = slots.get('bin')
        if slots.get('bin') is None and not self._due(track, now):
            # no bin asked for: the rules decide, and only on a finished inspection (a
            # decision forced now would rest on one or two views)
            return Outputs(feedback=[f'Part {track.track_id} is still being inspected '
                                     f'({track.n_views} views); it will be picked and sorted '
                                     f'by the rules when that is done.'])
        if self.state == 'running' and not self.held:
            out = self._decide(track, now, bin_override=slots.get('bin'),
                               why=' (operator request)')
            bin_name = out.decisions[0]['bin']
            out.feedback.append(f'Picking part {track.track_id} into {bin_name}.')
            return out
        return Outputs(feedback=[f'Part {track.track_id} will be picked when the line runs.'])

    def _intent_inspect(self, slots: Mapping, now: float) -> Outputs:
        track = self._select(slots, now)
        if track is None:
            return Outputs(feedback=['No matching part to inspect.'])
        if track.decided:
            d = track.decision
            return Outputs(feedback=[f'Part {track.track_id}: {d["condition"]} '
                                     f'({track.n_views} views), sent to {d["bin"]}.'])
        track.reset_views()
        return Outputs(feedback=[f'Re-inspecting part {track.track_id}.'])

    def _adjust(self, current: float, slots: Mapping) -> float:
        """
        Return the new setting of a set_speed / set_sensitivity intent.

        ``value`` alone is the target, ``value`` with ``direction`` a change of that many
        points, ``direction`` alone one configured step (``speed_step``).
        """
        if 'value' in slots and 'direction' not in slots:
            return float(min(100.0, max(0.0, float(slots['value']))))
        step = float(slots['value']) if 'value' in slots else self.config.speed_step
        if slots.get('direction') == 'down':
            step = -step
        return float(min(100.0, max(self.config.min_speed, current + step)))

    def _intent_set_speed(self, slots: Mapping, now: float) -> Outputs:
        if not slots:
            return Outputs(feedback=['Which speed? Say e.g. "set speed to 40 percent".'])
        self.speed = self._adjust(self.speed, slots)
        out = Outputs(feedback=[f'Belt speed set to {self.speed:.0f} %.'], state_changed=True)
        return self._sync_belt(now, out)

    def _intent_set_sensitivity(self, slots: Mapping, now: float) -> Outputs:
        if not slots:
            return Outputs(feedback=['Which sensitivity? Say e.g. "sensitivity to 80".'])
        self.sensitivity = self._adjust(self.sensitivity, slots)
        return Outputs(feedback=[f'Sensitivity set to {self.sensitivity:.0f} %.'],
                       state_changed=True)

    def _intent_home(self, slots: Mapping, now: float) -> Outputs:
        if self.state == 'estopped':
            return Outputs(feedback=['E-stop is latched; say "start" first.'])
        return Outputs(feedback=['Homing the arm after the current pick.'],
                       manipulation=[{'command': 'home'}])

    def _intent_status(self, slots: Mapping, now: float) -> Outputs:
        query = slots.get('query')
        texts = {'counts': self._text_counts, 'defect_rate': self._text_defect_rate,
                 'state': self._text_state, 'last_part': self._text_last_part}
        if query in texts:
            return Outputs(feedback=[texts[query]()])
        return Outputs(feedback=[' '.join(f() for f in texts.values())])

    def _text_counts(self) -> str:
        c = self.counts
        return (f'{c["inspected"]} parts inspected: {c["accept"]} accepted, '
                f'{c["reject"]} rejected, {c["rework"]} to rework.')

    def _text_defect_rate(self) -> str:
        decided = sum(self.per_class.values())
        if not decided:
            return 'No part classified yet.'
        defective = decided - self.per_class['ok']
        worst = ', '.join(f'{d} {self.per_class[d]}' for d in DEFECTS if self.per_class[d])
        return (f'Defect rate {100.0 * defective / decided:.1f} % '
                f'({defective} of {decided}{": " + worst if worst else ""}).')

    def _text_state(self) -> str:
        held = f' (held: {self.hold_reason})' if self.held else ''
        return f'The line is {self.state}{held}, belt {self.speed:.0f} %, ' \
               f'sensitivity {self.sensitivity:.0f} %.'

    def _text_last_part(self) -> str:
        d = self.last_part
        if d is None:
            return 'No part decided yet.'
        desc = ' '.join(v for v in (d.get('color'), d.get('shape')) if v) or 'part'
        return f'Last part: #{d["part_id"]} {desc}, {d["condition"]}, sent to {d["bin"]}.'


def _missing_nodes(hold_key: Optional[str]) -> set:
    """Return the nodes a hold key says are missing."""
    if not hold_key or not hold_key.startswith('missing:'):
        return set()
    return set(hold_key[len('missing:'):].split(','))


def _names(nodes: List[str]) -> str:
    """Return the operator-facing names of nodes, joined with 'and'."""
    return ' and '.join(DESCRIPTIONS.get(n, n) for n in nodes)


def _track_matches(track: Track, slots: Mapping) -> bool:
    if slots.get('color') and track.color != slots['color']:
        return False
    if slots.get('shape') and track.shape != slots['shape']:
        return False
    defect = slots.get('defect')
    if defect:
        label = max(track.probs, key=track.probs.get) if track.n_views else None
        if defect == 'any':
            return label not in (None, 'ok')
        if defect == 'none':
            return label == 'ok'
        return label == defect
    return True
