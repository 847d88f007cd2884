"""``lepton-robot inspect IMAGE…``: detect and classify parts in image files."""

import argparse
import json
import sys

NAME = 'inspect'
HELP = 'detect and classify parts in image files'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    from lepton_robot.detector.options import add_detector_arguments
    parser.add_argument('images', nargs='+', metavar='IMAGE', help='image files (PNG, JPEG)')
    parser.add_argument('--json', action='store_true',
                        help='one JSON object per image: {"image": path, "parts": [...]}')
    add_detector_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Inspect every image; an unreadable one is reported and the others still run."""
    from lepton_robot.detector.dataset import read_image
    from lepton_robot.detector.options import build_detector
    from lepton_robot.errors import ImageError
    detector = build_detector(args)
    failed = 0
    try:
        for path in args.images:
            try:
                result = detector.detect(read_image(path))
            except ImageError as exc:
                failed += 1
                print(f'lepton-robot inspect: error: {exc}', file=sys.stderr)
                continue
            parts = [p.to_dict() for p in result.parts]
            if args.json:
                print(json.dumps({'image': path, 'parts': parts, 'truncated': result.truncated,
                                  'backend': result.backend,
                                  'latency_ms': {k: round(v, 3)
                                                 for k, v in result.latency_ms.items()}}),
                      flush=True)
                continue
            print(f'{path}: {len(parts)} part(s), {len(result.truncated)} at the border '
                  f'({result.backend}, {sum(result.latency_ms.values()):.1f} ms)')
            for p in parts:
                pos = '' if p['position'] is None else \
                    ' at ({:.3f}, {:.3f}, {:.3f})'.format(*p['position'])
                print(f'  #{p["track_id"]} {p["label"]} {p["score"]:.3f}  {p["color"]} '
                      f'{p["shape"]}  bbox {p["bbox"]}{pos}')
    finally:
        detector.close()
    return 1 if failed else 0
