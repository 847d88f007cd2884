r"""
Benchmark the cell's throughput (parts per minute of sim time) vs belt speed, with accuracy.

Not a test. Each belt speed runs the ground-truth oracle (``lepton_robot.sim.oracle``: the
scripted arm sorts parts by their TRUE condition, the camera renders at its rate) over the
same seeded parts. So the numbers are the cell's mechanical limit (arm, belt, intercept
planning, belt guard), not the detector's accuracy: sorting accuracy < 1 here means parts
missed, dropped or sent to the wrong bin by the mechanics (fail-safe rejects of parts the
camera never saw included). ``real_time_factor_cpu`` uses the process CPU time (the
machine is shared: wall time is distorted by other jobs).

Usage::

    nice -n 10 .venv/bin/python benchmarks/bench_throughput.py --speeds 25 50 75 100 \\
        --parts 12 --out benchmarks/results/bench_throughput.json
"""

import argparse
import json
import os
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


def main(argv=None) -> int:
    """Run the benchmark and print/write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    ap.add_argument('--speeds', type=float, nargs='+', default=[25.0, 50.0, 75.0, 100.0])
    ap.add_argument('--parts', type=int, default=12)
    ap.add_argument('--seed', type=int, default=3)
    ap.add_argument('--out', default=None, help='write the JSON here too')
    args = ap.parse_args(argv)
    rows = []
    for speed in args.speeds:
        rows.append(measure(speed, args.parts, args.seed))
        print(f'speed {speed}%: {rows[-1]["throughput_ppm"]} ppm, accuracy '
              f'{rows[-1]["sorting_accuracy"]}', file=sys.stderr, flush=True)
    report = {'benchmark': 'cell_throughput_vs_belt_speed', 'mode': 'oracle (ground truth)',
              'parts': args.parts, 'seed': args.seed, 'cpus': os.cpu_count(),
              'load_avg_1m': round(os.getloadavg()[0], 2), 'results': rows}
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
