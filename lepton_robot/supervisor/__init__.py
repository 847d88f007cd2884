"""The cell supervisor's core (no ROS): state machine, tracker, sorting rules, intents."""

from lepton_robot.supervisor.core import classify, Outputs, Supervisor, SupervisorConfig
from lepton_robot.supervisor.rules import DEFAULT_RULES, RuleBook, RuleError, SortRule
from lepton_robot.supervisor.state import CellStateMachine, TransitionError
from lepton_robot.supervisor.tracker import BeltOdometer, PartTracker, Track

__all__ = ['BeltOdometer', 'CellStateMachine', 'classify', 'DEFAULT_RULES', 'Outputs',
           'PartTracker', 'RuleBook', 'RuleError', 'SortRule', 'Supervisor',
           'SupervisorConfig', 'Track', 'TransitionError']
