"""
Labelled dataset generator: images of the cell camera plus ``labels.jsonl``.

Each image ``i`` is a fresh scene drawn from its own generator ``(seed, i)``: parts at rest on
the belt at random positions and yaw, fresh lighting and belt position, rendered by the same
camera and renderer as the running cell. So a dataset is deterministic per seed and a
generation interrupted at any point resumes where it stopped with identical results.
"""

import json
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import cv2
from lepton_robot.errors import ConfigError
from lepton_robot.interfaces import COLORS, CONDITIONS, SHAPES
from lepton_robot.sim.cell import WorkCell
import numpy as np

LABELS = 'labels.jsonl'
CAMERA = 'camera.json'
META = 'datagen.json'
FORMAT_VERSION = 1


def scene_labels(cell: WorkCell) -> List[Dict]:
    """
    Return the label of every part at least partly in view (``truncated`` when cut off).

    :param cell: the cell, after placing parts
    :return: list of label dicts (``id, bbox, shape, color, condition, position, yaw``)
    """
    out = []
    for truth in cell.parts():
        if truth.location != 'belt':
            continue
        bbox, visible, inside = cell.part_bbox(truth.id)
        if not visible or bbox[2] < 2 or bbox[3] < 2:
            continue
        label = {'id': truth.id, 'bbox': bbox, 'shape': truth.shape, 'color': truth.color,
                 'condition': truth.condition,
                 'position': [round(v, 5) for v in truth.position],
                 'yaw': round(truth.yaw, 5)}
        if not inside:
            label['truncated'] = True
        out.append(label)
    return out


def compose_scene(cell: WorkCell, rng: np.random.Generator, balance: bool,
                  n_parts: Optional[int] = None, max_parts: int = 5) -> None:
    """
    Clear the cell and place 1..``max_parts`` parts at rest in the camera's view.

    :param cell: a cell (the arm is not needed)
    :param rng: the scene's generator
    :param balance: draw shape, colour and condition uniformly (else the feeder weights)
    :param n_parts: exact number of parts (default: random)
    :param max_parts: upper bound of the random number of parts
    """
    cell.clear_parts()
    cell.randomize_lighting(rng)
    cell.belt_travel = float(rng.uniform(0, 10))
    x0, x1 = cell.view_x_range
    belt = cell.scenario.belt
    n = int(n_parts if n_parts is not None else rng.integers(1, max_parts + 1))
    placed = []
    for _ in range(n):
        shape = str(rng.choice(SHAPES)) if balance else None
        color = str(rng.choice(COLORS)) if balance else None
        condition = str(rng.choice(CONDITIONS)) if balance else None
        for _attempt in range(30):
            x = float(rng.uniform(x0 - 0.015, x1 + 0.015))
            y = float(belt['y'] + rng.uniform(-1, 1) * (belt['width'] / 2 - 0.04))
            if all(math.hypot(x - px, y - py) > 0.085 for px, py in placed):
                break
        else:
            continue
        placed.append((x, y))
        cell.spawn_part(shape, color, condition, x=x, y=y, rng=rng)


def iter_dataset(out_dir: Path, count: int, seed: int, balance: bool = False,
                 scenario='default', max_parts: int = 5) -> Iterator[int]:
    """
    Generate (or resume) a dataset, yielding each image index as it is written.

    :param out_dir: output directory (created)
    :param count: total number of images wanted
    :param seed: dataset seed
    :param balance: uniform classes (see :func:`compose_scene`)
    :param scenario: scenario name, path or object
    :param max_parts: most parts per image
    :return: iterator over written indices
    :raises ConfigError: when ``out_dir`` holds a dataset made with other options
    """
    if count < 0:
        raise ConfigError(f'--count must be >= 0, got {count}')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cell = WorkCell(scenario, seed=seed, with_arm=False)
    try:
        cell.feeder_enabled = False
        meta = {'format': FORMAT_VERSION, 'seed': int(seed), 'balance': bool(balance),
                'scenario': cell.scenario.name, 'max_parts': int(max_parts)}
        meta_path = out_dir / META
        if meta_path.is_file():
            old = json.loads(meta_path.read_text())
            if old != meta:
                raise ConfigError(f'{out_dir} holds a dataset made with {old}; this run asks '
                                  f'for {meta}: use another --out or the same options')
        else:
            meta_path.write_text(json.dumps(meta, indent=1) + '\n')
        (out_dir / CAMERA).write_text(json.dumps(cell.camera.to_dict(), indent=1) + '\n')
        labels_path = out_dir / LABELS
        done = _valid_lines(labels_path)
        with open(labels_path, 'a', encoding='utf-8') as labels:
            for index in range(done, count):
                rng = np.random.default_rng([int(seed), 11, index])
                compose_scene(cell, rng, balance, max_parts=max_parts)
                image = cell.render(rng=rng)
                name = f'{index:06d}.png'
                if not cv2.imwrite(str(out_dir / name), image):
                    raise ConfigError(f'cannot write {out_dir / name}')
                labels.write(json.dumps({'image': name, 'parts': scene_labels(cell)}) + '\n')
                labels.flush()
                yield index
    finally:
        cell.close()


def _valid_lines(path: Path) -> int:
    """Count complete label lines, dropping a partial last line (interrupted run)."""
    if not path.is_file():
        return 0
    lines = path.read_text(encoding='utf-8').split('\n')
    good = []
    for line in lines:
        if not line.strip():
            continue
        try:
            json.loads(line)
        except json.JSONDecodeError:
            break
        good.append(line)
    path.write_text(''.join(g + '\n' for g in good), encoding='utf-8')
    return len(good)


def contact_sheet(path: Path, seed: int = 0, scenario='default', scale: int = 1) -> np.ndarray:
    """
    Render every condition x shape (one part per tile, at camera resolution) into one image.

    Rows are conditions, columns shapes x two colours. Tiles are crops of real camera
    frames (same renderer, same resolution), enlarged ``scale`` times without smoothing.

    :param path: PNG to write
    :param seed: seed of the scenes
    :param scenario: scenario
    :param scale: nearest-neighbour enlargement of the sheet
    :return: the sheet (BGR)
    """
    cell = WorkCell(scenario, seed=seed, with_arm=False)
    cell.feeder_enabled = False
    tile = 72
    colours = ('red', 'green', 'blue', 'yellow', 'gray')
    cols = [(s, colours[(i * 2 + k) % len(colours)]) for i, s in enumerate(SHAPES)
            for k in range(2)]
    label_w, head_h = 70, 22
    sheet = np.full((head_h + tile * len(CONDITIONS), label_w + tile * len(cols), 3), 255,
                    np.uint8)
    try:
        x0, x1 = cell.view_x_range
        centre_x = (x0 + x1) / 2
        for r, cond in enumerate(CONDITIONS):
            cv2.putText(sheet, cond, (4, head_h + r * tile + tile // 2 + 4),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
            for c, (shape, color) in enumerate(cols):
                rng = np.random.default_rng([seed, 13, r, c])
                cell.clear_parts()
                cell.randomize_lighting(rng)
                pid = cell.spawn_part(shape, color, cond, x=centre_x, y=cell.scenario.belt['y'],
                                      rng=rng)
                img = cell.render(rng=rng)
                bx, by, bw, bh = cell.part_bbox(pid)[0]
                cx, cy = int(bx + bw / 2), int(by + bh / 2)
                crop = img[cy - tile // 2:cy + tile // 2, cx - tile // 2:cx + tile // 2]
                y = head_h + r * tile
                x = label_w + c * tile
                sheet[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
                if r == 0:
                    cv2.putText(sheet, f'{shape[:5]}/{color[:3]}', (x + 2, 15),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1, cv2.LINE_AA)
    finally:
        cell.close()
    if scale > 1:
        sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), sheet)
    return sheet
