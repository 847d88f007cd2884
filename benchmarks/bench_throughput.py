r"""
Benchmark the cell's throughput (parts per minute of sim time) vs belt speed, with accuracy.

Not a test. Two modes, each over the same seeded parts at every belt speed:

- ``graph`` (default): the product. ``lepton-robot sim`` runs the whole ROS 2 graph (one
  process per node, real DDS, the ONNX detector unless ``--detector truth``) on scenario
  ``fast`` with the supervisor's belt set point at each speed, as fast as the CPU allows
  (``--max-rtf 0``: the sim waits for the nodes, so the sim-time figures do not depend on
  the machine's load). Sorting accuracy includes the detector's errors.
- ``oracle``: each belt speed runs the ground-truth oracle (``lepton_robot.sim.oracle``: the
scripted arm sorts parts by their TRUE condition, the camera renders at its rate) over the
same seeded parts. So the numbers are the cell's mechanical limit (arm, belt, intercept
planning, belt guard), not the detector's accuracy: sorting accuracy < 1 here means parts
missed, dropped or sent to the wrong bin by the mechanics (fail-safe rejects of parts the
camera never saw included). ``real_time_factor_cpu`` uses the process CPU time (the
machine is shared: wall time is distorted by other jobs).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_throughput.py --speeds 25 50 75 100 \\
        --parts 30 --out benchmarks/results/bench_throughput.json
"""

import argparse
import json
import os
import subprocess
import sys
import time


def measure(speed: float, parts: int, seed: int) -> dict:
    """Run the oracle over ``parts`` parts at ``speed`` percent and return its figures."""
    from lepton_robot.sim.cell import WorkCell
    from lepton_robot.sim.oracle import OracleRunner
    t0 = time.perf_counter()
    with WorkCell(seed=seed) as cell:
        cell.set_belt_speed(speed)
        runner = OracleRunner(cell)
        try:
            s = runner.run(parts)
        finally:
            runner.close()
        belt_mps = cell.belt_speed
    keys = ('parts_spawned', 'parts_inspected', 'parts_sorted', 'sorting_accuracy', 'escapes',
            'false_rejects', 'pick_attempts', 'pick_successes', 'drops', 'throughput_ppm',
            'sim_time_s', 'wall_time_s', 'real_time_factor', 'cpu_time_s',
            'real_time_factor_cpu', 'belt_stops')
    row = {'belt_speed_percent': speed, 'belt_speed_mps': round(belt_mps, 4)}
    row.update({k: s.get(k) for k in keys})
    row['bench_wall_s'] = round(time.perf_counter() - t0, 2)
    return row


def measure_graph(speed: float, parts: int, seed: int, scenario: str, detector: str,
                  timeout_s: float) -> dict:
    """Run ``lepton-robot sim`` over ``parts`` parts at ``speed`` percent; return its figures."""
    import tempfile
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix='bench_throughput_') as tmp:
        summary = os.path.join(tmp, 'summary.json')
        cmd = [sys.executable, '-m', 'lepton_robot', 'sim', '--parts', str(parts),
               '--seed', str(seed), '--scenario', scenario, '--detector', detector,
               '--max-rtf', '0', '--quiet', '--summary', summary,
               '--set', f'supervisor.speed={speed}']
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not os.path.isfile(summary):
            raise RuntimeError(f'{" ".join(cmd)} failed ({proc.returncode}): '
                               f'{proc.stderr[-2000:]}')
        with open(summary, encoding='utf-8') as f:
            s = json.load(f)
    keys = ('parts_spawned', 'parts_inspected', 'parts_sorted', 'sorting_accuracy', 'escapes',
            'false_rejects', 'pick_attempts', 'pick_successes', 'drops', 'throughput_ppm',
            'sim_time_s', 'wall_time_s', 'real_time_factor', 'late_trajectories')
    row = {'belt_speed_percent': speed, 'belt_speed_mps': round(0.1 * speed / 100.0, 4)}
    row.update({k: s.get(k) for k in keys})
    row['bench_wall_s'] = round(time.perf_counter() - t0, 2)
    return row


def main(argv=None) -> int:
    """Run the benchmark and print/write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--speeds', type=float, nargs='+', default=[25.0, 50.0, 75.0, 100.0])
    ap.add_argument('--parts', type=int, default=30)
    ap.add_argument('--seed', type=int, default=3)
    ap.add_argument('--mode', choices=('graph', 'oracle'), default='graph')
    ap.add_argument('--scenario', default='fast', help='scenario of the graph runs')
    ap.add_argument('--detector', choices=('onnx', 'truth'), default='onnx',
                    help='inspections of the graph runs')
    ap.add_argument('--timeout', type=float, default=900.0, help='wall seconds per run')
    ap.add_argument('--out', default=None, help='write the JSON here too')
    args = ap.parse_args(argv)
    rows = []
    for speed in args.speeds:
        try:
            if args.mode == 'graph':
                rows.append(measure_graph(speed, args.parts, args.seed, args.scenario,
                                          args.detector, args.timeout))
            else:
                rows.append(measure(speed, args.parts, args.seed))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            # One failed run is reported in its row; the other speeds are still measured.
            rows.append({'belt_speed_percent': speed, 'error': str(exc)[-1500:]})
        print(f'speed {speed}%: {rows[-1].get("throughput_ppm")} ppm, accuracy '
              f'{rows[-1].get("sorting_accuracy")} {rows[-1].get("error", "")}',
              file=sys.stderr, flush=True)
    mode = ('oracle (ground truth, scenario default)' if args.mode == 'oracle' else
            f'ROS 2 graph (lepton-robot sim, scenario {args.scenario}, detector '
            f'{args.detector})')
    report = {'benchmark': 'cell_throughput_vs_belt_speed', 'mode': mode,
              'parts': args.parts, 'seed': args.seed, 'cpus': os.cpu_count(),
              'load_avg_1m': round(os.getloadavg()[0], 2), 'results': rows}
    from _report import emit
    emit(report, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
