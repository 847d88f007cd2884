"""The ament linters as tests: flake8 (ROS 2 style) and pep257 docstrings."""

import os

from ament_flake8.main import main_with_errors as flake8_main
from ament_pep257.main import main as pep257_main
from conftest import REPO_ROOT
import pytest

PATHS = ['lepton_robot', 'tests', 'benchmarks', 'launch', 'setup.py']


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)


@pytest.mark.linter
def test_flake8():
    """ament_flake8 reports no error on the package, tests, benchmarks and launch files."""
    paths = [p for p in PATHS if os.path.exists(p)]
    rc, errors = flake8_main(argv=paths)
    assert rc == 0, f'{len(errors)} flake8 errors:\n' + '\n'.join(errors)


@pytest.mark.linter
def test_pep257():
    """ament_pep257 reports no docstring error."""
    paths = [p for p in PATHS if os.path.exists(p)]
    rc = pep257_main(argv=paths)
    assert rc == 0, 'pep257 found docstring errors (see captured output)'
