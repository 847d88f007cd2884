"""
Where the package's data (models, config, launch, sim assets) lives.

Installed with colcon, data is under ``share/lepton_robot``; in a source checkout (pip
editable install, tests) it is at the repository root. ``LEPTON_ROBOT_SHARE`` overrides both.
"""

import os
from pathlib import Path

PACKAGE = 'lepton_robot'
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """Return the directory holding ``models/``, ``config/``, ``launch/`` and ``sim/``."""
    override = os.environ.get('LEPTON_ROBOT_SHARE')
    if override:
        return Path(override)
    if (_SOURCE_ROOT / 'package.xml').is_file():
        return _SOURCE_ROOT
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - ament index absent or package not registered
        return _SOURCE_ROOT


def models_dir() -> Path:
    """Return the directory of shipped models."""
    return share_dir() / 'models'


def config_dir() -> Path:
    """Return the directory of YAML parameter files."""
    return share_dir() / 'config'


def sim_dir() -> Path:
    """Return the directory of simulation scenarios and assets."""
    return share_dir() / 'sim'
