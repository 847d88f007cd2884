r"""
Soak benchmark: the whole simulated graph for a long run, memory growth and lost decisions.

Not a test (and not part of ``run_all.py``: it takes its ``--minutes``). Starts the sim
graph with the project's launcher (one process per node, or with ``--composed`` every node
in one process on the intra-process path; real DDS on a fresh ``ROS_DOMAIN_ID``, localhost
discovery) with a feeder that does not run dry, the camera at
the scenario's full rate and ``--max-rtf`` (default 1: real time), and for ``--minutes`` of
wall time samples every node process' resident memory (``/proc/PID/status`` VmRSS, the
process group's processes summed) every ``--sample-s`` seconds.

Reported per node: RSS at the end of the warm-up (``--warmup-min``, default 10 % of the
run), at the end, and the growth in percent (goal < 5 %), plus a least-squares slope in
MiB per hour over the samples after the warm-up. Reported for the cell: decisions made and
pick results received for them. At the end the probe says ``pause`` (no new decision; the
controller works off its queue) and drains for up to ``--drain-s``: every decision still
without a result once the controller reports an empty queue and no pick in progress is a
*dropped decision*; decisions still queued when the drain times out are reported as
pending, with the controller's queue. Also: the detector's dropped frames (newest-frame
policy, from its diagnostics) and the supervisor's holds (each cause once).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_soak.py --minutes 30 \
        --out benchmarks/results/bench_soak.json
"""

import argparse
import json
import os
from pathlib import Path
import sys
import tempfile
import time

import numpy as np


def rss_kib(pid: int) -> int:
    """Return the resident memory (KiB) of a process and its process group's members."""
    total = 0
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            for line in (entry / 'status').read_text().splitlines():
                if line.startswith('VmRSS:'):
                    total += int(line.split()[1])
        except (OSError, ProcessLookupError, ValueError):
            continue
    return total


class _Watch:
    """Record decisions, pick results, cell states and detector diagnostics."""

    def __init__(self) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from lepton_robot.ros.probe import SpinningProbe
        from lepton_robot.ros.qos import LATCHED, RELIABLE
        from std_msgs.msg import String
        self.probe = SpinningProbe('soak_probe')
        self.node = self.probe.node
        self.context = self.probe.context
        self.decisions, self.results, self.holds = {}, {}, []
        self.detector_diag = {}
        self.controller_diag = {}       # last manipulation_controller diagnostics
        self.supervisor_diag = {}
        self._held = False
        self._String = String
        self.pub_intent = self.node.create_publisher(String, 'operator/intent', RELIABLE)
        n = self.node
        n.create_subscription(String, 'decision', self._on_decision, RELIABLE)
        n.create_subscription(String, 'manipulation/result', self._on_result, RELIABLE)
        n.create_subscription(String, 'cell/state', self._on_state, LATCHED)
        n.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 10)
        self.probe.start()

    def _on_decision(self, msg) -> None:
        d = json.loads(msg.data)
        self.decisions.setdefault(d['part_id'], []).append(time.monotonic())

    def _on_result(self, msg) -> None:
        r = json.loads(msg.data)
        self.results.setdefault(r['part_id'], []).append(bool(r.get('ok')))

    def _on_state(self, msg) -> None:
        s = json.loads(msg.data)
        reason = s.get('hold_reason') if s.get('held') else None
        if reason and (not self._held or _cause(reason) != _cause(self.holds[-1][1])):
            self.holds.append((round(time.monotonic(), 3), reason))
        self._held = bool(s.get('held'))

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if 'defect_detector' in status.name:
                self.detector_diag = values
            elif 'supervisor' in status.name:
                self.supervisor_diag = values
            elif 'manipulation_controller' in status.name:
                self.controller_diag = dict(values, t=time.monotonic())

    def pause(self) -> None:
        """Say ``pause``: no new decision; the queued picks go on."""
        from lepton_robot.interfaces import make_intent
        deadline = time.monotonic() + 10.0
        while self.pub_intent.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pub_intent.publish(self._String(data=json.dumps(
            make_intent('pause', 'pause', {}, 0.99))))

    def without_result(self) -> dict:
        """Return ``{part_id: decisions without a pick result}``."""
        out = {}
        for pid, times in list(self.decisions.items()):
            missing = len(times) - len(self.results.get(pid, []))
            if missing > 0:
                out[pid] = missing
        return out

    def controller_idle_since(self, t: float) -> bool:
        """Return True when controller diagnostics newer than ``t`` say queue 0, not busy."""
        d = self.controller_diag
        return bool(d) and d['t'] > t and d.get('queue') == '0' and d.get('busy') == 'False'

    def close(self) -> None:
        self.probe.close()


def _cause(reason: str) -> str:
    """Return a hold reason without its numbers (one entry per cause)."""
    return ''.join(c for c in reason if not (c.isdigit() or c == '.'))


def main(argv=None) -> int:
    """Run the soak and print/write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--minutes', type=float, default=30.0, help='wall-clock duration')
    ap.add_argument('--warmup-min', type=float, default=None,
                    help='minutes before the baseline sample (default: 10 %% of the run)')
    ap.add_argument('--sample-s', type=float, default=10.0)
    ap.add_argument('--detector', choices=('onnx', 'truth'), default=None,
                    help='default: onnx when a detector model is installed, else truth')
    ap.add_argument('--model', default='', help='detector ONNX (default: shipped)')
    ap.add_argument('--max-rtf', type=float, default=1.0)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--drain-s', type=float, default=120.0,
                    help='wall seconds to let the controller finish its queue at the end')
    ap.add_argument('--composed', action='store_true',
                    help='every node in one process (the intra-process path), as '
                         '`lepton-robot sim --composed`')
    ap.add_argument('--out', default=None)
    args = ap.parse_args(argv)

    from lepton_robot import paths
    detector = args.detector or ('onnx' if args.model or (
        paths.models_dir() / 'defect_detector.onnx').is_file() else 'truth')
    from lepton_robot.domain import ros_domain
    os.environ.pop('RMW_IMPLEMENTATION', None)
    with ros_domain() as domain:     # a domain no other lepton-robot run uses
        print(f'soak: ROS_DOMAIN_ID {domain["domain"]}', file=sys.stderr, flush=True)
        return _soak(args, detector)


def _soak(args, detector: str) -> int:
    from lepton_robot.launcher import Graph, sim_graph
    run_dir = Path(tempfile.mkdtemp(prefix='bench_soak_'))
    os.environ.setdefault('ROS_LOG_DIR', str(run_dir / 'ros_log'))
    parts = int(args.minutes * 60 * max(args.max_rtf, 1.0) / 4) + 20   # never runs dry
    specs = sim_graph(parts=parts, seed=args.seed, detector=detector, parser=False,
                      max_rtf=args.max_rtf, model=args.model,
                      extra={'sim_bridge': {'max_sim_time_s': 1e6}})
    graph = Graph(specs, run_dir=run_dir, composed=args.composed)
    watch = _Watch()
    samples = {}     # node -> [(t_min, rss_kib)]
    warmup = args.warmup_min if args.warmup_min is not None else 0.1 * args.minutes
    t0 = time.monotonic()
    died = None
    try:
        graph.start()
        while (time.monotonic() - t0) / 60.0 < args.minutes:
            dead = graph.dead()
            if dead:
                died = f'{dead[0]} exited:\n{graph.log_tail(dead[0], 20)}'
                break
            t_min = (time.monotonic() - t0) / 60.0
            for name, proc in graph.procs.items():
                samples.setdefault(name, []).append((round(t_min, 3), rss_kib(proc.pid)))
            time.sleep(args.sample_s)
        wall_min = (time.monotonic() - t0) / 60.0
        drain = {'started': died is None}
        if died is None:
            t_pause = time.monotonic()
            watch.pause()
            deadline = t_pause + args.drain_s
            while time.monotonic() < deadline and not graph.dead():
                if not watch.without_result() or watch.controller_idle_since(t_pause + 2.0):
                    break
                time.sleep(0.5)
            drain.update(wall_s=round(time.monotonic() - t_pause, 1),
                         controller_idle=watch.controller_idle_since(t_pause + 2.0),
                         controller_last=dict(watch.controller_diag))
        decisions = {k: list(v) for k, v in watch.decisions.items()}
        results = {k: list(v) for k, v in watch.results.items()}
        open_decisions = watch.without_result()
    finally:
        try:
            watch.close()
        finally:
            graph.shutdown()       # always: never leave the graph's processes behind
    memory = {}
    for name, rows in samples.items():
        after = [(t, r) for t, r in rows if t >= warmup] or rows
        base, end = after[0][1], rows[-1][1]
        ts, rs = np.array([t for t, _ in after]), np.array([r for _, r in after], float)
        slope = float(np.polyfit(ts / 60.0, rs / 1024.0, 1)[0]) if len(after) > 2 else None
        memory[name] = {'rss_mib_after_warmup': round(base / 1024, 1),
                        'rss_mib_end': round(end / 1024, 1),
                        'rss_mib_max': round(max(r for _, r in rows) / 1024, 1),
                        'growth_pct': round(100.0 * (end - base) / base, 2) if base else None,
                        'slope_mib_per_hour': round(slope, 2) if slope is not None else None,
                        'samples': len(rows)}
    # after the drain: decisions without a result while the controller is idle were
    # dropped; if the drain timed out with work left, they are pending (not judged)
    idle = drain.get('controller_idle', False)
    dropped = sorted(open_decisions) if idle else []
    pending = [] if idle else sorted(open_decisions)
    report = {'benchmark': 'soak', 'minutes_requested': args.minutes,
              'minutes_run': round(wall_min, 2), 'warmup_min': round(warmup, 2),
              'detector': detector, 'composed': args.composed, 'max_rtf': args.max_rtf,
              'cpus': os.cpu_count(),
              'load_avg_1m': round(os.getloadavg()[0], 2), 'died': died,
              'memory': memory,
              'goal_growth_lt_5pct': all((m['growth_pct'] or 0) < 5.0 for m in memory.values()),
              'decisions': sum(len(v) for v in decisions.values()),
              'parts_decided': len(decisions),
              'pick_results': sum(len(v) for v in results.values()),
              'drain': drain,
              'dropped_decisions': dropped, 'pending_at_end': pending,
              'picks_ok': sum(1 for v in results.values() if any(v)),
              'detector_diagnostics_last': watch.detector_diag,
              'supervisor_diagnostics_last': watch.supervisor_diag,
              'holds': watch.holds[-20:], 'n_holds': len(watch.holds),
              'ros_domain_id': int(os.environ['ROS_DOMAIN_ID']),
              'run_dir': str(run_dir)}
    from _report import emit
    emit(report, args.out)
    return 0 if died is None else 1


if __name__ == '__main__':
    sys.exit(main())
