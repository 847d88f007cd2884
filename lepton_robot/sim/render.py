"""
Fast projective rasteriser for the cell camera (numpy + OpenCV).

PyBullet's TinyRenderer is too slow and too coarse for 1-pixel scratches, so the camera
image is drawn here from the parts' actual PyBullet poses and the SAME calibrated
:class:`~lepton_robot.sim.camera.CameraModel`: the image is geometrically exact for
pixel <-> world. Everything is drawn in the ideal (undistorted) pinhole image, then one
``cv2.remap`` applies the lens distortion ``D``.
"""

from dataclasses import dataclass
import math
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import cv2
from lepton_robot.sim.camera import CameraModel
from lepton_robot.sim.parts import FACE_CHIP, FACE_TOP, PartAppearance, PartGeometry
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
        # world (x, y) on the belt plane for every ideal pixel
        vv, uu = np.mgrid[0:h, 0:w].astype(np.float64)
        kinv = np.linalg.inv(camera.K)
        rays = np.stack([uu, vv, np.ones_like(uu)], -1) @ kinv.T @ camera.world_T_camera[
            :3, :3].T
        origin = camera.world_T_camera[:3, 3]
        s = (self._top_z - origin[2]) / rays[..., 2]
        self._wx = (origin[0] + rays[..., 0] * s).astype(np.float32)
        wy = origin[1] + rays[..., 1] * s
        self._map_v = ((self._belt_y + self._belt_half - wy) * _BELT_TEX_PX_PER_M).astype(
            np.float32)
        dist = np.abs(wy - self._belt_y) - self._belt_half
        px = 1.0 / (_BELT_TEX_PX_PER_M * 0.9)
        self._belt_alpha = np.clip(0.5 - dist / px, 0, 1).astype(np.float32)[..., None]
        # static background: aluminium rails along the belt, then the floor
        floor = 80 + 8 * _periodic_noise(rng, (h, w), 6.0)
        rail = 165 + 25 * np.cos(np.clip(dist / _RAIL_WIDTH_M, 0, 1) * math.pi)
        is_rail = (dist < _RAIL_WIDTH_M).astype(np.float32)
        bg = is_rail * rail + (1 - is_rail) * floor
        self._background = np.repeat(bg[..., None], 3, axis=2).astype(np.float32)
        # belt rubber: fine grain, faint lengthwise streaks, one seam per period
        tw = int(round(_BELT_PERIOD_M * _BELT_TEX_PX_PER_M))
        th = int(round(2 * self._belt_half * _BELT_TEX_PX_PER_M)) + 2
        grey = float(rng.uniform(*belt_cfg['gray']))
        grain = _periodic_noise(rng, (th, tw), 0.8)
        streak = _periodic_noise(rng, (th, 1), 1.5)
        tex = grey + 5.0 * grain + 4.0 * streak
        seam = int(rng.integers(0, tw))
        tex[:, seam:seam + 3] -= 12
        self._belt_tex = np.repeat(np.clip(tex, 0, 255)[..., None], 3, 2).astype(np.uint8)
        self._belt_tex_w = tw
        # lens distortion: for each raw pixel, where it lies in the ideal image
        grid = np.stack([uu.ravel(), vv.ravel()], 1)
        xd = (grid - camera.K[:2, 2]) @ kinv[:2, :2].T
        xn = camera.undistort(xd)
        ideal = xn @ camera.P[:2, :2].T + camera.P[:2, 2]
        self._dist_x = ideal[:, 0].reshape(h, w).astype(np.float32)
        self._dist_y = ideal[:, 1].reshape(h, w).astype(np.float32)
        self._has_distortion = bool(np.any(camera.D))
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

    def _texture(self, part: DrawPart, scale: float) -> Tuple[np.ndarray, float]:
        """Return the top texture resampled near image resolution, and its scale."""
        cached = self._tex_cache.get(part.key)
        if cached is not None:
            return cached
        tex = part.appearance.texture
        h, w = tex.shape[:2]
        new_w = max(4, int(round(w * scale)))
        new_h = max(4, int(round(h * scale)))
        small = cv2.resize(tex, (new_w, new_h), interpolation=cv2.INTER_AREA)
        self._tex_cache[part.key] = (small, 1.0)
        return small, 1.0

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
        offset = belt_travel % _BELT_PERIOD_M
        map_u = (self._wx - np.float32(offset)) * np.float32(_BELT_TEX_PX_PER_M)
        belt = cv2.remap(self._belt_tex, map_u, self._map_v, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_WRAP)
        belt = belt.astype(np.float32) - self._background
        img = self._background + self._belt_alpha * belt
        img = np.clip(img, 0, 255).astype(np.uint8)
        cam_pos = self.camera.position
        draw = []
        for part in parts:
            depth = float(np.linalg.norm(part.position - cam_pos))
            draw.append((depth, part))
        draw.sort(key=lambda item: -item[0])
        for depth, part in draw:
            self._draw_part(img, part, lighting, cam_pos, depth)
        out = img.astype(np.float32) * self._gain(lighting)
        if rng is not None and lighting.noise_std > 0:
            oy, ox = rng.integers(0, 64, 2)
            out += self._noise[oy:oy + self.height, ox:ox + self.width] * np.float32(
                lighting.noise_std)
        out = np.clip(out, 0, 255).astype(np.uint8)
        if self._has_distortion:
            out = cv2.remap(out, self._dist_x, self._dist_y, cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
        return out

    def _draw_part(self, img: np.ndarray, part: DrawPart, lighting: Lighting,
                   cam_pos: np.ndarray, depth: float) -> None:
        rot, pos = part.rotation, part.position
        faces = []
        for kind, verts, normal in part.geometry.faces:
            world = verts @ rot.T + pos
            n_world = rot @ normal
            centre = world.mean(axis=0)
            if n_world @ (cam_pos - centre) <= 0:
                continue
            faces.append((float(np.linalg.norm(centre - cam_pos)), kind, verts, world,
                          n_world))
        if not faces:
            return
        faces.sort(key=lambda f: -f[0])
        base = part.appearance.base_bgr * 255.0
        for _, kind, verts, world, n_world in faces:
            uv = self.camera.project_ideal(world)
            shade = lighting.shade(n_world)
            if kind == FACE_TOP:
                self._draw_top(img, part, uv, world, shade, depth)
                continue
            if kind == FACE_CHIP:
                # raw fractured material: desaturated; pale on dark parts, dark on light ones
                luma = 0.114 * base[0] + 0.587 * base[1] + 0.299 * base[2]
                raw = 0.3 * base + (0.62 * 235.0 if luma < 120 else 0.12 * 235.0)
                colour = raw * max(shade, 0.85)
            else:
                colour = base * shade * 0.92
            pts = np.round(uv * 16).astype(np.int32)
            cv2.fillConvexPoly(img, pts, tuple(float(c) for c in np.clip(colour, 0, 255)),
                               cv2.LINE_AA, shift=4)

    def _draw_top(self, img, part: DrawPart, uv, world, shade, depth) -> None:
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
        scale = px_per_m / 2000.0
        tex, _ = self._texture(part, scale)
        th, tw = tex.shape[:2]
        corners = np.array([[bx0, by0, top_z], [bx1, by0, top_z], [bx1, by1, top_z],
                            [bx0, by1, top_z]])
        dst = self.camera.project_ideal(corners @ part.rotation.T + part.position)
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
