"""
The defect detector: segmentation + CNN on part crops + decision + world position + tracks.

``DefectDetector.detect(image)`` turns one BGR frame into a :class:`FrameResult`:

1. :class:`~lepton_robot.detector.segmentation.BeltSegmenter` finds part blobs; blobs cut by
   the image border are reported as ``truncated`` (seen, not yet inspectable) and not
   classified.
2. Each whole blob becomes a fixed-size crop (same code as training) and the CNN gives
   condition, color and shape probabilities in one batch. With the model's test-time
   augmentation ``flip`` (metadata ``tta``) the batch also holds each crop's mirror image
   and the two probability vectors of a part are averaged (one batch of 2N).
3. The condition label follows the sensitivity (0..100, default 50): a part is ``ok`` only
   when ``p(ok)`` reaches :func:`ok_threshold`; otherwise it is the most likely defect.
4. The world position comes from the camera calibration: the blob (top face plus the side
   faces perspective shows) is centred on the projection of the part's mid-height, so its
   centroid ray is intersected with the plane at belt top + half the predicted shape's
   height; ``position`` is the centre of the part's top face (x, y there, z = belt top +
   height: where a suction cup picks it) and ``yaw`` the part's orientation on the belt.
5. A light centroid tracker keeps ``track_id`` stable while a part crosses the view.
"""

from dataclasses import dataclass, field
import math
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
from lepton_robot.detector.backends import create_backend, InferenceBackend
from lepton_robot.detector.metadata import ModelMetadata, TTA_MODES
from lepton_robot.detector.segmentation import (BeltSegmenter, blob_geometry, check_image,
                                                extract_crop, Segmentation)
from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import SCHEMA_INSPECTION, validate_inspection
from lepton_robot.paths import models_dir
import numpy as np

DEFAULT_MODEL = 'defect_detector.onnx'

#: How far one sensitivity step moves the ok threshold, in logits: 0 -> 100 spans +-4.6
#: logits around the model's tuned threshold (0.5 -> 0.01 .. 0.99).
SENSITIVITY_LOGIT_SPAN = 4.6


def default_model_path() -> str:
    """Return the shipped model's path (``models/defect_detector.onnx``)."""
    return str(models_dir() / DEFAULT_MODEL)


def logit(p: float, eps: float = 1e-6) -> float:
    """Return ``log(p / (1 - p))`` with ``p`` clamped to ``[eps, 1 - eps]``."""
    p = min(max(float(p), eps), 1.0 - eps)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    """Return ``1 / (1 + exp(-x))``, the inverse of :func:`logit`."""
    return 1.0 / (1.0 + math.exp(-x))


def ok_threshold(sensitivity: float, base: float = 0.5) -> float:
    """
    Return the ``p(ok)`` a part needs to be called ok at ``sensitivity``.

    Sensitivity 50 gives ``base`` (the model's threshold tuned on validation data); higher
    sensitivity raises the bar (defects flagged more readily), lower lowers it. The shift is
    linear in logit space, ``(sensitivity - 50) / 50 * SENSITIVITY_LOGIT_SPAN``.

    :param sensitivity: 0..100.
    :param base: threshold at 50, in (0, 1).
    :raises ConfigError: if sensitivity is outside 0..100 or not finite.
    """
    if not isinstance(sensitivity, (int, float)) or not math.isfinite(sensitivity) \
            or not 0.0 <= sensitivity <= 100.0:
        raise ConfigError(f'sensitivity must be a number in 0..100, got {sensitivity!r}')
    return sigmoid(logit(base) + (sensitivity - 50.0) / 50.0 * SENSITIVITY_LOGIT_SPAN)


def decide_condition(probs: np.ndarray, conditions: Sequence[str], threshold: float) \
        -> Tuple[str, float]:
    """
    Return (label, score) for one part's condition probabilities.

    ``ok`` only when ``p(ok) >= threshold``; otherwise the most likely defect with its
    probability.
    """
    ok_index = list(conditions).index('ok')
    if probs[ok_index] >= threshold:
        return 'ok', float(probs[ok_index])
    defect = [i for i in range(len(conditions)) if i != ok_index]
    best = max(defect, key=lambda i: probs[i])
    return conditions[best], float(probs[best])


def fuse_shape(geometry: np.ndarray, cnn_probs: np.ndarray, fusion: Dict[str, Any]) \
        -> np.ndarray:
    """
    Return shape probabilities from blob geometry and the CNN's shape probabilities.

    A multinomial logistic regression (fitted at training time, weights in the model
    metadata) over the standardised features ``[geometry..., log p_cnn(shape)...]``.

    :param geometry: N x G features from :func:`blob_geometry`.
    :param cnn_probs: N x S CNN shape probabilities.
    """
    feats = np.concatenate([geometry, np.log(np.clip(cnn_probs, 1e-6, 1.0))], axis=1)
    feats = (feats - np.asarray(fusion['mean'])) / np.asarray(fusion['std'])
    logits = feats @ np.asarray(fusion['W']).T + np.asarray(fusion['b'])
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def preprocess(crops: Sequence[np.ndarray], meta: ModelMetadata) -> np.ndarray:
    """
    Turn BGR uint8 crops into the network input (float32 N x 3 x S x S, RGB, normalised).

    :param crops: ``S x S x 3`` uint8 BGR crops.
    """
    if not crops:
        return np.zeros((0, 3, meta.input_size, meta.input_size), np.float32)
    batch = np.stack(crops).astype(np.float32)[..., ::-1] / 255.0    # BGR -> RGB
    batch = (batch - np.asarray(meta.mean, np.float32)) / np.asarray(meta.std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


@dataclass
class PartDetection:
    """One classified part in a frame (see ``lepton.inspection/1``)."""

    bbox: Tuple[int, int, int, int]
    label: str
    score: float
    probs: Dict[str, float]
    color: str
    color_score: float
    shape: str
    shape_score: float
    centroid: Tuple[float, float]
    position: Optional[List[float]] = None
    yaw: Optional[float] = None
    track_id: int = -1

    def to_dict(self) -> Dict[str, Any]:
        """Return the part as in ``lepton.inspection/1``."""
        return {'track_id': int(self.track_id), 'bbox': [int(v) for v in self.bbox],
                'label': self.label, 'score': round(self.score, 4),
                'probs': {k: round(float(v), 4) for k, v in self.probs.items()},
                'color': self.color, 'color_score': round(self.color_score, 4),
                'shape': self.shape, 'shape_score': round(self.shape_score, 4),
                'position': None if self.position is None
                else [round(float(v), 4) for v in self.position],
                'yaw': None if self.yaw is None else round(float(self.yaw), 4)}


@dataclass
class FrameResult:
    """Everything the detector found in one frame."""

    parts: List[PartDetection]
    truncated: List[Dict[str, Any]]
    latency_ms: Dict[str, float]
    backend: str
    image_size: Tuple[int, int] = (0, 0)
    extra: Dict[str, Any] = field(default_factory=dict)

    def to_payload(self, stamp: float, frame_id: str) -> Dict[str, Any]:
        """
        Build the ``lepton.inspection/1`` payload (validated).

        Parts cut by the image border travel in the extra key ``truncated`` (bbox and
        position only): seen, not yet inspectable, never to be sorted on this frame.

        :raises SchemaError: if the payload breaks the contract (a bug, not bad input).
        """
        payload = {'schema': SCHEMA_INSPECTION, 'stamp': float(stamp), 'frame_id': frame_id,
                   'parts': [p.to_dict() for p in self.parts],
                   'truncated': self.truncated,
                   'backend': self.backend,
                   'latency_ms': {k: round(v, 3) for k, v in self.latency_ms.items()}}
        validate_inspection(payload)
        return payload


class CentroidTracker:
    """
    Greedy nearest-centroid tracker with a constant-velocity guess (parts ride a belt).

    :param gate_px: the farthest a part may move between frames and keep its id.
    :param max_missed: frames a track survives without a match.
    """

    def __init__(self, gate_px: float = 40.0, max_missed: int = 5) -> None:
        self.gate_px = float(gate_px)
        self.max_missed = int(max_missed)
        self._tracks: Dict[int, Dict[str, Any]] = {}
        self._next_id = 0

    def reset(self) -> None:
        """Forget every track."""
        self._tracks.clear()

    def update(self, centroids: Sequence[Tuple[float, float]]) -> List[int]:
        """Return one track id per centroid (new ids for new parts)."""
        preds = {tid: t['pos'] + t['vel'] for tid, t in self._tracks.items()}
        pairs = sorted(
            (float(np.hypot(*(np.asarray(c) - p))), i, tid)
            for i, c in enumerate(centroids) for tid, p in preds.items())
        ids: List[Optional[int]] = [None] * len(centroids)
        used = set()
        for dist, i, tid in pairs:
            if dist > self.gate_px:
                break
            if ids[i] is None and tid not in used:
                ids[i] = tid
                used.add(tid)
        for i, c in enumerate(centroids):
            pos = np.asarray(c, np.float64)
            if ids[i] is None:
                ids[i] = self._next_id
                self._next_id += 1
                self._tracks[ids[i]] = {'pos': pos, 'vel': np.zeros(2), 'missed': 0}
            else:
                t = self._tracks[ids[i]]
                t['vel'] = 0.5 * t['vel'] + 0.5 * (pos - t['pos'])
                t['pos'], t['missed'] = pos, 0
        for tid in list(self._tracks):
            if tid not in used and tid not in ids:
                t = self._tracks[tid]
                t['missed'] += 1
                t['pos'] = t['pos'] + t['vel']
                if t['missed'] > self.max_missed:
                    del self._tracks[tid]
        return [int(i) for i in ids]


class DefectDetector:
    """
    Run the whole per-frame pipeline on one backend.

    :param backend: a loaded :class:`InferenceBackend`.
    :param sensitivity: 0..100 (see :func:`ok_threshold`).
    :param camera: an object with ``pixel_to_world(uv, plane_z)`` (the sim's
        ``CameraModel``) and the belt top height ``belt_z``; positions are None without it.
    :param belt_z: world z of the belt top.
    :param track: keep track ids across frames (off for independent images).
    :param max_parts: classify at most this many parts per frame (the largest first).
    :param tta: test-time augmentation, ``none`` or ``flip``; default: the model's own
        (metadata ``tta``), which its ``ok_threshold`` was calibrated for.
    :raises ConfigError: if ``tta`` is unknown.
    """

    def __init__(self, backend: InferenceBackend, sensitivity: float = 50.0,
                 camera: Any = None, belt_z: Optional[float] = None, track: bool = True,
                 max_parts: int = 64, tta: Optional[str] = None) -> None:
        self.backend = backend
        self.meta: ModelMetadata = backend.metadata
        self.tta = self.meta.tta if tta is None else str(tta)
        if self.tta not in TTA_MODES:
            raise ConfigError(f'tta must be one of {", ".join(TTA_MODES)}, got {tta!r}')
        self.segmenter = BeltSegmenter(self.meta.segmentation)
        self._threshold = 0.5
        self.sensitivity = 50.0
        self.set_sensitivity(sensitivity)
        self.camera = camera
        self.belt_z = belt_z
        self.tracker = CentroidTracker(gate_px=max(self.meta.crop_px * 0.75, 10.0)) \
            if track else None
        self.max_parts = int(max_parts)

    @classmethod
    def from_model(cls, model_path: Optional[str] = None, backend: str = 'auto',
                   threads: int = 0, spin: str = 'run',
                   **kwargs: Any) -> 'DefectDetector':
        """
        Load a model file (default: the shipped one) on a backend and build a detector.

        :raises ModelError: if the model is missing or invalid.
        :raises BackendError: if the backend cannot run here.
        """
        impl = create_backend(model_path or default_model_path(), backend, threads=threads,
                              spin=spin)
        return cls(impl, **kwargs)

    @property
    def threshold(self) -> float:
        """Return the ``p(ok)`` needed to call a part ok at the current sensitivity."""
        return self._threshold

    def set_sensitivity(self, sensitivity: float) -> None:
        """
        Set the sensitivity (0..100).

        :raises ConfigError: if out of range.
        """
        self._threshold = ok_threshold(sensitivity, self.meta.ok_threshold)
        self.sensitivity = float(sensitivity)

    def crops(self, image: np.ndarray, seg: Segmentation) -> Tuple[list, list]:
        """Return (whole blobs, their crops) for a segmented frame, largest parts first."""
        whole = [b for b in seg.blobs if not b.truncated]
        whole = sorted(whole, key=lambda b: -b.area)[:self.max_parts]
        whole.sort(key=lambda b: (b.centroid[0], b.centroid[1]))
        crops = [extract_crop(image, seg, b, self.meta.crop_px, self.meta.input_size)
                 for b in whole]
        return whole, crops

    def detect(self, image: np.ndarray) -> FrameResult:
        """
        Detect and classify every part in one frame.

        :param image: HxWx3 uint8 BGR.
        :raises ImageError: if the image is not a usable BGR frame.
        :raises BackendError: if inference fails.
        """
        t0 = time.perf_counter()
        image = check_image(image)
        seg = self.segmenter.segment(image)
        blobs, crops = self.crops(image, seg)
        batch = preprocess(crops, self.meta)
        t1 = time.perf_counter()
        outputs = self._infer(batch) if len(batch) else {}
        t2 = time.perf_counter()
        parts = self._postprocess(seg, blobs, outputs)
        truncated = [{'bbox': [int(v) for v in b.bbox],
                      'position': self._position(b.centroid, None)}
                     for b in seg.blobs if b.truncated]
        t3 = time.perf_counter()
        return FrameResult(parts=parts, truncated=truncated,
                           latency_ms={'preprocess': (t1 - t0) * 1e3,
                                       'infer': (t2 - t1) * 1e3,
                                       'postprocess': (t3 - t2) * 1e3},
                           backend=self.backend.name,
                           image_size=(image.shape[1], image.shape[0]))

    def _infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the backend, with the test-time augmentation (see the module docstring)."""
        if self.tta != 'flip':
            return self.backend.infer(batch)
        n = len(batch)
        outputs = self.backend.infer(np.concatenate([batch, batch[..., ::-1]]))
        return {k: 0.5 * (v[:n] + v[n:]) for k, v in outputs.items()}

    def _postprocess(self, seg: Segmentation, blobs: list, outputs: Dict[str, np.ndarray]) \
            -> List[PartDetection]:
        meta = self.meta
        parts = []
        if blobs and meta.shape_fusion is not None:
            geometry = np.stack([blob_geometry(seg, b) for b in blobs])
            outputs = dict(outputs, shape=fuse_shape(geometry, outputs['shape'],
                                                     meta.shape_fusion))
        for i, blob in enumerate(blobs):
            cond = outputs['condition'][i]
            label, score = decide_condition(cond, meta.conditions, self._threshold)
            color_i = int(np.argmax(outputs['color'][i]))
            shape_i = int(np.argmax(outputs['shape'][i]))
            shape = meta.shapes[shape_i]
            parts.append(PartDetection(
                bbox=blob.bbox, label=label, score=score,
                probs={c: float(p) for c, p in zip(meta.conditions, cond)},
                color=meta.colors[color_i], color_score=float(outputs['color'][i][color_i]),
                shape=shape, shape_score=float(outputs['shape'][i][shape_i]),
                centroid=blob.centroid, position=self._position(blob.centroid, shape),
                yaw=self._yaw(seg, blob, shape)))
        if self.tracker is not None:
            for part, tid in zip(parts, self.tracker.update([p.centroid for p in parts])):
                part.track_id = tid
        else:
            for i, part in enumerate(parts):
                part.track_id = i
        return parts

    def _position(self, centroid: Tuple[float, float], shape: Optional[str]) \
            -> Optional[List[float]]:
        """Return the top-face centre in world (None without a calibration)."""
        if self.camera is None or self.belt_z is None:
            return None
        height = self.meta.part_heights.get(shape, 0.0) if shape else 0.0
        mid = float(self.belt_z) + height / 2.0
        xyz = self.camera.pixel_to_world(np.asarray([centroid], np.float64), mid)[0]
        if not np.all(np.isfinite(xyz)):
            return None
        return [float(xyz[0]), float(xyz[1]), float(self.belt_z) + height]

    def _yaw(self, seg: Segmentation, blob, shape: str) -> Optional[float]:
        """
        Return the part's yaw on the belt (rad), from the blob's minimum-area rectangle.

        Cylinders have none that matters (0); a block is symmetric every 90 degrees, a plate
        every 180 (its long side gives the angle). None without a calibration.
        """
        if self.camera is None or self.belt_z is None:
            return None
        if shape == 'cylinder':
            return 0.0
        x, y, w, h = blob.bbox
        ys, xs = np.nonzero(seg.labels[y:y + h, x:x + w] == blob.label)
        if len(xs) < 5:
            return None
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(
            np.column_stack([xs + x, ys + y]).astype(np.float32))
        theta = np.radians(angle if rw >= rh else angle + 90.0)
        z = float(self.belt_z) + self.meta.part_heights.get(shape, 0.0) / 2.0
        pts = self.camera.pixel_to_world(
            np.asarray([[cx, cy], [cx + 10 * np.cos(theta), cy + 10 * np.sin(theta)]]), z)
        if not np.all(np.isfinite(pts)):
            return None
        yaw = float(np.arctan2(pts[1, 1] - pts[0, 1], pts[1, 0] - pts[0, 0]))
        period = np.pi / 2 if shape == 'block' else np.pi
        return float((yaw + period / 2) % period - period / 2)

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()
