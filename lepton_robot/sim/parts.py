"""
Part geometry and per-part procedural textures (the defects the camera must see).

A part is a convex prism (block, plate or 24-sided cylinder) described by its faces in the
part frame (origin at the centre of the unchipped prism, z up). A ``chip`` cuts a corner
off with an inclined plane: the outline seen from above is broken and the fracture facet
shows. ``scratch``, ``crack`` and ``stain`` are drawn into the top-face texture, which is
generated per part from the part's own random generator.
"""

from dataclasses import dataclass, field
import math
from typing import Dict, List, Mapping, Tuple

import cv2
from lepton_robot.interfaces import CONDITIONS, SHAPES
import numpy as np

#: texture resolution of the top face, pixels per metre (2 px/mm: finer than the camera)
TEXTURE_PX_PER_M = 2000.0
_CYLINDER_SIDES = 24

FACE_TOP, FACE_SIDE, FACE_BOTTOM, FACE_CHIP = 'top', 'side', 'bottom', 'chip'


@dataclass
class PartGeometry:
    """
    Convex polyhedron of one part, in the part frame.

    :ivar shape: 'block', 'cylinder' or 'plate'
    :ivar half_extents: half sizes (x, y, z) of the unchipped prism, metres
    :ivar faces: list of (kind, (M, 3) vertices in order, outward normal)
    :ivar top_bounds: (xmin, ymin, xmax, ymax) of the top face area textured
    """

    shape: str
    half_extents: Tuple[float, float, float]
    faces: List[Tuple[str, np.ndarray, np.ndarray]]
    top_bounds: Tuple[float, float, float, float]
    chip_plane: Tuple[np.ndarray, float] = None

    def __post_init__(self):
        """Precompute the stacked arrays the renderer uses every frame."""
        self.face_points = np.vstack([f[1] for f in self.faces])
        self.face_slices = []
        start = 0
        for f in self.faces:
            self.face_slices.append((start, start + len(f[1])))
            start += len(f[1])
        self.face_normals = np.array([f[2] for f in self.faces])
        self.face_centres = np.array([f[1].mean(axis=0) for f in self.faces])
        self.face_kinds = [f[0] for f in self.faces]
        self._vertices = np.unique(np.round(self.face_points, 7), axis=0)

    @property
    def vertices(self) -> np.ndarray:
        """Return the unique corner points, shape (K, 3); their hull is the collision shape."""
        return self._vertices

    @property
    def top_outline(self) -> np.ndarray:
        """Top face polygon (M, 3)."""
        return next(f[1] for f in self.faces if f[0] == FACE_TOP)


def _prism(outline: np.ndarray, hz: float) -> List[Tuple[str, np.ndarray, np.ndarray]]:
    """Return the faces of a vertical prism over a CCW 2D outline, half height ``hz``."""
    n = len(outline)
    top = np.hstack([outline, np.full((n, 1), hz)])
    bottom = np.hstack([outline[::-1], np.full((n, 1), -hz)])
    faces = [(FACE_TOP, top, np.array([0.0, 0.0, 1.0])),
             (FACE_BOTTOM, bottom, np.array([0.0, 0.0, -1.0]))]
    for i in range(n):
        a, b = outline[i], outline[(i + 1) % n]
        quad = np.array([[a[0], a[1], -hz], [b[0], b[1], -hz], [b[0], b[1], hz],
                         [a[0], a[1], hz]])
        edge = b - a
        normal = np.array([edge[1], -edge[0], 0.0])
        faces.append((FACE_SIDE, quad, normal / np.linalg.norm(normal)))
    return faces


def _clip_faces(faces, normal: np.ndarray, offset: float):
    """Clip a convex polyhedron (faces) by the half-space ``normal . p <= offset``."""
    out, cut_points = [], []
    for kind, poly, fnormal in faces:
        kept = []
        m = len(poly)
        for i in range(m):
            p, q = poly[i], poly[(i + 1) % m]
            dp, dq = normal @ p - offset, normal @ q - offset
            if dp <= 0:
                kept.append(p)
            if dp * dq < 0:
                x = p + (q - p) * (dp / (dp - dq))
                kept.append(x)
                cut_points.append(x)
            elif dq == 0:
                cut_points.append(q)
        if len(kept) >= 3:
            out.append((kind, np.array(kept), fnormal))
    if len(cut_points) >= 3:
        pts = np.unique(np.round(np.array(cut_points), 9), axis=0)
        n = normal / np.linalg.norm(normal)
        centre = pts.mean(axis=0)
        u = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(n, u)
        ang = np.arctan2((pts - centre) @ v, (pts - centre) @ u)
        pts = pts[np.argsort(ang)]
        # order CCW seen from outside (along +n)
        if np.cross(pts[1] - pts[0], pts[2] - pts[0]) @ n < 0:
            pts = pts[::-1]
        out.append((FACE_CHIP, pts, n))
    return out


def _rng_range(rng: np.random.Generator, pair) -> float:
    return float(rng.uniform(pair[0], pair[1]))


def make_geometry(shape: str, chipped: bool, parts_cfg: Mapping, chip_cfg: Mapping,
                  rng: np.random.Generator) -> PartGeometry:
    """
    Sample the size of a part (and its chip) and build its faces.

    :param shape: one of :data:`~lepton_robot.interfaces.SHAPES`
    :param chipped: cut a corner off (the ``chip`` condition)
    :param parts_cfg: the scenario's ``parts`` section
    :param chip_cfg: the scenario's ``defects.chip`` section
    :param rng: the part's generator
    :return: the geometry
    """
    if shape not in SHAPES:
        raise ValueError(f'unknown shape {shape!r}; expected one of {SHAPES}')
    if shape == 'block':
        side = _rng_range(rng, parts_cfg['block']['size'])
        hx = hy = side / 2.0
        hz = side * rng.uniform(0.45, 0.5)
    elif shape == 'plate':
        hx = _rng_range(rng, parts_cfg['plate']['length']) / 2.0
        hy = _rng_range(rng, parts_cfg['plate']['width']) / 2.0
        hz = _rng_range(rng, parts_cfg['plate']['height']) / 2.0
    else:
        hx = hy = _rng_range(rng, parts_cfg['cylinder']['radius'])
        hz = _rng_range(rng, parts_cfg['cylinder']['height']) / 2.0
    if shape == 'cylinder':
        ang = np.arange(_CYLINDER_SIDES) * 2 * math.pi / _CYLINDER_SIDES
        outline = np.stack([hx * np.cos(ang), hy * np.sin(ang)], axis=1)
    else:
        outline = np.array([[-hx, -hy], [hx, -hy], [hx, hy], [-hx, hy]])
    faces = _prism(outline, hz)
    chip_plane = None
    if chipped:
        size = _rng_range(rng, chip_cfg['size']) * 2.0 * min(hx, hy)
        depth = max(_rng_range(rng, chip_cfg['depth']) * 2.0 * hz, 0.006)
        if shape == 'cylinder':
            size *= 0.75
            theta = rng.uniform(0, 2 * math.pi)
            corner = np.array([hx * math.cos(theta), hy * math.sin(theta), hz])
            horiz = np.array([math.cos(theta), math.sin(theta), 0.0]) / size
        else:
            sx, sy = rng.choice([-1.0, 1.0], size=2)
            corner = np.array([sx * hx, sy * hy, hz])
            ax, ay = size * rng.uniform(0.8, 1.25), size * rng.uniform(0.8, 1.25)
            horiz = np.array([sx / ax, sy / ay, 0.0])
        normal = horiz + np.array([0.0, 0.0, 1.0 / depth])
        offset = float(normal @ corner) - 1.0
        faces = _clip_faces(faces, normal, offset)
        chip_plane = (normal, offset)
    return PartGeometry(shape, (hx, hy, hz), faces, (-hx, -hy, hx, hy), chip_plane)


@dataclass
class PartAppearance:
    """
    What a part looks like: base colour, top texture (BGR float32 0..1) and its alpha.

    :ivar base_bgr: mean surface colour, 0..1
    :ivar texture: (H, W, 3) float32 albedo of the top face area ``top_bounds``
    :ivar defect_mask: (H, W) bool, where the texture carries a defect (for tests/labels)
    """

    base_bgr: np.ndarray
    texture: np.ndarray
    defect_mask: np.ndarray
    meta: Dict[str, float] = field(default_factory=dict)


def _contrast_color(base: np.ndarray, contrast: float, lighter: bool) -> np.ndarray:
    if lighter:
        return base + (1.0 - base) * contrast
    return base * (1.0 - contrast)


def _luma(bgr: np.ndarray) -> float:
    return float(0.114 * bgr[0] + 0.587 * bgr[1] + 0.299 * bgr[2])


def _inside_point(rng, w, h, circle: bool, margin: float) -> np.ndarray:
    """Random point well inside the top face (texture pixels)."""
    for _ in range(50):
        p = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)])
        if not circle or np.hypot(p[0] - w / 2, p[1] - h / 2) < min(w, h) / 2 - margin:
            return p
    return np.array([w / 2.0, h / 2.0])


def make_appearance(geom: PartGeometry, color: str, condition: str, parts_cfg: Mapping,
                    defects_cfg: Mapping, rng: np.random.Generator) -> PartAppearance:
    """
    Generate the top-face texture of a part: its colour, harmless variation and defect.

    :param geom: the part's geometry (its top face bounds fix the texture size)
    :param color: one of the scenario's colours
    :param condition: one of :data:`~lepton_robot.interfaces.CONDITIONS`
    :param parts_cfg: the scenario's ``parts`` section
    :param defects_cfg: the scenario's ``defects`` section
    :param rng: the part's generator
    :return: the appearance
    """
    if condition not in CONDITIONS:
        raise ValueError(f'unknown condition {condition!r}; expected one of {CONDITIONS}')
    x0, y0, x1, y1 = geom.top_bounds
    w = max(8, int(round((x1 - x0) * TEXTURE_PX_PER_M)))
    h = max(8, int(round((y1 - y0) * TEXTURE_PX_PER_M)))
    base = np.asarray(parts_cfg['colors'][color], dtype=np.float32) / 255.0
    jitter = parts_cfg['color_jitter']
    base = np.clip(base * (1.0 + rng.uniform(-jitter, jitter, 3)), 0.02, 0.98).astype(
        np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # harmless variation: a slight tint gradient, fine grain and a soft specular highlight
    grad = _rng_range(rng, parts_cfg['tint_gradient'])
    gdir = rng.uniform(0, 2 * math.pi)
    ramp = ((xx / w - 0.5) * math.cos(gdir) + (yy / h - 0.5) * math.sin(gdir))
    tex = base[None, None, :] * (1.0 + grad * ramp)[..., None]
    tex = tex * (1.0 + rng.normal(0, 0.012, (h, w, 1)).astype(np.float32))
    spec = _rng_range(rng, parts_cfg['highlight'])
    if spec > 0:
        c = _inside_point(rng, w, h, geom.shape == 'cylinder', 0.2 * min(w, h))
        sigma = rng.uniform(0.15, 0.35) * min(w, h)
        blob = np.exp(-((xx - c[0]) ** 2 + (yy - c[1]) ** 2) / (2 * sigma ** 2))
        tex = tex + (1.0 - tex) * (spec * blob)[..., None]
    tex = tex.astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    circle = geom.shape == 'cylinder'
    lum = _luma(base)
    if condition == 'scratch':
        cfg = defects_cfg['scratch']
        for _ in range(int(rng.integers(cfg['count'][0], cfg['count'][1] + 1))):
            length = _rng_range(rng, cfg['length']) * min(w, h)
            centre = _inside_point(rng, w, h, circle, 0.3 * min(w, h))
            ang = rng.uniform(0, math.pi)
            d = np.array([math.cos(ang), math.sin(ang)])
            bend = rng.uniform(-0.12, 0.12) * length
            t = np.linspace(-0.5, 0.5, 12)[:, None]
            pts = centre + t * length * d + (0.25 - t ** 2) * 4 * bend * d[::-1] * [1, -1]
            pts = np.clip(pts, 1, [w - 2, h - 2])
            contrast = _rng_range(rng, cfg['contrast'])
            lighter = lum < 0.45 if rng.random() < 0.85 else lum >= 0.45
            col = _contrast_color(base, contrast, lighter)
            width = int(rng.integers(cfg['width_px'][0], cfg['width_px'][1] + 1))
            layer = np.zeros((h, w), np.uint8)
            cv2.polylines(layer, [np.round(pts * 4).astype(np.int32)], False, 255, width,
                          cv2.LINE_AA, shift=2)
            a = (layer.astype(np.float32) / 255.0)[..., None]
            tex = tex * (1 - a) + col[None, None, :] * a
            mask |= layer > 64
    elif condition == 'crack':
        cfg = defects_cfg['crack']
        length = _rng_range(rng, cfg['length']) * min(w, h)
        start = _inside_point(rng, w, h, circle, 0.3 * min(w, h))
        ang = rng.uniform(0, 2 * math.pi)
        nseg = int(rng.integers(cfg['segments'][0], cfg['segments'][1] + 1))
        pts = [start - 0.5 * length * np.array([math.cos(ang), math.sin(ang)])]
        for _ in range(nseg):
            a = ang + rng.uniform(-0.9, 0.9)
            pts.append(pts[-1] + length / nseg * np.array([math.cos(a), math.sin(a)]))
        pts = np.array(pts)
        paths = [pts]
        for _ in range(int(rng.integers(cfg['branches'][0], cfg['branches'][1] + 1))):
            k = int(rng.integers(1, nseg))
            b_ang = ang + rng.choice([-1, 1]) * rng.uniform(0.6, 1.3)
            branch = [pts[k]]
            for _ in range(max(2, nseg // 3)):
                a = b_ang + rng.uniform(-0.8, 0.8)
                branch.append(branch[-1] + 0.7 * length / nseg * np.array(
                    [math.cos(a), math.sin(a)]))
            paths.append(np.array(branch))
        layer = np.zeros((h, w), np.uint8)
        width = int(rng.integers(cfg['width_px'][0], cfg['width_px'][1] + 1))
        for path in paths:
            path = np.clip(path, 1, [w - 2, h - 2])
            cv2.polylines(layer, [np.round(path * 4).astype(np.int32)], False, 255, width,
                          cv2.LINE_AA, shift=2)
        a = (layer.astype(np.float32) / 255.0)[..., None]
        dark = base * rng.uniform(0.08, 0.2)
        tex = tex * (1 - a) + dark[None, None, :] * a
        mask |= layer > 64
    elif condition == 'stain':
        cfg = defects_cfg['stain']
        radius = _rng_range(rng, cfg['radius']) * min(w, h)
        centre = _inside_point(rng, w, h, circle, radius * 0.9)
        layer = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(cfg['blobs'][0], cfg['blobs'][1] + 1))):
            c = centre + rng.normal(0, 0.35 * radius, 2)
            axes = (radius * rng.uniform(0.45, 0.9), radius * rng.uniform(0.35, 0.75))
            cv2.ellipse(layer, (int(c[0]), int(c[1])), (int(axes[0]), int(axes[1])),
                        float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        layer = cv2.GaussianBlur(layer, (0, 0), max(1.0, radius * 0.12))
        strength = _rng_range(rng, cfg['strength'])
        # a brownish or oily tint, pushed away from the part's own colour
        tint = np.array(rng.choice([[0.10, 0.22, 0.35], [0.05, 0.08, 0.10],
                                    [0.35, 0.45, 0.50]]), np.float32)
        if abs(_luma(tint) - lum) < 0.2:
            tint = np.clip(tint * (0.3 if lum > 0.3 else 2.5), 0, 1).astype(np.float32)
        a = (np.clip(layer, 0, 1) * strength)[..., None]
        tex = tex * (1 - a) + tint[None, None, :] * a
        mask |= layer > 0.5
    return PartAppearance(base, np.clip(tex, 0, 1).astype(np.float32), mask.astype(bool),
                          {'gradient': grad, 'highlight': spec})
