"""
The standard ``main`` of every lepton_robot node executable.

The executor is chosen by the environment variable ``LEPTON_EXECUTOR``: ``single`` (the
default, rclpy's wait-set ``SingleThreadedExecutor``) or ``events`` (rclpy's experimental
C++ ``EventsExecutor``: 22-34 % less camera -> decision transport latency in
``benchmarks/bench_transport.py``; it must spin on the main thread, where these nodes spin).
"""

import os
import sys
from typing import Callable, List, Optional, Sequence

from lepton_robot.errors import LeptonError
from lepton_robot.ros import intra
import rclpy
from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

EXECUTORS = ('single', 'events')


def make_executor(kind: Optional[str] = None) -> Executor:
    """
    Return a new executor of ``kind`` (default: ``$LEPTON_EXECUTOR``, else ``single``).

    :raises LeptonError: for an unknown kind.
    """
    kind = (kind or os.environ.get('LEPTON_EXECUTOR') or 'single').strip().lower()
    if kind == 'single':
        return SingleThreadedExecutor()
    if kind == 'events':
        from rclpy.experimental import EventsExecutor
        return EventsExecutor()
    raise LeptonError(f'LEPTON_EXECUTOR={kind!r}: expected one of {", ".join(EXECUTORS)}')


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
    Create nodes in order, spin them together on one executor (:func:`make_executor`).

    The composed graph (``lepton-robot sim --composed``) runs every node this way; a single
    node is the case of one (:func:`run_node`).

    :return: 0 on a normal shutdown, 1 when start-up failed with a ``LeptonError``.
    """
    rclpy.init(args=args if args is not None else sys.argv)
    nodes: List[Node] = []
    status = 0
    try:
        executor = make_executor()
        if not isinstance(executor, Executor):      # the EventsExecutor (see intra)
            intra.disable('the EventsExecutor cannot pass MessageInfo to callbacks')
        for factory in factories:
            node = factory()
            nodes.append(node)
            executor.add_node(node)
        spin(executor)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except LeptonError as exc:
        print(f'[FATAL] {exc}', file=sys.stderr)
        status = 1
    finally:
        for node in reversed(nodes):
            intra.release_node(node)
            close = getattr(node, 'close', None)
            if callable(close):
                close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()
    return status
