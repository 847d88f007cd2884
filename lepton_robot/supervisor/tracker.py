"""
Associate per-frame inspections with physical parts, so each part gets one decision.

Parts ride the belt along world +x. The tracker keeps every track in *belt coordinates*
(``x - belt_travel(t)``), where ``BeltOdometer`` integrates the commanded belt speed over
sim time: a part at rest on the belt keeps a constant belt coordinate whether the belt
runs, stops or changes speed, so association is a nearest-neighbour match within a gate.
Track ids are the supervisor's own, increasing from 0, and become ``part_id`` in decisions.
"""

import bisect
from dataclasses import dataclass, field
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from lepton_robot.interfaces import CONDITIONS

# Encoder samples are kept as the knots of a piecewise-linear travel curve: a sample that
# lies on the line through its neighbours within this distance adds no knot (swing-door
# compression), so a belt at constant speed costs one knot per speed change, not 50 a
# second, and an old stamp still finds its travel to within this tolerance.
TRAVEL_TOLERANCE_M = 1e-4


class BeltOdometer:
    """
    Integrate belt speed over time: how far (m) a point on the belt has travelled.

    :param max_speed_mps: belt speed at 100 %.
    """

    def __init__(self, max_speed_mps: float, history: int = 4096) -> None:
        self.max_speed_mps = float(max_speed_mps)
        # Piecewise-constant segments (t_start, travel_at_t_start, velocity), oldest first:
        # frames are stamped before their inspection arrives, so travel is looked up in
        # the past as well.
        self._segments: List[Tuple[float, float, float]] = []
        self._history = int(history)
        # Encoder samples (t, travel, velocity) from the conveyor, when it reports them:
        # they replace the integration of commanded speeds (which lag the real belt).
        self._samples: List[Tuple[float, float, float]] = []
        self._sample_offset: Optional[float] = None
        # Slopes (m/s) of the lines from the knot before the last one that pass within the
        # tolerance of every sample merged into the last knot (None: no open run).
        self._door: Optional[Tuple[float, float]] = None

    @property
    def velocity(self) -> float:
        """Return the current belt velocity in m/s."""
        if self._samples:
            return self._samples[-1][2]
        return self._segments[-1][2] if self._segments else 0.0

    @property
    def commanded_velocity(self) -> Optional[float]:
        """Return the last commanded belt velocity in m/s (None before any command)."""
        return self._segments[-1][2] if self._segments else None

    def settled(self, tolerance: float = 0.002) -> bool:
        """Return True unless the belt is still changing to its last commanded speed."""
        cmd = self.commanded_velocity
        return cmd is None or not self._samples or abs(self.velocity - cmd) <= tolerance

    def observe(self, t: float, travel: float, velocity: float) -> None:
        """
        Record a conveyor encoder sample (travel in m, velocity in m/s, at time ``t``).

        From the first sample on, ``travel`` interpolates the samples (continuing the
        commanded-speed estimate so travel never jumps).
        """
        if self._sample_offset is None:
            self._sample_offset = self._travel_commanded(t) - float(travel)
        s = self._samples
        if s and t <= s[-1][0]:
            return
        t, x = float(t), float(travel) + self._sample_offset
        sample = (t, x, float(velocity))
        tol = TRAVEL_TOLERANCE_M
        if len(s) >= 2 and self._door is not None:
            ta, xa, _ = s[-2]
            dt = t - ta
            lo, hi = self._door
            if lo <= (x - xa) / dt <= hi:
                # Every sample since the anchor stays within tol of anchor -> this one:
                # it replaces the last knot, and the door narrows to keep that true.
                s[-1] = sample
                self._door = (max(lo, (x - tol - xa) / dt), min(hi, (x + tol - xa) / dt))
                return
        if s:
            ta, xa, _ = s[-1]
            dt = t - ta
            self._door = ((x - tol - xa) / dt, (x + tol - xa) / dt)
        s.append(sample)
        del s[:-self._history * 8]

    def set_speed(self, t: float, percent: float) -> None:
        """Record that the belt runs at ``percent`` of max speed from time ``t`` on."""
        v = self.max_speed_mps * max(0.0, min(100.0, percent)) / 100.0
        x = self.travel(t)
        while self._segments and self._segments[-1][0] >= t:
            self._segments.pop()
        self._segments.append((t, x, v))
        del self._segments[:-self._history]

    def travel(self, t: float) -> float:
        """Return how far (m) the belt has moved by time ``t`` (0 before the first speed)."""
        if self._samples:
            s = self._samples
            i = bisect.bisect_right(s, (t, math.inf, math.inf)) - 1
            if i < 0:
                return s[0][1] - s[0][2] * (s[0][0] - t)
            t0, x0, v0 = s[i]
            if i + 1 < len(s):
                t1, x1, _ = s[i + 1]
                return x0 + (x1 - x0) * (t - t0) / (t1 - t0)
            return x0 + v0 * (t - t0)
        return self._travel_commanded(t)

    def _travel_commanded(self, t: float) -> float:
        i = bisect.bisect_right(self._segments, (t, math.inf, math.inf)) - 1
        if i < 0:
            return 0.0
        t0, x0, v = self._segments[i]
        return x0 + v * (t - t0)


@dataclass
class Track:
    """One physical part as seen over several frames."""

    track_id: int
    belt_x: float
    y: float
    z: float
    yaw: float
    first_seen: float
    last_seen: float
    n_views: int = 0
    prob_sum: Dict[str, float] = field(default_factory=lambda: dict.fromkeys(CONDITIONS, 0.0))
    labels: Dict[str, int] = field(default_factory=dict)
    colors: Dict[str, int] = field(default_factory=dict)
    shapes: Dict[str, int] = field(default_factory=dict)
    detector_ids: List[int] = field(default_factory=list)
    forced_bin: Optional[str] = None
    attempts: int = 0
    picked: bool = False
    abandoned: bool = False
    decided: bool = False
    decision: Optional[dict] = None

    def position(self, travel: float) -> Tuple[float, float, float]:
        """Return the predicted world position for a belt travel."""
        return (self.belt_x + travel, self.y, self.z)

    @property
    def probs(self) -> Dict[str, float]:
        """Return the mean class probabilities over every view."""
        n = max(1, self.n_views)
        return {c: p / n for c, p in self.prob_sum.items()}

    @property
    def label(self) -> Optional[str]:
        """
        Return the detector's label voted over the views.

        Most views win; on a tie a defect beats ``ok`` (an escape costs more than a false
        reject), then the higher mean probability.
        """
        if not self.labels:
            return None
        probs = self.probs
        return max(self.labels, key=lambda c: (self.labels[c], c != 'ok', probs.get(c, 0.0)))

    @property
    def agreement(self) -> float:
        """Return the share of the views that carry the voted label (0 without views)."""
        total = sum(self.labels.values())
        return self.labels[self.label] / total if total else 0.0

    @property
    def color(self) -> Optional[str]:
        """Return the most voted color, or None."""
        return max(self.colors, key=self.colors.get) if self.colors else None

    @property
    def shape(self) -> Optional[str]:
        """Return the most voted shape, or None."""
        return max(self.shapes, key=self.shapes.get) if self.shapes else None

    def reset_views(self) -> None:
        """Forget the accumulated classification (re-inspection)."""
        self.n_views = 0
        self.prob_sum = dict.fromkeys(CONDITIONS, 0.0)
        self.labels = {}


def _probs_of(part: Mapping) -> Dict[str, float]:
    probs = part.get('probs') or {}
    if probs:
        return {c: float(probs.get(c, 0.0)) for c in CONDITIONS}
    # Only a label and score: spread the rest evenly over the other classes.
    label, score = part['label'], float(part.get('score', 1.0))
    rest = (1.0 - score) / (len(CONDITIONS) - 1)
    return {c: (score if c == label else rest) for c in CONDITIONS}


class PartTracker:
    """
    Nearest-neighbour tracker in belt coordinates.

    :param odometer: the belt odometer shared with the supervisor.
    :param gate_m: the largest distance (m) between a prediction and a detection that can
        still be the same part. A track seen once gets twice the gate: a part's first view is
        usually at the image edge, where a partial blob can get the wrong shape and so the
        wrong height on the camera ray (a few cm off); without the wider gate its next views
        start a second track and the first becomes a one-view ghost.
    :param forget_after_s: tracks not seen for this long are dropped (after their decision).
    """

    def __init__(self, odometer: BeltOdometer, gate_m: float = 0.04,
                 forget_after_s: float = 30.0) -> None:
        self.odometer = odometer
        self.gate_m = float(gate_m)
        self.forget_after_s = float(forget_after_s)
        self.tracks: Dict[int, Track] = {}
        self._next_id = 0

    def update(self, stamp: float, parts: Sequence[Mapping]) -> List[Track]:
        """
        Fold one frame's detections into the tracks.

        Detections without a world ``position`` cannot be associated and are skipped.

        :param stamp: the frame's time (s, same clock as the odometer).
        :param parts: the ``parts`` of a ``lepton.inspection/1`` payload.
        :return: the tracks this frame updated or created.
        """
        travel = self.odometer.travel(stamp)
        detections = [p for p in parts if p.get('position') is not None]
        pairs = []
        for di, part in enumerate(detections):
            x, y, _ = part['position']
            for track in self.tracks.values():
                d = math.hypot(x - travel - track.belt_x, y - track.y)
                if d <= (self.gate_m if track.n_views > 1 else 2.0 * self.gate_m):
                    pairs.append((d, di, track.track_id))
        pairs.sort()
        used_d, used_t, assigned = set(), set(), {}
        for d, di, tid in pairs:
            if di not in used_d and tid not in used_t:
                used_d.add(di)
                used_t.add(tid)
                assigned[di] = tid
        touched = []
        for di, part in enumerate(detections):
            x, y, z = (float(v) for v in part['position'])
            if di in assigned:
                track = self.tracks[assigned[di]]
                # Smooth the belt coordinate: detections jitter by a pixel or two.
                k = 1.0 / (track.n_views + 1) if track.n_views else 1.0
                track.belt_x += k * ((x - travel) - track.belt_x)
                track.y += k * (y - track.y)
            else:
                track = Track(self._next_id, x - travel, y, z, 0.0, stamp, stamp)
                self._next_id += 1
                self.tracks[track.track_id] = track
            track.z = z
            track.yaw = float(part.get('yaw', track.yaw))
            track.last_seen = stamp
            track.n_views += 1
            for c, p in _probs_of(part).items():
                track.prob_sum[c] += p
            track.labels[part['label']] = track.labels.get(part['label'], 0) + 1
            for key, votes in (('color', track.colors), ('shape', track.shapes)):
                if part.get(key):
                    votes[part[key]] = votes.get(part[key], 0) + 1
            if part.get('track_id') is not None:
                track.detector_ids.append(int(part['track_id']))
            touched.append(track)
        return touched

    def forget(self, now: float) -> List[int]:
        """Drop decided tracks not seen for ``forget_after_s``; return their ids."""
        old = [t.track_id for t in self.tracks.values()
               if t.decided and now - t.last_seen > self.forget_after_s]
        for tid in old:
            del self.tracks[tid]
        return old

    def undecided(self) -> List[Track]:
        """Return the tracks still waiting for a decision, oldest first."""
        return sorted((t for t in self.tracks.values() if not t.decided),
                      key=lambda t: t.track_id)
