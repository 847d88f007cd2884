"""
The project's Fast DDS profile: large best-effort camera frames between processes.

Fast DDS sends a sample larger than its shared-memory segment (512 KiB by default) over UDP
fragments, and a best-effort one (``camera/image_raw`` is best effort by contract) then
never arrives on these machines: a 640x480 ``bgr8`` frame reached no other process.
``config/fastdds.xml`` gives the participants of this project's processes a 16 MiB segment.
:func:`apply_default_profile` points ``FASTDDS_DEFAULT_PROFILES_FILE`` at it before rclpy
starts, unless the user chose a profile, another RMW, or ``LEPTON_FASTDDS_PROFILE=0``.
"""

from typing import MutableMapping, Optional

from lepton_robot import paths

#: Fast DDS RMW implementations (the default RMW when ``RMW_IMPLEMENTATION`` is unset)
FASTDDS_RMWS = frozenset({'', 'rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp'})
#: variables through which a user already chose a Fast DDS profile
PROFILE_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def profile_path() -> str:
    """Return the path of the project's Fast DDS profile (``config/fastdds.xml``)."""
    return str(paths.config_dir() / 'fastdds.xml')


def apply_default_profile(env: MutableMapping[str, str]) -> Optional[str]:
    """
    Point ``env`` at the project's Fast DDS profile where nothing else is configured.

    Call it on ``os.environ`` before ``rclpy.init`` (Fast DDS reads the variable when the
    first participant is made), or on the environment of a child process.

    :return: the profile path set, or None when ``env`` was left alone (a profile already
        configured, another RMW, ``LEPTON_FASTDDS_PROFILE=0``, or no profile file).
    """
    if env.get('LEPTON_FASTDDS_PROFILE', '1') == '0':
        return None
    if env.get('RMW_IMPLEMENTATION', '') not in FASTDDS_RMWS:
        return None
    if any(env.get(var) for var in PROFILE_VARS):
        return None
    path = profile_path()
    try:
        open(path, 'rb').close()
    except OSError:
        return None
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = path
    return path
