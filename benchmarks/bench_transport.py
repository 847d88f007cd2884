r"""
Benchmark the transport: camera -> decision latency minus inference, separate vs composed.

Not a test. Real nodes over real DDS (a fresh ``ROS_DOMAIN_ID``, discovery on localhost):
``camera_node`` (image-folder source of sim-rendered frames, one part each), the
``defect_detector_node`` and the ``supervisor_node``, started by the project's launcher
(``lepton_robot.launcher.Graph``) either one process per node or composed in one process
(an executor thread per node), on each rclpy executor asked for (``--executors``: ``single``, the
``SingleThreadedExecutor``, and ``events``, the experimental ``EventsExecutor``; results
``separate``, ``composed``, ``separate+events``, ``composed+events``; ``composed-dds`` is the
composed graph with the intra-process path switched off, ``LEPTON_INTRA_PROCESS=0``, for
the side-by-side ratio). Without ``LEPTON_EXECUTOR`` the nodes run node_main's ``auto``:
a process of one node on the ``EventsExecutor``, the composed process on single; the
report's ``default_executor_results`` names those two results. Every node runs on the wall
clock. Composed on the single-threaded executor uses ``lepton_robot.ros.intra``: the image
goes from the camera's thread straight to the detector's hand-off, the inspection from the
detector's worker straight into the supervisor (under its lock), with no DDS hop; DDS
carries them only to outside subscribers (this benchmark's listener).

What is measured, per decision (stamps, no probe hop on the measured path):

- ``camera_to_decision_ms``: decision ``stamp`` (the supervisor's clock when it decided)
  minus the image's ``header.stamp`` (the camera's clock when it published); both nodes
  read the same system clock;
- ``detector_ms``: the detector's own reported processing time of that frame (the
  ``latency_ms`` of its ``inspection/parts`` payload: preprocess + infer + postprocess);
- ``transport_ms`` = ``camera_to_decision_ms - detector_ms``: two DDS hops (image, inspection
  JSON), image conversion, the detector's hand-off to its worker thread, JSON encode/decode
  and the supervisor's tracking and decision.

The floor (on by default; ``--no-floor`` skips it), per executor: plain rclpy, no project node, two
processes set up as the nodes are (``benchmarks/_hop.py``): the same rendered frame as an
``Image`` and an inspection-sized ``String`` at the camera rate, one-way p50 of each. The
separate graph crosses one hop of each, so their sum is what rclpy and DDS alone cost it on
this machine; ``separate_over_floor`` says how much the project adds.

So that every frame yields a decision at once, the supervisor runs with ``min_views=1``,
``decide_views=1`` and a fast model belt (``max_belt_speed_mps=0.5`` at 100 %: consecutive
frames are 0.125 m apart in belt coordinates, beyond the tracker's gate, so each frame's
part is a new track);
the belt guard is moved out of the way. Goals (issue 6): p50 <= 2 ms separate,
<= 0.5 ms composed.

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_transport.py --seconds 40 \\
        --out benchmarks/results/bench_transport.json
"""

import argparse
import json
import os
from pathlib import Path
import random
import subprocess
import sys
import tempfile
import time

import numpy as np

#: issue 6's transport goals, p50 in ms, per mode
GOAL_P50_MS = {'separate': 2.0, 'composed': 0.5}


def render_frames(folder: Path, count: int, seed: int) -> Path:
    """
    Render ``count`` frames of the default sim camera, one part near the view centre each.

    :return: the camera.json written next to the frames.
    """
    import cv2
    from lepton_robot.sim.cell import WorkCell
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with WorkCell(seed=seed, with_arm=False) as cell:
        cell.feeder_enabled = False
        x0, x1 = cell.view_x_range
        belt = cell.scenario.belt
        for i in range(count):
            cell.clear_parts()
            cell.spawn_part(x=float((x0 + x1) / 2 + rng.uniform(-0.03, 0.03)),
                            y=float(belt['y'] + rng.uniform(-0.02, 0.02)), rng=rng)
            cell.step(24)
            cv2.imwrite(str(folder / f'{i:04d}.png'), cell.render())
        info = folder.parent / 'camera.json'
        info.write_text(json.dumps(cell.camera.to_dict()))
    return info


def _percentiles(values):
    a = np.asarray(values, np.float64)
    if not a.size:
        return {'n': 0}
    return {'p50': round(float(np.percentile(a, 50)), 3),
            'p90': round(float(np.percentile(a, 90)), 3),
            'p99': round(float(np.percentile(a, 99)), 3),
            'mean': round(float(a.mean()), 3), 'n': int(a.size)}


class _Listener:
    """Record inspections and decisions with their stamps (own rclpy Context)."""

    def __init__(self) -> None:
        from lepton_robot.ros.probe import SpinningProbe
        from lepton_robot.ros.qos import RELIABLE
        from std_msgs.msg import String
        self.probe = SpinningProbe('transport_probe')
        self.node = self.probe.node
        self.inspections = {}    # image stamp -> (detector ms, wall time received)
        self.decisions = []      # (decision stamp, wall time received)
        self.node.create_subscription(String, 'inspection/parts', self._on_inspection,
                                      RELIABLE)
        self.node.create_subscription(String, 'decision', self._on_decision, RELIABLE)
        self.probe.start()

    def _on_inspection(self, msg) -> None:
        p = json.loads(msg.data)
        self.inspections[float(p['stamp'])] = (sum(p.get('latency_ms', {}).values()),
                                               time.time(), len(p.get('parts', [])))

    def _on_decision(self, msg) -> None:
        self.decisions.append((float(json.loads(msg.data)['stamp']), time.time()))

    def close(self) -> None:
        self.probe.close()


def graph_specs(frames: Path, camera_info: Path, model: str, rate_hz: float):
    """Return the launcher specs of camera -> detector -> supervisor on the wall clock."""
    from lepton_robot.launcher import NodeSpec
    det = {'threads': 2}
    if model:
        det['model_path'] = model
    return [
        NodeSpec('camera', 'lepton_robot.nodes.camera_node', 'CameraNode', 'camera_node',
                 'camera.yaml', {'source_type': 'folder', 'source': str(frames),
                                 'rate_hz': float(rate_hz), 'loop': True,
                                 'camera_info_file': str(camera_info)}, sim_time=False),
        NodeSpec('defect_detector', 'lepton_robot.nodes.defect_detector_node',
                 'DefectDetectorNode', 'defect_detector_node', 'defect_detector.yaml', det,
                 sim_time=False),
        NodeSpec('supervisor', 'lepton_robot.nodes.supervisor_node', 'SupervisorNode',
                 'supervisor_node', 'supervisor.yaml',
                 {'min_views': 1, 'decide_views': 1, 'max_belt_speed_mps': 0.5, 'speed': 100.0,
                  'lost_after_s': 0.1, 'stale_after_s': 5.0, 'guard_x': 10.0,
                  'guard_hard_x': 20.0, 'belt_end_x': 30.0, 'tick_hz': 20.0,
                  'controller_timeout_s': 0.0, 'watch_nodes': 'defect_detector'},
                 sim_time=False),
    ]


def measure(mode: str, specs, seconds: float, warmup: int, env: dict,
            executor: str = 'single') -> dict:
    """
    Run the graph in ``mode`` on ``executor``; return the stats.

    Modes: ``separate`` (one process per node), ``composed`` (one process, intra-process
    delivery where the executor allows it), ``composed-dds`` (one process, everything
    through DDS: ``LEPTON_INTRA_PROCESS=0``).
    """
    from lepton_robot.launcher import Graph
    env = dict(env, LEPTON_EXECUTOR=executor)
    if mode == 'composed-dds':
        env['LEPTON_INTRA_PROCESS'] = '0'
    graph = Graph(specs, run_dir=Path(tempfile.mkdtemp(prefix=f'bench_transport_{mode}_')),
                  composed=mode != 'separate', env=env)
    listener = _Listener()
    cpu0 = None
    try:
        graph.start()
        deadline = time.monotonic() + 120.0
        while len(listener.decisions) < warmup:
            dead = graph.dead()
            if dead:
                raise RuntimeError(f'{dead[0]} died:\n{graph.log_tail(dead[0], 30)}')
            if time.monotonic() > deadline:
                raise RuntimeError(f'no decisions within 120 s ({mode}); logs in '
                                   f'{graph.run_dir}')
            time.sleep(0.05)
        n0 = len(listener.decisions)
        cpu0 = _cpu_of(graph)
        t0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        cpu = _cpu_of(graph) - cpu0
        decisions = listener.decisions[n0:]
        inspections = dict(listener.inspections)
        frames_with_part = sum(1 for s, v in inspections.items() if v[2] > 0)
    finally:
        listener.close()
        graph.shutdown()
    stamps = np.array(sorted(inspections))
    total, det, transport, to_probe = [], [], [], []
    for d_stamp, recv in decisions:
        i = np.searchsorted(stamps, d_stamp, side='right') - 1
        if i < 0:
            continue
        img = float(stamps[i])
        det_ms = inspections[img][0]
        e2e = (d_stamp - img) * 1e3
        total.append(e2e)
        det.append(det_ms)
        transport.append(e2e - det_ms)
        to_probe.append((recv - img) * 1e3 - det_ms)
    return {'mode': 'separate' if mode == 'separate' else 'composed', 'executor': executor,
            'intra_process': mode == 'composed' and executor == 'single',
            'processes': len(graph.procs),
            'decisions': len(decisions),
            'frames_with_a_part': frames_with_part, 'window_wall_s': round(wall, 2),
            'graph_cpu_s_in_window': round(cpu, 2),
            'graph_cpu_ms_per_decision': round(1e3 * cpu / max(1, len(decisions)), 2),
            'camera_to_decision_ms': _percentiles(total),
            'detector_ms': _percentiles(det),
            'transport_ms': _percentiles(transport),
            'transport_incl_hop_to_probe_ms': _percentiles(to_probe)}


def measure_floor(executor: str, frame: Path, seconds: float, rate_hz: float,
                  env: dict) -> dict:
    """Time plain rclpy hops of the frame and of an inspection-sized string (``_hop.py``)."""
    hop = str(Path(__file__).resolve().parent / '_hop.py')
    env = dict(env, LEPTON_EXECUTOR=executor)
    out = Path(tempfile.mkdtemp(prefix='bench_transport_floor_')) / 'hop.json'
    sub = subprocess.Popen([sys.executable, hop, 'sub', executor, str(seconds + 30), str(out)],
                           env=env)
    try:
        subprocess.run([sys.executable, hop, 'pub', executor, str(seconds), str(frame),
                        str(rate_hz)], env=env, check=True, timeout=seconds + 60)
        sub.wait(timeout=60)
    finally:
        if sub.poll() is None:
            sub.kill()
    result = json.loads(out.read_text())
    image, string = result['image_hop_ms'].get('p50'), result['string_hop_ms'].get('p50')
    return {'executor': executor, **result,
            'two_hops_p50_ms': round(image + string, 3) if image and string else None}


def _cpu_of(graph) -> float:
    """Return the CPU seconds (user + system) of the graph's processes so far."""
    total = 0.0
    tick = os.sysconf('SC_CLK_TCK')
    for proc in graph.procs.values():
        try:
            fields = Path(f'/proc/{proc.pid}/stat').read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def main(argv=None) -> int:
    """Run the benchmark and print/write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--seconds', type=float, default=40.0, help='measured window per mode')
    ap.add_argument('--rate', type=float, default=4.0, help='camera rate (Hz)')
    ap.add_argument('--frames', type=int, default=8, help='distinct rendered frames')
    ap.add_argument('--warmup', type=int, default=5, help='decisions discarded per mode')
    ap.add_argument('--model', default='', help='detector ONNX (default: shipped)')
    ap.add_argument('--modes', nargs='+', default=['separate', 'composed', 'composed-dds'],
                    choices=['separate', 'composed', 'composed-dds'],
                    help='composed-dds: composed with LEPTON_INTRA_PROCESS=0 (the comparison '
                    'for the intra-process path; not run on events, where it is off anyway)')
    ap.add_argument('--executors', nargs='+', default=['single', 'events'],
                    choices=['single', 'events'],
                    help="the nodes' rclpy executor (LEPTON_EXECUTOR): each is measured")
    ap.add_argument('--seed', type=int, default=5)
    ap.add_argument('--no-floor', dest='floor', action='store_false',
                    help='skip the plain-rclpy floor (two processes, no project node)')
    ap.add_argument('--out', default=None, help='write the JSON here too')
    args = ap.parse_args(argv)

    env = dict(os.environ)
    env['ROS_DOMAIN_ID'] = env.get('LEPTON_BENCH_DOMAIN_ID') or \
        str(random.SystemRandom().randint(110, 200))
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.pop('RMW_IMPLEMENTATION', None)
    # the project's Fast DDS profile, as its nodes take it: the floor runs on it too
    from lepton_robot.ros import dds
    dds.apply_default_profile(env)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')})
    if 'FASTDDS_DEFAULT_PROFILES_FILE' in env:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = env['FASTDDS_DEFAULT_PROFILES_FILE']
    work = Path(tempfile.mkdtemp(prefix='bench_transport_'))
    env.setdefault('ROS_LOG_DIR', str(work / 'ros_log'))
    info = render_frames(work / 'frames', args.frames, args.seed)
    specs = graph_specs(work / 'frames', info, args.model, args.rate)
    results, floor = {}, {}
    for executor in args.executors:
        if args.floor:
            floor[executor] = measure_floor(executor, work / 'frames' / '0000.png',
                                            args.seconds, args.rate, env)
            print(f'floor ({executor}): {floor[executor]}', file=sys.stderr, flush=True)
        for mode in args.modes:
            if mode == 'composed-dds' and executor != 'single':
                continue
            key = mode if executor == 'single' else f'{mode}+{executor}'
            results[key] = measure(mode, specs, args.seconds, args.warmup, env, executor)
            print(f'{key}: {results[key]["transport_ms"]}', file=sys.stderr, flush=True)
    report = {'benchmark': 'transport', 'camera_rate_hz': args.rate,
              'seconds_per_mode': args.seconds, 'ros_domain_id': int(env['ROS_DOMAIN_ID']),
              'cpus': os.cpu_count(), 'load_avg_1m': round(os.getloadavg()[0], 2),
              'results': results, 'floor': floor}
    goals = {}
    for key, r in results.items():
        limit = GOAL_P50_MS[r['mode']]
        goals[f'{key}_p50_le_{limit:g}ms'] = r['transport_ms'].get('p50', 1e9) <= limit
    # What a user gets without LEPTON_EXECUTOR (node_main's ``auto``): a process of one
    # node on the EventsExecutor where rclpy has it, the composed process on single.
    from lepton_robot.ros.node_main import executor_kind
    one_node = executor_kind('auto', nodes=1)
    defaults = {'separate': 'separate' if one_node == 'single' else f'separate+{one_node}',
                'composed': 'composed'}
    report['default_executor_results'] = {m: k for m, k in defaults.items() if k in results}
    for mode, key in report['default_executor_results'].items():
        limit = GOAL_P50_MS[mode]
        goals[f'default_{mode}_p50_le_{limit:g}ms'] = \
            results[key]['transport_ms'].get('p50', 1e9) <= limit
    report['goals'] = goals
    p50 = {k: r['transport_ms'].get('p50') for k, r in results.items()}
    ratios = {}
    for a, b in (('composed', 'separate'), ('composed', 'composed-dds'),
                 ('separate+events', 'separate'), ('composed+events', 'composed')):
        if p50.get(a) and p50.get(b):
            ratios[f'{a}_over_{b}_p50'] = round(p50[a] / p50[b], 3)
    for executor, f in floor.items():
        key = 'separate' if executor == 'single' else f'separate+{executor}'
        if p50.get(key) and f.get('two_hops_p50_ms'):
            ratios[f'{key}_over_floor_p50'] = round(p50[key] / f['two_hops_p50_ms'], 3)
    report['ratios'] = ratios
    from _report import emit
    emit(report, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
