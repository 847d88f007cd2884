"""
Belt segmentation: find the parts on the conveyor in a BGR frame (classical, no learning).

The belt is a large, fairly uniform surface and the parts are small, so the empty belt is
estimated per frame by a wide median filter at reduced resolution (which also follows
lighting gradients); pixels far enough from it in colour are foreground. Foreground blobs
are filled (defects inside a part never make holes), blobs that are too large for one part
are split with a distance-transform watershed (touching parts), and blobs that touch the
image border are flagged ``truncated``: they are not classified until fully in view.

Training builds its crops with this same module, so what the CNN learns on is exactly what
it sees at run time.
"""

from dataclasses import asdict, dataclass, fields
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

import cv2
from lepton_robot.errors import ConfigError, ImageError
import numpy as np


@dataclass
class SegmentationConfig:
    """
    Parameters of :class:`BeltSegmenter` (stored in the model metadata, so train = run time).

    :ivar downscale: the belt background is estimated at ``1/downscale`` resolution.
    :ivar background_kernel: median kernel (downscaled pixels, odd); must exceed twice the
        largest part's size at that scale so parts vanish from the background estimate.
    :ivar diff_threshold: colour distance (0..441, Euclidean in BGR) from the belt above
        which a pixel is a part pixel.
    :ivar min_area: blobs smaller than this (pixels) are noise.
    :ivar max_part_area: blobs larger than this (pixels) are split as touching parts
        (0 disables splitting).
    :ivar border_margin: a blob within this many pixels of the image (or ROI) edge is
        truncated.
    :ivar open_px: morphological opening (noise removal) kernel size, pixels.
    :ivar close_px: morphological closing (bridging thin gaps inside a part) kernel size.
    :ivar roi: optional ``[x, y, w, h]`` of the belt in the image; outside is ignored.
    :ivar split_fraction: watershed markers are the distance-transform regions above this
        fraction of the blob's maximum.
    """

    downscale: int = 4
    background_kernel: int = 31
    diff_threshold: float = 30.0
    min_area: int = 120
    max_part_area: int = 0
    border_margin: int = 2
    open_px: int = 3
    close_px: int = 5
    roi: Optional[Tuple[int, int, int, int]] = None
    split_fraction: float = 0.6

    def __post_init__(self) -> None:
        """Validate the values (a bad config fails here, not on the first frame)."""
        if self.downscale < 1:
            raise ConfigError(f'downscale must be >= 1, got {self.downscale}')
        if self.background_kernel < 3 or self.background_kernel % 2 == 0:
            raise ConfigError(f'background_kernel must be odd and >= 3, '
                              f'got {self.background_kernel}')
        if not 0 < self.diff_threshold < 442:
            raise ConfigError(f'diff_threshold must be in (0, 442), got {self.diff_threshold}')
        if self.min_area < 1 or self.max_part_area < 0:
            raise ConfigError('min_area must be >= 1 and max_part_area >= 0')
        if not 0.0 < self.split_fraction < 1.0:
            raise ConfigError(f'split_fraction must be in (0, 1), got {self.split_fraction}')
        if self.roi is not None:
            if len(self.roi) != 4 or min(self.roi[2:]) <= 0:
                raise ConfigError(f'roi must be [x, y, w, h] with w, h > 0, got {self.roi}')
            self.roi = tuple(int(v) for v in self.roi)

    def to_json(self) -> str:
        """Return the config as JSON (for the ONNX metadata)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> 'SegmentationConfig':
        """
        Build a config from a mapping, ignoring unknown keys.

        :raises ConfigError: if a value is invalid.
        """
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f'bad segmentation config: {exc}') from exc


@dataclass
class Blob:
    """
    One part candidate in a frame.

    :ivar label: its value in :attr:`Segmentation.labels`.
    :ivar bbox: ``(x, y, w, h)`` in pixels.
    :ivar area: pixel count.
    :ivar centroid: ``(u, v)`` mean pixel position.
    :ivar truncated: True when cut by the image or ROI border (not classified yet).
    """

    label: int
    bbox: Tuple[int, int, int, int]
    area: int
    centroid: Tuple[float, float]
    truncated: bool


@dataclass
class Segmentation:
    """The result of segmenting one frame: blobs, their label image and the belt estimate."""

    blobs: List[Blob]
    labels: np.ndarray        # int32 HxW, 0 = belt
    background: np.ndarray    # uint8 HxWx3, the estimated empty belt


def check_image(image: Any) -> np.ndarray:
    """
    Check that ``image`` is a non-empty HxWx3 uint8 BGR array.

    :return: the image as a C-contiguous array.
    :raises ImageError: if it is not.
    """
    if not isinstance(image, np.ndarray):
        raise ImageError(f'expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ImageError(f'expected uint8 pixels, got {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ImageError(f'expected an HxWx3 BGR image, got shape {image.shape}')
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise ImageError(f'image too small: {image.shape[1]}x{image.shape[0]}')
    return np.ascontiguousarray(image)


class BeltSegmenter:
    """Segment parts from the belt (see the module docstring for the method)."""

    def __init__(self, config: Optional[SegmentationConfig] = None) -> None:
        self.config = config or SegmentationConfig()
        c = self.config
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c.open_px, c.open_px)) \
            if c.open_px > 1 else None
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (c.close_px, c.close_px)) \
            if c.close_px > 1 else None

    def estimate_background(self, image: np.ndarray) -> np.ndarray:
        """Return the estimated empty belt (same size as ``image``)."""
        c = self.config
        h, w = image.shape[:2]
        small_w, small_h = max(1, w // c.downscale), max(1, h // c.downscale)
        small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
        kernel = min(c.background_kernel, _largest_odd(min(small_w, small_h)))
        if kernel >= 3:
            small = cv2.medianBlur(small, kernel)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def foreground(self, image: np.ndarray, background: np.ndarray) -> np.ndarray:
        """Return the uint8 (0/255) foreground mask after cleaning and hole filling."""
        c = self.config
        # Euclidean BGR distance; every intermediate is an integer below 2**24, so float32
        # holds it exactly (the channel sum is unrolled: numpy's reduce over a last axis
        # of 3 is several times slower).
        diff = cv2.absdiff(image, background).astype(np.float32)
        np.multiply(diff, diff, out=diff)
        dist = diff[..., 0] + diff[..., 1]
        dist += diff[..., 2]
        np.sqrt(dist, out=dist)
        mask = (dist > c.diff_threshold).view(np.uint8) * np.uint8(255)
        if c.roi is not None:
            x, y, w, h = c.roi
            roi_mask = np.zeros_like(mask)
            roi_mask[y:y + h, x:x + w] = 255
            mask &= roi_mask
        if self._close is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, self._close)
        if self._open is not None:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._open)
        # Fill every outer contour: a dark crack or a stain inside a part never makes a hole.
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        filled = np.zeros_like(mask)
        cv2.drawContours(filled, contours, -1, 255, thickness=cv2.FILLED)
        return filled

    def segment(self, image: np.ndarray) -> Segmentation:
        """
        Segment one frame.

        :param image: HxWx3 uint8 BGR.
        :return: the blobs (sorted left to right), their label image and the belt estimate.
        :raises ImageError: if the image is not a usable BGR frame.
        """
        image = check_image(image)
        background = self.estimate_background(image)
        mask = self.foreground(image, background)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8,
                                                               ltype=cv2.CV_32S)
        c = self.config
        areas = stats[:, cv2.CC_STAT_AREA]
        noise = areas < c.min_area
        noise[0] = False
        if noise.any():             # one lookup for all the noise specks, not a pass each
            lut = np.arange(n, dtype=np.int32)
            lut[noise] = 0
            labels = lut[labels]
        # Every label's pixels lie inside a known window: its component's bounding box, which
        # also holds the pieces a split makes of it. Blob statistics are taken there.
        windows = {}
        next_label = n
        for i in range(1, n):
            if noise[i]:
                continue
            x, y, w, h = (int(v) for v in stats[i, :4])
            windows[i] = (x, y, w, h)
            if c.max_part_area and areas[i] > c.max_part_area:
                first = next_label
                next_label = self._split(labels, i, next_label)
                windows.update((piece, (x, y, w, h)) for piece in range(first, next_label))
        return Segmentation(self._blobs(labels, image.shape, windows), labels, background)

    def _split(self, labels: np.ndarray, label: int, next_label: int) -> int:
        """Split blob ``label`` in place with a distance-transform watershed."""
        ys, xs = np.nonzero(labels == label)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        pad = 2
        sub = np.zeros((y1 - y0 + 2 * pad, x1 - x0 + 2 * pad), np.uint8)
        sub[pad:-pad, pad:-pad] = (labels[y0:y1, x0:x1] == label).astype(np.uint8)
        dist = cv2.distanceTransform(sub, cv2.DIST_L2, 5)
        peaks = (dist > self.config.split_fraction * dist.max()).astype(np.uint8)
        n_markers, markers = cv2.connectedComponents(peaks)
        if n_markers <= 2:   # one distance peak (e.g. two boxes side by side): k-means
            return self._split_kmeans(labels, label, ys, xs, next_label)
        markers = markers.astype(np.int32)
        unknown = (sub > 0) & (markers == 0)
        markers[sub == 0] = n_markers   # the belt as its own basin
        markers[unknown] = 0
        rgb = cv2.cvtColor((255 - np.clip(dist * 255.0 / max(dist.max(), 1e-6), 0, 255))
                           .astype(np.uint8), cv2.COLOR_GRAY2BGR)
        cv2.watershed(rgb, markers)
        region = labels[y0:y1, x0:x1]
        inner = markers[pad:-pad, pad:-pad]
        in_blob = region == label
        for m in range(1, n_markers):
            sel = in_blob & (inner == m)
            if m == 1:
                continue          # the first piece keeps the original label
            region[sel] = next_label
            next_label += 1
        # Watershed lines (-1) stay with the original label; that is at most one pixel wide.
        return next_label

    def _split_kmeans(self, labels: np.ndarray, label: int, ys: np.ndarray, xs: np.ndarray,
                      next_label: int) -> int:
        """Split a blob with no distance ridge into ceil(area / max_part_area) pieces."""
        k = max(2, int(np.ceil(len(xs) / float(self.config.max_part_area))))
        pts = np.stack([xs, ys], axis=1).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
        cv2.setRNGSeed(0)    # deterministic: the same frame always splits the same way
        _, assign, _ = cv2.kmeans(pts, k, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
        assign = assign.ravel()
        for m in range(1, k):
            sel = assign == m
            labels[ys[sel], xs[sel]] = next_label
            next_label += 1
        return next_label

    def _blobs(self, labels: np.ndarray, shape: Tuple[int, ...],
               windows: Mapping[int, Tuple[int, int, int, int]]) -> List[Blob]:
        """
        Describe every labelled blob; drop (zero) those a split left below ``min_area``.

        :param windows: ``{label: (x, y, w, h)}``, a window holding all of that label's
            pixels (a label may be absent from the image, e.g. a watershed piece).
        """
        c = self.config
        h, w = shape[:2]
        if c.roi is not None:
            rx, ry, rw, rh = c.roi
            lo_x, lo_y, hi_x, hi_y = max(rx, 0), max(ry, 0), min(rx + rw, w), min(ry + rh, h)
        else:
            lo_x, lo_y, hi_x, hi_y = 0, 0, w, h
        m = c.border_margin
        blobs = []
        for label in sorted(windows):
            wx, wy, ww, wh = windows[label]
            region = labels[wy:wy + wh, wx:wx + ww]
            inside = region == label
            ys, xs = np.nonzero(inside)     # row-major order, as over the whole image
            if not len(xs):
                continue
            if len(xs) < c.min_area:
                region[inside] = 0
                continue
            xs += wx
            ys += wy
            x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
            truncated = (x0 < lo_x + m or y0 < lo_y + m or x1 > hi_x - m or y1 > hi_y - m)
            blobs.append(Blob(label=int(label), bbox=(x0, y0, x1 - x0, y1 - y0),
                              area=int(len(xs)),
                              centroid=(float(xs.mean()), float(ys.mean())),
                              truncated=bool(truncated)))
        blobs.sort(key=lambda b: (b.centroid[0], b.centroid[1]))
        return blobs


def extract_crop(image: np.ndarray, seg: Segmentation, blob: Blob, crop_px: int,
                 out_size: int) -> np.ndarray:
    """
    Cut a square crop centred on ``blob`` at native resolution, other parts masked out.

    The window is ``crop_px`` pixels (enlarged when the blob is bigger, so the whole
    silhouette is always in view: a chip is a broken outline) and resized to ``out_size``.
    Pixels outside the image and pixels of other blobs are replaced by the belt estimate,
    so a neighbour never leaks into this part's crop.

    :return: ``out_size x out_size x 3`` uint8 BGR.
    """
    x, y, w, h = blob.bbox
    side = max(int(crop_px), max(w, h) + 4)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = int(round(cx - side / 2.0)), int(round(cy - side / 2.0))
    img_h, img_w = image.shape[:2]
    # Belt estimate everywhere first (edge-replicated beyond the image).
    if x0 >= 0 and y0 >= 0 and x0 + side <= img_w and y0 + side <= img_h:
        out = seg.background[y0:y0 + side, x0:x0 + side].copy()
    else:
        bx = np.clip(np.arange(x0, x0 + side), 0, img_w - 1)
        by = np.clip(np.arange(y0, y0 + side), 0, img_h - 1)
        out = seg.background[by[:, None], bx[None, :]]
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + side, img_w), min(y0 + side, img_h)
    if sx1 > sx0 and sy1 > sy0:
        patch = image[sy0:sy1, sx0:sx1]
        lab = seg.labels[sy0:sy1, sx0:sx1]
        others = ((lab != 0) & (lab != blob.label)).astype(np.uint8)
        if others.any():
            others = cv2.dilate(others, np.ones((5, 5), np.uint8))
        keep = (others == 0) | (lab == blob.label)
        dst = out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        np.copyto(dst, patch, where=keep[:, :, None])
    if side != out_size:
        out = cv2.resize(out, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return out


#: Names of :func:`blob_geometry`'s features (the shape fusion head's inputs).
GEOMETRY_FEATURES = ('aspect', 'fill', 'circularity', 'area', 'solidity', 'long_side',
                     'short_side')


def blob_geometry(seg: Segmentation, blob: Blob) -> np.ndarray:
    """
    Return silhouette features of a blob (see :data:`GEOMETRY_FEATURES`).

    Aspect ratio and sides of the minimum-area rectangle, fill (area / rectangle area),
    circularity (4 pi A / P^2), area and solidity (area / convex hull area): what tells a
    block from a plate from a cylinder, independent of yaw.
    """
    x, y, w, h = blob.bbox
    mask = (seg.labels[y:y + h, x:x + w] == blob.label).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros(len(GEOMETRY_FEATURES), np.float32)
    contour = max(contours, key=cv2.contourArea)
    (_, _), (rw, rh), _ = cv2.minAreaRect(contour)
    long_side, short_side = max(rw, rh), max(min(rw, rh), 1.0)
    area = float(mask.sum())
    perimeter = max(cv2.arcLength(contour, True), 1.0)
    hull = max(cv2.contourArea(cv2.convexHull(contour)), 1.0)
    return np.asarray([long_side / short_side, area / max(long_side * short_side, 1.0),
                       4.0 * np.pi * area / perimeter ** 2, area, area / hull,
                       long_side, short_side], np.float32)


def _largest_odd(n: int) -> int:
    return n if n % 2 == 1 else n - 1


def summarize_areas(areas: List[int]) -> Dict[str, float]:
    """Return min/median/p99/max of blob areas (used to size ``max_part_area``)."""
    if not areas:
        return {'min': 0.0, 'median': 0.0, 'p99': 0.0, 'max': 0.0}
    a = np.asarray(areas, np.float64)
    return {'min': float(a.min()), 'median': float(np.median(a)),
            'p99': float(np.percentile(a, 99)), 'max': float(a.max())}
