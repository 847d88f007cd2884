"""
Parser metrics: intent accuracy, slot F1, exact match, confusion, stop/e-stop recall.

Works with any :class:`~lepton_robot.parser.pipeline.ParserCore` (ONNX Runtime or
PyTorch backend). No torch, no rclpy.
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Sequence

from lepton_robot.interfaces import INTENTS

SAFETY_INTENTS = ('stop', 'emergency_stop')


def load_jsonl(path: Path) -> List[Dict[str, Any]]:
    """Read labelled utterances (``{"text", "intent", "slots"}`` per line)."""
    with open(path, encoding='utf-8') as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(float(a) - float(b)) < 1e-6
    return a == b


def evaluate_examples(core, examples: Sequence[Dict[str, Any]], batch_size: int = 64
                      ) -> Dict[str, Any]:
    """
    Parse labelled utterances and score them.

    :param core: a parser with ``parse_batch(texts)``.
    :param examples: dicts with ``text``, ``intent`` and ``slots``.
    :param batch_size: utterances per model call.
    :return: ``n``, ``intent_accuracy``, ``slot_precision``/``recall``/``f1`` (micro, over
        slot=value pairs), ``exact_match`` (intent and every slot), ``safety_recall``
        (stop and e-stop utterances that came out as exactly that intent), ``confusion``
        (expected -> predicted -> count), ``per_intent`` (precision, recall, support)
        and ``errors`` (the utterances that were not exact matches).
    """
    texts = [ex['text'] for ex in examples]
    preds: List[Dict[str, Any]] = []
    for i in range(0, len(texts), batch_size):
        preds.extend(core.parse_batch(texts[i:i + batch_size]))
    n = len(examples)
    correct = exact = tp = fp = fn = 0
    safety_n = safety_ok = 0
    confusion: Dict[str, Dict[str, int]] = {}
    errors = []
    for ex, pred in zip(examples, preds):
        gold_slots = ex.get('slots', {})
        got_slots = pred['slots']
        intent_ok = pred['intent'] == ex['intent']
        correct += intent_ok
        row = confusion.setdefault(ex['intent'], {})
        row[pred['intent']] = row.get(pred['intent'], 0) + 1
        matched = sum(1 for k, v in got_slots.items()
                      if k in gold_slots and _same(v, gold_slots[k]))
        tp += matched
        fp += len(got_slots) - matched
        fn += len(gold_slots) - matched
        slots_ok = matched == len(gold_slots) == len(got_slots)
        if intent_ok and slots_ok:
            exact += 1
        else:
            errors.append({'text': ex['text'], 'expected': {'intent': ex['intent'],
                                                            'slots': gold_slots},
                           'got': {'intent': pred['intent'], 'slots': got_slots,
                                   'confidence': round(pred['confidence'], 3),
                                   **({'reason': pred['reason']} if 'reason' in pred
                                      else {})}})
        if ex['intent'] in SAFETY_INTENTS:
            safety_n += 1
            safety_ok += intent_ok
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_intent = {}
    for intent in INTENTS:
        support = sum(confusion.get(intent, {}).values())
        predicted = sum(row.get(intent, 0) for row in confusion.values())
        hit = confusion.get(intent, {}).get(intent, 0)
        if support or predicted:
            per_intent[intent] = {'support': support,
                                  'precision': round(hit / predicted, 4) if predicted else None,
                                  'recall': round(hit / support, 4) if support else None}
    return {
        'n': n,
        'intent_accuracy': round(correct / n, 4) if n else 0.0,
        'slot_precision': round(precision, 4), 'slot_recall': round(recall, 4),
        'slot_f1': round(f1, 4),
        'exact_match': round(exact / n, 4) if n else 0.0,
        'safety_recall': round(safety_ok / safety_n, 4) if safety_n else None,
        'safety_n': safety_n,
        'confusion': confusion,
        'per_intent': per_intent,
        'errors': errors,
    }


def plot_confusion(confusion: Dict[str, Dict[str, int]], path: Path, title: str) -> None:
    """Write a confusion-matrix PNG (rows expected, columns predicted; Agg backend)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [i for i in INTENTS if i in confusion or
              any(i in row for row in confusion.values())]
    mat = np.array([[confusion.get(r, {}).get(c, 0) for c in labels] for r in labels])
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(mat, cmap='Blues')
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha='right')
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel('predicted')
    ax.set_ylabel('expected')
    ax.set_title(title)
    for r in range(len(labels)):
        for c in range(len(labels)):
            if mat[r, c]:
                ax.text(c, r, str(mat[r, c]), ha='center', va='center',
                        color='white' if mat[r, c] > mat.max() / 2 else 'black', fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), dpi=100)
    plt.close(fig)
