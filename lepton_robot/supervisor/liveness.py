"""
Which of the nodes the line depends on are alive (no ROS: the node feeds it events).

Two signals per watched node, both fed by ``supervisor_node``:

- **DDS liveliness** of the node's ``heartbeat/<node>`` writer (automatic liveliness with a
  short lease, asserted by the middleware's own thread, not the node's Python executor):
  ``alive(name, False)`` when the lease runs out, which is how a killed process is
  noticed within a fraction of a second of wall time whatever the load on the executors.
- **Heartbeat messages** on the same topic, published every ~0.1 s of the node's clock
  (sim time in the sim graph): ``heartbeat(name, now)``. A node whose process lives but
  whose executor hangs stops them; ``heartbeat_timeout_s`` (in the supervisor's clock, so
  sim time in the sim graph, where the bridge paces sim time against the nodes) catches it.

A node is *missing* while it has never been seen, while its liveliness is lost, or while
its heartbeats are older than ``heartbeat_timeout_s`` (0 disables that check).
"""

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

#: what the operator hears for each watched node
DESCRIPTIONS = {'defect_detector': 'the defect detector',
                'command_parser': 'the command parser',
                'manipulation_controller': 'the manipulation controller'}


def parse_node_list(text: str) -> Tuple[str, ...]:
    """
    Return the node names in a comma- or space-separated list (``''`` gives none).

    :param text: e.g. ``'defect_detector, command_parser'``.
    """
    return tuple(dict.fromkeys(n for n in text.replace(',', ' ').split() if n))


@dataclass
class _NodeLife:
    alive: Optional[bool] = None         # DDS liveliness; None: never seen
    last_heartbeat: Optional[float] = None
    since: Optional[float] = None        # when it became alive (heartbeat grace)
    lost_at: Optional[float] = None


class LivenessWatch:
    """
    Track the liveness of a set of nodes and say which ones are missing.

    :param watched: node names (as in ``heartbeat/<name>``).
    :param heartbeat_timeout_s: a node alive by DDS but without a heartbeat this long (in
        the caller's clock) counts as missing; 0 turns that check off.
    """

    def __init__(self, watched: Iterable[str], heartbeat_timeout_s: float = 0.0) -> None:
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        self.nodes: Dict[str, _NodeLife] = {name: _NodeLife() for name in watched}
        self.losses: Dict[str, int] = dict.fromkeys(self.nodes, 0)

    @property
    def watched(self) -> Tuple[str, ...]:
        """Return the watched node names."""
        return tuple(self.nodes)

    def alive(self, name: str, alive: bool, now: float) -> None:
        """Record a DDS liveliness change of ``name`` (ignored for unwatched nodes)."""
        life = self.nodes.get(name)
        if life is None or life.alive == alive:
            return
        if alive:
            life.since = now
        else:
            life.lost_at = now
            if life.alive:
                self.losses[name] += 1
        life.alive = alive

    def heartbeat(self, name: str, now: float) -> None:
        """Record a heartbeat message of ``name`` received at ``now``."""
        life = self.nodes.get(name)
        if life is not None:
            life.last_heartbeat = now if life.last_heartbeat is None \
                else max(now, life.last_heartbeat)

    def missing(self, now: float) -> List[Tuple[str, str]]:
        """Return ``(name, why)`` for every watched node that is missing now."""
        out = []
        timeout = self.heartbeat_timeout_s
        for name, life in self.nodes.items():
            if life.alive is None:
                out.append((name, 'has not started yet'))
            elif not life.alive:
                out.append((name, 'is gone (its process stopped answering)'))
            elif timeout > 0.0:
                last = life.last_heartbeat if life.last_heartbeat is not None else life.since
                if last is not None and now - last > timeout:
                    out.append((name, f'is silent (no heartbeat for {now - last:.1f} s)'))
        return out

    def reason(self, now: float) -> Optional[str]:
        """Return the hold reason for the missing nodes, or None when all are alive."""
        missing = self.missing(now)
        if not missing:
            return None
        return '; '.join(f'{DESCRIPTIONS.get(name, name)} ({name}) {why}'
                         for name, why in missing)
