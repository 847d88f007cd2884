"""
Benchmark the simulated cell: real-time factor with the camera at 10 Hz, vs parts on belt.

Usage::

    .venv/bin/python benchmarks/bench_sim.py --out benchmarks/results/bench_sim.json

For each number of parts, a cell (Panda holding its pose under position control, belt at
its default speed) is stepped for ``--sim-seconds`` while the camera renders at
``--camera-hz``; the real-time factor is simulated seconds per wall second. The physics step
and the render are timed separately. ``real_time_factor`` uses wall time (what a user sees);
``real_time_factor_cpu`` uses this process's CPU time, which does not depend on other jobs
competing for the cores (the machine's load average is recorded too).
"""

import argparse
import os
import platform
import sys
import time

import numpy as np


def measure(n_parts: int, sim_seconds: float, camera_hz: float, seed: int) -> dict:
    """Run one configuration and return its timings."""
    from lepton_robot.sim.cell import WorkCell
    with WorkCell(seed=seed) as cell:
        cell.feeder_enabled = False
        belt = cell.scenario.belt
        # parts spread over the belt upstream of its end, so none leaves during the run
        x_hi = belt['x_end'] - cell.belt_speed * sim_seconds - 0.06
        xs = np.linspace(belt['x_start'] + 0.05, x_hi, max(n_parts, 1))
        for i in range(n_parts):
            cell.spawn_part(x=float(xs[i]), y=belt['y'] + (0.06 if i % 2 else -0.06))
        cell.step(24)
        steps_per_frame = max(1, int(round(1.0 / (camera_hz * cell.dt))))
        frames = int(round(sim_seconds * camera_hz))
        render_ms, physics_ms = [], []
        t_start = time.perf_counter()
        cpu_start = time.process_time()
        sim_start = cell.sim_time
        for _ in range(frames):
            t0 = time.perf_counter()
            cell.render()
            t1 = time.perf_counter()
            cell.step(steps_per_frame)
            t2 = time.perf_counter()
            render_ms.append((t1 - t0) * 1e3)
            physics_ms.append((t2 - t1) * 1e3 / steps_per_frame)
        wall = time.perf_counter() - t_start
        cpu = time.process_time() - cpu_start
        sim = cell.sim_time - sim_start
        on_belt = sum(p.location == 'belt' for p in cell.parts())
    return {'parts': n_parts, 'parts_on_belt_at_end': on_belt, 'sim_time_s': round(sim, 3),
            'wall_time_s': round(wall, 3), 'real_time_factor': round(sim / wall, 3),
            'cpu_time_s': round(cpu, 3), 'real_time_factor_cpu': round(sim / cpu, 3),
            'render_ms_p50': round(float(np.percentile(render_ms, 50)), 3),
            'render_ms_p95': round(float(np.percentile(render_ms, 95)), 3),
            'physics_step_ms_p50': round(float(np.percentile(physics_ms, 50)), 4)}


def main(argv=None) -> int:
    """Run the benchmark and print/write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--parts', type=int, nargs='+', default=[0, 2, 5, 10, 20])
    parser.add_argument('--sim-seconds', type=float, default=10.0)
    parser.add_argument('--camera-hz', type=float, default=10.0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='write the JSON here too')
    args = parser.parse_args(argv)
    rows = [measure(n, args.sim_seconds, args.camera_hz, args.seed) for n in args.parts]
    load = os.getloadavg() if hasattr(os, 'getloadavg') else None
    result = {'benchmark': 'sim_real_time_factor', 'camera_hz': args.camera_hz,
              'sim_seconds': args.sim_seconds, 'cpu_count': os.cpu_count(),
              'load_average_at_end': load, 'python': platform.python_version(),
              'results': rows}
    from _report import emit
    emit(result, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
