"""
Score the detector on a labelled dataset (``lepton-robot evaluate``) and write a report.

Every fully visible labelled part counts (``n_parts``). A part the detector did not find
is ``missed`` (wrong for accuracy; never an escape, because the cell never accepts a part it
did not inspect). A part the detector saw touching the image border (within its margin) is
``deferred``: reported as not yet inspectable, which in the running cell means it is
classified a frame later; deferred parts are counted but left out of the accuracies.
An ``escape`` is a defective part called ``ok``; a ``false_reject`` an ok part called
defective. Metrics are part-level, on one frame per dataset image.
"""

import json
from pathlib import Path
import time
from typing import Any, Dict, List, Optional

from lepton_robot.detector.dataset import match_boxes, read_image, read_labels
from lepton_robot.detector.detector import DefectDetector
from lepton_robot.interfaces import CONDITIONS
import numpy as np

MISSED = 'missed'
DEFERRED = 'deferred'


def evaluate_dataset(detector: DefectDetector, directory: str, progress: bool = False,
                     limit: Optional[int] = None) -> Dict[str, Any]:
    """
    Run the detector over every frame of a dataset and score it.

    :param detector: the detector (its tracker is not used: frames are independent).
    :param directory: a ``lepton-robot datagen`` output directory.
    :param progress: show a tqdm bar.
    :param limit: evaluate only the first ``limit`` frames.
    :return: the summary (see :func:`summarize`) with a ``records`` list per part and
        ``latency`` per frame.
    :raises ConfigError: if the directory is not a dataset.
    """
    frames = read_labels(directory)[:limit]
    tracker, detector.tracker = detector.tracker, None
    records: List[Dict[str, Any]] = []
    latency: List[Dict[str, float]] = []
    false_positives = 0
    iterator = frames
    if progress:
        from tqdm import tqdm
        iterator = tqdm(frames, desc='evaluate', unit='frame')
    try:
        for frame in iterator:
            image = read_image(str(frame.path))
            t0 = time.perf_counter()
            result = detector.detect(image)
            total = (time.perf_counter() - t0) * 1e3
            latency.append({**result.latency_ms, 'total': total, 'n_parts': len(result.parts)})
            truth = frame.parts
            matches = match_boxes([p.bbox for p in result.parts], [t['bbox'] for t in truth])
            by_truth = {j: i for i, j, _ in matches}
            false_positives += len(result.parts) - len(matches)
            rest = [j for j in range(len(truth)) if j not in by_truth]
            at_border = {rest[j] for _, j, _ in match_boxes(
                [t['bbox'] for t in result.truncated], [truth[j]['bbox'] for j in rest])}
            for j, part in enumerate(truth):
                if part.get('truncated'):
                    continue
                rec = {'image': frame.path.name, 'truth': part['condition'],
                       'color': part['color'], 'shape': part['shape']}
                if j in by_truth:
                    pred = result.parts[by_truth[j]]
                    rec.update(pred=pred.label, pred_color=pred.color, pred_shape=pred.shape,
                               probs=pred.probs)
                else:
                    rec.update(pred=DEFERRED if j in at_border else MISSED, pred_color=None,
                               pred_shape=None, probs=None)
                records.append(rec)
    finally:
        detector.tracker = tracker
    summary = summarize(records)
    summary.update(false_positives=false_positives, n_frames=len(frames),
                   backend=detector.backend.name, sensitivity=detector.sensitivity,
                   ok_threshold=detector.threshold, tta=detector.tta,
                   latency_ms=_latency_summary(latency), records=records, latency=latency)
    return summary


def summarize(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """
    Compute the contract's evaluation keys from per-part records.

    :return: ``accuracy`` (condition), ``color_accuracy``, ``shape_accuracy``,
        ``per_class`` (precision/recall/support per condition), ``confusion``
        (truth -> predicted -> count, ``missed`` included), ``escapes``,
        ``false_rejects``, ``missed``, ``deferred``, ``n_parts`` (all fully visible parts;
        accuracies are over the ``n_scored`` parts that were not deferred).
    """
    n_parts = len(records)
    deferred = sum(1 for r in records if r['pred'] == DEFERRED)
    records = [r for r in records if r['pred'] != DEFERRED]
    n = len(records)
    confusion = {c: {} for c in CONDITIONS}
    for r in records:
        row = confusion.setdefault(r['truth'], {})
        row[r['pred']] = row.get(r['pred'], 0) + 1
    per_class = {}
    for c in CONDITIONS:
        tp = sum(1 for r in records if r['truth'] == c and r['pred'] == c)
        pred_n = sum(1 for r in records if r['pred'] == c)
        support = sum(1 for r in records if r['truth'] == c)
        per_class[c] = {'precision': tp / pred_n if pred_n else None,
                        'recall': tp / support if support else None, 'support': support}
    return {
        'accuracy': _ratio(sum(r['pred'] == r['truth'] for r in records), n),
        'color_accuracy': _ratio(sum(r['pred_color'] == r['color'] for r in records), n),
        'shape_accuracy': _ratio(sum(r['pred_shape'] == r['shape'] for r in records), n),
        'per_class': per_class,
        'confusion': confusion,
        'escapes': sum(1 for r in records if r['truth'] != 'ok' and r['pred'] == 'ok'),
        'false_rejects': sum(1 for r in records
                             if r['truth'] == 'ok' and r['pred'] not in ('ok', MISSED)),
        'missed': sum(1 for r in records if r['pred'] == MISSED),
        'deferred': deferred,
        'n_parts': n_parts,
        'n_scored': n,
    }


def _ratio(a: int, b: int) -> float:
    return float(a) / b if b else 0.0


def _latency_summary(latency: List[Dict[str, float]]) -> Dict[str, Dict[str, float]]:
    out = {}
    for key in ('preprocess', 'infer', 'postprocess', 'total'):
        values = np.asarray([row[key] for row in latency if key in row], np.float64)
        if len(values):
            out[key] = {'p50': round(float(np.percentile(values, 50)), 3),
                        'p99': round(float(np.percentile(values, 99)), 3),
                        'mean': round(float(values.mean()), 3)}
    return out


def public_summary(summary: Dict[str, Any]) -> Dict[str, Any]:
    """Return the summary without the bulky per-part and per-frame lists."""
    return {k: v for k, v in summary.items() if k not in ('records', 'latency')}


def write_report(summary: Dict[str, Any], out_dir: str) -> List[Path]:
    """
    Write ``report.json``, ``confusion.png``, ``pr_curves.png`` and ``latency.png``.

    :return: the files written.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / 'report.json', out / 'confusion.png', out / 'pr_curves.png',
             out / 'latency.png']
    files[0].write_text(json.dumps(public_summary(summary), indent=2))

    cols = list(CONDITIONS) + [MISSED]
    matrix = np.asarray([[summary['confusion'].get(t, {}).get(p, 0) for p in cols]
                         for t in CONDITIONS])
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(matrix, cmap='Blues')
    ax.set_xticks(range(len(cols)), cols, rotation=30)
    ax.set_yticks(range(len(CONDITIONS)), CONDITIONS)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true')
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha='center', va='center',
                    color='white' if matrix[i, j] > matrix.max() / 2 else 'black')
    ax.set_title(f'condition, accuracy {summary["accuracy"]:.4f} (n={summary["n_parts"]})')
    fig.tight_layout()
    fig.savefig(files[1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 5))
    scored = [r for r in summary['records'] if r['probs'] is not None]
    for c in CONDITIONS:
        truth = np.asarray([r['truth'] == c for r in scored])
        scores = np.asarray([r['probs'][c] for r in scored])
        if not truth.any():
            continue
        precision, recall = pr_curve(scores, truth)
        ax.plot(recall, precision, label=c)
    ax.set_xlabel('recall')
    ax.set_ylabel('precision')
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.legend()
    ax.set_title('precision-recall per condition (one vs rest)')
    fig.tight_layout()
    fig.savefig(files[2], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    total = [row['total'] for row in summary['latency']]
    infer = [row['infer'] for row in summary['latency']]
    ax.hist(total, bins=40, alpha=0.7, label='frame total')
    ax.hist(infer, bins=40, alpha=0.7, label='inference')
    ax.set_xlabel('ms')
    ax.set_ylabel('frames')
    ax.legend()
    ax.set_title(f'latency per frame ({summary["backend"]})')
    fig.tight_layout()
    fig.savefig(files[3], dpi=100)
    plt.close(fig)
    return files


def pr_curve(scores: np.ndarray, truth: np.ndarray):
    """Return (precision, recall) arrays for descending score thresholds."""
    order = np.argsort(-scores, kind='stable')
    hits = truth[order].astype(np.float64)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / max(hits.sum(), 1.0)
    return precision, recall
