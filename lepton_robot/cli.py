"""
``lepton-robot``: the one command-line entry point.

Each subcommand lives in ``lepton_robot/commands/<name>.py`` and defines ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries (torch,
onnxruntime, pybullet, rclpy) inside ``run`` only, so ``--help`` stays fast and the runtime
never imports torch.
"""

import argparse
import importlib
import sys
from typing import List, Optional

from lepton_robot import __version__
from lepton_robot.errors import LeptonError

# Order is the order shown in ``--help``.
COMMAND_MODULES = (
    'lepton_robot.commands.info',
    'lepton_robot.commands.datagen',
    'lepton_robot.commands.sim',
    'lepton_robot.commands.report',
    'lepton_robot.commands.train',
    'lepton_robot.commands.inspect_images',
    'lepton_robot.commands.evaluate',
    'lepton_robot.commands.calibrate',
    'lepton_robot.commands.export',
    'lepton_robot.commands.parse',
    'lepton_robot.commands.evaluate_parser',
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog='lepton-robot',
        description='Robotic visual inspection and sorting on the edge.')
    parser.add_argument('--version', action='version', version=f'lepton-robot {__version__}')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the CLI and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except LeptonError as exc:
        print(f'lepton-robot {args.command}: error: {exc}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
