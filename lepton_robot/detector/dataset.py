"""
Labelled datasets from ``lepton-robot datagen`` and their part crops (no torch).

A dataset directory holds ``NNNNNN.png`` frames, ``labels.jsonl`` (one line per frame:
``{"image", "parts": [{"id", "bbox", "shape", "color", "condition", "position", "yaw",
"truncated"?}]}``) and ``camera.json``. Crops are cut with the run-time segmentation
(:mod:`lepton_robot.detector.segmentation`), and each blob is matched to a labelled part
by bounding-box overlap, so training sees exactly what the detector sees in the cell.
"""

from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import sys
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
from lepton_robot.detector.segmentation import (BeltSegmenter, extract_crop,
                                                Segmentation, SegmentationConfig)
from lepton_robot.errors import ConfigError, ImageError
from lepton_robot.interfaces import COLORS, CONDITIONS, SHAPES
import numpy as np

LABELS_FILE = 'labels.jsonl'
CAMERA_FILE = 'camera.json'

#: Minimum IoU between a blob's box and a labelled part's box to call them the same part.
MATCH_IOU = 0.3


@dataclass
class Frame:
    """One labelled frame of a dataset."""

    path: Path
    parts: List[Dict[str, Any]]


def read_labels(directory: str) -> List[Frame]:
    """
    Read ``labels.jsonl`` of a dataset directory.

    :raises ConfigError: if the directory or its labels are missing or malformed.
    """
    root = Path(directory)
    labels = root / LABELS_FILE
    if not labels.is_file():
        raise ConfigError(f'{root} is not a dataset: {LABELS_FILE} missing '
                          '(make one with: lepton-robot datagen --out DIR)')
    frames = []
    with open(labels, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                frames.append(Frame(root / obj['image'], list(obj.get('parts', []))))
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f'{labels}:{line_no}: bad label line: {exc}') from exc
    return frames


def read_image(path: str) -> np.ndarray:
    """
    Read an image file as BGR uint8.

    :raises ImageError: if it cannot be read or decoded.
    """
    if not os.path.isfile(path):
        raise ImageError(f'{path}: no such file')
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f'{path}: not a readable image')
    return image


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the intersection over union of two ``[x, y, w, h]`` boxes."""
    ax0, ay0, aw, ah = a
    bx0, by0, bw, bh = b
    ix = max(0.0, min(ax0 + aw, bx0 + bw) - max(ax0, bx0))
    iy = max(0.0, min(ay0 + ah, by0 + bh) - max(ay0, by0))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match_boxes(pred: Sequence[Sequence[float]], truth: Sequence[Sequence[float]],
                min_iou: float = MATCH_IOU) -> List[Tuple[int, int, float]]:
    """
    Match predicted boxes to true boxes greedily by IoU (each used once).

    :return: ``(pred_index, truth_index, iou)`` for every match with IoU >= ``min_iou``.
    """
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)),
                   reverse=True)
    used_p, used_t, matches = set(), set(), []
    for score, i, j in pairs:
        if score < min_iou:
            break
        if i in used_p or j in used_t:
            continue
        used_p.add(i)
        used_t.add(j)
        matches.append((i, j, score))
    return matches


@dataclass
class CropSet:
    """Crops with their labels (indices into the contract vocabularies)."""

    crops: np.ndarray        # N x S x S x 3 uint8 BGR
    condition: np.ndarray    # N int64
    color: np.ndarray
    shape: np.ndarray
    areas: np.ndarray        # blob areas, pixels
    stats: Dict[str, int]

    def save(self, path: str) -> None:
        """Write the set as a compressed ``.npz``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + '.tmp')
        with open(tmp, 'wb') as f:   # written whole, then renamed: never a half file
            np.savez_compressed(f, crops=self.crops, condition=self.condition,
                                color=self.color, shape=self.shape, areas=self.areas,
                                stats=json.dumps(self.stats))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str) -> 'CropSet':
        """Read a set written by :meth:`save`."""
        with np.load(path) as data:
            return cls(data['crops'], data['condition'], data['color'], data['shape'],
                       data['areas'], json.loads(str(data['stats'])))


def iter_matched(frames: Sequence[Frame], segmenter: BeltSegmenter) \
        -> Iterator[Tuple[Frame, np.ndarray, Segmentation, List[Tuple[int, int, float]]]]:
    """Yield ``(frame, image, segmentation, matches of whole blobs to labelled parts)``."""
    for frame in frames:
        image = read_image(str(frame.path))
        seg = segmenter.segment(image)
        whole = [i for i, b in enumerate(seg.blobs) if not b.truncated]
        truth = [j for j, p in enumerate(frame.parts) if not p.get('truncated')]
        matches = match_boxes([seg.blobs[i].bbox for i in whole],
                              [frame.parts[j]['bbox'] for j in truth])
        yield frame, image, seg, [(whole[i], truth[j], s) for i, j, s in matches]


def build_crops(frames: Sequence[Frame], seg_config: SegmentationConfig, crop_px: int,
                out_size: int, progress: bool = False) -> CropSet:
    """
    Segment every frame and cut one labelled crop per matched, fully visible part.

    :return: the crops; ``stats`` counts labelled parts, matched ones, missed ones (a
        labelled part no blob matched) and unmatched blobs.
    """
    segmenter = BeltSegmenter(seg_config)
    crops, cond, color, shape, areas = [], [], [], [], []
    stats = {'frames': 0, 'labelled': 0, 'matched': 0, 'missed': 0, 'extra_blobs': 0}
    iterator = iter_matched(frames, segmenter)
    if progress:
        from tqdm import tqdm
        iterator = tqdm(iterator, total=len(frames), desc='crops', unit='frame')
    for frame, image, seg, matches in iterator:
        n_truth = sum(1 for p in frame.parts if not p.get('truncated'))
        n_whole = sum(1 for b in seg.blobs if not b.truncated)
        stats['frames'] += 1
        stats['labelled'] += n_truth
        stats['matched'] += len(matches)
        stats['missed'] += n_truth - len(matches)
        stats['extra_blobs'] += n_whole - len(matches)
        for bi, pj, _ in matches:
            part = frame.parts[pj]
            blob = seg.blobs[bi]
            crops.append(extract_crop(image, seg, blob, crop_px, out_size))
            cond.append(CONDITIONS.index(part['condition']))
            color.append(COLORS.index(part['color']))
            shape.append(SHAPES.index(part['shape']))
            areas.append(blob.area)
    empty = np.zeros((0, out_size, out_size, 3), np.uint8)
    return CropSet(np.stack(crops) if crops else empty,
                   np.asarray(cond, np.int64), np.asarray(color, np.int64),
                   np.asarray(shape, np.int64), np.asarray(areas, np.int64), stats)


def generate(out_dir: str, count: int, seed: int, extra_args: Optional[List[str]] = None,
             nice: int = 10) -> Path:
    """
    Render a dataset with ``lepton-robot datagen`` (in a child process, niced).

    Skips the work when ``out_dir`` already holds ``count`` labelled frames.

    :raises ConfigError: if datagen fails.
    """
    out = Path(out_dir)
    if (out / LABELS_FILE).is_file():
        with open(out / LABELS_FILE, encoding='utf-8') as f:
            if sum(1 for line in f if line.strip()) >= count:
                return out
    cmd = [sys.executable, '-m', 'lepton_robot', 'datagen', '--out', str(out),
           '--count', str(count), '--seed', str(seed), *(extra_args or [])]
    if nice and hasattr(os, 'nice'):
        cmd = ['nice', '-n', str(nice), *cmd]
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0:
        raise ConfigError(f'datagen failed (exit {result.returncode}): {" ".join(cmd)}')
    return out
