"""
``lepton-robot train MODEL``: train a model with PyTorch and export it to ONNX.

Each trainer lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; PyTorch is imported only inside ``run``.
"""

import argparse
import importlib

NAME = 'train'
HELP = 'train a model (PyTorch, CPU) and export it to ONNX in models/'

#: trainer name -> module implementing it
TRAINERS = {
    'detector': 'lepton_robot.training.detector_train',
    'parser': 'lepton_robot.training.parser_train',
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one sub-subcommand per trainer."""
    sub = parser.add_subparsers(dest='model', metavar='MODEL')
    sub.required = True
    for name, module_name in TRAINERS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_trainer=module.run)


def run(args: argparse.Namespace) -> int:
    """Run the chosen trainer."""
    return int(args._trainer(args) or 0)
