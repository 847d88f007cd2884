"""
``lepton-robot sim``: a simulated inspection-and-sorting run.

Two modes share the options: ``--oracle`` sorts by ground truth with the scripted oracle
(no ROS, proves the cell and the arm); without it the whole ROS 2 graph runs against the
simulated cell (:func:`_run_graph`). Both write the same run summary with ``--summary``.
"""

import argparse
import json
import sys

NAME = 'sim'
HELP = 'run the simulated cell (ROS 2 graph, or --oracle: ground-truth sorting)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sim options."""
    parser.add_argument('--parts', type=int, default=20, help='number of parts to feed')
    parser.add_argument('--seed', type=int, default=0, help='seed of the run')
    parser.add_argument('--scenario', default='fast',
                        help='scenario name or YAML path (default: fast, the throughput-tuned '
                        'cell; default: the reference cell with a slower feeder)')
    parser.add_argument('--gui', action='store_true', help='show the PyBullet GUI')
    parser.add_argument('--summary', metavar='FILE', help='write the run summary as JSON')
    parser.add_argument('--oracle', action='store_true',
                        help='sort by ground truth with the scripted oracle (no ROS)')
    parser.add_argument('--say', action='append', default=[], metavar='T:TEXT',
                        help='operator utterance at sim time T s (repeatable; graph mode)')
    from lepton_robot.launcher import add_graph_arguments
    add_graph_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the chosen mode, print a short report, write the summary."""
    from lepton_robot.errors import ConfigError
    if args.parts < 0:
        raise ConfigError(f'--parts must be >= 0, got {args.parts}')
    summary = _run_oracle(args) if args.oracle else _run_graph(args)
    _report(summary)
    if args.summary:
        with open(args.summary, 'w', encoding='utf-8') as f:
            json.dump(summary, f, indent=1)
            f.write('\n')
    return 0


def _run_oracle(args: argparse.Namespace) -> dict:
    from lepton_robot.sim.oracle import run_oracle
    from tqdm import tqdm
    if args.say:
        print('sim --oracle: --say is ignored (no operator in oracle mode)', file=sys.stderr)
    bar = tqdm(total=args.parts, unit='part', file=sys.stderr, desc='oracle')

    def progress(done):
        bar.update(done - bar.n)

    try:
        return run_oracle(args.parts, args.seed, scenario=args.scenario, gui=args.gui,
                          progress=progress)
    finally:
        bar.close()


def _run_graph(args: argparse.Namespace) -> dict:
    from lepton_robot.launcher import run_graph_command
    return run_graph_command(args)


def _report(summary: dict) -> None:
    keys = ('parts_spawned', 'parts_inspected', 'parts_sorted', 'sorting_accuracy', 'escapes',
            'false_rejects', 'pick_attempts', 'pick_successes', 'drops', 'throughput_ppm',
            'sim_time_s', 'wall_time_s', 'real_time_factor')
    print(' '.join(f'{k}={summary.get(k)}' for k in keys))
