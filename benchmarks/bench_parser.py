"""
Benchmark the command parser: per-utterance latency, ONNX Runtime vs PyTorch, one run.

Not a test. Measures, on the same utterances and the same pre/post-processing:

- ``end_to_end``: ``parse()`` (sanitise, tokenise, normalise, safety scan, model, decode),
  single utterances, and ``parse_batch()`` at batch size ``--batch`` (latency per
  utterance = batch time / batch size);
- ``model_only``: the network call alone on pre-encoded inputs, single and batched.

ONNX Runtime runs with 1 intra-op thread; PyTorch with ``torch.set_num_threads(1)``, so
both use one core. Ratios are PyTorch / ONNX Runtime (> 1: ONNX Runtime is faster).

Usage::

    python benchmarks/bench_parser.py [--out results.json] [--repeats 300] [--batch 32]
"""

import argparse
from pathlib import Path
import platform
import statistics
import sys
import time

import numpy as np


def _percentiles(samples_ms):
    arr = np.asarray(samples_ms)
    return {'p50': round(float(np.percentile(arr, 50)), 4),
            'p99': round(float(np.percentile(arr, 99)), 4),
            'mean': round(float(arr.mean()), 4), 'n': int(arr.size)}


def _time(func, repeats, per=1):
    func()  # warm-up
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        out.append((time.perf_counter() - t0) * 1e3 / per)
    return out


def main(argv=None) -> int:
    """Run the benchmark and print/write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--out', type=Path, default=None, help='write the JSON here')
    ap.add_argument('--repeats', type=int, default=300, help='timed calls per measurement')
    ap.add_argument('--batch', type=int, default=32, help='batch size of the batched runs')
    ap.add_argument('--model', type=Path, default=None, help='ONNX model (default: shipped)')
    args = ap.parse_args(argv)

    import torch
    from lepton_robot.parser import corpus, text as textmod
    from lepton_robot.parser.features import encode_batch
    from lepton_robot.parser.pipeline import ParserCore
    from lepton_robot.parser.runtime import CommandParser, default_model_path
    from lepton_robot.training.parser_train import load_checkpoint, torch_predictor

    torch.set_num_threads(1)
    model_path = args.model or default_model_path()
    onnx_parser = CommandParser(model_path, intra_op_threads=1)
    model, meta = load_checkpoint(Path(model_path).with_suffix('.pt'))
    torch_core = ParserCore(torch_predictor(model), meta['vocab'], meta['intents'],
                            meta['tags'])
    onnx_core = onnx_parser._core
    backends = {'onnxruntime': (onnx_core, onnx_parser._predict),
                'pytorch': (torch_core, torch_predictor(model))}

    # realistic utterances without the safety fast path's early exit
    pool = [ex['text'] for ex in corpus.generate_split('val', 2000, seed=11)
            if ex['intent'] not in ('stop', 'emergency_stop', 'unknown')]
    singles = pool[:args.repeats]
    batches = [pool[i:i + args.batch] for i in range(0, len(pool), args.batch)]
    batches = [b for b in batches if len(b) == args.batch]

    def encoded(texts):
        toks = [textmod.tokenize(t) for t in texts]
        return encode_batch(toks, [textmod.normalize_tokens(t) for t in toks], meta['vocab'])

    enc_single = [encoded([t]) for t in singles]
    enc_batches = [encoded(b) for b in batches]
    results = {}
    for name, (core, predict) in backends.items():
        it = iter(range(10 ** 9))
        r = {}
        r['end_to_end_single_ms'] = _percentiles(
            _time(lambda: core.parse(singles[next(it) % len(singles)]), args.repeats))
        r[f'end_to_end_batch{args.batch}_per_utterance_ms'] = _percentiles(
            _time(lambda: core.parse_batch(batches[next(it) % len(batches)]),
                  max(20, args.repeats // 5), per=args.batch))
        r['model_only_single_ms'] = _percentiles(
            _time(lambda: predict(enc_single[next(it) % len(enc_single)]), args.repeats))
        r[f'model_only_batch{args.batch}_per_utterance_ms'] = _percentiles(
            _time(lambda: predict(enc_batches[next(it) % len(enc_batches)]),
                  max(20, args.repeats // 5), per=args.batch))
        results[name] = r
    ratios = {key: round(results['pytorch'][key]['p50'] / results['onnxruntime'][key]['p50'],
                         2) for key in results['onnxruntime']}
    report = {
        'benchmark': 'command_parser', 'model': str(model_path),
        'model_version': onnx_parser.version,
        'onnxruntime_intra_op_threads': 1, 'torch_threads': torch.get_num_threads(),
        'batch': args.batch, 'repeats': args.repeats,
        'mean_tokens': round(statistics.mean(len(textmod.tokenize(t)) for t in singles), 1),
        'platform': platform.platform(), 'python': platform.python_version(),
        'torch': torch.__version__,
        'results': results,
        'ratio_pytorch_over_onnxruntime_p50': ratios,
        'goal_p50_le_1ms_single_onnxruntime':
            results['onnxruntime']['end_to_end_single_ms']['p50'] <= 1.0,
    }
    from _report import emit
    emit(report, args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
