"""
Choose a ROS 2 domain for a ``lepton-robot sim`` run that no other run on this host uses.

Two sims in one DDS domain on one machine hear each other's ``/clock``, decisions and
trajectories. When ``ROS_DOMAIN_ID`` is not set, :func:`ros_domain` takes the first free
domain of ``DEFAULT_RANGE`` (or ``LEPTON_DOMAIN_RANGE=LO-HI``): free means that no other
process holds the domain's lock file, ``<lock dir>/domain-<N>.lock``, an exclusive
``flock`` held for the whole run. The kernel drops the lock when the holder exits, however
it exits (``kill -9`` included), so a crashed run never blocks a domain. The lock
directory is ``$XDG_RUNTIME_DIR/lepton_robot`` or ``<tmp>/lepton_robot-<uid>``. Discovery
is kept on this host (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless set).

An explicit ``ROS_DOMAIN_ID`` is respected; its lock is taken too when free (so automatic
runs avoid it), and a warning says when another run already holds it.

No ROS import: this only decides the environment the nodes start with.
"""

import contextlib
import fcntl
import os
from pathlib import Path
import tempfile
from typing import Dict, Iterator, MutableMapping, Optional, Sequence, Tuple

from lepton_robot.errors import ConfigError, LeptonError

#: Automatic domains: above the 0..101 that test runs pick at random (tests/conftest.py)
#: and below the 150..199 people set by hand here; Fast DDS' ports stay valid up to 232.
DEFAULT_RANGE = (102, 149)
ENV_RANGE = 'LEPTON_DOMAIN_RANGE'


class DomainError(LeptonError):
    """No free ROS domain is left in the range."""


def domain_range(env: Optional[MutableMapping[str, str]] = None) -> Tuple[int, int]:
    """
    Return the inclusive range of automatic domains (``LEPTON_DOMAIN_RANGE=LO-HI``).

    :raises ConfigError: on a malformed or out-of-range value.
    """
    raw = (env if env is not None else os.environ).get(ENV_RANGE, '').strip()
    if not raw:
        return DEFAULT_RANGE
    lo, sep, hi = raw.partition('-')
    try:
        lo_i, hi_i = int(lo), int(hi)
    except ValueError:
        lo_i = hi_i = -1
    if not sep or not 0 <= lo_i <= hi_i <= 232:
        raise ConfigError(f'{ENV_RANGE} must be LO-HI with 0 <= LO <= HI <= 232, got {raw!r}')
    return lo_i, hi_i


def lock_dir() -> Path:
    """Return (and create) the directory of the per-domain lock files."""
    runtime = os.environ.get('XDG_RUNTIME_DIR', '')
    base = Path(runtime) / 'lepton_robot' if runtime and Path(runtime).is_dir() else \
        Path(tempfile.gettempdir()) / f'lepton_robot-{os.getuid()}'
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    return base


class DomainLease:
    """
    An exclusive hold on one ROS domain for this process (release it, or exit).

    :param domain: the domain id.
    :param fd: the open lock file holding the ``flock``.
    :param path: the lock file.
    """

    def __init__(self, domain: int, fd: int, path: Path) -> None:
        self.domain = domain
        self.path = path
        self._fd: Optional[int] = fd

    @property
    def held(self) -> bool:
        """Return True until released."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (idempotent); the file stays for the next run."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> 'DomainLease':
        """Return the lease."""
        return self

    def __exit__(self, *exc) -> None:
        """Release the lease."""
        self.release()


def try_lock(domain: int, directory: Optional[Path] = None) -> Optional[DomainLease]:
    """
    Take the lock of ``domain`` if no other process holds it.

    :return: the lease, or None when another process holds the domain.
    """
    path = (directory or lock_dir()) / f'domain-{int(domain)}.lock'
    fd = os.open(str(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    return DomainLease(int(domain), fd, path)


def holder(domain: int, directory: Optional[Path] = None) -> Optional[int]:
    """Return the pid written by the last holder of ``domain``'s lock (None if unknown)."""
    path = (directory or lock_dir()) / f'domain-{int(domain)}.lock'
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def acquire(candidates: Sequence[int], directory: Optional[Path] = None) -> DomainLease:
    """
    Lock the first free domain among ``candidates``.

    :raises DomainError: when every candidate is held by another process.
    """
    for domain in candidates:
        lease = try_lock(domain, directory)
        if lease is not None:
            return lease
    raise DomainError(f'every ROS domain in {candidates[0]}..{candidates[-1]} is in use by '
                      f'another lepton-robot run on this host; set ROS_DOMAIN_ID or '
                      f'{ENV_RANGE}=LO-HI')


@contextlib.contextmanager
def ros_domain(env: Optional[MutableMapping[str, str]] = None,
               directory: Optional[Path] = None) -> Iterator[Dict[str, object]]:
    """
    Set ``ROS_DOMAIN_ID`` in ``env`` for the duration of a run (held by a lock file).

    :param env: the environment to read and update (default ``os.environ``); restored on
        exit.
    :return: (yields) ``{'domain': int, 'chosen': bool, 'note': str}``: ``chosen`` is
        False when ``ROS_DOMAIN_ID`` was set by the user; ``note`` says why if not plain.
    :raises DomainError: when no automatic domain is free.
    :raises ConfigError: on a malformed ``ROS_DOMAIN_ID`` or range.
    """
    env = os.environ if env is None else env
    saved = {k: env.get(k) for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    explicit = (env.get('ROS_DOMAIN_ID') or '').strip()
    lease = None
    info: Dict[str, object] = {'chosen': not explicit, 'note': ''}
    try:
        if explicit:
            try:
                domain = int(explicit)
            except ValueError:
                raise ConfigError(f'ROS_DOMAIN_ID must be an integer, got {explicit!r}')
            lease = try_lock(domain, directory)
            if lease is None:
                pid = holder(domain, directory)
                info['note'] = (f'another lepton-robot run (pid {pid}) uses domain {domain} '
                                'too: the two will hear each other')
        else:
            lo, hi = domain_range(env)
            lease = acquire(range(lo, hi + 1), directory)
            domain = lease.domain
            env['ROS_DOMAIN_ID'] = str(domain)
            env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        info['domain'] = domain
        yield info
    finally:
        if lease is not None:
            lease.release()
        for key, value in saved.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
