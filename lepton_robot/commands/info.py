"""``lepton-robot info``: what this installation has (paths, models, ROS, inference)."""

import argparse
import importlib
import json

NAME = 'info'
HELP = 'show installed components: data paths, models, ROS 2, ONNX Runtime providers'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    parser.add_argument('--json', action='store_true', help='print one JSON object')


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - report any import failure as text
        return f'unavailable ({type(exc).__name__}: {exc})'
    return str(getattr(mod, '__version__', 'present'))


def run(args: argparse.Namespace) -> int:
    """Print the report."""
    from lepton_robot import __version__, paths
    report = {
        'lepton_robot': __version__,
        'share_dir': str(paths.share_dir()),
        'models': sorted(p.name for p in paths.models_dir().glob('*.onnx')),
        'rclpy': _version('rclpy'),
        'onnxruntime': _version('onnxruntime'),
        'pybullet': _version('pybullet'),
        'tensorrt': _version('tensorrt'),
    }
    try:
        import onnxruntime
        report['onnxruntime_providers'] = onnxruntime.get_available_providers()
    except ImportError:
        report['onnxruntime_providers'] = []
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f'{key:>22}: {value}')
    return 0
