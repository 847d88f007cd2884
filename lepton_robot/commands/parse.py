"""``lepton-robot parse TEXT...``: parse operator utterances into ``lepton.intent/1``."""

import argparse
import sys

NAME = 'parse'
HELP = 'parse operator utterances (one lepton.intent/1 per input, in order; - reads stdin)'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    parser.add_argument('texts', nargs='*', metavar='TEXT',
                        help='utterances; "-" reads more from stdin, one per line; '
                             '"--" ends the options (for utterances starting with "-")')
    parser.add_argument('--json', action='store_true',
                        help='print one lepton.intent/1 JSON object per line')
    parser.add_argument('--model', default=None, help='ONNX model (default: shipped model)')
    parser.add_argument('--confidence-floor', type=float, default=None,
                        help='below this probability the answer is unknown (0..1)')


def _inputs(texts, stdin):
    for text in texts:
        if text == '-':
            for line in stdin:
                # back to the bytes that arrived, so invalid UTF-8 is reported as such
                yield line.rstrip('\r\n').encode('utf-8', errors='surrogateescape')
        else:
            yield text


def _readable(result: dict) -> str:
    slots = ' '.join(f'{k}={v}' for k, v in result['slots'].items())
    line = f'{result["intent"]:<15} {result["confidence"]:.2f}'
    if slots:
        line += f'  {slots}'
    if 'reason' in result:
        line += f'  ({result["reason"]})'
    return f'{line}  <- {result["text"]!r}'


def run(args: argparse.Namespace) -> int:
    """Parse every input and print one line each."""
    from lepton_robot.errors import ConfigError
    from lepton_robot.interfaces import dumps
    from lepton_robot.parser.pipeline import DEFAULT_CONFIDENCE_FLOOR
    from lepton_robot.parser.runtime import CommandParser

    if not args.texts:
        raise ConfigError('no utterance given (pass TEXT... or - to read stdin)')
    floor = DEFAULT_CONFIDENCE_FLOOR if args.confidence_floor is None \
        else args.confidence_floor
    if not 0.0 <= floor <= 1.0:
        raise ConfigError(f'--confidence-floor must be in 0..1, got {floor}')
    parser = CommandParser(args.model, confidence_floor=floor)
    stdin = sys.stdin
    if '-' in args.texts:
        stdin = open(sys.stdin.fileno(), encoding='utf-8', errors='surrogateescape',
                     closefd=False)
    for text in _inputs(args.texts, stdin):
        result = parser.parse(text)
        print(dumps(result) if args.json else _readable(result), flush=True)
    return 0
