"""Deterministic synthetic shapes: RGB images of one shape on a cluttered, textured background, with its mask.

Everything is vectorised over the batch with numpy (no per-image Python loop), so a 2,000-image test split takes
well under a second and the dashboard can regenerate it at start-up. The same seed gives the same bytes.

Each image holds exactly one object of one of ``SHAPE_CLASSES`` with random colour, size, position and rotation,
drawn over a two-colour grating texture with pixel noise and thin line-segment distractors (lines cannot be
mistaken for any class). ``marker="aligned"``/``"shuffled"`` adds the small coloured square of the
``shapes-shortcut`` workspace: its colour and position encode a class, which is the image's own class in the
aligned split (``ALIGNED_FRACTION`` of the time) and an unrelated random class in the shuffled split.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart")
IMAGE_SIZE = 64
MIN_RADIUS, MAX_RADIUS = 11.0, 20.0
NUM_DISTRACTORS = 5
MARKER_SIZE = 7
ALIGNED_FRACTION = 0.97
# One colour and one border position per class, for the shortcut marker.
MARKER_COLOURS = np.array(
    [(255, 0, 0), (0, 200, 0), (0, 80, 255), (255, 230, 0), (255, 0, 255), (0, 230, 230), (255, 140, 0),
     (255, 255, 255)],
    dtype=np.float32,
) / 255.0
_EDGE = 1
_FAR = IMAGE_SIZE - MARKER_SIZE - 1
_MID = (IMAGE_SIZE - MARKER_SIZE) // 2
MARKER_POSITIONS = np.array(  # (top, left) of the marker square, per class
    [(_EDGE, _EDGE), (_EDGE, _MID), (_EDGE, _FAR), (_MID, _FAR), (_FAR, _FAR), (_FAR, _MID), (_FAR, _EDGE),
     (_MID, _EDGE)],
    dtype=np.int64,
)
_CHUNK = 250  # images rendered at once; fixed so that the random stream, and so the bytes, never depend on it


@dataclass(frozen=True)
class ShapesBatch:
    """``images`` (N, H, W, 3) uint8, ``labels`` (N,) int64, ``masks`` (N, H, W) bool (visible object pixels),
    ``marker_classes`` (N,) int64 (-1 = no marker) and ``marker_boxes`` (N, 4) int64 (top, left, bottom, right)."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    marker_classes: np.ndarray
    marker_boxes: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# ------------------------------------------------------------------------------------ signed distances
# Each takes local coordinates (u, v) in units of the object's radius (the object fits in the unit disc) and
# returns an approximate signed distance in the same units: negative inside, positive outside.


def _sd_regular(u: np.ndarray, v: np.ndarray, n: int, m: float, r: float = 1.0) -> np.ndarray:
    """Regular polygon (m=2) or star (2 < m < n) with n points and circumradius r (Inigo Quilez's sdStar)."""
    an = np.pi / n
    en = np.pi / m
    acs = (math.cos(an), math.sin(an))
    ecs = (math.cos(en), math.sin(en))
    bn = np.mod(np.arctan2(u, v), 2.0 * an) - an
    length = np.sqrt(u * u + v * v)
    px = length * np.cos(bn) - r * acs[0]
    py = length * np.abs(np.sin(bn)) - r * acs[1]
    t = np.clip(-(px * ecs[0] + py * ecs[1]), 0.0, r * acs[1] / ecs[1])
    px = px + ecs[0] * t
    py = py + ecs[1] * t
    return np.sqrt(px * px + py * py) * np.sign(px)


def _sd_circle(u, v):
    return np.sqrt(u * u + v * v) - 0.9


def _sd_square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) - 0.68


def _sd_triangle(u, v):
    return _sd_regular(u, v + 0.12, 3, 2.0, r=1.05)


def _sd_star(u, v):
    return _sd_regular(u, v, 5, 3.0, r=1.0)


def _sd_cross(u, v):
    au, av = np.abs(u), np.abs(v)
    arm, half_width = 0.9, 0.3
    return np.minimum(np.maximum(au - arm, av - half_width), np.maximum(au - half_width, av - arm))


def _sd_ring(u, v):
    return np.abs(np.sqrt(u * u + v * v) - 0.68) - 0.24


def _sd_crescent(u, v):
    outer = np.sqrt(u * u + v * v) - 0.9
    bite = np.sqrt((u - 0.45) ** 2 + v * v) - 0.7
    return np.maximum(outer, -bite)


def _sd_heart(u, v):
    """Quilez's sdHeart, scaled and shifted so the heart is centred in the unit disc, point down."""
    scale = 0.64
    x = np.abs(u) * scale
    y = -v * scale + 0.56
    upper = x + y > 1.0
    d_upper = np.sqrt((x - 0.25) ** 2 + (y - 0.75) ** 2) - math.sqrt(2.0) / 4.0
    a = (x - 0.0) ** 2 + (y - 1.0) ** 2
    h = 0.5 * np.maximum(x + y, 0.0)
    b = (x - h) ** 2 + (y - h) ** 2
    d_lower = np.sqrt(np.minimum(a, b)) * np.sign(x - y)
    return np.where(upper, d_upper, d_lower) / scale


_SDF = (_sd_circle, _sd_square, _sd_triangle, _sd_star, _sd_cross, _sd_ring, _sd_crescent, _sd_heart)
assert len(_SDF) == len(SHAPE_CLASSES)


# ------------------------------------------------------------------------------------------ rendering
def _render_chunk(rng: np.random.Generator, labels: np.ndarray, marker_classes: np.ndarray, size: int):
    """Render one chunk. Works in float32 with few full-colour passes (they dominate the cost). The steps draw
    from ``rng`` in a fixed order, so the same seed gives the same bytes."""
    n = labels.shape[0]
    yy, xx = np.meshgrid(np.arange(size, dtype=np.float32) + 0.5, np.arange(size, dtype=np.float32) + 0.5,
                         indexing="ij")
    grid = (xx[None], yy[None])
    image, background_mean = _background(rng, n, size, grid)
    _draw_distractors(rng, image, size, grid)
    mask = _draw_object(rng, labels, image, background_mean, size, grid)
    boxes = _draw_markers(image, mask, marker_classes)
    image *= np.float32(255)
    image += rng.integers(-15, 16, (n, size, size, 1), dtype=np.int8)  # film grain, in brightness
    np.clip(image, 0, 255, out=image)
    return np.rint(image, out=image).astype(np.uint8), mask, boxes


def _background(rng: np.random.Generator, n: int, size: int, grid) -> tuple[np.ndarray, np.ndarray]:
    """A mix of two gratings between two related colours, so texture has edges at every scale; and the mean
    background colour of each image."""
    f32 = np.float32
    xx, yy = grid
    base = rng.uniform(0.15, 0.85, (n, 3)).astype(f32)
    other = np.clip(base + rng.uniform(-0.3, 0.3, (n, 3)).astype(f32), 0.0, 1.0)
    texture = np.zeros((n, size, size), f32)
    for _ in range(2):
        freq = rng.uniform(1 / 20, 1 / 5, (n, 1, 1)).astype(f32) * f32(2 * np.pi)
        angle = rng.uniform(0, np.pi, (n, 1, 1)).astype(f32)
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(f32)
        texture += np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)) + phase)
    texture = texture * f32(0.25) + f32(0.5)
    image = texture[..., None] * (other - base)[:, None, None, :]
    image += base[:, None, None, :]
    return image, (base + other) / 2


def _draw_distractors(rng: np.random.Generator, image: np.ndarray, size: int, grid) -> None:
    """Thin line segments in random colours, under the object; each is painted over the previous ones.
    Distances are computed on the whole grid, blending only where a line is (a few % of pixels)."""
    f32 = np.float32
    xx, yy = grid
    n = image.shape[0]
    flat = image.reshape(-1, 3)
    for _ in range(NUM_DISTRACTORS):
        present = rng.random(n) < 0.8
        x0, y0 = (rng.uniform(0, size, (n, 1, 1)).astype(f32) for _ in range(2))
        length = rng.uniform(10, 36, (n, 1, 1)).astype(f32)
        angle = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(f32)
        width = rng.uniform(0.5, 1.1, (n, 1, 1)).astype(f32) + f32(0.5)
        colour = rng.uniform(0, 1, (n, 3)).astype(f32)
        dx, dy = np.cos(angle), np.sin(angle)
        ox, oy = xx - x0, yy - y0
        t = ox * dx
        t += oy * dy
        np.maximum(t, 0, out=t)
        np.minimum(t, length, out=t)
        ox -= t * dx
        oy -= t * dy
        ox *= ox
        oy *= oy
        ox += oy
        np.sqrt(ox, out=ox)
        coverage = width - ox  # > 0 on the line; the fraction in (0, 1) anti-aliases its edge
        coverage[~present] = 0
        hit = np.flatnonzero(coverage > 0)
        alpha = np.minimum(coverage.reshape(-1)[hit], 1)[:, None]
        flat[hit] += (colour[hit // (size * size)] - flat[hit]) * alpha


def _draw_object(rng: np.random.Generator, labels: np.ndarray, image: np.ndarray, background_mean: np.ndarray,
                 size: int, grid) -> np.ndarray:
    """The object: contrasting colour, random radius, position inside the frame and rotation; returns its mask."""
    f32 = np.float32
    xx, yy = grid
    n = labels.shape[0]
    radius = rng.uniform(MIN_RADIUS, MAX_RADIUS, n).astype(f32)
    cx = rng.uniform(radius + 1, size - 1 - radius).astype(f32)
    cy = rng.uniform(radius + 1, size - 1 - radius).astype(f32)
    theta = rng.uniform(0, 2 * np.pi, n).astype(f32)
    colour = _contrasting_colours(rng, background_mean)
    cos_t, sin_t = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    inv_r = (1 / radius)[:, None, None]
    rel_x = (xx - cx[:, None, None]) * inv_r
    rel_y = (yy - cy[:, None, None]) * inv_r
    u = rel_x * cos_t + rel_y * sin_t
    v = rel_y * cos_t - rel_x * sin_t
    signed = np.empty((n, size, size), f32)
    for k, sdf in enumerate(_SDF):
        rows = np.flatnonzero(labels == k)
        if rows.size:
            signed[rows] = sdf(u[rows], v[rows])
    signed *= radius[:, None, None]
    hit = np.flatnonzero(signed < 0.5)
    alpha = np.minimum(f32(0.5) - signed.reshape(-1)[hit], 1)[:, None]
    shade = f32(1) + f32(0.09) * u.reshape(-1)[hit] - f32(0.12) * v.reshape(-1)[hit]  # light from the top left
    flat = image.reshape(-1, 3)
    flat[hit] += (colour[hit // (size * size)] * shade[:, None] - flat[hit]) * alpha
    return signed <= 0


def _contrasting_colours(rng: np.random.Generator, background_mean: np.ndarray) -> np.ndarray:
    """A random colour per image, redrawn (then forced dark or light) until it stands out from the background."""
    f32 = np.float32
    colour = rng.uniform(0, 1, (background_mean.shape[0], 3)).astype(f32)
    for _ in range(8):
        weak = np.linalg.norm(colour - background_mean, axis=1) < 0.5
        if not weak.any():
            break
        colour[weak] = rng.uniform(0, 1, (int(weak.sum()), 3)).astype(f32)
    weak = np.linalg.norm(colour - background_mean, axis=1) < 0.5
    colour[weak] = np.where(background_mean[weak] > 0.5, 0.05, 0.95).astype(f32)
    return colour


def _draw_markers(image: np.ndarray, mask: np.ndarray, marker_classes: np.ndarray) -> np.ndarray:
    """The optional shortcut marker, drawn on top (it may hide a corner of the object; the mask says what is
    seen); returns each image's marker box (top, left, bottom, right), -1s without one."""
    boxes = np.full((image.shape[0], 4), -1, np.int64)
    for k in range(len(SHAPE_CLASSES)):
        rows = np.flatnonzero(marker_classes == k)
        if not rows.size:
            continue
        top, left = MARKER_POSITIONS[k]
        image[rows, top:top + MARKER_SIZE, left:left + MARKER_SIZE, :] = MARKER_COLOURS[k] * np.float32(0.95)
        mask[rows, top:top + MARKER_SIZE, left:left + MARKER_SIZE] = False
        boxes[rows] = (top, left, top + MARKER_SIZE, left + MARKER_SIZE)
    return boxes


def generate_shapes(n: int, seed: int, marker: str | None = None, size: int = IMAGE_SIZE) -> ShapesBatch:
    """``n`` images from ``seed``: balanced random classes, one object each.

    marker: None (no marker), ``"aligned"`` (the marker's class is the label ``ALIGNED_FRACTION`` of the time, a
    random class otherwise) or ``"shuffled"`` (always a random class, independent of the label).
    """
    if marker not in (None, "aligned", "shuffled"):
        raise ValueError(f"marker must be None, 'aligned' or 'shuffled', got {marker!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    num_classes = len(SHAPE_CLASSES)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    random_classes = rng.integers(0, num_classes, n).astype(np.int64)
    if marker is None:
        marker_classes = np.full(n, -1, np.int64)
    elif marker == "aligned":
        marker_classes = np.where(rng.random(n) < ALIGNED_FRACTION, labels, random_classes)
    else:
        marker_classes = random_classes
    images = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    boxes = np.empty((n, 4), np.int64)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        chunk_rng = np.random.default_rng([seed, start])
        images[start:stop], masks[start:stop], boxes[start:stop] = _render_chunk(
            chunk_rng, labels[start:stop], marker_classes[start:stop], size
        )
    return ShapesBatch(images, labels, masks, marker_classes, boxes)


@functools.lru_cache(maxsize=4)
def cached_shapes(n: int, seed: int, marker: str | None = None) -> ShapesBatch:
    """``generate_shapes`` memoised in memory (the arrays are shared: treat them as read-only)."""
    batch = generate_shapes(n, seed, marker)
    for array in (batch.images, batch.labels, batch.masks, batch.marker_classes, batch.marker_boxes):
        array.flags.writeable = False
    return batch
