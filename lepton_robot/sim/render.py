"""
Fast projective rasteriser for the cell camera (numpy + OpenCV).

PyBullet's TinyRenderer is too slow and too coarse for 1-pixel scratches, so the camera
image is drawn here from the parts' actual PyBullet poses and the SAME calibrated
:class:`~lepton_robot.sim.camera.CameraModel`: every part vertex is projected with the full
model (distortion ``D`` included), so part geometry in the image is exact at the vertices
(edges between them are straight: sub-pixel error for the small distortion of the cell).
The belt texture, which carries no geometry, is an image-space panorama cropped at the belt
travel.
"""

from dataclasses import dataclass
import math
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import cv2
from lepton_robot.sim.camera import CameraModel
from lepton_robot.sim.parts import (FACE_CHIP, FACE_TOP, PartAppearance, PartGeometry,
                                    TEXTURE_PX_PER_M)
import numpy as np

_BELT_TEX_PX_PER_M = 1200.0
_BELT_PERIOD_M = 0.6
_RAIL_WIDTH_M = 0.035


@dataclass
class Lighting:
    """
    One lighting condition of the cell.

    :ivar brightness: global gain
    :ivar gains: per-channel (B, G, R) colour-temperature gains
    :ivar direction: unit vector towards the main light (world frame)
    :ivar ambient: share of ambient light, 0..1
    :ivar vignetting: darkening at the image corners, 0..1
    :ivar noise_std: pixel noise, 8-bit levels
    """

    brightness: float = 1.0
    gains: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    direction: Tuple[float, float, float] = (0.3, 0.2, 0.93)
    ambient: float = 0.5
    vignetting: float = 0.1
    noise_std: float = 1.5

    def shade(self, normal: np.ndarray) -> float:
        """Return the brightness of a face with world ``normal`` relative to a flat one."""
        d = np.asarray(self.direction)
        flat = self.ambient + (1.0 - self.ambient) * max(d[2], 0.0)
        return (self.ambient + (1.0 - self.ambient) * max(float(normal @ d), 0.0)) / flat


def sample_lighting(lighting_cfg: Mapping, noise_range: Sequence[float],
                    rng: np.random.Generator) -> Lighting:
    """
    Draw a lighting condition from a scenario's ``lighting`` ranges.

    :param lighting_cfg: the scenario's ``lighting`` section
    :param noise_range: the scenario's ``camera.noise_std`` range
    :param rng: generator
    :return: the lighting
    """
    def draw(key):
        lo, hi = lighting_cfg[key]
        return float(rng.uniform(lo, hi))

    temp = draw('color_temperature')
    az, el = math.radians(draw('azimuth_deg')), math.radians(draw('elevation_deg'))
    direction = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    return Lighting(brightness=draw('brightness'), gains=(1.0 + temp, 1.0, 1.0 - temp),
                    direction=direction, ambient=draw('ambient'),
                    vignetting=draw('vignetting'),
                    noise_std=float(rng.uniform(noise_range[0], noise_range[1])))


@dataclass
class DrawPart:
    """A part to draw: its geometry, appearance and pose (rotation matrix, position)."""

    key: int
    geometry: PartGeometry
    appearance: PartAppearance
    rotation: np.ndarray
    position: np.ndarray


def _periodic_noise(rng, shape, sigma_px) -> np.ndarray:
    """White noise low-pass filtered in Fourier space: periodic in both axes, std 1."""
    noise = rng.normal(0, 1, shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    filt = np.exp(-2 * (math.pi * sigma_px) ** 2 * (fx ** 2 + fy ** 2))
    out = np.real(np.fft.ifft2(np.fft.fft2(noise) * filt))
    return (out / (out.std() + 1e-9)).astype(np.float32)


class Renderer:
    """
    Draw the belt and the parts as the calibrated camera sees them.

    :param camera: the camera model (intrinsics, distortion, pose)
    :param belt_cfg: the scenario's ``belt`` section
    :param rng: generator for the static textures (belt, floor, noise bank)
    """

    def __init__(self, camera: CameraModel, belt_cfg: Mapping, rng: np.random.Generator):
        self.camera = camera
        self.width, self.height = camera.width, camera.height
        self._belt_y = float(belt_cfg['y'])
        self._belt_half = float(belt_cfg['width']) / 2.0
        self._top_z = float(belt_cfg['top_z'])
        h, w = self.height, self.width
        origin = camera.world_T_camera[:3, 3]
        # world (x, y) on the belt plane for every raw pixel (distortion included)
        vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
        grid = np.stack([uu.ravel(), vv.ravel()], 1)
        wy = camera.pixel_to_world(grid, self._top_z)[:, 1].reshape(h, w)
        dist = np.abs(wy - self._belt_y) - self._belt_half
        alpha = np.clip(0.5 - dist * _BELT_TEX_PX_PER_M * 0.9, 0, 1).astype(np.float32)
        # rows where the belt does not cover the whole width (the rails): blended there only
        self._edge_rows = np.flatnonzero(alpha.min(axis=1) < 1.0)
        self._belt_alpha = alpha[self._edge_rows][..., None]
        # static background: aluminium rails along the belt, then the floor
        floor = 80 + 8 * _periodic_noise(rng, (h, w), 6.0)
        rail = 165 + 25 * np.cos(np.clip(dist / _RAIL_WIDTH_M, 0, 1) * math.pi)
        is_rail = (dist < _RAIL_WIDTH_M).astype(np.float32)
        bg = is_rail * rail + (1 - is_rail) * floor
        self._background = np.repeat(bg[self._edge_rows, :, None], 3, axis=2).astype(
            np.float32)
        # belt rubber: fine grain, faint lengthwise streaks, one seam per period
        tw = int(round(_BELT_PERIOD_M * _BELT_TEX_PX_PER_M))
        th = int(round(2 * self._belt_half * _BELT_TEX_PX_PER_M)) + 2
        grey = float(rng.uniform(*belt_cfg['gray']))
        grain = _periodic_noise(rng, (th, tw), 0.8)
        streak = _periodic_noise(rng, (th, 1), 1.5)
        tex = grey + 5.0 * grain + 4.0 * streak
        seam = int(rng.integers(0, tw))
        tex[:, seam:seam + 3] -= 12
        tex = np.repeat(np.clip(tex, 0, 255)[..., None], 3, 2).astype(np.uint8)
        # The camera looks straight down, so belt travel is an image translation: render a
        # panorama one belt period wider than the image once, crop it at the travel offset.
        scale = camera.K[0, 0] / max(origin[2] - self._top_z, 1e-3)
        self._pano_period = max(1, int(round(_BELT_PERIOD_M * scale)))
        self._pano_scale = scale
        pv, pu = np.mgrid[0:h, -self._pano_period:w].astype(np.float64)
        rays = np.stack([pu, pv, np.ones_like(pu)], -1) @ np.linalg.inv(
            camera.K).T @ camera.world_T_camera[:3, :3].T
        t = (self._top_z - origin[2]) / rays[..., 2]
        px = origin[0] + rays[..., 0] * t
        py = origin[1] + rays[..., 1] * t
        map_u = np.mod(px * _BELT_TEX_PX_PER_M, tw).astype(np.float32)
        map_v = ((self._belt_y + self._belt_half - py) * _BELT_TEX_PX_PER_M).astype(np.float32)
        self._pano = cv2.remap(tex, map_u, map_v, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)
        r2 = ((uu - w / 2) ** 2 + (vv - h / 2) ** 2) / ((w / 2) ** 2 + (h / 2) ** 2)
        self._radial = r2.astype(np.float32)
        self._noise = rng.normal(0, 1, (h + 64, w + 64, 3)).astype(np.float32)
        self._tex_cache = {}
        self._gain_key = None
        self._gain_map = None

    def forget(self, key: int) -> None:
        """Drop the cached texture of part ``key`` (the part left the cell)."""
        self._tex_cache.pop(key, None)

    def _gain(self, lighting: Lighting) -> np.ndarray:
        key = (lighting.brightness, tuple(lighting.gains), lighting.vignetting)
        if key != self._gain_key:
            vig = 1.0 - lighting.vignetting * self._radial
            gains = np.asarray(lighting.gains, np.float32) * lighting.brightness
            self._gain_map = (vig[..., None] * gains[None, None, :]).astype(np.float32)
            self._gain_key = key
        return self._gain_map

    def _texture(self, part: DrawPart, scale: float) -> np.ndarray:
        """Return the part's top texture resampled near image resolution (cached)."""
        cached = self._tex_cache.get(part.key)
        if cached is None:
            tex = part.appearance.texture
            h, w = tex.shape[:2]
            size = (max(4, int(round(w * scale))), max(4, int(round(h * scale))))
            cached = cv2.resize(tex, size, interpolation=cv2.INTER_AREA)
            self._tex_cache[part.key] = cached
        return cached

    def render(self, parts: Iterable[DrawPart], belt_travel: float, lighting: Lighting,
               rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """
        Draw one frame.

        :param parts: the parts to draw, with their current poses
        :param belt_travel: how far the belt surface has moved (metres), for its texture
        :param lighting: the lighting condition
        :param rng: generator for the pixel noise (``None``: no noise)
        :return: (H, W, 3) uint8 BGR image
        """
        shift = int(round((belt_travel % _BELT_PERIOD_M) * self._pano_scale))
        shift %= self._pano_period
        start = self._pano_period - shift
        img = self._pano[:, start:start + self.width].copy()
        rows = self._edge_rows
        if len(rows):
            edge = img[rows].astype(np.float32)
            edge = self._background + self._belt_alpha * (edge - self._background)
            img[rows] = np.clip(edge, 0, 255).astype(np.uint8)
        cam_pos = self.camera.position
        draw = []
        for part in parts:
            depth = float(np.linalg.norm(part.position - cam_pos))
            draw.append((depth, part))
        draw.sort(key=lambda item: -item[0])
        for depth, part in draw:
            self._draw_part(img, part, lighting, cam_pos, depth)
        out = img.astype(np.float32)
        out *= self._gain(lighting)
        if rng is not None and lighting.noise_std > 0:
            oy, ox = rng.integers(0, 64, 2)
            out += self._noise[oy:oy + self.height, ox:ox + self.width] * np.float32(
                lighting.noise_std)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)

    def _draw_part(self, img: np.ndarray, part: DrawPart, lighting: Lighting,
                   cam_pos: np.ndarray, depth: float) -> None:
        rot, pos, geom = part.rotation, part.position, part.geometry
        normals = geom.face_normals @ rot.T
        centres = geom.face_centres @ rot.T + pos
        to_cam = cam_pos - centres
        visible = np.flatnonzero(np.einsum('ij,ij->i', normals, to_cam) > 0)
        if not len(visible):
            return
        world = geom.face_points @ rot.T + pos
        uv_all = self.camera.world_to_pixel(world)
        dist = np.einsum('ij,ij->i', to_cam, to_cam)
        light = np.asarray(lighting.direction)
        flat = lighting.ambient + (1.0 - lighting.ambient) * max(light[2], 0.0)
        shades = (lighting.ambient + (1.0 - lighting.ambient) * np.maximum(
            normals @ light, 0.0)) / flat
        base = part.appearance.base_bgr * 255.0
        luma = 0.114 * base[0] + 0.587 * base[1] + 0.299 * base[2]
        # raw fractured material: desaturated; pale on dark parts, dark on light ones
        raw = 0.3 * base + (0.62 * 235.0 if luma < 120 else 0.12 * 235.0)
        for i in visible[np.argsort(-dist[visible])]:
            a, b = geom.face_slices[i]
            uv = uv_all[a:b]
            kind = geom.face_kinds[i]
            if kind == FACE_TOP:
                self._draw_top(img, part, uv, shades[i], depth)
                continue
            colour = raw * max(shades[i], 0.85) if kind == FACE_CHIP else base * (
                shades[i] * 0.92)
            pts = np.round(uv * 16).astype(np.int32)
            cv2.fillConvexPoly(img, pts, np.clip(colour, 0, 255).tolist(), cv2.LINE_AA,
                               shift=4)

    def _draw_top(self, img, part: DrawPart, uv, shade, depth) -> None:
        h, w = img.shape[:2]
        x0 = max(0, int(math.floor(uv[:, 0].min())) - 1)
        y0 = max(0, int(math.floor(uv[:, 1].min())) - 1)
        x1 = min(w, int(math.ceil(uv[:, 0].max())) + 2)
        y1 = min(h, int(math.ceil(uv[:, 1].max())) + 2)
        if x1 <= x0 or y1 <= y0:
            return
        geom = part.geometry
        bx0, by0, bx1, by1 = geom.top_bounds
        top_z = float(part.geometry.top_outline[0, 2])
        px_per_m = self.camera.K[0, 0] / max(depth, 1e-3)
        scale = px_per_m / TEXTURE_PX_PER_M
        tex = self._texture(part, scale)
        th, tw = tex.shape[:2]
        corners = np.array([[bx0, by0, top_z], [bx1, by0, top_z], [bx1, by1, top_z],
                            [bx0, by1, top_z]])
        dst = self.camera.world_to_pixel(corners @ part.rotation.T + part.position)
        src = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
        hom = cv2.getPerspectiveTransform(src, (dst - [x0, y0]).astype(np.float32))
        warped = cv2.warpPerspective(tex, hom, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillConvexPoly(mask, np.round((uv - [x0, y0]) * 16).astype(np.int32), 255,
                           cv2.LINE_AA, shift=4)
        a = mask.astype(np.float32)[..., None] * np.float32(1.0 / 255.0)
        roi = img[y0:y1, x0:x1].astype(np.float32)
        top = warped * np.float32(255.0 * shade)
        img[y0:y1, x0:x1] = np.clip(roi + a * (top - roi), 0, 255).astype(np.uint8)
