"""
``lepton-robot evaluate-parser``: score the parser on held-out utterances.

The generated validation split and the hand-written set: intent accuracy, slot F1, exact
match, confusion, stop/e-stop recall; JSON and confusion-matrix PNGs.
"""

import argparse
from pathlib import Path

NAME = 'evaluate-parser'
HELP = ('score the command parser on the generated validation split and the hand-written '
        'set; JSON plus confusion-matrix PNGs')

_REPO = Path(__file__).resolve().parent.parent.parent
DEFAULT_HANDWRITTEN = _REPO / 'tests' / 'data' / 'parser_handwritten.jsonl'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    parser.add_argument('--json', action='store_true', help='print one JSON object')
    parser.add_argument('--out', type=Path, default=None,
                        help='write report.json and confusion PNGs into this directory')
    parser.add_argument('--model', default=None, help='ONNX model (default: shipped model)')
    parser.add_argument('--handwritten', type=Path, default=DEFAULT_HANDWRITTEN,
                        help='hand-written JSONL set (text, intent, slots)')
    parser.add_argument('--val-size', type=int, default=4000,
                        help='generated validation utterances (seeded)')
    parser.add_argument('--errors', action='store_true',
                        help='list the utterances that were not exact matches')


def run(args: argparse.Namespace) -> int:
    """Evaluate and report."""
    import json

    from lepton_robot.errors import ConfigError
    from lepton_robot.parser import corpus
    from lepton_robot.parser.evaluate import evaluate_examples, load_jsonl, plot_confusion
    from lepton_robot.parser.runtime import CommandParser

    parser = CommandParser(args.model)
    sets = {'validation': [{'text': ex['text'], 'intent': ex['intent'], 'slots': ex['slots']}
                           for ex in corpus.generate_split('val', args.val_size)]}
    if args.handwritten.is_file():
        sets['handwritten'] = load_jsonl(args.handwritten)
    elif args.handwritten != DEFAULT_HANDWRITTEN:
        raise ConfigError(f'hand-written set not found: {args.handwritten}')
    report = {'model': str(parser.model_path), 'model_version': parser.version}
    for name, examples in sets.items():
        report[name] = evaluate_examples(parser, examples)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in sets:
            png = args.out / f'confusion_{name}.png'
            plot_confusion(report[name]['confusion'], png, f'command parser: {name}')
            report[name]['confusion_png'] = str(png)
        (args.out / 'report.json').write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
        return 0
    print(f'model {report["model"]} (version {report["model_version"]})')
    for name in sets:
        r = report[name]
        print(f'{name:>12}: n={r["n"]} intent accuracy {r["intent_accuracy"]:.4f}  '
              f'slot F1 {r["slot_f1"]:.4f}  exact match {r["exact_match"]:.4f}  '
              f'stop/e-stop recall {r["safety_recall"]}')
        if args.errors:
            for err in r['errors']:
                print(f'    {err["text"]!r}: expected {err["expected"]} got {err["got"]}')
    return 0
