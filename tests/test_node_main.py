"""The nodes' standard main: the executor chosen by ``LEPTON_EXECUTOR``."""

from lepton_robot.errors import LeptonError
from lepton_robot.ros.node_main import make_executor
import pytest
import rclpy


@pytest.fixture
def context():
    rclpy.init(args=[])
    yield
    rclpy.try_shutdown()


@pytest.mark.parametrize('value, name', [(None, 'SingleThreadedExecutor'),
                                         ('single', 'SingleThreadedExecutor'),
                                         (' Events ', 'EventsExecutor')])
def test_executor_from_environment(context, monkeypatch, value, name):
    """
    Unset or ``single`` -> SingleThreadedExecutor; ``events`` -> EventsExecutor.

    (rclpy's ``EventsExecutor`` is a factory of the C++ class of that name.)
    """
    if value is None:
        monkeypatch.delenv('LEPTON_EXECUTOR', raising=False)
    else:
        monkeypatch.setenv('LEPTON_EXECUTOR', value)
    executor = make_executor()
    try:
        assert type(executor).__name__ == name
    finally:
        executor.shutdown()


def test_unknown_executor_is_a_clear_error(monkeypatch):
    """A typo in LEPTON_EXECUTOR names the accepted values instead of spinning something."""
    monkeypatch.setenv('LEPTON_EXECUTOR', 'multi')
    with pytest.raises(LeptonError, match="'multi'.*single, events"):
        make_executor()
