"""
The standard ``main`` of every lepton_robot node executable.

The executor is chosen by the environment variable ``LEPTON_EXECUTOR``:

- ``auto`` (the default): a process that runs one node spins it on rclpy's experimental
  C++ ``EventsExecutor`` where this rclpy has one, a composed process (several nodes) on
  one ``SingleThreadedExecutor`` per node, which the in-process path
  (:mod:`lepton_robot.ros.intra`) needs. ``benchmarks/bench_transport.py``, separate
  processes, five runs: camera -> decision transport p50 1.51-2.11 ms (median 1.84) on
  the ``EventsExecutor`` against 1.97-2.54 ms, and less CPU per decision;
- ``single``: rclpy's wait-set ``SingleThreadedExecutor`` everywhere;
- ``events``: the ``EventsExecutor`` everywhere (composed, one for all nodes, on the main
  thread, where it must spin; no in-process path).

Every node process also keeps freed frame-sized buffers for reuse (:func:`keep_frame_buffers`);
``LEPTON_MALLOC_TUNING=0`` turns that off.
"""

import ctypes
import ctypes.util
import os
import sys
import threading
from typing import Callable, List, Optional, Sequence

from lepton_robot.errors import LeptonError
from lepton_robot.ros import dds, intra
import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

EXECUTORS = ('auto', 'single', 'events')

#: glibc ``mallopt`` parameters (``malloc.h``)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_frame_buffers(mmap_threshold: int = 16 << 20, trim_threshold: int = 64 << 20) -> bool:
    """
    Have glibc reuse freed frame-sized buffers instead of faulting in fresh pages each frame.

    Each image message allocates and frees several buffers of the frame's size: the
    ``uint8[]`` conversion, the serialisation, DDS's copy on the receiving side, the
    detector's view and crops. glibc gives blocks over its mmap threshold (128 KiB at first)
    pages of their own and returns them on free, and trims the top of its heaps, so every
    frame faulted its pages in again. Measured with a plain rclpy publisher and subscriber in
    two processes (a 384x288 ``bgr8`` Image at 4 Hz, the sim camera's): one-way p50
    2.27-2.42 ms before, 1.37-1.63 ms with these thresholds (16 MiB / 64 MiB: a 1080p
    ``bgr8`` frame is 6.2 MiB). A process may keep up to ``trim_threshold`` of freed memory.

    :return: whether the thresholds were set (not on a C library without ``mallopt``, or
        with ``LEPTON_MALLOC_TUNING=0``).
    """
    if os.environ.get('LEPTON_MALLOC_TUNING', '1').strip() == '0':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False        # not glibc (musl, macOS): nothing to tune
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))


def events_executor_available() -> bool:
    """Return whether this rclpy has the experimental ``EventsExecutor`` (Kilted has)."""
    try:
        from rclpy.experimental import EventsExecutor  # noqa: F401
    except ImportError:
        return False
    return True


def executor_kind(kind: Optional[str] = None, nodes: int = 1) -> str:
    """
    Return the executor kind to use: ``single`` or ``events``.

    :param kind: ``auto``, ``single`` or ``events`` (default: ``$LEPTON_EXECUTOR``, else
        ``auto``).
    :param nodes: how many nodes the process runs (``auto`` composes on ``single``).
    :raises LeptonError: for an unknown kind.
    """
    kind = (kind or os.environ.get('LEPTON_EXECUTOR') or 'auto').strip().lower()
    if kind not in EXECUTORS:
        raise LeptonError(f'LEPTON_EXECUTOR={kind!r}: expected one of {", ".join(EXECUTORS)}')
    if kind != 'auto':
        return kind
    return 'events' if nodes == 1 and events_executor_available() else 'single'


def make_executor(kind: Optional[str] = None, nodes: int = 1) -> Executor:
    """
    Return a new executor of ``kind`` (see :func:`executor_kind`).

    :raises LeptonError: for an unknown kind.
    """
    if executor_kind(kind, nodes) == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    return SingleThreadedExecutor()


def spin(executor: Executor) -> None:
    """
    Spin ``executor`` until the context shuts down.

    The ``EventsExecutor`` of this rclpy wheel busy-loops in ``spin()`` without running
    callbacks (measured: 100 % CPU, no timer fired), while ``spin_once`` works; it is spun
    by ``spin_once`` in a loop. (It is a pybind class, not an ``Executor`` subclass: that
    is how it is told apart here and in :func:`run_nodes`.)
    """
    if isinstance(executor, Executor):
        executor.spin()
        return
    while rclpy.ok():
        executor.spin_once(timeout_sec=0.1)


def run_node(factory: Callable[[], Node], args: Optional[List[str]] = None) -> int:
    """
    Create a node, spin it on a SingleThreadedExecutor and always clean up.

    ``MultiThreadedExecutor`` starves timers in the PyPI rclpy wheel (rclpy#1452), so nodes
    spin single-threaded and run heavy work on their own worker threads.

    :return: the process exit status: 0 on a normal shutdown, 1 when start-up failed with
        a ``LeptonError`` (bad model, bad parameter), which is printed as one clear line.
    """
    return run_nodes([factory], args)


def run_nodes(factories: Sequence[Callable[[], Node]],
              args: Optional[List[str]] = None) -> int:
    """
    Create nodes in order and spin them in this process (the composed graph, or one node).

    On the single-threaded executor each node gets an executor of its own, spun by a thread
    of its own (the first node's on the calling thread): a node busy in a callback (the
    controller planning a pick, ~0.1 s and up to ~0.8 s) then holds up only itself, as it
    would in a process of its own, not the supervisor's ticks or the sim's clock. The
    nodes share the process's Context (one DDS participant) and the intra-process path.
    The experimental ``EventsExecutor`` must spin on the main thread: there every node
    shares one. :func:`run_node` is the case of one node.

    :return: 0 on a normal shutdown, 1 when start-up failed with a ``LeptonError``.
    """
    keep_frame_buffers()
    dds.apply_default_profile(os.environ)     # before the first participant: large frames
    rclpy.init(args=args if args is not None else sys.argv)
    nodes: List[Node] = []
    executors: List[Executor] = []
    threads: List[threading.Thread] = []
    failures: List[str] = []
    status = 0
    try:
        kind = executor_kind(nodes=len(factories))
        executor = make_executor(kind)
        executors.append(executor)
        shared = not isinstance(executor, Executor)     # the EventsExecutor (see intra)
        if shared:
            intra.disable('the EventsExecutor cannot pass MessageInfo to callbacks')
        for factory in factories:
            node = factory()
            nodes.append(node)
            if not shared and len(nodes) > 1:
                executors.append(make_executor(kind))
            executors[-1].add_node(node)
        if nodes:
            nodes[0].get_logger().info(
                f'executor: {type(executor).__name__} (LEPTON_EXECUTOR='
                f'{os.environ.get("LEPTON_EXECUTOR") or "auto"}, {len(nodes)} node(s))')
        for node, other in list(zip(nodes, executors))[1:]:
            thread = threading.Thread(target=_spin_thread, args=(other, node, failures),
                                      name=f'executor-{node.get_name()}', daemon=True)
            thread.start()
            threads.append(thread)
        spin(executors[0])
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except LeptonError as exc:
        print(f'[FATAL] {exc}', file=sys.stderr)
        status = 1
    finally:
        if threads and rclpy.ok():
            rclpy.try_shutdown()        # every node's executor returns from its spin
        for thread in threads:
            thread.join(timeout=5.0)
        for node in reversed(nodes):
            intra.release_node(node)
            close = getattr(node, 'close', None)
            if callable(close):
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    if failures:
        print(f'[FATAL] {failures[0]}', file=sys.stderr)
        status = 1
    return status


def _spin_thread(executor: Executor, node: Node, failures: List[str]) -> None:
    """
    Spin one node's executor on its own thread until it or the context shuts down.

    A callback that raises ends the process as it would end the node's own process: the
    error is recorded and the context shut down, so :func:`run_nodes` returns 1.
    """
    try:
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:        # noqa: B902 (any crash of a node stops the process)
        import traceback
        traceback.print_exc()
        failures.append(f'node {node.get_name()} crashed: {exc!r}')
        rclpy.try_shutdown()
