"""
A tiny synthetic belt-image generator for unit tests of the detector's image code.

It is NOT the training data (the shipped model is trained on ``lepton-robot datagen``
renders of the simulated cell); it only gives the segmentation, crop and CLI tests images
with known parts, fast and without PyBullet.
"""

import json
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

BGR = {'red': (40, 40, 200), 'green': (50, 170, 60), 'blue': (190, 90, 40),
       'yellow': (40, 200, 220), 'gray': (150, 150, 150)}
BELT = (60, 62, 58)


def belt(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """Return an empty belt: dark, slightly noisy, with a soft lighting gradient."""
    rng = np.random.default_rng(seed)
    img = np.empty((height, width, 3), np.float32)
    img[:] = BELT
    grad = np.linspace(-8, 8, width, dtype=np.float32)[None, :, None]
    img += grad + rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_part(img: np.ndarray, center: Tuple[int, int], shape: str, color: str,
              condition: str = 'ok', yaw: float = 0.0, size: int = 26,
              rng: np.random.Generator = None) -> Tuple[int, int, int, int]:
    """Draw one part; return its [x, y, w, h] box."""
    rng = rng or np.random.default_rng(0)
    mask = np.zeros(img.shape[:2], np.uint8)
    cx, cy = center
    if shape == 'cylinder':
        cv2.circle(mask, (cx, cy), size // 2, 255, -1)
    else:
        w, h = (size, size) if shape == 'block' else (int(size * 1.5), size)
        box = cv2.boxPoints(((cx, cy), (w, h), np.degrees(yaw)))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 255)
    if condition == 'chip':
        ys, xs = np.nonzero(mask)
        i = int(rng.integers(len(xs)))
        far = np.argmax((xs - cx) ** 2 + (ys - cy) ** 2 + (i % 3))
        cv2.circle(mask, (int(xs[far]), int(ys[far])), max(4, size // 4), 0, -1)
    img[mask > 0] = BGR[color]
    inside = mask > 0
    if condition == 'scratch':
        line = np.zeros_like(mask)
        a = rng.uniform(0, np.pi)
        d = size * 0.35
        p0 = (int(cx - d * np.cos(a)), int(cy - d * np.sin(a)))
        p1 = (int(cx + d * np.cos(a)), int(cy + d * np.sin(a)))
        cv2.line(line, p0, p1, 255, 1)
        img[(line > 0) & inside] = np.clip(np.asarray(BGR[color]) + 70, 0, 255)
    elif condition == 'crack':
        pts = [(cx - size // 3, cy)]
        for _ in range(5):
            x, y = pts[-1]
            pts.append((x + size // 7, y + int(rng.integers(-3, 4))))
        line = np.zeros_like(mask)
        cv2.polylines(line, [np.asarray(pts, np.int32)], False, 255, 1)
        img[(line > 0) & inside] = (15, 15, 15)
    elif condition == 'stain':
        blot = np.zeros_like(mask)
        cv2.ellipse(blot, (cx + 2, cy - 2), (size // 5, size // 7), 30, 0, 360, 255, -1)
        img[(blot > 0) & inside] = (np.asarray(BGR[color]) * 0.55).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), \
        int(ys.max() - ys.min() + 1)


def scene(parts: List[Dict], width: int = 320, height: int = 240, seed: int = 0) \
        -> Tuple[np.ndarray, List[Dict]]:
    """Render parts given as dicts with center/shape/color/condition; return image, labels."""
    rng = np.random.default_rng(seed)
    img = belt(width, height, seed)
    labels = []
    for i, p in enumerate(parts):
        bbox = draw_part(img, p['center'], p['shape'], p['color'], p.get('condition', 'ok'),
                         p.get('yaw', 0.0), p.get('size', 26), rng)
        x, y, w, h = bbox
        truncated = x <= 0 or y <= 0 or x + w >= width or y + h >= height
        labels.append({'id': i, 'bbox': list(bbox), 'shape': p['shape'], 'color': p['color'],
                       'condition': p.get('condition', 'ok'), 'position': [0.0, 0.0, 0.0],
                       'yaw': p.get('yaw', 0.0), **({'truncated': True} if truncated else {})})
    return img, labels


def random_scene(seed: int, n_parts: int = 4, width: int = 320, height: int = 240):
    """Return a scene with ``n_parts`` well-separated random parts."""
    rng = np.random.default_rng(seed)
    parts = []
    cols = max(1, n_parts)
    for i in range(n_parts):
        cx = int((i + 0.5) * width / cols + rng.integers(-5, 6))
        cy = int(height / 2 + rng.integers(-50, 51))
        parts.append({'center': (cx, cy),
                      'shape': ('block', 'cylinder', 'plate')[int(rng.integers(3))],
                      'color': tuple(BGR)[int(rng.integers(5))],
                      'condition': ('ok', 'scratch', 'crack', 'stain', 'chip')[
                          int(rng.integers(5))],
                      'yaw': float(rng.uniform(0, np.pi))})
    return scene(parts, width, height, seed)


def write_dataset(out: Path, count: int, seed: int = 0, n_parts: int = 3) -> Path:
    """Write ``count`` random scenes in the datagen layout (PNG + labels.jsonl)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / 'labels.jsonl', 'w', encoding='utf-8') as f:
        for i in range(count):
            img, labels = random_scene(seed * 1000 + i, n_parts)
            name = f'{i:06d}.png'
            cv2.imwrite(str(out / name), img)
            f.write(json.dumps({'image': name, 'parts': labels}) + '\n')
    return out
