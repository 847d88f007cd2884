"""
``SpinningProbe``: a node in its own rclpy ``Context``, spun on a background thread.

The launcher's operator node, the benchmarks' listeners and the tests' probes all need the
same thing: a node that lives next to other rclpy users in one process without sharing
their context, spun by a ``SingleThreadedExecutor`` (the multi-threaded one is broken in
this wheel) on a daemon thread, and torn down cleanly (thread joined, node destroyed,
context shut down) exactly once.
"""

import threading
from typing import List, Optional

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


class SpinningProbe:
    """
    Own a Context, a node, a SingleThreadedExecutor and the thread that spins it.

    Create the node's publishers and subscriptions on ``probe.node``, then ``start()``
    (or pass ``start=True`` when there is nothing to set up first). ``close()`` is safe to
    call more than once; the probe is also a context manager.

    :param name: node name.
    :param namespace: the node's namespace ('' or '/': the root).
    :param signal_handlers: install rclpy's SIGINT/SIGTERM handlers (they shut contexts
        down); False when the caller owns the signals (the launcher must tear a graph down).
    :param start: start spinning at once.
    :param period_s: the spin loop's wait, i.e. how fast ``close()`` is noticed.
    :param args: ROS arguments for the context (default: none).
    """

    def __init__(self, name: str, namespace: str = '', signal_handlers: bool = True,
                 start: bool = False, period_s: float = 0.05,
                 args: Optional[List[str]] = None) -> None:
        self.context = rclpy.Context()
        options = SignalHandlerOptions.ALL if signal_handlers else SignalHandlerOptions.NO
        rclpy.init(context=self.context, args=args or ['--ros-args'],
                   signal_handler_options=options)
        ns = '/' + namespace.strip('/') if namespace.strip('/') else '/'
        try:
            self.node = rclpy.create_node(name, namespace=ns, context=self.context)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            rclpy.try_shutdown(context=self.context)
            raise
        self._period_s = float(period_s)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False
        if start:
            self.start()

    def start(self) -> None:
        """Start spinning on a daemon thread (once)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._spin, name=f'{self.node.get_name()}',
                                            daemon=True)
            self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=self._period_s)

    @property
    def spinning(self) -> bool:
        """Return True while the spin thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the thread, destroy the node and shut the context down (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown(timeout_sec=timeout_s)
        rclpy.try_shutdown(context=self.context)

    def __enter__(self) -> 'SpinningProbe':
        """Return the probe (started)."""
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        """Close the probe."""
        self.close()
