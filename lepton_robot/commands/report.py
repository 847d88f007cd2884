"""``lepton-robot report DB``: summarise a traceability database."""

import argparse
import json

NAME = 'report'
HELP = 'summarise a traceability database (counts, defect rate per class, escapes)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the report options."""
    parser.add_argument('db', help='the SQLite trace database (e.g. written by `sim --db`)')
    parser.add_argument('--run', help='only this run label')
    parser.add_argument('--json', action='store_true', help='print the report as JSON')


def run(args: argparse.Namespace) -> int:
    """Print the report."""
    from lepton_robot.traceability import format_report, report
    rep = report(args.db, run=args.run)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
