"""``lepton-robot evaluate DIR``: score the detector on a labelled dataset."""

import argparse
import json

NAME = 'evaluate'
HELP = 'score the detector on a labelled dataset (accuracy, confusion, escapes, report)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    from lepton_robot.detector.options import add_detector_arguments
    parser.add_argument('directory', metavar='DIR', help='a lepton-robot datagen output')
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--out', default=None, metavar='REPORT_DIR',
                        help='write report.json, confusion.png, pr_curves.png, latency.png')
    parser.add_argument('--limit', type=int, default=None, help='first N frames only')
    parser.add_argument('--progress', action='store_true', help='show a progress bar')
    add_detector_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print (and optionally write) the report."""
    from lepton_robot.detector.evaluation import (evaluate_dataset, public_summary,
                                                  write_report)
    from lepton_robot.detector.options import build_detector
    detector = build_detector(args)
    try:
        summary = evaluate_dataset(detector, args.directory, progress=args.progress,
                                   limit=args.limit)
    finally:
        detector.close()
    if args.out:
        files = write_report(summary, args.out)
        summary['report_files'] = [str(f) for f in files]
    public = public_summary(summary)
    if args.json:
        print(json.dumps(public))
    else:
        print(f'{args.directory}: {public["n_parts"]} parts in {public["n_frames"]} frames '
              f'({public["backend"]}, sensitivity {public["sensitivity"]:g})')
        print(f'  condition accuracy {public["accuracy"]:.4f}  color '
              f'{public["color_accuracy"]:.4f}  shape {public["shape_accuracy"]:.4f}')
        print(f'  escapes {public["escapes"]}  false rejects {public["false_rejects"]}  '
              f'missed {public["missed"]}  deferred (at the border) {public["deferred"]}  '
              f'false positives {public["false_positives"]}')
        for cls, row in public['per_class'].items():
            p = '-' if row['precision'] is None else f'{row["precision"]:.4f}'
            r = '-' if row['recall'] is None else f'{row["recall"]:.4f}'
            print(f'  {cls:>8}: precision {p}  recall {r}  support {row["support"]}')
        lat = public['latency_ms'].get('total')
        if lat:
            print(f'  latency per frame p50 {lat["p50"]} ms  p99 {lat["p99"]} ms')
        if args.out:
            print(f'  report in {args.out}')
    return 0
