"""``lepton-robot datagen``: render a labelled dataset from the simulated cell."""

import argparse
import sys

NAME = 'datagen'
HELP = 'render a labelled dataset (images + labels.jsonl + camera.json) from the sim'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the datagen options."""
    parser.add_argument('--out', help='output directory (resumable)')
    parser.add_argument('--count', type=int, default=100, help='number of images')
    parser.add_argument('--seed', type=int, default=0, help='dataset seed')
    parser.add_argument('--balance', action='store_true',
                        help='draw shape, colour and condition uniformly (else the '
                             "scenario's feeder weights: half the parts ok)")
    parser.add_argument('--scenario', default='default', help='scenario name or YAML path')
    parser.add_argument('--widen', type=float, default=1.0,
                        help='widen lighting/colour randomisation by this factor')
    parser.add_argument('--max-parts', type=int, default=5, help='most parts per image')
    parser.add_argument('--contact-sheet', metavar='PNG',
                        help='instead of a dataset, write a sheet of every condition x shape')


def run(args: argparse.Namespace) -> int:
    """Generate the dataset with a progress bar."""
    from lepton_robot.errors import ConfigError
    from lepton_robot.sim import datagen
    from lepton_robot.sim.scenario import Scenario
    from tqdm import tqdm

    scenario = Scenario.load(args.scenario)
    if args.widen != 1.0:
        scenario = scenario.widened(args.widen)
    if args.contact_sheet:
        datagen.contact_sheet(args.contact_sheet, seed=args.seed, scenario=scenario, scale=2)
        print(f'wrote {args.contact_sheet}')
        return 0
    if not args.out:
        raise ConfigError('--out DIR is required (or --contact-sheet PNG)')
    gen = datagen.iter_dataset(args.out, args.count, args.seed, balance=args.balance,
                               scenario=scenario, max_parts=args.max_parts)
    bar = tqdm(total=args.count, unit='img', file=sys.stderr, desc='datagen')
    first = True
    for index in gen:
        if first:
            bar.update(index)  # resumed: the images before were already there
            first = False
        bar.update(1)
    bar.close()
    print(f'{args.out}: {args.count} images, labels in {args.out}/labels.jsonl')
    return 0
