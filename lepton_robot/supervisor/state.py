"""
The cell's state machine: ``running``, ``paused``, ``stopped``, ``estopped``.

Transitions (``commands.md``): ``start`` runs or resumes from any state and is the only
way out of ``estopped`` (the e-stop is latched); ``pause`` lets the current pick finish and
then holds; ``stop`` halts conveyor and arm now; ``emergency_stop`` halts now and latches.
"""

from dataclasses import dataclass
from typing import Tuple

from lepton_robot.errors import LeptonError
from lepton_robot.interfaces import CELL_STATES

#: Events the state machine understands (the state-changing intents).
EVENTS = ('start', 'pause', 'stop', 'emergency_stop')


class TransitionError(LeptonError):
    """An event is not one the cell state machine knows."""


@dataclass
class CellStateMachine:
    """
    Hold the cell state and apply operator events to it.

    :param state: the initial state (one of ``CELL_STATES``).
    """

    state: str = 'stopped'

    def __post_init__(self) -> None:
        """Check the initial state."""
        if self.state not in CELL_STATES:
            raise TransitionError(f'unknown cell state {self.state!r}')

    @property
    def estopped(self) -> bool:
        """Return True while the e-stop latch is engaged."""
        return self.state == 'estopped'

    def apply(self, event: str) -> Tuple[bool, str]:
        """
        Apply one event.

        :param event: one of ``EVENTS``.
        :return: ``(changed, message)``: whether the state changed and a human-readable
            reply for the operator.
        :raises TransitionError: for an unknown event.
        """
        if event not in EVENTS:
            raise TransitionError(f'unknown cell event {event!r}')
        before = self.state
        if event == 'start':
            self.state = 'running'
        elif event == 'emergency_stop':
            self.state = 'estopped'
        elif self.state == 'estopped':
            # Latched: only an explicit start leaves the e-stop.
            return False, 'E-stop is latched; say "start" to reset and resume.'
        elif event == 'stop':
            self.state = 'stopped'
        elif event == 'pause':
            if before == 'stopped':
                return False, 'The line is stopped; nothing to pause.'
            self.state = 'paused'
        changed = self.state != before
        return changed, _MESSAGES[(event, changed)].format(before=before, state=self.state)


_MESSAGES = {
    ('start', True): 'Line running (was {before}).',
    ('start', False): 'The line is already running.',
    ('pause', True): 'Pausing: finishing the current pick, then holding.',
    ('pause', False): 'The line is already paused.',
    ('stop', True): 'Stopped: conveyor and arm halted.',
    ('stop', False): 'The line is already stopped.',
    ('emergency_stop', True): 'EMERGENCY STOP engaged; latched until "start".',
    ('emergency_stop', False): 'E-stop already engaged; latched until "start".',
}
