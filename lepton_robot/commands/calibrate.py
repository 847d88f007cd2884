"""
``lepton-robot calibrate DIR...``: choose the detector's ok threshold on calibration data.

Training tunes ``ok_threshold`` (the ``p(ok)`` a part needs to be called ok at sensitivity
50) on its validation frames, which are few for a tail as rare as a chip that looks ok.
This command scores the model on larger calibration sets (``lepton-robot datagen`` on seeds
of their own: neither training, validation nor the held-out test seeds) and picks the
threshold that minimises ``escape_cost * escapes + false_rejects`` over them (an escape, a
defective part called ok, costs more than a false reject); ties go to the lower threshold.
``--write`` stores it in the model's metadata: the FP32 file, its ``_int8`` and ``_fp16``
siblings and the ``.pt`` checkpoint (so a re-export keeps it). Writing needs the ``onnx``
and ``torch`` packages (``pip install -e .[train]``).

``--tta none|flip`` scores with that test-time augmentation (default: the model's own,
metadata ``tta``); ``--write`` stores it with the threshold, since the threshold holds only
for the inference it was calibrated on.
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

NAME = 'calibrate'
HELP = "choose the detector's ok threshold on calibration datasets (escape-weighted)"

#: thresholds the search never leaves: below 0.5 ok could win without the most votes,
#: above 0.99 nearly every part would be rejected
LIMITS = (0.5, 0.99)


def errors_at(p_ok: np.ndarray, is_ok: np.ndarray, threshold: float) -> Tuple[int, int]:
    """Return ``(escapes, false_rejects)`` when ok needs ``p(ok) >= threshold``."""
    return (int(np.sum(~is_ok & (p_ok >= threshold))),
            int(np.sum(is_ok & (p_ok < threshold))))


def choose_threshold(p_ok: np.ndarray, is_ok: np.ndarray, escape_cost: float
                     ) -> Tuple[float, List[Dict[str, float]]]:
    """
    Return the ok threshold with the least cost, and the cost curve.

    Candidates: the limits and, between them, one threshold above each defective part's
    ``p(ok)`` (where that escape turns into a rejection), placed half-way in logit space to
    the next higher score of any part, as training's ``tune_ok_threshold`` does: a
    threshold a hair above a calibration score would leave no margin (read back from the
    model metadata and shifted by the sensitivity, it can land on that very score).

    :param p_ok: ``p(ok)`` of every scored part.
    :param is_ok: whether each part is truly ok.
    :param escape_cost: cost of one escape in false rejects.
    :return: ``(threshold, [{threshold, escapes, false_rejects, cost}, ...])``.
    """
    from lepton_robot.detector.detector import logit, sigmoid
    p_ok = np.asarray(p_ok, np.float64)
    is_ok = np.asarray(is_ok, bool)
    lo, hi = LIMITS
    cands = {lo, hi}
    scores = np.unique(np.concatenate([p_ok, [hi]]))
    for p in p_ok[~is_ok]:
        if lo < p < hi:
            above = scores[scores > p][0]
            cands.add(min(hi, sigmoid((logit(p, eps=1e-9) + logit(above, eps=1e-9)) / 2.0)))
    curve = []
    for t in sorted(cands):
        escapes, false_rejects = errors_at(p_ok, is_ok, t)
        curve.append({'threshold': t, 'escapes': escapes, 'false_rejects': false_rejects,
                      'cost': escape_cost * escapes + false_rejects})
    best = min(curve, key=lambda row: (row['cost'], row['threshold']))
    return best['threshold'], curve


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the subcommand's options."""
    parser.add_argument('directories', nargs='+', metavar='DIR',
                        help='lepton-robot datagen outputs on calibration seeds')
    parser.add_argument('--model', default=None, help='detector ONNX (default: shipped)')
    parser.add_argument('--escape-cost', type=float, default=10.0,
                        help='cost of one escape in false rejects (default 10)')
    parser.add_argument('--tta', choices=('none', 'flip'), default=None,
                        help="test-time augmentation to calibrate for (default: the model's "
                             'own); --write stores it with the threshold')
    parser.add_argument('--write', action='store_true',
                        help="store the threshold (and tta) in the model's metadata (all "
                             'variants)')
    parser.add_argument('--json', action='store_true', help='print one JSON object')


def run(args: argparse.Namespace) -> int:
    """Score, choose, print (and write) the threshold."""
    from lepton_robot.detector.detector import default_model_path, DefectDetector
    from lepton_robot.detector.evaluation import evaluate_dataset
    from lepton_robot.errors import ConfigError
    if not args.escape_cost > 0:
        raise ConfigError(f'--escape-cost must be > 0, got {args.escape_cost}')
    model = Path(args.model or default_model_path())
    detector = DefectDetector.from_model(str(model), sensitivity=50.0, track=False,
                                         tta=args.tta)
    tta_before, tta = detector.meta.tta, detector.tta
    p_ok, is_ok = [], []
    try:
        before = detector.threshold
        for directory in args.directories:
            summary = evaluate_dataset(detector, directory)
            for rec in summary['records']:
                if rec.get('probs'):
                    p_ok.append(float(rec['probs']['ok']))
                    is_ok.append(rec['truth'] == 'ok')
    finally:
        detector.close()
    if not p_ok:
        raise ConfigError('no scored parts in the calibration data')
    p_ok, is_ok = np.array(p_ok), np.array(is_ok)
    threshold, curve = choose_threshold(p_ok, is_ok, args.escape_cost)
    chosen = next(r for r in curve if r['threshold'] == threshold)
    escapes_before, false_rejects_before = errors_at(p_ok, is_ok, before)
    report = {'model': str(model), 'n_parts': int(len(p_ok)),
              'n_defective': int(np.sum(~is_ok)), 'escape_cost': args.escape_cost,
              'threshold_before': before, 'tta_before': tta_before, 'tta': tta,
              'at_threshold_before': {'escapes': escapes_before,
                                      'false_rejects': false_rejects_before},
              'threshold': threshold, 'escapes': chosen['escapes'],
              'false_rejects': chosen['false_rejects'], 'data': list(args.directories),
              'written': []}
    if args.write:
        report['written'] = [str(p) for p in write_threshold(model, threshold, tta)]
    if args.json:
        print(json.dumps(report))
    else:
        b = report['at_threshold_before']
        print(f'{report["n_parts"]} parts ({report["n_defective"]} defective) in '
              f'{len(args.directories)} calibration set(s)')
        print(f'  test-time augmentation: {tta} (model: {tta_before})')
        print(f'  threshold {before:.4f} (now): {b["escapes"]} escapes, '
              f'{b["false_rejects"]} false rejects')
        print(f'  threshold {threshold:.4f} (least {args.escape_cost:g} x escapes + false '
              f'rejects): {chosen["escapes"]} escapes, {chosen["false_rejects"]} false rejects')
        for path in report['written']:
            print(f'  wrote {path}')
    return 0


def write_threshold(model: Path, threshold: float, tta: Optional[str] = None) \
        -> Sequence[Path]:
    """
    Store the threshold (and ``tta``) in every file of the model.

    The files: the FP32 model, its ``_int8``/``_fp16`` siblings and its ``.pt`` checkpoint.
    """
    from lepton_robot.errors import ConfigError
    try:
        import onnx
        import torch
    except ImportError as exc:
        raise ConfigError(f'--write needs onnx and torch (pip install -e .[train]): {exc}') \
            from exc
    written = []
    for path in (model, model.with_name(model.stem + '_int8.onnx'),
                 model.with_name(model.stem + '_fp16.onnx')):
        if not path.is_file():
            continue
        proto = onnx.load(str(path))
        props = {p.key: p for p in proto.metadata_props}
        if 'ok_threshold' not in props:
            raise ConfigError(f'{path} has no ok_threshold metadata: not a lepton_robot model')
        props['ok_threshold'].value = repr(float(threshold))
        if tta is not None:
            entry = props.get('tta') or proto.metadata_props.add(key='tta')
            entry.value = str(tta)
        onnx.save(proto, str(path))
        written.append(path)
    ckpt = model.with_suffix('.pt')
    if ckpt.is_file():
        data = torch.load(str(ckpt), map_location='cpu', weights_only=True)
        data['metadata']['ok_threshold'] = repr(float(threshold))
        if tta is not None:
            data['metadata']['tta'] = str(tta)
        torch.save(data, str(ckpt))
        written.append(ckpt)
    return written
